#include "backend/cuda_ops.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "backend/kernel_math.h"
#include "ops/ops.h"

namespace st2v::backend::cuda_ops {
namespace {

st2v_dtype abi_dtype(DType t, const char* op) {
    switch (t) {
        case DType::F32: return ST2V_F32;
        case DType::F16: return ST2V_F16;
        case DType::BF16: return ST2V_BF16;
        default: ST2V_THROW(Code::kDtype, "%s: dtype %s is not f32/f16/bf16", op, dtype_name(t));
    }
}
void need_f32(const DeviceTensor& t, const char* op, const char* what) {
    ST2V_CHECK(t.defined(), Code::kInvalidArgument, "%s: %s is undefined", op, what);
    ST2V_CHECK(t.dtype() == DType::F32, Code::kDtype, "%s: %s must be f32, got %s", op, what, dtype_name(t.dtype()));
}
const float* opt_vec(const DeviceTensor& t, int64_t n, const char* op, const char* what) {
    if (!t.defined()) return nullptr;
    need_f32(t, op, what);
    ST2V_CHECK(t.numel() == n, Code::kShapeMismatch, "%s: %s has %lld values, expected %lld", op, what,
               (long long)t.numel(), (long long)n);
    return t.f32();
}

}  // namespace

DeviceTensor DeviceTensor::empty(const Shape& shape, DType dtype) {
    (void)abi_dtype(dtype, "DeviceTensor");
    DeviceTensor t;
    t.shape_ = shape;
    t.dtype_ = dtype;
    t.buf_ = std::make_shared<DeviceBuffer>(std::max<size_t>(t.nbytes(), 4));
    return t;
}
DeviceTensor DeviceTensor::zeros(const Shape& shape, DType dtype) {
    DeviceTensor t = empty(shape, dtype);
    check(cuda().memset0(t.raw(), t.nbytes()), "cuda memset");
    return t;
}
DeviceTensor DeviceTensor::from_host(const Tensor& h) {
    ST2V_CHECK(h.defined(), Code::kInvalidArgument, "DeviceTensor::from_host: undefined tensor");
    DeviceTensor t = empty(h.shape(), h.dtype());
    const Tensor c = h.contiguous();
    t.buf_->upload(c.raw(), t.nbytes());
    return t;
}
Tensor DeviceTensor::to_host() const {
    ST2V_CHECK(defined(), Code::kInvalidArgument, "DeviceTensor::to_host: undefined tensor");
    Tensor h = Tensor::empty(shape_, dtype_);
    buf_->download(h.raw(), nbytes());
    return h;
}
float* DeviceTensor::f32() const {
    ST2V_CHECK(dtype_ == DType::F32, Code::kDtype, "DeviceTensor: f32() on a %s tensor", dtype_name(dtype_));
    return static_cast<float*>(raw());
}
DeviceTensor DeviceTensor::reshape(const Shape& s) const {
    ST2V_CHECK(s.numel() == numel(), Code::kShapeMismatch, "DeviceTensor::reshape: %s to %s", shape_.str().c_str(),
               s.str().c_str());
    DeviceTensor t = *this;
    t.shape_ = s;
    return t;
}

DeviceTensor DeviceTensor::to(DType dtype) const {
    ST2V_CHECK(defined(), Code::kInvalidArgument, "DeviceTensor::to: undefined tensor");
    if (dtype == dtype_) return *this;
    const OpScope prof("cast");  // after the no-op return: a profile counts only real casts
    DeviceTensor t = empty(shape_, dtype);
    check(cuda().cast(raw(), abi_dtype(dtype_, "cast"), t.raw(), abi_dtype(dtype, "cast"), numel()), "cast");
    return t;
}

DeviceTensor silu(const DeviceTensor& x) {
    const OpScope prof("silu");
    need_f32(x, "silu", "x");
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().silu(x.f32(), y.f32(), x.numel()), "silu");
    return y;
}
DeviceTensor gelu(const DeviceTensor& x) {
    const OpScope prof("gelu");
    need_f32(x, "gelu", "x");
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().gelu(x.f32(), y.f32(), x.numel()), "gelu");
    return y;
}
DeviceTensor geglu(const DeviceTensor& x) {
    const OpScope prof("geglu");
    need_f32(x, "geglu", "x");
    ST2V_CHECK(x.ndim() >= 1 && x.size(-1) % 2 == 0, Code::kShapeMismatch, "geglu: last dim of %s is not even",
               x.shape().str().c_str());
    Shape s = x.shape();
    const int64_t C = s[-1] / 2;
    s[-1] = C;
    DeviceTensor y = DeviceTensor::empty(s);
    check(cuda().geglu(x.f32(), y.f32(), C ? x.numel() / (2 * C) : 0, C), "geglu");
    return y;
}
DeviceTensor axpby(const DeviceTensor& x, float a, const DeviceTensor& yv, float b) {
    const OpScope prof("axpby");
    need_f32(x, "axpby", "x");
    need_f32(yv, "axpby", "y");
    ST2V_CHECK(x.shape() == yv.shape(), Code::kShapeMismatch, "axpby: %s vs %s", x.shape().str().c_str(),
               yv.shape().str().c_str());
    DeviceTensor out = DeviceTensor::empty(x.shape());
    check(cuda().axpby(x.f32(), a, yv.f32(), b, out.f32(), x.numel()), "axpby");
    return out;
}
DeviceTensor group_norm(const DeviceTensor& x, int frames, int groups, const DeviceTensor& gamma,
                        const DeviceTensor& beta, float eps, bool silu_on) {
    const OpScope prof("group_norm");
    need_f32(x, "group_norm", "x");
    ST2V_CHECK(x.ndim() >= 2, Code::kShapeMismatch, "group_norm: input must be at least 2-d, got %s",
               x.shape().str().c_str());
    const int64_t NF = x.size(0), C = x.size(1);
    ST2V_CHECK_ARG(groups >= 1 && C % groups == 0, "group_norm: %lld channels not divisible by %d groups", (long long)C,
                   groups);
    ST2V_CHECK_ARG(frames >= 1 && NF % frames == 0, "group_norm: batch %lld not a multiple of frames %d",
                   (long long)NF, frames);
    ST2V_CHECK_ARG(std::isfinite(eps) && eps >= 0.f, "group_norm: eps must be finite and >= 0");
    const int64_t S = (NF && C) ? x.numel() / (NF * C) : 0;
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().group_norm(x.f32(), y.f32(), NF, C, S, frames, groups, opt_vec(gamma, C, "group_norm", "weight"),
                            opt_vec(beta, C, "group_norm", "bias"), eps, silu_on ? 1 : 0),
          "group_norm");
    return y;
}
DeviceTensor layer_norm(const DeviceTensor& x, const DeviceTensor& gamma, const DeviceTensor& beta, float eps) {
    const OpScope prof("layer_norm");
    need_f32(x, "layer_norm", "x");
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "layer_norm: input must be at least 1-d");
    ST2V_CHECK_ARG(std::isfinite(eps) && eps >= 0.f, "layer_norm: eps must be finite and >= 0");
    const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().layer_norm(x.f32(), y.f32(), R, C, opt_vec(gamma, C, "layer_norm", "weight"),
                            opt_vec(beta, C, "layer_norm", "bias"), eps),
          "layer_norm");
    return y;
}
DeviceTensor linear(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, Act act) {
    ST2V_CHECK(x.defined() && w.defined(), Code::kInvalidArgument, "linear: undefined input or weight");
    ST2V_CHECK(w.ndim() == 2 && x.ndim() >= 1 && x.size(-1) == w.size(1), Code::kShapeMismatch,
               "linear: x %s vs weight %s", x.shape().str().c_str(), w.shape().str().c_str());
    ST2V_CHECK(x.dtype() == w.dtype() || x.dtype() == DType::F32, Code::kDtype,
               "linear: x (%s) must be f32 or the weight's dtype (%s)", dtype_name(x.dtype()), dtype_name(w.dtype()));
    const int64_t K = w.size(1), N = w.size(0), M = K ? x.numel() / K : 0;
    const OpScope prof("linear", 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K));
    const DeviceTensor xa = x.to(w.dtype());
    Shape s = x.shape();
    s[-1] = N;
    DeviceTensor y = DeviceTensor::empty(s);
    st2v_gemm_args a{};
    a.M = M, a.N = N, a.K = K;
    a.d_a = xa.raw(), a.lda = K, a.trans_a = 0, a.a_type = abi_dtype(w.dtype(), "linear");
    a.d_b = w.raw(), a.ldb = K, a.trans_b = 1, a.b_type = a.a_type;
    a.d_c = y.f32(), a.ldc = N;
    a.d_bias = opt_vec(b, N, "linear", "bias");
    a.act = static_cast<int>(act);
    a.alpha = 1.f;
    check(cuda().gemm(&a), "linear");
    return y;
}
DeviceTensor attention(const DeviceTensor& q, const DeviceTensor& k, const DeviceTensor& v, int heads, float scale) {
    need_f32(q, "attention", "q");
    need_f32(k, "attention", "k");
    need_f32(v, "attention", "v");
    ST2V_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, Code::kShapeMismatch, "attention: q, k, v must be 3-d");
    const int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1);
    ST2V_CHECK_ARG(heads >= 1, "attention: heads must be >= 1");
    ST2V_CHECK_ARG(std::isfinite(scale), "attention: scale must be finite");
    ST2V_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Lk && q.size(2) == k.size(2) &&
                   q.size(2) % heads == 0 && v.size(2) % heads == 0,
               Code::kShapeMismatch, "attention: q %s, k %s, v %s do not agree for %d heads", q.shape().str().c_str(),
               k.shape().str().c_str(), v.shape().str().c_str(), heads);
    const int64_t HD = q.size(2), HDv = v.size(2);
    const OpScope prof(Lq != Lk ? "attention cross" : Lk <= 64 ? "attention temporal" : "attention self",
                       2.0 * static_cast<double>(B) * static_cast<double>(Lq) * static_cast<double>(Lk) *
                           static_cast<double>(HD + HDv));
    DeviceTensor o = DeviceTensor::empty({B, Lq, HDv});
    if (o.numel() == 0) return o;
    st2v_attention_args a{};
    a.B = B, a.Lq = Lq, a.Lk = Lk, a.H = heads, a.D = static_cast<int>(HD / heads), a.Dv = static_cast<int>(HDv / heads);
    a.d_q = q.f32(), a.q_rs = HD, a.q_bs = Lq * HD;
    a.d_k = k.f32(), a.k_rs = HD, a.k_bs = Lk * HD;
    a.d_v = v.f32(), a.v_rs = HDv, a.v_bs = Lk * HDv;
    a.d_o = o.f32(), a.scale = scale;
    check(cuda().attention(&a), "attention");
    return o;
}
DeviceTensor timestep_embedding(const std::vector<float>& t, int dim, bool flip, float shift, float max_period) {
    const OpScope prof("timestep_embedding");
    ST2V_CHECK_ARG(dim >= 2 && dim % 2 == 0, "timestep_embedding: dim must be even and >= 2 on cuda");
    const std::vector<float> freq = ops::timestep_frequencies(dim, shift, max_period);
    const int64_t n = static_cast<int64_t>(t.size());
    DeviceTensor dt = DeviceTensor::from_host(Tensor::from_data(t.data(), {n}, DType::F32));
    DeviceTensor df = DeviceTensor::from_host(Tensor::from_data(freq.data(), {dim / 2}, DType::F32));
    DeviceTensor y = DeviceTensor::empty({n, dim});
    check(cuda().timestep_embedding(dt.f32(), n, df.f32(), dim / 2, flip ? 1 : 0, y.f32()), "timestep_embedding");
    return y;
}
DeviceTensor cfg_combine(const DeviceTensor& u, const DeviceTensor& c, float scale) {
    const OpScope prof("cfg_combine");
    need_f32(u, "cfg_combine", "uncond");
    need_f32(c, "cfg_combine", "cond");
    ST2V_CHECK(u.shape() == c.shape(), Code::kShapeMismatch, "cfg_combine: %s vs %s", u.shape().str().c_str(),
               c.shape().str().c_str());
    DeviceTensor out = DeviceTensor::empty(u.shape());
    check(cuda().cfg_combine(u.f32(), c.f32(), scale, out.f32(), u.numel()), "cfg_combine");
    return out;
}
DeviceTensor ddim_step(const DeviceTensor& eps, const DeviceTensor& x, float a_t, float a_prev, float eta,
                       const DeviceTensor* noise) {
    const OpScope prof("ddim_step");
    need_f32(eps, "ddim_step", "model output");
    need_f32(x, "ddim_step", "sample");
    ST2V_CHECK(eps.shape() == x.shape(), Code::kShapeMismatch, "DDIM: model output %s vs sample %s",
               eps.shape().str().c_str(), x.shape().str().c_str());
    const bool noisy = eta > 0.0f;
    if (noisy) {
        ST2V_CHECK_ARG(noise != nullptr && noise->defined(), "DDIM: eta > 0 needs variance noise");
        need_f32(*noise, "ddim_step", "variance noise");
        ST2V_CHECK(noise->numel() == x.numel(), Code::kShapeMismatch, "DDIM: variance noise %s vs sample %s",
                   noise->shape().str().c_str(), x.shape().str().c_str());
    }
    const kmath::DdimCoefs k = kmath::ddim_coefs(a_t, a_prev, eta);
    const float c5[5] = {k.sqrt_beta_t, k.sqrt_a_t, k.sqrt_a_prev, k.dir_coef, k.std_dev};
    DeviceTensor out = DeviceTensor::empty(x.shape());
    check(cuda().ddim_step(x.f32(), eps.f32(), noisy ? noise->f32() : nullptr, c5, out.f32(), x.numel()), "ddim_step");
    return out;
}

