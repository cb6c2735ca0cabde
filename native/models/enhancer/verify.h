// Golden checks of the enhancer against shared/golden/enhancer (made with the official code):
// `fwd` (one forward with per-block outputs), `fwd_b2` (batch 2, per-sample timesteps, 10x16 latents) and
// `sample` (the full 30-step GaussianDiffusion_SDEdit.sample over 56 frames with recorded noise and split indices).
// Used by the gtests and the addon's verifyEnhancer.
#pragma once
#include <string>
#include <vector>

namespace st2v::enhancer {

struct VerifyResult {
    std::string name;
    double max_abs = 0;  // max |ours − ref|
    double max_err = 0;  // max |ours − ref| / max(1, |ref|): the figure compared with tol
    double tol = 0;
    bool pass = false;
};

// dir = .../golden/enhancer. Throw st2v::Error (ERR_NOT_FOUND ...) when files are missing.
std::vector<VerifyResult> verify_forward(const std::string& dir);   // fwd/<block>.npy ... and fwd/out
VerifyResult verify_forward_b2(const std::string& dir);
// The full official sample; per-step checks are folded into a few results (model input, blended x0, result).
std::vector<VerifyResult> verify_sample(const std::string& dir);
// All of the above.
std::vector<VerifyResult> verify_all(const std::string& dir, bool with_sample = true);

}  // namespace st2v::enhancer
