// Noise schedules and samplers of stages 1 and 2 (architecture.md §1.1, §1.2, §2), as pure functions over a
// denoise callback: a sampler never sees the model, it calls `denoise(x, t)` and gets the model output back.
//
//   * scaled_linear_alphas_cumprod: β = linspace(sqrt(β0), sqrt(β1), n, float32)², ᾱ = cumprod(1 − β), computed
//     as torch 1.13 does on the CPU (vectorised linspace halves, float32 squares, double cumprod accumulator).
//   * DdimScheduler: diffusers 0.27.2 DDIMScheduler with "leading" spacing, steps_offset 1, set_alpha_to_one
//     false, prediction ε, eta with variance noise supplied per step (same shape/layout as the sample).
//   * dpmpp_2m_sample: diffusers 0.27.2 DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint,
//     lower_order_final, linspace spacing, final_sigmas_type zero) as stage 1 uses it.
//   * cfg_combine: u + s·(c − u), for the batch order [uncond, cond].
// Scalars are evaluated in float32 in torch's order (the reference keeps them as 0-d float32 tensors).
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "runtime/rng.h"

namespace st2v::runtime {

struct BetaSchedule {
    int num_train_timesteps = 1000;
    double beta_start = 0.00085, beta_end = 0.012;  // scaled_linear
};

std::vector<float> scaled_linear_alphas_cumprod(const BetaSchedule& s = {});
// torch.linspace(start, end, n) in float32 as torch 1.13's AVX2 CPU kernel computes it (bit-exact).
std::vector<float> torch_linspace_f32(float start, float end, int64_t n);

// denoise(x, t) -> model output (ε) for sample x at integer timestep t.
using Denoise = std::function<Tensor(const Tensor& x, int64_t t)>;
// noise(step_index, shape) -> N(0, I) tensor of that shape (e.g. from a TorchGenerator, or recorded).
using NoiseFn = std::function<Tensor(int step, const Shape& shape)>;
// Called after each step with the new sample; return false to stop early (cancellation).
using StepCallback = std::function<bool(int step, int64_t t, const Tensor& x)>;

class DdimScheduler {
  public:
    explicit DdimScheduler(const BetaSchedule& s = {}, int steps_offset = 1);
    void set_timesteps(int num_inference_steps);  // leading: (arange(n)·(T//n))[::-1] + offset
    const std::vector<int64_t>& timesteps() const { return timesteps_; }
    const std::vector<float>& alphas_cumprod() const { return acp_; }
    int64_t prev_timestep(int64_t t) const { return t - num_train_ / n_steps_; }
    // One step from t to prev_timestep(t). eta > 0 needs variance_noise (same shape as x).
    Tensor step(const Tensor& eps, int64_t t, const Tensor& x, float eta = 0.0f,
                const Tensor* variance_noise = nullptr) const;

  private:
    std::vector<float> acp_;
    std::vector<int64_t> timesteps_;
    int num_train_, offset_, n_steps_ = 0;
};

// Full DDIM loop: x = x_T; for t in timesteps: x = step(denoise(x, t), t, x, eta, noise(i, x.shape)).
Tensor ddim_sample(const Tensor& x_T, int steps, float eta, const Denoise& denoise, const NoiseFn& noise,
                   const StepCallback& on_step = {});

// Noise of a torch generator, one randn(shape) per call in call order.
NoiseFn torch_noise(TorchGenerator& g);
// The official stage-2 DDIM variance noise for a channels-first video sample [B, C, F, H, W]: each call
// draws randn(B·F, C, H, W) (frames folded into the batch) and returns it as [B, C, F, H, W]. Other ranks
// draw randn(shape). With x_T = g.randn({1, 4, F, H, W}) first, this is the official draw order (§9).
NoiseFn torch_video_noise(TorchGenerator& g);
// [B*F, C, H, W] (frames folded into the batch) -> [B, C, F, H, W]: the official draws the DDIM variance noise
// per frame (randn(F, 4, H, W)) while the latents are channels-first video.
Tensor frames_first_to_video(const Tensor& z, int64_t batch);
// The inverse: [B, C, F, H, W] -> [B*F, C, H, W] (the samplers' frame-major layout of a video latent).
Tensor video_to_frames_first(const Tensor& x);

struct DpmSolverSchedule {
    std::vector<int64_t> timesteps;  // n values, round(linspace(0, T-1, n+1))[::-1][:-1]
    std::vector<float> sigmas;       // n+1 VE sigmas sqrt((1-ᾱ)/ᾱ) at the timesteps, last 0
};
DpmSolverSchedule dpmpp_schedule(int steps, const BetaSchedule& s = {});

// DPM-Solver++(2M) with ε-prediction; on_x0 (optional) sees each converted x0 prediction.
Tensor dpmpp_2m_sample(const Tensor& x_T, int steps, const Denoise& denoise, const StepCallback& on_step = {},
                       const std::function<void(int, const Tensor&)>& on_x0 = {}, const BetaSchedule& s = {});

// Classifier-free guidance: u + scale·(c − u) (new tensor). For a batch-2 model output in the order
// [uncond, cond] along dim 0, cfg_combine_batch splits it first.
Tensor cfg_combine(const Tensor& uncond, const Tensor& cond, float scale);
Tensor cfg_combine_batch(const Tensor& out_uncond_cond, float scale);

}  // namespace st2v::runtime