// ---- the remaining ops of the UNet3D / CAM / APM forward (ABI 2, native/cuda/kernels_layout.cu) ----
namespace {
std::vector<int64_t> contiguous_strides(const Shape& s) {
    std::vector<int64_t> st(static_cast<size_t>(s.ndim()));
    int64_t acc = 1;
    for (int d = s.ndim() - 1; d >= 0; --d) {
        st[static_cast<size_t>(d)] = acc;
        acc *= s[d];
    }
    return st;
}
void need_defined(const DeviceTensor& t, const char* op, const char* what) {
    ST2V_CHECK(t.defined(), Code::kInvalidArgument, "%s: %s is undefined", op, what);
}
// Copies the box `shape` from (src, src strides) to (dst, dst strides); strides in elements of `dtype`.
void copy_box(const void* src, const std::vector<int64_t>& ss, void* dst, const std::vector<int64_t>& ds,
              const std::vector<int64_t>& shape, DType dtype, const char* op) {
    check(cuda().copy_strided(src, ss.data(), dst, ds.data(), shape.data(), static_cast<int>(shape.size()),
                              static_cast<int>(dtype_size(dtype))),
          op);
}
int small_int(int64_t v, const char* op, const char* what) {
    ST2V_CHECK(v >= 0 && v <= 0x7fffffff, Code::kUnsupported, "%s: %s %lld is too large", op, what, (long long)v);
    return static_cast<int>(v);
}
}  // namespace

