// Golden verification cases of issue 6 (VAE, CLIP text/image towers, the st2v ddim video decoded by the VAE).
// They are registered with `st2v verify` (models/common/verify_registry.h, group "encoders") and also callable
// directly. Each function adds nothing when its files are absent from the dump.
#pragma once
#include <string>
#include <vector>

#include "models/common/verify_registry.h"

namespace st2v::enc {

// golden/vae format: io/*.npy + vae_diffusers / vae_diffusers_legacy_attn / vae_ldm .safetensors (each naming).
void vae_cases(const std::string& dir, std::vector<verify::CaseResult>& out);
// golden/clip format: openclip_tiny.safetensors + hf_text/, enh_text/, apm_image/.
void clip_cases(const std::string& dir, std::vector<verify::CaseResult>& out);
// golden/st2v format: video = clamp(decode(latents_final / scaling) * 0.5 + 0.5, 0, 1) with vae_tiny.safetensors
// (GroupNorm groups from manifest vae_tiny_config.norm_num_groups).
void video_cases(const std::string& dir, std::vector<verify::CaseResult>& out);
// All three on shared/golden/{vae,clip,st2v}.
std::vector<verify::CaseResult> verify_encoders(const std::string& shared);

}  // namespace st2v::enc
