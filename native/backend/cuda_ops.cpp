#include "backend/cuda_ops.h"

#include <cmath>

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
    DeviceTensor t = empty(shape_, dtype);
    check(cuda().cast(raw(), abi_dtype(dtype_, "cast"), t.raw(), abi_dtype(dtype, "cast"), numel()), "cast");
    return t;
}

DeviceTensor silu(const DeviceTensor& x) {
    need_f32(x, "silu", "x");
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().silu(x.f32(), y.f32(), x.numel()), "silu");
    return y;
}
DeviceTensor gelu(const DeviceTensor& x) {
    need_f32(x, "gelu", "x");
    DeviceTensor y = DeviceTensor::empty(x.shape());
    check(cuda().gelu(x.f32(), y.f32(), x.numel()), "gelu");
    return y;
}
DeviceTensor geglu(const DeviceTensor& x) {
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
    const DeviceTensor xa = x.to(w.dtype());
    const int64_t K = w.size(1), N = w.size(0), M = K ? x.numel() / K : 0;
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

// ---- UNet ops declared in cuda_ops.h, not implemented yet: typed error, never a crash ----
namespace {
[[noreturn]] void not_yet(const char* op) {
    ST2V_THROW(Code::kUnsupported, "cuda_ops::%s is not implemented yet on the CUDA backend", op);
}
}  // namespace
DeviceTensor conv2d(const DeviceTensor&, const DeviceTensor&, const DeviceTensor&, const ops::Conv2dParams&) { not_yet("conv2d"); }
DeviceTensor conv_temporal(const DeviceTensor&, int, const DeviceTensor&, const DeviceTensor&) { not_yet("conv_temporal"); }
DeviceTensor conv1d_same(const DeviceTensor&, const DeviceTensor&, const DeviceTensor&) { not_yet("conv1d_same"); }
DeviceTensor permute(const DeviceTensor&, const std::vector<int>&) { not_yet("permute"); }
void add_(DeviceTensor&, const DeviceTensor&) { not_yet("add_"); }
void add_channel_(DeviceTensor&, const DeviceTensor&) { not_yet("add_channel_"); }
DeviceTensor concat(const std::vector<DeviceTensor>&, int) { not_yet("concat"); }
DeviceTensor upsample_nearest(const DeviceTensor&, int64_t, int64_t) { not_yet("upsample_nearest"); }
DeviceTensor slice(const DeviceTensor&, int, int64_t, int64_t) { not_yet("slice"); }
DeviceTensor repeat_interleave(const DeviceTensor&, int) { not_yet("repeat_interleave"); }

}  // namespace st2v::backend::cuda_ops
