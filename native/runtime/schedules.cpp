#include "runtime/schedules.h"
#include "backend/kernel_math.h"

#include <cmath>

namespace st2v::runtime {

namespace {

// torch 1.13 CPU linspace (float32): step = (end − start)/(n − 1) in float; elements before n/2 are
// start + step·i, later ones end − step·(n − 1 − i); contiguous outputs are produced 8 at a time by
// Vectorized<float>::arange(base, step) = base + j·step (j = 0..7) where base is the first element's
// formula, and a scalar tail for the last n % 16 elements. torch's AVX2 build contracts these
// multiply-adds into FMAs (kLinspaceFma).
constexpr bool kLinspaceFma = true;
inline float lmadd(float a, float b, float c) { return kLinspaceFma ? std::fma(a, b, c) : a * b + c; }

}  // namespace

std::vector<float> torch_linspace_f32(float start, float end, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    if (n == 1) {
        out[0] = start;
        return out;
    }
    const float step = (end - start) / static_cast<float>(n - 1);
    const int64_t half = n / 2;
    auto scalar = [&](int64_t i) -> float {
        return i < half ? lmadd(step, static_cast<float>(i), start) : lmadd(-step, static_cast<float>(n - i - 1), end);
    };
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {  // vectorized_loop: two arange() calls per iteration
        for (int64_t v = i; v < i + 16; v += 8) {
            const float base = scalar(v);
            out[static_cast<size_t>(v)] = base;
            for (int j = 1; j < 8; ++j) out[static_cast<size_t>(v + j)] = lmadd(static_cast<float>(j), step, base);
        }
    }
    for (; i < n; ++i) out[static_cast<size_t>(i)] = scalar(i);
    return out;
}

namespace {

void check_f32_contig(const Tensor& t, const char* op, const char* what) {
    check_defined(t, op, what);
    check_dtype(t, DType::F32, op, what);
}

}  // namespace

std::vector<float> scaled_linear_alphas_cumprod(const BetaSchedule& s) {
    ST2V_CHECK_ARG(s.num_train_timesteps >= 2, "schedule: num_train_timesteps must be >= 2");
    std::vector<float> b = torch_linspace_f32(static_cast<float>(std::sqrt(s.beta_start)),
                                              static_cast<float>(std::sqrt(s.beta_end)), s.num_train_timesteps);
    std::vector<float> acp(b.size());
    double cum = 1.0;  // at::acc_type<float, /*is_cuda=*/false> is double
    for (size_t i = 0; i < b.size(); ++i) {
        const float beta = b[i] * b[i];
        const float alpha = 1.0f - beta;
        cum *= static_cast<double>(alpha);
        acp[i] = static_cast<float>(cum);
    }
    return acp;
}

// ------------------------------------------------------------------------------------------------ DDIM
DdimScheduler::DdimScheduler(const BetaSchedule& s, int steps_offset)
    : acp_(scaled_linear_alphas_cumprod(s)), num_train_(s.num_train_timesteps), offset_(steps_offset) {}

void DdimScheduler::set_timesteps(int n) {
    ST2V_CHECK_ARG(n >= 1 && n <= num_train_, "DDIM: num_inference_steps must be in 1..%d, got %d", num_train_, n);
    n_steps_ = n;
    const int64_t ratio = num_train_ / n;
    timesteps_.clear();
    for (int64_t i = n - 1; i >= 0; --i) timesteps_.push_back(i * ratio + offset_);
}

Tensor DdimScheduler::step(const Tensor& eps, int64_t t, const Tensor& x, float eta, const Tensor* variance_noise) const {
    ST2V_CHECK_ARG(n_steps_ > 0, "DDIM: set_timesteps() must be called before step()");
    ST2V_CHECK_ARG(t >= 0 && t < num_train_, "DDIM: timestep %lld out of range", static_cast<long long>(t));
    check_f32_contig(eps, "ddim_step", "model output");
    check_f32_contig(x, "ddim_step", "sample");
    ST2V_CHECK(eps.shape() == x.shape(), Code::kShapeMismatch, "DDIM: model output %s vs sample %s",
               eps.shape().str().c_str(), x.shape().str().c_str());
    const int64_t prev = prev_timestep(t);
    const float a_t = acp_[static_cast<size_t>(t)];
    const float a_prev = prev >= 0 ? acp_[static_cast<size_t>(prev)] : acp_[0];  // set_alpha_to_one = false
    const kmath::DdimCoefs coefs = kmath::ddim_coefs(a_t, a_prev, eta);  // shared with the CUDA kernel
    const bool noisy = eta > 0.0f;
    Tensor zc;
    if (noisy) {
        ST2V_CHECK_ARG(variance_noise != nullptr && variance_noise->defined(), "DDIM: eta > 0 needs variance noise");
        check_f32_contig(*variance_noise, "ddim_step", "variance noise");
        ST2V_CHECK(variance_noise->numel() == x.numel(), Code::kShapeMismatch, "DDIM: variance noise %s vs sample %s",
                   variance_noise->shape().str().c_str(), x.shape().str().c_str());
        zc = variance_noise->contiguous();
    }
    const Tensor xc = x.contiguous(), ec = eps.contiguous();
    Tensor out = Tensor::empty(x.shape());
    const float* xp = xc.f32();
    const float* ep = ec.f32();
    const float* zp = noisy ? zc.f32() : nullptr;
    float* o = out.f32();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) o[i] = kmath::ddim_update(xp[i], ep[i], noisy ? zp[i] : 0.0f, coefs, noisy);
    return out;
}

