// Dense optical flow without learned weights: coarse-to-fine variational estimator (Horn-Schunck data +
// smoothness energy, linearised around the current estimate and re-warped a few times per pyramid level,
// the same scheme as DIS's variational refinement, without its patch search). Smoothness fills textureless
// areas from their surroundings, which is what makes the median flow of a pan correct.
//
// Flow is frame0 -> frame1: frame0(x, y) ~ frame1(x + u, y + v), in pixels of the input size.
// Output layout matches torchvision RAFT: 2 x H x W float32 (plane 0 = dx, plane 1 = dy).
#pragma once
#include <cstdint>
#include <vector>

namespace st2v::eval {

struct FlowOptions {
    float alpha = 50.0f;     // smoothness weight (intensity units, 0..255 scale)
    float omega = 1.9f;      // over-relaxation factor of the Gauss-Seidel sweeps (1 = plain Gauss-Seidel)
    int warps = 3;           // re-linearisations per level
    int iterations = 15;     // Gauss-Seidel sweeps per warp (finest level; coarser levels get more)
    int min_size = 12;       // coarsest level's smaller side >= this
    int max_levels = 8;
};

// Luma (BT.601 weights, float) of packed rgb24.
void rgb_to_gray_f32(const uint8_t* rgb, int64_t npix, float* out);

// flow: 2*w*h floats. Single-threaded (callers parallelise over frame pairs); deterministic.
void dense_flow(const float* gray0, const float* gray1, int w, int h, float* flow,
                const FlowOptions& opt = FlowOptions());

}  // namespace st2v::eval
