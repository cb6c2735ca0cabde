// engine::Model — the loaded networks of one StreamingT2V model, behind the few calls the generation loop
// needs. Samplers and the loop (engine.cpp) never see module internals; models never see samplers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "engine/engine.h"

namespace st2v::engine {

class Model {
  public:
    virtual ~Model() = default;
    ModelInfo info;

    // Token ids (77) for a prompt with the model's own tokenizer. The default model has a byte-level
    // vocabulary (sot, one token per byte, word-final bytes marked as CLIP's "</w>", eot); converted real
    // models are tokenised in TypeScript with their BPE files and pass ids instead.
    virtual std::vector<int32_t> tokenize(const std::string& text) const;
    // CLIP text tokens for 77 ids: [1, 77, D].
    virtual Tensor encode_text(const std::vector<int32_t>& ids) = 0;
    // APM: pooled image embedding of one frame [1, 3, H, W] in [-1, 1] -> [1, E]; resampler -> [1, 16, D].
    virtual Tensor encode_image(const Tensor& frame) = 0;
    virtual Tensor resample(const Tensor& embedding) = 0;
    // Stage 2 (UNet + CAM + APM): x [B, 4, F, h, w], ctx [B, 77 + 16, D], cond frames [B * Fc, 3, H, W] in [-1, 1]
    // (the previous chunk's last Fc frames, per CFG half). Returns eps [B, 4, F, h, w]. Adds the CAM and UNet
    // wall time in ms to *ms_cam / *ms_unet.
    virtual Tensor eps_extension(const Tensor& x, float t, const Tensor& ctx, const Tensor& cond_frames, double* ms_cam,
                                 double* ms_unet) = 0;
    // Stage 1 (plain UNet3D): x [B, 4, F, h, w], ctx [B, 77, D] -> eps. Only when info.has_base.
    virtual Tensor eps_base(const Tensor& x, float t, const Tensor& ctx) = 0;
    // VAE: latents already divided by the scaling factor, [N, 4, h, w] -> images [N, 3, H, W] (about [-1, 1]).
    virtual Tensor decode(const Tensor& z) = 0;
    virtual float vae_scale() const { return 0.18215f; }
    // Moves the denoisers (eps_extension, eps_base) to the CUDA backend with weights in `dtype` ("f32" | "bf16").
    // Throws ERR_NO_CUDA without a usable GPU, ERR_UNSUPPORTED where a model cannot.
    virtual void use_cuda(const std::string& dtype);
    // "cpu" or "cuda": where eps_extension / eps_base run.
    virtual const char* denoiser_backend() const { return "cpu"; }
};

// Loads a model folder written by `st2v convert` (model.json + one safetensors per component).
std::unique_ptr<Model> load_model_dir(const std::string& dir, const LoadOptions& opts);
// The embedded default: a tiny model of the real architecture with deterministic random weights.
std::unique_ptr<Model> make_default_model();

}  // namespace st2v::engine