// ---- convolutions as tensor-core GEMMs (bf16 weights; the default; set_conv_gemm(false) / ST2V_CUDA_CONV=direct
// select the direct fp32 kernel) ----
// The input is rounded to bf16 (as linear() does for bf16 weights), unfolded by strided copies into a column
// matrix [pixels, C*kh*kw] (a zero-padded copy first when the conv pads), multiplied by the weight [O, C*kh*kw]
// through cuBLASLt (tensor cores, fp32 accumulate, bias in the epilogue), and the [pixels, O] result is copied
// into y's [O, pixels] layout. The column matrix is built for a group of images at a time, at most
// kConvColBytes, so memory stays bounded for any batch. Error: that of bf16 activations (the bf16 bound).
namespace {
constexpr int64_t kConvColBytes = int64_t(256) << 20;
// On an H200 (bench/results/gpu-2026-11-27T131620Z.json) the full-size bf16 stage-2 step took 225.8 ms this way
// against 575.5 ms with the direct kernel, its parity cases within the bf16 bound: so it is the default for bf16.
std::atomic<int> g_conv_gemm{-1};  // -1: not read yet (ST2V_CUDA_CONV), 0 off (direct kernel), 1 on
bool conv_gemm_on() {
    int v = g_conv_gemm.load(std::memory_order_relaxed);
    if (v < 0) {
        const char* e = std::getenv("ST2V_CUDA_CONV");  // "direct": the fp32 direct kernel; anything else: default
        v = e && std::strcmp(e, "direct") == 0 ? 0 : 1;
        g_conv_gemm.store(v, std::memory_order_relaxed);
    }
    return v == 1;
}
// Copies r [n, P, O] (f32, row-major) into y's images [n0, n0+n) laid out [N, O, P].
void scatter_pixels_major(const DeviceTensor& r, DeviceTensor& y, int64_t n0, int64_t n, int64_t O, int64_t P) {
    copy_box(r.raw(), {P * O, 1, O}, static_cast<float*>(y.raw()) + n0 * O * P, {O * P, P, 1}, {n, O, P}, DType::F32,
             "conv (gemm): output");
}
void conv2d_gemm(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, const ops::Conv2dParams& p,
                 int64_t kh, int64_t kw, int64_t Ho, int64_t Wo, DeviceTensor& y) {
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
    const int64_t Hp = H + p.pad_top + p.pad_bottom, Wp = W + p.pad_left + p.pad_right, K = C * kh * kw;
    const DeviceTensor xb = x.to(DType::BF16);
    DeviceTensor xp = xb;
    if (Hp != H || Wp != W) {
        xp = DeviceTensor::zeros({N, C, Hp, Wp}, DType::BF16);
        copy_box(xb.raw(), {C * H * W, H * W, W, 1},
                 static_cast<uint16_t*>(xp.raw()) + p.pad_top * Wp + p.pad_left, {C * Hp * Wp, Hp * Wp, Wp, 1},
                 {N, C, H, W}, DType::BF16, "conv2d (gemm): pad");
    }
    const DeviceTensor wk = w.reshape({O, K});
    const int64_t P = Ho * Wo, per = std::max<int64_t>(1, std::min<int64_t>(N, kConvColBytes / std::max<int64_t>(1, P * K * 2)));
    const int64_t s = p.stride;
    for (int64_t n0 = 0; n0 < N; n0 += per) {
        const int64_t n = std::min(per, N - n0);
        DeviceTensor col = DeviceTensor::empty({n * P, K}, DType::BF16);
        // col[i, ho, wo, c, dy, dx] = xp[n0 + i, c, ho*s + dy, wo*s + dx]
        copy_box(static_cast<const uint16_t*>(xp.raw()) + n0 * C * Hp * Wp,
                 {C * Hp * Wp, s * Wp, s, Hp * Wp, Wp, 1}, col.raw(), contiguous_strides(Shape({n, Ho, Wo, C, kh, kw})),
                 {n, Ho, Wo, C, kh, kw}, DType::BF16, "conv2d (gemm): unfold");
        const DeviceTensor r = linear(col, wk, b);  // [n*P, O] f32
        scatter_pixels_major(r, y, n0, n, O, P);
    }
}
void conv_temporal_gemm(const DeviceTensor& x, int frames, const DeviceTensor& w, const DeviceTensor& b, DeviceTensor& y) {
    const int64_t NF = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), O = w.size(0), F = frames, B = NF / F;
    const DeviceTensor xb = x.to(DType::BF16);
    // time-padded copy [B, F + 2, C, S]: frame f of sample b at index f + 1, zeros at both ends
    DeviceTensor xp = DeviceTensor::zeros({B, F + 2, C, S}, DType::BF16);
    copy_box(xb.raw(), {F * C * S, C * S, 1}, static_cast<uint16_t*>(xp.raw()) + C * S, {(F + 2) * C * S, C * S, 1},
             {B, F, C * S}, DType::BF16, "conv_temporal (gemm): pad");
    const DeviceTensor wk = w.reshape({O, C * 3});
    const int64_t K = C * 3, P = F * S;
    const int64_t per = std::max<int64_t>(1, std::min<int64_t>(B, kConvColBytes / std::max<int64_t>(1, P * K * 2)));
    for (int64_t b0 = 0; b0 < B; b0 += per) {
        const int64_t n = std::min(per, B - b0);
        DeviceTensor col = DeviceTensor::empty({n * P, K}, DType::BF16);
        // col[i, f, s, c, t] = xp[b0 + i, f + t, c, s]  (t = 0, 1, 2: frames f - 1, f, f + 1)
        copy_box(static_cast<const uint16_t*>(xp.raw()) + b0 * (F + 2) * C * S, {(F + 2) * C * S, C * S, 1, S, C * S},
                 col.raw(), contiguous_strides(Shape({n, F, S, C, 3})), {n, F, S, C, 3}, DType::BF16,
                 "conv_temporal (gemm): unfold");
        const DeviceTensor r = linear(col, wk, b);  // [n*F*S, O] f32, rows (i, f, s)
        // y[(b0 + i) * F + f, o, s] = r[(i*F + f)*S + s, o]: images are (sample, frame) pairs
        scatter_pixels_major(r, y, b0 * F, n * F, O, S);
    }
}
}  // namespace
void set_conv_gemm(bool on) { g_conv_gemm.store(on ? 1 : 0, std::memory_order_relaxed); }
bool conv_gemm() { return conv_gemm_on(); }

