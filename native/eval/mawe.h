// OFS, warp error and MAWE exactly as the official StreamingT2V mawe.py computes them (docs/metrics.md §3),
// with the flow supplied by the caller (eval/flow.h by default), plus the paper-text variant.
#pragma once
#include <cstdint>
#include <vector>

namespace st2v::eval {

// torchvision F.resize(uint8, antialias=False): bilinear, align_corners=False, computed in float32 and
// rounded half-to-even back to uint8, bit-exact with torch 1.13's CPU kernel on AVX2 (fixture test).
// Packed 3-channel images.
void resize_bilinear_torch_u8c3(const uint8_t* src, int sw, int sh, uint8_t* dst, int dw, int dh);

struct PairMetrics {
    double motion = 0;     // mean over pixels of |flow| (official OFS term)
    double motion_sq = 0;  // mean over pixels of |flow|^2 (paper-text OFS term)
    double warp_err = 0;   // sum over hit pixels x 3 channels of (f1 - warp(f0))^2 / (3 * hits); 0 if no hit
    int64_t hits = 0;      // target pixels hit by the forward splat
};

// Forward splat of frame0 (packed rgb24, w x h) by flow (2 x h x w, frame0 -> frame1): target =
// round_half_even(p + flow(p)) in float32; out-of-frame targets dropped; the last source in row-major
// order wins; unhit targets are occluded and excluded.
PairMetrics warp_pair_metrics(const uint8_t* f0, const uint8_t* f1, const float* flow, int w, int h);

enum class MaweVariant : int {
    kCode = 0,   // official mawe.py: mean over pairs of warp_err / (c * motion); zero motion -> inf
    kPaper = 1,  // paper v2 text: mean(warp_err) / mean(motion_sq) (no constant)
};

struct MaweSummary {
    double mawe = 0;
    double ofs = 0;        // mean over pairs of motion (code) or motion_sq (paper)
    double warp_error = 0; // mean over pairs of warp_err
};

MaweSummary mawe_summary(const std::vector<PairMetrics>& pairs, MaweVariant v, double c = 9.5);

}  // namespace st2v::eval