Tensor ddim_sample(const Tensor& x_T, int steps, float eta, const Denoise& denoise, const NoiseFn& noise,
                   const StepCallback& on_step) {
    DdimScheduler sch;
    sch.set_timesteps(steps);
    Tensor x = x_T.contiguous();
    for (int i = 0; i < steps; ++i) {
        const int64_t t = sch.timesteps()[static_cast<size_t>(i)];
        Tensor eps = denoise(x, t);
        Tensor z;
        if (eta > 0.0f) {
            ST2V_CHECK_ARG(static_cast<bool>(noise), "DDIM: eta > 0 needs a noise source");
            z = noise(i, x.shape());
        }
        x = sch.step(eps, t, x, eta, eta > 0.0f ? &z : nullptr);
        if (on_step && !on_step(i, t, x)) break;
    }
    return x;
}

NoiseFn torch_noise(TorchGenerator& g) {
    return [&g](int, const Shape& shape) { return g.randn(shape); };
}

NoiseFn torch_video_noise(TorchGenerator& g) {
    return [&g](int, const Shape& shape) {
        if (shape.ndim() != 5) return g.randn(shape);
        const Tensor z = g.randn(Shape{shape[0] * shape[2], shape[1], shape[3], shape[4]});
        return frames_first_to_video(z, shape[0]);
    };
}

Tensor frames_first_to_video(const Tensor& z, int64_t batch) {
    check_ndim(z, 4, "frames_first_to_video", "noise");
    ST2V_CHECK_ARG(batch >= 1 && z.size(0) % batch == 0, "frames_first_to_video: %lld frames not divisible by batch %lld",
                   static_cast<long long>(z.size(0)), static_cast<long long>(batch));
    const int64_t F = z.size(0) / batch;
    return z.contiguous().reshape(Shape{batch, F, z.size(1), z.size(2), z.size(3)}).permute({0, 2, 1, 3, 4}).contiguous();
}

Tensor video_to_frames_first(const Tensor& x) {
    check_ndim(x, 5, "video_to_frames_first", "x");
    const int64_t B = x.size(0), C = x.size(1), F = x.size(2), H = x.size(3), W = x.size(4);
    return x.permute({0, 2, 1, 3, 4}).contiguous().reshape(Shape{B * F, C, H, W});
}

// ---------------------------------------------------------------------------------------------- DPM++
DpmSolverSchedule dpmpp_schedule(int steps, const BetaSchedule& s) {
    ST2V_CHECK_ARG(steps >= 1 && steps <= s.num_train_timesteps, "DPM++: steps must be in 1..%d, got %d",
                   s.num_train_timesteps, steps);
    const std::vector<float> acp = scaled_linear_alphas_cumprod(s);
    DpmSolverSchedule out;
    const double last = s.num_train_timesteps - 1;
    for (int i = steps; i >= 1; --i) {  // np.linspace(0, T-1, n+1).round()[::-1][:-1]
        const double v = static_cast<double>(i) * (last / steps);  // numpy: i*step + start, y[-1] = stop
        out.timesteps.push_back(static_cast<int64_t>(std::nearbyint(i == steps ? last : v)));
    }
    for (int64_t t : out.timesteps) {
        const float a = acp[static_cast<size_t>(t)];
        out.sigmas.push_back(std::sqrt((1.0f - a) / a));
    }
    out.sigmas.push_back(0.0f);
    return out;
}

namespace {
struct AlphaSigma {
    float alpha, sigma, lambda;
};
AlphaSigma alpha_sigma(float s) {
    AlphaSigma r;
    r.alpha = 1.0f / std::sqrt(s * s + 1.0f);
    r.sigma = s * r.alpha;
    r.lambda = std::log(r.alpha) - std::log(r.sigma);
    return r;
}
}  // namespace

