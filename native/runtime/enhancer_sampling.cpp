#include "runtime/enhancer_sampling.h"

#include <cmath>

namespace st2v::runtime {

// ------------------------------------------------------------------------------------------- schedule
EnhancerSchedule::EnhancerSchedule(int n, bool zero_terminal_snr, double scale_min, double scale_max,
                                   double logsnr_min, double logsnr_max) {
    ST2V_CHECK_ARG(n >= 2, "enhancer schedule: n must be >= 2, got %d", n);
    // _logsnr_cosine_interp: t = linspace(1, 0, n); logsnr_cos(t) = −2 ln tan(a_min + t(a_max − a_min));
    // shifted_s = logsnr_cos + 2 ln(1/s); logsnr = t·shifted_min + (1 − t)·shifted_max; σ = sqrt(sigmoid(−logsnr)),
    // in float32 tensor arithmetic as the reference (torch.linspace default dtype), Python scalars in double.
    const double a_min = std::atan(std::exp(-0.5 * logsnr_min)), a_max = std::atan(std::exp(-0.5 * logsnr_max));
    const std::vector<float> tl = torch_linspace_f32(1.0f, 0.0f, n);
    const float span = static_cast<float>(a_max - a_min), a0 = static_cast<float>(a_min);
    const float sh_min = static_cast<float>(2.0 * std::log(1.0 / scale_min));
    const float sh_max = static_cast<float>(2.0 * std::log(1.0 / scale_max));
    std::vector<float> sig(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
        const float t = tl[static_cast<size_t>(i)];
        const float lc = -2.0f * std::log(std::tan(a0 + t * span));
        const float l_min = lc + sh_min, l_max = lc + sh_max;
        const float logsnr = t * l_min + (1.0f - t) * l_max;
        sig[static_cast<size_t>(i)] = std::sqrt(1.0f / (1.0f + std::exp(logsnr)));  // sigmoid(−logsnr)
    }
    float mn = sig[0], mx = sig[0];
    for (float v : sig) mn = std::min(mn, v), mx = std::max(mx, v);
    if (zero_terminal_snr && mx != 1.0f) {
        const float scale = (1.0f - mn) / (mx - mn);
        for (float& v : sig) v = mn + scale * (v - mn);
    }
    sigmas_.resize(sig.size());
    alphas_.resize(sig.size());
    log_ve_.resize(sig.size());
    for (size_t i = 0; i < sig.size(); ++i) {
        const float s = sig[i];
        sigmas_[i] = s;
        alphas_[i] = std::sqrt(1.0f - s * s);
        log_ve_[i] = std::log(std::sqrt(s * s / (1.0f - s * s)));  // +inf at σ = 1
    }
}

float EnhancerSchedule::t_to_sigma(float t) const {
    const float lo_f = std::floor(t), hi_f = std::ceil(t);
    const int64_t lo = static_cast<int64_t>(lo_f), hi = static_cast<int64_t>(hi_f);
    ST2V_CHECK_ARG(lo >= 0 && hi < size(), "t_to_sigma: t = %g outside [0, %d]", static_cast<double>(t), size() - 1);
    const float w = t - lo_f;
    float ls = (1.0f - w) * log_ve_[static_cast<size_t>(lo)] + w * log_ve_[static_cast<size_t>(hi)];
    if (std::isnan(ls) || std::isinf(ls)) ls = INFINITY;
    return std::exp(ls);
}

double EnhancerSchedule::sigma_to_t(float s) const {
    if (std::isinf(s)) return size() - 1;
    const float ls = std::log(s);
    int64_t low = 0;
    for (int64_t i = 0; i < size(); ++i)
        if (ls - log_ve_[static_cast<size_t>(i)] >= 0.0f) low = i;  // last index with dist >= 0 (0 if none)
    if (low > size() - 2) low = size() - 2;
    const int64_t high = low + 1;
    const float lo_v = log_ve_[static_cast<size_t>(low)], hi_v = log_ve_[static_cast<size_t>(high)];
    float w = (lo_v - ls) / (lo_v - hi_v);
    if (!(w >= 0.0f)) w = 0.0f;  // clamp (NaN -> 0)
    if (w > 1.0f) w = 1.0f;
    return static_cast<double>((1.0f - w) * static_cast<float>(low) + w * static_cast<float>(high));
}

std::vector<float> EnhancerSchedule::solver_sigmas(int steps, int t_max, int t_min, bool discard_penultimate) const {
    ST2V_CHECK_ARG(steps >= 1, "solver_sigmas: steps must be >= 1");
    ST2V_CHECK_ARG(t_min >= 0 && t_max < size() && t_min < t_max, "solver_sigmas: need 0 <= t_min < t_max < %d", size());
    const int n_disc = steps + (discard_penultimate ? 1 : 0);
    // trailing: torch.arange(t_max, t_min − 1, −(t_max − t_min + 1)/n) (float32 result, double arithmetic;
    // the first 16 values come from Vectorized<float>::arange(float(base), step))
    const double start = t_max, end = t_min - 1, step = -static_cast<double>(t_max - t_min + 1) / n_disc;
    const int64_t count = static_cast<int64_t>(std::ceil((end - start) / step));
    std::vector<float> ts(static_cast<size_t>(count));
    int64_t i = 0;
    for (; i + 16 <= count; i += 16)
        for (int64_t v = i; v < i + 16; v += 8) {
            const float base = static_cast<float>(start + step * static_cast<double>(v));
            for (int j = 0; j < 8; ++j) ts[static_cast<size_t>(v + j)] = static_cast<float>(static_cast<double>(base) + j * step);
        }
    for (; i < count; ++i) ts[static_cast<size_t>(i)] = static_cast<float>(start + step * static_cast<double>(i));
    std::vector<float> s;
    for (float t : ts) s.push_back(t_to_sigma(std::min(std::max(t, static_cast<float>(t_min)), static_cast<float>(t_max))));
    s.push_back(0.0f);
    if (discard_penultimate && s.size() >= 2) s.erase(s.end() - 2);
    return s;
}

Tensor EnhancerSchedule::diffuse(const Tensor& x0, const Tensor& eps, int64_t t) const {
    check_dtype(x0, DType::F32, "diffuse", "x0");
    check_dtype(eps, DType::F32, "diffuse", "noise");
    ST2V_CHECK(x0.shape() == eps.shape(), Code::kShapeMismatch, "diffuse: x0 %s vs noise %s", x0.shape().str().c_str(),
               eps.shape().str().c_str());
    ST2V_CHECK_ARG(t >= 0 && t < size(), "diffuse: t = %lld out of range", static_cast<long long>(t));
    const float a = alpha(t), s = sigma(t);
    const Tensor xc = x0.contiguous(), ec = eps.contiguous();
    Tensor out = Tensor::empty(x0.shape());
    for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] = a * xc.f32()[i] + s * ec.f32()[i];
    return out;
}

