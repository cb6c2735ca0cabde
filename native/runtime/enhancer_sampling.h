// Stage 3 sampling (enhancer.md §5, architecture.md §1.3, §7): the logsnr_cosine_interp schedule with zero
// terminal SNR, the trailing VE-sigma discretisation, DPM-Solver++(2M) SDE, CFG with guide-rescale,
// v-prediction and the per-step randomized-blending model_fn. Pure functions over callbacks: the solver
// calls model_fn(x·c_in, s) and gets the blended x0 back; noise comes from any N(0, I) stream.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "runtime/blend.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"

namespace st2v::runtime {

class EnhancerSchedule {
  public:
    // noise_schedule('logsnr_cosine_interp', n, zero_terminal_snr, scale_min, scale_max), logsnr range ±15.
    explicit EnhancerSchedule(int n = 1000, bool zero_terminal_snr = true, double scale_min = 2.0,
                              double scale_max = 4.0, double logsnr_min = -15.0, double logsnr_max = 15.0);
    int size() const { return static_cast<int>(sigmas_.size()); }
    const std::vector<float>& vp_sigmas() const { return sigmas_; }  // σ_t, t = 0..n-1 (σ[n-1] = 1)
    float sigma(int64_t t) const { return sigmas_.at(static_cast<size_t>(t)); }
    float alpha(int64_t t) const { return alphas_.at(static_cast<size_t>(t)); }  // sqrt(1 − σ²)
    // GaussianDiffusion_SDEdit.sample: `steps` solver steps from t_max down to t_min, trailing spacing,
    // VE sigmas by log-linear interpolation, 0 appended; with discard_penultimate (the dpmpp_2m_sde default)
    // one extra step is discretised and the penultimate sigma dropped. Returns steps + 1 values.
    std::vector<float> solver_sigmas(int steps = 30, int t_max = 599, int t_min = 0, bool discard_penultimate = true) const;
    float t_to_sigma(float t) const;       // VE sigma at fractional t (log-linear)
    double sigma_to_t(float s) const;      // inverse (clamped), as _sigma_to_t
    int64_t sigma_to_timestep(float s) const { return static_cast<int64_t>(std::nearbyint(sigma_to_t(s))); }
    // diffuse(): α_t x0 + σ_t ε (SDEdit start, t = 599 in the official run)
    Tensor diffuse(const Tensor& x0, const Tensor& eps, int64_t t) const;

  private:
    std::vector<float> sigmas_, alphas_, log_ve_;
};

// CFG with guide-rescale on v outputs, per batch sample: out = u + scale(c − u);
// out *= rescale·std(c)/(std(out) + 1e-12) + (1 − rescale) (unbiased std over all elements of a sample).
// rescale < 0 disables the rescale.
Tensor cfg_rescale(const Tensor& uncond, const Tensor& cond, float scale, float rescale);
// v-prediction: x0 = α·x_t − σ·v
Tensor v_to_x0(const Tensor& xt, const Tensor& v, float alpha, float sigma);

struct EnhancerGuidance {
    float guide_scale = 7.5f;
    float guide_rescale = 0.2f;
    int64_t chunk = 24, overlap = 8;
};

// v model: v(x_chunk [B, C, F, H, W], t, cond) -> v output; cond = true for the text branch (y),
// false for the negative branch.
using VModelFn = std::function<Tensor(const Tensor& x, int64_t t, bool cond)>;

// The official model_fn(xt, sigma) of GaussianDiffusion_SDEdit.sample with randomized blending: t =
// round(sigma_to_t(sigma)); per chunk (left to right) CFG + rescale + v→x0, one split index per seam from
// `rng` (randint(0, O−1), seams left to right), and each chunk's owned frames written straight into the
// output (blend_write_chunk: one chunk x0 alive at a time; equal to randomized_blend over all chunks).
// xt is [B, C, L, H, W] with L = plan_chunks(L).length. offsets_out (optional) receives the split indices.
Tensor enhancer_model_fn(const Tensor& xt, float sigma, const EnhancerSchedule& sch, const VModelFn& v_model,
                         PyRandom& rng, const EnhancerGuidance& g = {}, std::vector<int64_t>* offsets_out = nullptr);

// model_fn(x_in, sigma, step) -> x0 (denoised), x_in = x·c_in.
using X0Fn = std::function<Tensor(const Tensor& x_in, float sigma, int step)>;

// k-diffusion sample_dpmpp_2m_sde (midpoint) as the official enhancer calls it: x = noise·s_0 (the
// official multiplies the VP sample by the first VE sigma), D_i = model_fn(x·c_in(s_i), s_i),
// c_in = 1/sqrt(s² + 1); noise(i, shape) supplies z_i ~ N(0, I) for steps with s_{i+1} > 0 (the official's
// Brownian-tree increment divided by sqrt|Δs|). on_step sees x after every step.
Tensor sde_dpmpp_2m_sample(const Tensor& noise, const std::vector<float>& sigmas, const X0Fn& model_fn,
                           const NoiseFn& noise_fn, float eta = 1.0f, const StepCallback& on_step = {});

}  // namespace st2v::runtime