DeviceTensor conv2d(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b, const ops::Conv2dParams& p) {
    need_f32(x, "conv2d", "x");
    need_defined(w, "conv2d", "weight");
    ST2V_CHECK(x.ndim() == 4, Code::kShapeMismatch, "conv2d: x must be [N, C, H, W], got %s", x.shape().str().c_str());
    const st2v_dtype wt = abi_dtype(w.dtype(), "conv2d");
    int64_t kh = 1, kw = 1;
    if (w.ndim() == 4) {
        kh = w.size(2);
        kw = w.size(3);
    } else {
        ST2V_CHECK(w.ndim() == 2, Code::kShapeMismatch, "conv2d: weight must be [O, C, kh, kw], got %s",
                   w.shape().str().c_str());
    }
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv2d: input %s has %lld channels, weight %s expects %lld",
               x.shape().str().c_str(), (long long)C, w.shape().str().c_str(), (long long)w.size(1));
    ST2V_CHECK(kh >= 1 && kw >= 1 && C >= 1, Code::kShapeMismatch, "conv2d: empty kernel in weight %s",
               w.shape().str().c_str());
    ST2V_CHECK_ARG(p.stride >= 1 && p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0,
                   "conv2d: bad stride/padding");
    ST2V_CHECK(H + p.pad_top + p.pad_bottom >= kh && W + p.pad_left + p.pad_right >= kw, Code::kShapeMismatch,
               "conv2d: input %s too small for kernel %lldx%lld", x.shape().str().c_str(), (long long)kh,
               (long long)kw);
    const int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
    const int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
    const OpScope prof(kh == 1 && kw == 1 ? "conv2d 1x1" : kh == 3 && kw == 3 ? (p.stride == 1 ? "conv2d 3x3" : "conv2d 3x3 strided") : "conv2d other",
                       2.0 * static_cast<double>(N * O * Ho * Wo) * static_cast<double>(C * kh * kw));
    DeviceTensor y = DeviceTensor::empty({N, O, Ho, Wo});
    if (y.numel() == 0) return y;
    if (conv_gemm_on() && w.dtype() == DType::BF16) {
        conv2d_gemm(x, w, b, p, kh, kw, Ho, Wo, y);
        return y;
    }
    st2v_conv2d_args a{};
    a.N = N, a.C = C, a.H = H, a.W = W, a.O = O;
    a.kh = small_int(kh, "conv2d", "kernel height"), a.kw = small_int(kw, "conv2d", "kernel width");
    a.stride = p.stride, a.pad_top = p.pad_top, a.pad_left = p.pad_left;
    a.Ho = Ho, a.Wo = Wo;
    a.d_x = x.f32(), a.d_w = w.raw(), a.w_type = wt;
    a.d_bias = opt_vec(b, O, "conv2d", "bias");
    a.d_y = y.f32();
    check(cuda().conv2d(&a), "conv2d");
    return y;
}