Tensor dpmpp_2m_sample(const Tensor& x_T, int steps, const Denoise& denoise, const StepCallback& on_step,
                       const std::function<void(int, const Tensor&)>& on_x0, const BetaSchedule& s) {
    const DpmSolverSchedule sch = dpmpp_schedule(steps, s);
    check_f32_contig(x_T, "dpmpp_2m_sample", "x_T");
    Tensor x = x_T.clone();  // init_noise_sigma = 1
    const int64_t n = x.numel();
    Tensor prev_x0;
    int lower_order_nums = 0;
    for (int i = 0; i < steps; ++i) {
        const int64_t t = sch.timesteps[static_cast<size_t>(i)];
        Tensor eps = denoise(x, t).contiguous();
        check_f32_contig(eps, "dpmpp_2m_sample", "model output");
        ST2V_CHECK(eps.shape() == x.shape(), Code::kShapeMismatch, "DPM++: model output %s vs sample %s",
                   eps.shape().str().c_str(), x.shape().str().c_str());
        // convert_model_output (dpmsolver++, epsilon)
        const AlphaSigma cur = alpha_sigma(sch.sigmas[static_cast<size_t>(i)]);
        Tensor x0 = Tensor::empty(x.shape());
        {
            const float* xp = x.f32();
            const float* ep = eps.f32();
            float* o = x0.f32();
            for (int64_t k = 0; k < n; ++k) o[k] = kmath::dpm_x0(xp[k], ep[k], cur.sigma, cur.alpha);
        }
        if (on_x0) on_x0(i, x0);
        const bool lower_order_final = i == steps - 1;  // final_sigmas_type zero
        const float s_next = sch.sigmas[static_cast<size_t>(i + 1)];
        const float s_cur = sch.sigmas[static_cast<size_t>(i)];
        float alpha_t, sigma_t, lambda_t;
        if (s_next == 0.0f) {
            alpha_t = 1.0f, sigma_t = 0.0f, lambda_t = INFINITY;
        } else {
            const AlphaSigma a = alpha_sigma(s_next);
            alpha_t = a.alpha, sigma_t = a.sigma, lambda_t = a.lambda;
        }
        const float h = lambda_t - cur.lambda;
        const float coef_x = sigma_t / cur.sigma;
        const float coef_d = alpha_t * (std::exp(-h) - 1.0f);
        Tensor xn = Tensor::empty(x.shape());
        const float* xp = x.f32();
        const float* d0 = x0.f32();
        float* o = xn.f32();
        if (lower_order_nums < 1 || lower_order_final) {
            for (int64_t k = 0; k < n; ++k) o[k] = kmath::dpm_first_order(xp[k], d0[k], coef_x, coef_d);
        } else {
            const AlphaSigma prev = alpha_sigma(sch.sigmas[static_cast<size_t>(i - 1)]);
            const float h0 = cur.lambda - prev.lambda;
            const float r0 = h0 / h;
            const float inv_r0 = 1.0f / r0;
            const float* d1p = prev_x0.f32();
            for (int64_t k = 0; k < n; ++k) o[k] = kmath::dpm_second_order(xp[k], d0[k], d1p[k], coef_x, coef_d, inv_r0);
        }
        (void)s_cur;
        if (lower_order_nums < 2) ++lower_order_nums;
        prev_x0 = x0;
        x = xn;
        if (on_step && !on_step(i, t, x)) break;
    }
    return x;
}

// ------------------------------------------------------------------------------------------------- CFG
Tensor cfg_combine(const Tensor& uncond, const Tensor& cond, float scale) {
    check_f32_contig(uncond, "cfg_combine", "uncond");
    check_f32_contig(cond, "cfg_combine", "cond");
    ST2V_CHECK(uncond.shape() == cond.shape(), Code::kShapeMismatch, "cfg_combine: %s vs %s",
               uncond.shape().str().c_str(), cond.shape().str().c_str());
    const Tensor u = uncond.contiguous(), c = cond.contiguous();
    Tensor out = Tensor::empty(u.shape());
    const float* up = u.f32();
    const float* cp = c.f32();
    float* o = out.f32();
    for (int64_t i = 0; i < u.numel(); ++i) o[i] = kmath::cfg(up[i], cp[i], scale);
    return out;
}

Tensor cfg_combine_batch(const Tensor& out, float scale) {
    check_defined(out, "cfg_combine_batch", "model output");
    ST2V_CHECK(out.ndim() >= 1 && out.size(0) % 2 == 0, Code::kShapeMismatch,
               "cfg_combine_batch: batch of %s is not [uncond, cond]", out.shape().str().c_str());
    const int64_t h = out.size(0) / 2;
    return cfg_combine(out.slice(0, 0, h), out.slice(0, h, 2 * h), scale);
}

}  // namespace st2v::runtime
