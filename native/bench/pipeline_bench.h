// Random-weight model folders for the pipeline bench (`npm run bench -- pipeline`) and for tests that need a
// loadable model folder: every component a StreamingT2V model folder has (base_model., unet., resampler.,
// text_encoder., image_encoder., vae.) with the official key names, seeded values, written as one
// model.safetensors plus a model.json. Loaded by engine::load_model_dir like a converted model.
//
// Presets:
//   "tiny"  the embedded default model's weights (engine::make_tiny_weights), optionally with a larger text
//           vocabulary (vocab 49408 makes a folder that takes real CLIP BPE ids).
//   "mid"   UNet3D + CAM + resampler of t2v::St2vConfig::mid() (128/256/512/512, head size 64, 1024-d context,
//           full-size E_cond and resampler) with mid-size encoders: CLIP text 1024 wide x 4 layers, OpenCLIP
//           visual tower 512 wide x 4 layers (1024-d pooled embedding), VAE 128 channels at every level.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.h"

namespace st2v::bench {

struct RandomModelSpec {
    std::string preset = "mid";  // "tiny" or "mid"
    uint64_t seed = 1;
    DType dtype = DType::F16;    // weight dtype of the UNet/CAM/resampler (encoders too)
    int64_t vocab = 514;         // text vocabulary rows (514 = the byte-level tokenizer; 49408 = CLIP BPE)
    bool untrained = true;       // model.json "untrained": the engine then uses its byte-level tokenizer
    // Also write base/unet.safetensors: a plain UNet3D (no APM, no CAM mergers, base_model.* names, as `st2v convert`
    // writes the ModelScope text-to-video-ms-1.7b unet/) of the preset's widths, the stage-1 model (seed + 2).
    bool base = false;
};

struct RandomModelInfo {
    std::string config;   // what was built, in words
    double params = 0;
    double bytes = 0;     // bytes of the weights file
    double seconds = 0;   // time to make and write the weights
};

// Writes <dir>/model.safetensors and <dir>/model.json (creating dir), and <dir>/base/unet.safetensors when
// spec.base. Throws ERR_INVALID_ARG for a bad spec.
RandomModelInfo write_random_model(const std::string& dir, const RandomModelSpec& spec);

}  // namespace st2v::bench