DeviceTensor conv_temporal(const DeviceTensor& x, int frames, const DeviceTensor& w, const DeviceTensor& b) {
    need_f32(x, "conv_temporal", "x");
    need_defined(w, "conv_temporal", "weight");
    ST2V_CHECK(x.ndim() == 4, Code::kShapeMismatch, "conv_temporal: x must be [B*F, C, H, W], got %s",
               x.shape().str().c_str());
    const st2v_dtype wt = abi_dtype(w.dtype(), "conv_temporal");
    ST2V_CHECK_ARG(frames >= 1 && x.size(0) % frames == 0, "conv_temporal: batch %lld is not a multiple of frames %d",
                   (long long)x.size(0), frames);
    const int64_t NF = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), O = w.ndim() >= 1 ? w.size(0) : 0;
    ST2V_CHECK(w.ndim() >= 3 && w.size(1) == C && w.size(2) == 3 && w.numel() == O * C * 3 && C >= 1,
               Code::kShapeMismatch, "conv_temporal: weight %s does not fit input %s (want [O, %lld, 3, 1, 1])",
               w.shape().str().c_str(), x.shape().str().c_str(), (long long)C);
    const OpScope prof("conv_temporal", 2.0 * static_cast<double>(NF * O * S) * static_cast<double>(C * 3));
    DeviceTensor y = DeviceTensor::empty({NF, O, x.size(2), x.size(3)});
    if (y.numel() == 0) return y;
    if (conv_gemm_on() && w.dtype() == DType::BF16) {
        conv_temporal_gemm(x, frames, w, b, y);
        return y;
    }
    st2v_conv_temporal_args a{};
    a.NF = NF, a.frames = frames, a.kt = 3, a.C = C, a.S = S, a.O = O;
    a.d_x = x.f32(), a.d_w = w.raw(), a.w_type = wt;
    a.d_bias = opt_vec(b, O, "conv_temporal", "bias");
    a.d_y = y.f32();
    check(cuda().conv_temporal(&a), "conv_temporal");
    return y;
}