// ------------------------------------------------------------------------------------------- guidance
namespace {
double unbiased_std(const float* p, int64_t n) {
    if (n < 2) return NAN;
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += p[i];
    mean /= static_cast<double>(n);
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = p[i] - mean;
        ss += d * d;
    }
    return std::sqrt(ss / static_cast<double>(n - 1));
}
}  // namespace

Tensor cfg_rescale(const Tensor& uncond, const Tensor& cond, float scale, float rescale) {
    Tensor out = cfg_combine(uncond, cond, scale);
    if (rescale < 0.0f) return out;
    ST2V_CHECK_ARG(rescale <= 1.0f, "guide_rescale must be in [0, 1], got %g", static_cast<double>(rescale));
    const Tensor c = cond.contiguous();
    const int64_t B = out.ndim() >= 1 ? out.size(0) : 1;
    const int64_t per = B > 0 ? out.numel() / B : 0;
    for (int64_t b = 0; b < B; ++b) {
        float* o = out.f32() + b * per;
        const float sc = static_cast<float>(unbiased_std(c.f32() + b * per, per));
        const float so = static_cast<float>(unbiased_std(o, per));
        const float ratio = sc / (so + 1e-12f);
        const float factor = rescale * ratio + static_cast<float>(1.0 - static_cast<double>(rescale));
        for (int64_t i = 0; i < per; ++i) o[i] *= factor;
    }
    return out;
}

Tensor v_to_x0(const Tensor& xt, const Tensor& v, float alpha, float sigma) {
    check_dtype(xt, DType::F32, "v_to_x0", "x_t");
    check_dtype(v, DType::F32, "v_to_x0", "v");
    ST2V_CHECK(xt.shape() == v.shape(), Code::kShapeMismatch, "v_to_x0: x_t %s vs v %s", xt.shape().str().c_str(),
               v.shape().str().c_str());
    const Tensor xc = xt.contiguous(), vc = v.contiguous();
    Tensor out = Tensor::empty(xt.shape());
    for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] = alpha * xc.f32()[i] - sigma * vc.f32()[i];
    return out;
}

