// Per-element formulas shared by the CPU backend and the CUDA kernels (native/cuda/*.cu), so both evaluate
// the same float32 expressions in the same order. Plain C++ with only <math.h> calls; under nvcc the
// functions are __host__ __device__ (ST2V_HD, as in runtime/blend_math.h, which holds the blend index math).
//
// Note: nvcc contracts a*b + c into FMA by default; g++ does not on the x86-64 baseline. The two backends can
// therefore differ in the last bit or two of these formulas, far below the 1e-4 parity bound.
#pragma once
#include <math.h>

#ifndef ST2V_HD
#if defined(__CUDACC__)
#define ST2V_HD __host__ __device__
#else
#define ST2V_HD
#endif
#endif

namespace st2v::kmath {

// ---- activations ----
ST2V_HD inline float silu(float x) { return x / (1.0f + expf(-x)); }
ST2V_HD inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
// GEGLU: a * gelu(gate), a = x[..., :C], gate = x[..., C:]
ST2V_HD inline float geglu(float a, float gate) { return a * gelu_erf(gate); }

// ---- classifier-free guidance, batch order [uncond, cond] ----
ST2V_HD inline float cfg(float u, float c, float scale) { return u + scale * (c - u); }

// ---- DDIM (diffusers 0.27.2 DDIMScheduler.step, prediction ε, set_alpha_to_one false) ----
struct DdimCoefs {
    float sqrt_beta_t, sqrt_a_t, sqrt_a_prev, dir_coef, std_dev;
};
// a_t = ᾱ_t, a_prev = ᾱ_{t-Δ} (ᾱ_0 when t-Δ < 0). Evaluated in float32 in the reference's order.
ST2V_HD inline DdimCoefs ddim_coefs(float a_t, float a_prev, float eta) {
    const float beta_t = 1.0f - a_t;
    const float beta_prev = 1.0f - a_prev;
    const float variance = (beta_prev / beta_t) * (1.0f - a_t / a_prev);
    DdimCoefs k;
    k.sqrt_beta_t = sqrtf(beta_t);
    k.sqrt_a_t = sqrtf(a_t);
    k.sqrt_a_prev = sqrtf(a_prev);
    k.std_dev = eta * sqrtf(variance);
    k.dir_coef = sqrtf(1.0f - a_prev - k.std_dev * k.std_dev);
    return k;
}
// One element: x0 = (x − √β_t ε)/√ᾱ_t; out = √ᾱ_prev x0 + dir ε (+ σ z when noisy).
ST2V_HD inline float ddim_update(float x, float eps, float z, const DdimCoefs& k, bool noisy) {
    const float x0 = (x - k.sqrt_beta_t * eps) / k.sqrt_a_t;
    float v = k.sqrt_a_prev * x0 + k.dir_coef * eps;
    if (noisy) v = v + k.std_dev * z;
    return v;
}

// ---- DPM-Solver++(2M), ε-prediction (diffusers 0.27.2 DPMSolverMultistepScheduler, midpoint) ----
// convert_model_output: x0 = (x − σ ε)/α
ST2V_HD inline float dpm_x0(float x, float eps, float sigma, float alpha) { return (x - sigma * eps) / alpha; }
// first order: σ_t/σ_s · x − α_t (e^{−h} − 1) · D0
ST2V_HD inline float dpm_first_order(float x, float d0, float coef_x, float coef_d) { return coef_x * x - coef_d * d0; }
// second order (midpoint): D1 = (D0 − D0_prev)/r0; out = coef_x x − coef_d D0 − ½ coef_d D1
ST2V_HD inline float dpm_second_order(float x, float d0, float d0_prev, float coef_x, float coef_d, float inv_r0) {
    const float d1 = inv_r0 * (d0 - d0_prev);
    const float half_coef = 0.5f * coef_d;
    return coef_x * x - coef_d * d0 - half_coef * d1;
}

// ---- normalisation: the affine part after the statistics ----
// y = (x − mean)·(rstd·γ) + β, optionally SiLU.
ST2V_HD inline float norm_affine(float x, float mean, float scale, float shift, bool silu_on) {
    const float y = (x - mean) * scale + shift;
    return silu_on ? silu(y) : y;
}

// ---- sinusoidal timestep embedding ----
// Element i of a row for timestep t: angle = t·freq[i mod half]; flip puts cos first.
ST2V_HD inline float timestep_emb(float t, const float* freq, int half, int i, bool flip) {
    const int j = i < half ? i : i - half;
    const float a = t * freq[j];
    const bool first = i < half;
    return (first == flip) ? cosf(a) : sinf(a);
}

}  // namespace st2v::kmath