DeviceTensor conv1d_same(const DeviceTensor& x, const DeviceTensor& w, const DeviceTensor& b) {
    const OpScope prof("conv1d");
    need_f32(x, "conv1d", "x");
    need_defined(w, "conv1d", "weight");
    ST2V_CHECK(x.ndim() == 3 && w.ndim() == 3, Code::kShapeMismatch, "conv1d: x %s and weight %s must be 3-d",
               x.shape().str().c_str(), w.shape().str().c_str());
    const int64_t N = x.size(0), C = x.size(1), L = x.size(2), O = w.size(0), k = w.size(2);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv1d: weight %s does not fit input %s", w.shape().str().c_str(),
               x.shape().str().c_str());
    ST2V_CHECK_ARG(k % 2 == 1, "conv1d_same: kernel size must be odd");
    ops::Conv2dParams p;
    p.pad_left = p.pad_right = small_int(k / 2, "conv1d", "kernel size");
    DeviceTensor y = conv2d(x.reshape({N, C, 1, L}), w.reshape({O, C, 1, k}), b, p);
    return y.reshape({N, O, L});
}

DeviceTensor permute(const DeviceTensor& x, const std::vector<int>& perm) {
    const OpScope prof("permute");
    need_defined(x, "permute", "input");
    const int nd = x.ndim();
    ST2V_CHECK_ARG(static_cast<int>(perm.size()) == nd, "permute: %zu axes for a %d-d tensor", perm.size(), nd);
    ST2V_CHECK(nd <= ST2V_MAX_COPY_DIMS, Code::kUnsupported, "permute: %d dims (at most %d)", nd, ST2V_MAX_COPY_DIMS);
    std::vector<bool> seen(static_cast<size_t>(nd), false);
    for (int ax : perm) {
        ST2V_CHECK_ARG(ax >= 0 && ax < nd && !seen[static_cast<size_t>(ax)], "permute: bad axis order");
        seen[static_cast<size_t>(ax)] = true;
    }
    const std::vector<int64_t> in_st = contiguous_strides(x.shape());
    std::vector<int64_t> shape(static_cast<size_t>(nd)), ss(static_cast<size_t>(nd));
    for (int i = 0; i < nd; ++i) {
        shape[static_cast<size_t>(i)] = x.size(perm[static_cast<size_t>(i)]);
        ss[static_cast<size_t>(i)] = in_st[static_cast<size_t>(perm[static_cast<size_t>(i)])];
    }
    DeviceTensor y = DeviceTensor::empty(Shape(shape), x.dtype());
    if (y.numel() == 0) return y;
    copy_box(x.raw(), ss, y.raw(), contiguous_strides(y.shape()), shape, x.dtype(), "permute");
    return y;
}

