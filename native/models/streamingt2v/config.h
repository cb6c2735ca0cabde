// The whole StreamingT2V extension model as a config (base UNet3D + APM + CAM + resampler), detected from
// weight shapes, and the list of every weight (official key name + shape) such a config has. Used for strict
// binding (io::bind_strict), for random-weight models (benches, the embedded tiny model) and in tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/binding.h"
#include "io/weights.h"
#include "models/t2v/unet3d.h"

namespace st2v::t2v {

struct St2vConfig {
    std::string base_prefix = "base_model.";  // "" for a plain diffusers UNet3D checkpoint
    UNetConfig unet;                          // base model; unet.apm / unet.cam_mergers say which extras exist
    int64_t text_tokens = 77;                 // APM Conv1d out channels
    int64_t image_tokens = 16;                // APM Conv1d in channels - text_tokens
    bool alpha_scalar = true;                 // attn2.alpha stored as [] (official) or [1]
    bool cam = false;                         // unet. (ControlNet branch) present
    std::vector<int64_t> cond_channels;       // controlnet_cond_embedding widths, e.g. 32, 96, 256, 512 (full size)
    bool resampler = false;
    int64_t image_embed_dim = 1024;           // resampler input (OpenCLIP-H pooled embedding)
    int64_t resampler_inner = 1280;
    std::string str() const;

    static St2vConfig detect(const io::WeightStore& w);
    // Presets: the golden tiny model (64/128, head size 32, E_cond 16/16/32/32, resampler inner 64), the
    // bench mid-size model (128/256/512/512, head size 64, the rest as full size) and the official full size (320/640/1280/1280).
    static St2vConfig tiny();
    static St2vConfig mid();
    static St2vConfig full();
};

// Every weight of the config, with its official name and shape, in module order.
std::vector<io::Expected> expected_weights(const St2vConfig& c);

// A model with the official key names and seeded random values (norm weights 1 + 0.1 N, biases 0.05 N,
// matrices / convs N(0, 1 / fan_in), APM alpha U(0.5, 1)), stored in dtype (F32, F16 or BF16).
io::WeightStore make_random_weights(const St2vConfig& c, uint64_t seed, DType dtype = DType::F32);

// Analytic multiply-add FLOPs (2 per MAC) of one denoising step: CAM over cond_frames (when c.cam) and the
// base UNet over `frames`, batch B (2 with CFG), latents h x w, ctx_tokens context tokens. Counts convolutions,
// linear layers and attention products (norms and element-wise ops are not counted), as the engine runs the CFG step
// (its B samples share their latents): the cross-attention context's APM mix and K / V projections once per sample
// (t2v::detail::context_per_sample()), the stem (conv_in + transformer_in) once for all B samples
// (t2v::detail::shared_stem()).
double step_flops(const St2vConfig& c, int64_t B, int64_t frames, int64_t cond_frames, int64_t h, int64_t w, int64_t ctx_tokens);

// Binds the store strictly against expected_weights(detect(store)) (missing / wrong-shape keys throw, unknown
// keys are reported in the result) and builds nothing; returns the bind result.
io::BindResult bind_st2v_strict(const io::WeightStore& w, const St2vConfig& c, bool log_unexpected = false);

}  // namespace st2v::t2v