Tensor enhancer_model_fn(const Tensor& xt, float sigma, const EnhancerSchedule& sch, const VModelFn& v_model,
                         PyRandom& rng, const EnhancerGuidance& g, std::vector<int64_t>* offsets_out) {
    check_ndim(xt, 5, "enhancer_model_fn", "x_t");
    check_dtype(xt, DType::F32, "enhancer_model_fn", "x_t");
    const int64_t L = xt.size(2);
    const ChunkPlan plan = plan_chunks(L, g.chunk, g.overlap);
    ST2V_CHECK_ARG(plan.length == L, "enhancer: video length %lld is not tiled by chunk %lld / overlap %lld (trim to %lld)",
                   static_cast<long long>(L), static_cast<long long>(g.chunk), static_cast<long long>(g.overlap),
                   static_cast<long long>(plan.length));
    const int64_t t = sch.sigma_to_timestep(sigma);
    const float a_t = sch.alpha(t), s_t = sch.sigma(t);
    // One chunk at a time: the split index of seam k+1 is drawn right after chunk k is denoised (the same
    // sequence of Python random draws as the official, which draws it after denoising chunk k+1: the
    // denoiser draws nothing), so chunk k's owned frames can be written at once and the chunk dropped.
    const int64_t B = xt.size(0), Ch = xt.size(1), HW = xt.size(3) * xt.size(4);
    Tensor out = Tensor::empty(xt.shape());
    std::vector<int64_t> r;
    int64_t r_k = 0;
    for (int64_t k = 0; k < plan.n_chunks; ++k) {
        const Tensor xc = xt.slice(2, plan.start(k), plan.start(k) + g.chunk).contiguous();
        Tensor vc = v_model(xc, t, true);
        Tensor vu = v_model(xc, t, false);
        Tensor cfg = cfg_rescale(vu, vc, g.guide_scale, g.guide_rescale);
        const Tensor x0 = v_to_x0(xc, cfg, a_t, s_t);
        const int64_t r_next = k + 1 < plan.n_chunks ? rng.randint(0, g.overlap - 1) : 0;
        if (k + 1 < plan.n_chunks) r.push_back(r_next);
        blend_write_chunk(x0.f32(), k, r_k, r_next, plan, B, Ch, HW, out.f32());
        r_k = r_next;
    }
    if (offsets_out) *offsets_out = r;
    return out;
}

// ---------------------------------------------------------------------------------------------- solver
Tensor sde_dpmpp_2m_sample(const Tensor& noise, const std::vector<float>& sigmas, const X0Fn& model_fn,
                           const NoiseFn& noise_fn, float eta, const StepCallback& on_step) {
    check_dtype(noise, DType::F32, "sde_dpmpp_2m_sample", "noise");
    ST2V_CHECK_ARG(sigmas.size() >= 2, "sde_dpmpp_2m_sample: need at least 2 sigmas");
    const int64_t n = noise.numel();
    Tensor x = Tensor::empty(noise.shape());
    {
        const Tensor nc = noise.contiguous();
        for (int64_t k = 0; k < n; ++k) x.f32()[k] = nc.f32()[k] * sigmas[0];
    }
    Tensor old;
    float h_last = 0;
    const int steps = static_cast<int>(sigmas.size()) - 1;
    for (int i = 0; i < steps; ++i) {
        const float s0 = sigmas[static_cast<size_t>(i)], s1 = sigmas[static_cast<size_t>(i + 1)];
        ST2V_CHECK_ARG(std::isfinite(s0) && s0 > 0.0f, "sde_dpmpp_2m_sample: sigma %d must be finite and > 0", i);
        const float c_in = 1.0f / std::sqrt(s0 * s0 + 1.0f);
        Tensor xin = Tensor::empty(x.shape());
        for (int64_t k = 0; k < n; ++k) xin.f32()[k] = x.f32()[k] * c_in;
        Tensor D = model_fn(xin, s0, i);
        check_dtype(D, DType::F32, "sde_dpmpp_2m_sample", "denoised");
        ST2V_CHECK(D.shape() == x.shape(), Code::kShapeMismatch, "sde_dpmpp_2m_sample: denoised %s vs x %s",
                   D.shape().str().c_str(), x.shape().str().c_str());
        D = D.contiguous();
        if (s1 == 0.0f) {
            x = D.clone();
        } else {
            const float t = -std::log(s0), s = -std::log(s1);
            const float h = s - t;
            const float eta_h = eta * h;
            const float c1 = s1 / s0 * std::exp(-eta_h);
            const float c2 = -std::expm1(-h - eta_h);
            Tensor xn = Tensor::empty(x.shape());
            float* o = xn.f32();
            const float* xp = x.f32();
            const float* d = D.f32();
            for (int64_t k = 0; k < n; ++k) o[k] = c1 * xp[k] + c2 * d[k];
            if (old.defined()) {
                const float r = h_last / h;
                const float c3 = 0.5f * c2 * (1.0f / r);
                const float* od = old.f32();
                for (int64_t k = 0; k < n; ++k) o[k] = o[k] + c3 * (d[k] - od[k]);
            }
            if (eta > 0.0f) {
                ST2V_CHECK_ARG(static_cast<bool>(noise_fn), "sde_dpmpp_2m_sample: eta > 0 needs a noise source");
                const Tensor z = noise_fn(i, x.shape()).contiguous();
                check_dtype(z, DType::F32, "sde_dpmpp_2m_sample", "step noise");
                ST2V_CHECK(z.numel() == n, Code::kShapeMismatch, "sde_dpmpp_2m_sample: step noise %s vs x %s",
                           z.shape().str().c_str(), x.shape().str().c_str());
                const float sq = std::sqrt(-std::expm1(-2.0f * eta_h));
                for (int64_t k = 0; k < n; ++k) o[k] = o[k] + (z.f32()[k] * s1) * sq;
            }
            x = xn;
            old = D;
            h_last = h;
        }
        if (on_step && !on_step(i, 0, x)) break;
    }
    return x;
}

}  // namespace st2v::runtime