void add_(DeviceTensor& a, const DeviceTensor& b) {
    const OpScope prof("add_");
    need_f32(a, "add_", "a");
    need_f32(b, "add_", "b");
    int64_t inner = a.numel();
    if (a.shape() != b.shape()) {
        ST2V_CHECK(b.ndim() <= a.ndim(), Code::kShapeMismatch, "add: cannot broadcast %s to %s",
                   b.shape().str().c_str(), a.shape().str().c_str());
        for (int i = 1; i <= b.ndim(); ++i)
            ST2V_CHECK(b.size(-i) == a.size(-i), Code::kShapeMismatch, "add: cannot broadcast %s to %s",
                       b.shape().str().c_str(), a.shape().str().c_str());
        inner = b.numel();
    }
    if (a.numel() == 0 || inner == 0) return;
    check(cuda().add_broadcast(a.f32(), b.f32(), a.numel(), 1, inner), "add_");
}

void add_channel_(DeviceTensor& x, const DeviceTensor& v) {
    const OpScope prof("add_channel_");
    need_f32(x, "add_channel_", "x");
    need_f32(v, "add_channel_", "v");
    ST2V_CHECK(x.ndim() >= 2, Code::kShapeMismatch, "add_channel_: x must be [N, C, ...], got %s",
               x.shape().str().c_str());
    const int64_t N = x.size(0), C = x.size(1);
    ST2V_CHECK(v.numel() == N * C && (v.ndim() < 2 || (v.size(0) == N && v.size(1) == C)), Code::kShapeMismatch,
               "add_channel_: v %s does not fit x %s (want [%lld, %lld])", v.shape().str().c_str(),
               x.shape().str().c_str(), (long long)N, (long long)C);
    if (x.numel() == 0) return;
    const int64_t S = x.numel() / (N * C);
    check(cuda().add_broadcast(x.f32(), v.f32(), x.numel(), S, N * C), "add_channel_");
}

DeviceTensor concat(const std::vector<DeviceTensor>& xs, int dim) {
    const OpScope prof("concat");
    ST2V_CHECK_ARG(!xs.empty(), "concat: no tensors");
    const DeviceTensor& x0 = xs[0];
    need_defined(x0, "concat", "input 0");
    const int nd = x0.ndim();
    if (dim < 0) dim += nd;
    ST2V_CHECK_ARG(dim >= 0 && dim < nd, "concat: bad dim");
    ST2V_CHECK(nd <= ST2V_MAX_COPY_DIMS, Code::kUnsupported, "concat: %d dims (at most %d)", nd, ST2V_MAX_COPY_DIMS);
    int64_t total = 0;
    for (const DeviceTensor& t : xs) {
        need_defined(t, "concat", "input");
        ST2V_CHECK(t.ndim() == nd && t.dtype() == x0.dtype(), Code::kShapeMismatch,
                   "concat: %s and %s differ in rank or dtype", x0.shape().str().c_str(), t.shape().str().c_str());
        for (int d = 0; d < nd; ++d)
            ST2V_CHECK(d == dim || t.size(d) == x0.size(d), Code::kShapeMismatch, "concat: %s and %s differ off dim %d",
                       x0.shape().str().c_str(), t.shape().str().c_str(), dim);
        total += t.size(dim);
    }
    Shape s = x0.shape();
    s[dim] = total;
    DeviceTensor y = DeviceTensor::empty(s, x0.dtype());
    const std::vector<int64_t> ys = contiguous_strides(s);
    const size_t es = dtype_size(x0.dtype());
    int64_t off = 0;
    for (const DeviceTensor& t : xs) {
        if (t.numel() > 0) {
            char* dst = static_cast<char*>(y.raw()) + static_cast<size_t>(off * ys[static_cast<size_t>(dim)]) * es;
            copy_box(t.raw(), contiguous_strides(t.shape()), dst, ys, t.shape().vec(), t.dtype(), "concat");
        }
        off += t.size(dim);
    }
    return y;
}

DeviceTensor upsample_nearest(const DeviceTensor& x, int64_t oh, int64_t ow) {
    const OpScope prof("upsample_nearest");
    need_f32(x, "upsample_nearest", "x");
    ST2V_CHECK(x.ndim() == 4 && x.size(2) >= 1 && x.size(3) >= 1, Code::kShapeMismatch,
               "upsample_nearest: x must be [N, C, H, W] with H, W >= 1, got %s", x.shape().str().c_str());
    ST2V_CHECK_ARG(oh >= 1 && ow >= 1, "upsample_nearest: output size %lldx%lld", (long long)oh, (long long)ow);
    const int64_t N = x.size(0), C = x.size(1);
    DeviceTensor y = DeviceTensor::empty({N, C, oh, ow});
    if (y.numel() == 0) return y;
    check(cuda().upsample_nearest(x.f32(), y.f32(), N * C, x.size(2), x.size(3), oh, ow), "upsample_nearest");
    return y;
}

DeviceTensor slice(const DeviceTensor& x, int dim, int64_t start, int64_t end) {
    const OpScope prof("slice");
    need_defined(x, "slice", "input");
    const int nd = x.ndim();
    if (dim < 0) dim += nd;
    ST2V_CHECK_ARG(dim >= 0 && dim < nd, "slice: bad dim");
    ST2V_CHECK_ARG(0 <= start && start <= end && end <= x.size(dim), "slice [%lld, %lld) out of range for %s dim %d",
                   (long long)start, (long long)end, x.shape().str().c_str(), dim);
    ST2V_CHECK(nd <= ST2V_MAX_COPY_DIMS, Code::kUnsupported, "slice: %d dims (at most %d)", nd, ST2V_MAX_COPY_DIMS);
    Shape s = x.shape();
    s[dim] = end - start;
    DeviceTensor y = DeviceTensor::empty(s, x.dtype());
    if (y.numel() == 0) return y;
    const std::vector<int64_t> xs = contiguous_strides(x.shape());
    const char* src = static_cast<const char*>(x.raw()) +
                      static_cast<size_t>(start * xs[static_cast<size_t>(dim)]) * dtype_size(x.dtype());
    copy_box(src, xs, y.raw(), contiguous_strides(s), s.vec(), x.dtype(), "slice");
    return y;
}

DeviceTensor repeat_interleave(const DeviceTensor& x, int repeats) {
    const OpScope prof("repeat_interleave");
    need_defined(x, "repeat_interleave", "input");
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "repeat_interleave: input must be at least 1-d");
    ST2V_CHECK_ARG(repeats >= 1, "repeat_interleave: repeats must be >= 1, got %d", repeats);
    Shape s = x.shape();
    const int64_t B = s[0];
    s[0] = B * repeats;
    DeviceTensor y = DeviceTensor::empty(s, x.dtype());
    if (y.numel() == 0) return y;
    const int64_t rest = x.numel() / B;
    // y viewed as [B, repeats, rest] reads x as [B, (broadcast), rest]
    copy_box(x.raw(), {rest, 0, 1}, y.raw(), {repeats * rest, rest, 1}, {B, int64_t(repeats), rest}, x.dtype(),
             "repeat_interleave");
    return y;
}

}  // namespace st2v::backend::cuda_ops
