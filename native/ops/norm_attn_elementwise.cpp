// Normalisation, attention and elementwise ops.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "core/threadpool.h"
#include "ops/ops.h"

namespace st2v::ops {

namespace {
inline float load_w(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return static_cast<const float*>(p)[i];
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        default: return 0.f;
    }
}
void check_float_weight(const Tensor& w, const char* op, const char* what) {
    check_defined(w, op, what);
    ST2V_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::F16 || w.dtype() == DType::BF16, Code::kDtype,
               "%s: %s must be f32, f16 or bf16, got %s", op, what, w.desc().c_str());
}
// Bias/affine vectors as contiguous f32 (small; converted per call).
std::vector<float> vec_f32(const Tensor& t, int64_t n, const char* op, const char* what) {
    std::vector<float> v;
    if (!t.defined()) return v;
    check_float_weight(t, op, what);
    ST2V_CHECK(t.numel() == n, Code::kShapeMismatch, "%s: %s has %lld elements, expected %lld", op, what,
               (long long)t.numel(), (long long)n);
    Tensor c = t.contiguous();
    v.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = load_w(c.raw(), c.dtype(), i);
    return v;
}
inline float act_apply(float x, Act a) {
    switch (a) {
        case Act::kNone: return x;
        case Act::kSilu: return x / (1.f + std::exp(-x));
        case Act::kGelu: return 0.5f * x * (1.f + std::erf(x * 0.70710678118654752f));
    }
    return x;
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
Tensor group_norm(const Tensor& x, int frames, int groups, const Tensor& gamma, const Tensor& beta, float eps,
                  bool silu) {
    check_dtype(x, DType::F32, "group_norm", "x");
    ST2V_CHECK(x.ndim() >= 2, Code::kShapeMismatch, "group_norm: input must be at least 2-d, got %s", x.desc().c_str());
    const int64_t NF = x.size(0), C = x.size(1);
    const int64_t S = C ? x.numel() / (NF * C) : 0;
    ST2V_CHECK_ARG(groups >= 1 && C % groups == 0, "group_norm: %lld channels not divisible by %d groups", (long long)C,
                   groups);
    ST2V_CHECK_ARG(frames >= 1 && NF % frames == 0, "group_norm: batch %lld not a multiple of frames %d", (long long)NF,
                   frames);
    std::vector<float> g = vec_f32(gamma, C, "group_norm", "weight");
    std::vector<float> bt = vec_f32(beta, C, "group_norm", "bias");
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    const int64_t B = NF / frames, cpg = C / groups;
    const float* xp = xc.f32();
    float* yp = y.f32();
    parallel_for(B * groups, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / groups, gi = i % groups;
            double sum = 0, sq = 0;
            for (int64_t f = 0; f < frames; ++f) {
                const float* base = xp + ((b * frames + f) * C + gi * cpg) * S;
                for (int64_t j = 0; j < cpg * S; ++j) { double v = base[j]; sum += v; sq += v * v; }
            }
            const double n = static_cast<double>(frames * cpg * S);
            const double mean = sum / n;
            double var = sq / n - mean * mean;
            if (var < 0) var = 0;
            const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
            const float m = static_cast<float>(mean);
            for (int64_t f = 0; f < frames; ++f)
                for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c) {
                    const float sc = rstd * (g.empty() ? 1.f : g[static_cast<size_t>(c)]);
                    const float sh = bt.empty() ? 0.f : bt[static_cast<size_t>(c)];
                    const float* src = xp + ((b * frames + f) * C + c) * S;
                    float* dst = yp + ((b * frames + f) * C + c) * S;
                    for (int64_t s = 0; s < S; ++s) {
                        float v = (src[s] - m) * sc + sh;
                        dst[s] = silu ? v / (1.f + std::exp(-v)) : v;
                    }
                }
        }
    });
    return y;
}

Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    check_dtype(x, DType::F32, "layer_norm", "x");
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "layer_norm: input must be at least 1-d");
    const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
    std::vector<float> g = vec_f32(gamma, C, "layer_norm", "weight");
    std::vector<float> bt = vec_f32(beta, C, "layer_norm", "bias");
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    const float* xp = xc.f32();
    float* yp = y.f32();
    parallel_for(R, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* a = xp + r * C;
            double sum = 0, sq = 0;
            for (int64_t c = 0; c < C; ++c) { sum += a[c]; sq += double(a[c]) * a[c]; }
            double mean = sum / C, var = sq / C - mean * mean;
            if (var < 0) var = 0;
            float rstd = static_cast<float>(1.0 / std::sqrt(var + eps)), m = static_cast<float>(mean);
            for (int64_t c = 0; c < C; ++c) {
                float v = (a[c] - m) * rstd;
                if (!g.empty()) v *= g[static_cast<size_t>(c)];
                if (!bt.empty()) v += bt[static_cast<size_t>(c)];
                yp[r * C + c] = v;
            }
        }
    }, 16);
    return y;
}

// ---------------------------------------------------------------------------------------------------
Tensor attention_portable(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    return attention_portable(q, k, v, heads, scale);
}

Tensor attention_portable(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
    const char* op = "attention";
    check_dtype(q, DType::F32, op, "q");
    check_dtype(k, DType::F32, op, "k");
    check_dtype(v, DType::F32, op, "v");
    check_ndim(q, 3, op, "q");
    check_ndim(k, 3, op, "k");
    check_ndim(v, 3, op, "v");
    const int64_t B = q.size(0), Lq = q.size(1), Lk = k.size(1);
    ST2V_CHECK_ARG(heads >= 1, "attention: heads must be >= 1");
    ST2V_CHECK(k.size(0) == B && v.size(0) == B && v.size(1) == Lk, Code::kShapeMismatch,
               "attention: q %s, k %s, v %s do not agree", q.desc().c_str(), k.desc().c_str(), v.desc().c_str());
    ST2V_CHECK(q.size(2) == k.size(2) && q.size(2) % heads == 0 && v.size(2) % heads == 0, Code::kShapeMismatch,
               "attention: q %s / k %s widths must match and divide by %d heads", q.desc().c_str(), k.desc().c_str(),
               heads);
    ST2V_CHECK(q.stride(2) == 1 && k.stride(2) == 1 && v.stride(2) == 1, Code::kInvalidArgument,
               "attention: last dim of q/k/v must be contiguous");
    const int64_t D = q.size(2) / heads, Dv = v.size(2) / heads;
    Tensor o = Tensor::empty({B, Lq, heads * Dv});
    const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
    float* op_ = o.f32();
    parallel_for(B * heads, [&](int64_t i0, int64_t i1, int) {
        std::vector<float> s(static_cast<size_t>(Lk));
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t b = i / heads, h = i % heads;
            for (int64_t l = 0; l < Lq; ++l) {
                const float* qr = qp + b * q.stride(0) + l * q.stride(1) + h * D;
                float mx = -INFINITY;
                for (int64_t j = 0; j < Lk; ++j) {
                    const float* kr = kp + b * k.stride(0) + j * k.stride(1) + h * D;
                    float acc = 0;
                    for (int64_t d = 0; d < D; ++d) acc += qr[d] * kr[d];
                    s[static_cast<size_t>(j)] = acc * scale;
                    mx = std::max(mx, s[static_cast<size_t>(j)]);
                }
                float den = 0;
                for (int64_t j = 0; j < Lk; ++j) { s[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - mx); den += s[static_cast<size_t>(j)]; }
                float* orow = op_ + (b * Lq + l) * heads * Dv + h * Dv;
                for (int64_t d = 0; d < Dv; ++d) orow[d] = 0;
                for (int64_t j = 0; j < Lk; ++j) {
                    const float* vr = vp + b * v.stride(0) + j * v.stride(1) + h * Dv;
                    const float pj = s[static_cast<size_t>(j)] / den;
                    for (int64_t d = 0; d < Dv; ++d) orow[d] += pj * vr[d];
                }
            }
        }
    });
    return o;
}

// ---------------------------------------------------------------------------------------------------
namespace {
template <typename F>
Tensor unary(const Tensor& x, const char* name, F f) {
    check_dtype(x, DType::F32, name, "x");
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty(x.shape());
    const float* a = xc.f32();
    float* o = y.f32();
    parallel_for(x.numel(), [&](int64_t i0, int64_t i1, int) { for (int64_t i = i0; i < i1; ++i) o[i] = f(a[i]); }, 4096);
    return y;
}
// b broadcast over a: b's shape must equal a suffix of a's shape (or be identical).
int64_t broadcast_inner(const Tensor& a, const Tensor& b, const char* op) {
    check_dtype(a, DType::F32, op, "a");
    check_dtype(b, DType::F32, op, "b");
    if (a.shape() == b.shape()) return a.numel();
    ST2V_CHECK(b.ndim() <= a.ndim(), Code::kShapeMismatch, "%s: cannot broadcast %s to %s", op, b.desc().c_str(),
               a.desc().c_str());
    for (int i = 1; i <= b.ndim(); ++i)
        ST2V_CHECK(b.size(-i) == a.size(-i), Code::kShapeMismatch, "%s: cannot broadcast %s to %s", op,
                   b.desc().c_str(), a.desc().c_str());
    return b.numel();
}
}  // namespace

Tensor silu(const Tensor& x) { return unary(x, "silu", [](float v) { return v / (1.f + std::exp(-v)); }); }
Tensor gelu(const Tensor& x) {
    return unary(x, "gelu", [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); });
}
Tensor scale(const Tensor& x, float s) { return unary(x, "scale", [s](float v) { return v * s; }); }

Tensor geglu(const Tensor& x) {
    check_dtype(x, DType::F32, "geglu", "x");
    ST2V_CHECK(x.ndim() >= 1 && x.size(-1) % 2 == 0, Code::kShapeMismatch, "geglu: last dim of %s must be even",
               x.desc().c_str());
    const int64_t C2 = x.size(-1), C = C2 / 2, R = C2 ? x.numel() / C2 : 0;
    Tensor xc = x.contiguous();
    std::vector<int64_t> s = x.shape().vec();
    s.back() = C;
    Tensor y = Tensor::empty(Shape(s));
    const float* a = xc.f32();
    float* o = y.f32();
    parallel_for(R, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = 0; c < C; ++c) {
                float g = a[r * C2 + C + c];
                o[r * C + c] = a[r * C2 + c] * (0.5f * g * (1.f + std::erf(g * 0.70710678118654752f)));
            }
    }, 16);
    return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
    Tensor y = a.clone();
    add_(y, b);
    return y;
}

void add_(Tensor& a, const Tensor& b) {
    int64_t inner = broadcast_inner(a, b, "add");
    ST2V_CHECK(a.is_contiguous(), Code::kInvalidArgument, "add_: destination must be contiguous");
    Tensor bc = b.contiguous();
    float* o = a.f32();
    const float* q = bc.f32();
    const int64_t n = a.numel();
    parallel_for(n, [&](int64_t i0, int64_t i1, int) { for (int64_t i = i0; i < i1; ++i) o[i] += q[i % inner]; }, 4096);
}

Tensor mul(const Tensor& a, const Tensor& b) {
    int64_t inner = broadcast_inner(a, b, "mul");
    Tensor y = a.clone();
    Tensor bc = b.contiguous();
    float* o = y.f32();
    const float* q = bc.f32();
    parallel_for(y.numel(), [&](int64_t i0, int64_t i1, int) { for (int64_t i = i0; i < i1; ++i) o[i] *= q[i % inner]; }, 4096);
    return y;
}

Tensor axpby(const Tensor& x, float a, const Tensor& y, float b) {
    check_dtype(x, DType::F32, "axpby", "x");
    check_dtype(y, DType::F32, "axpby", "y");
    ST2V_CHECK(x.shape() == y.shape(), Code::kShapeMismatch, "axpby: %s vs %s", x.desc().c_str(), y.desc().c_str());
    Tensor xc = x.contiguous(), yc = y.contiguous();
    Tensor o = Tensor::empty(x.shape());
    const float *p = xc.f32(), *q = yc.f32();
    float* r = o.f32();
    parallel_for(x.numel(), [&](int64_t i0, int64_t i1, int) { for (int64_t i = i0; i < i1; ++i) r[i] = a * p[i] + b * q[i]; }, 4096);
    return o;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
    ST2V_CHECK_ARG(!xs.empty(), "concat: no tensors");
    const Tensor& x0 = xs[0];
    check_defined(x0, "concat", "input 0");
    if (dim < 0) dim += x0.ndim();
    ST2V_CHECK_ARG(dim >= 0 && dim < x0.ndim(), "concat: bad dim");
    int64_t total = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
        const Tensor& t = xs[i];
        check_defined(t, "concat", "input");
        ST2V_CHECK(t.ndim() == x0.ndim() && t.dtype() == x0.dtype(), Code::kShapeMismatch,
                   "concat: %s and %s differ in rank or dtype", x0.desc().c_str(), t.desc().c_str());
        for (int d = 0; d < x0.ndim(); ++d)
            ST2V_CHECK(d == dim || t.size(d) == x0.size(d), Code::kShapeMismatch, "concat: %s and %s differ off dim %d",
                       x0.desc().c_str(), t.desc().c_str(), dim);
        total += t.size(dim);
    }
    std::vector<int64_t> s = x0.shape().vec();
    s[static_cast<size_t>(dim)] = total;
    Tensor y = Tensor::empty(Shape(s), x0.dtype());
    int64_t off = 0;
    for (const Tensor& t : xs) {
        Tensor dst = y.slice(dim, off, off + t.size(dim));
        dst.copy_from(t);
        off += t.size(dim);
    }
    return y;
}

Tensor upsample_nearest2x(const Tensor& x) {
    check_dtype(x, DType::F32, "upsample_nearest2x", "x");
    check_ndim(x, 4, "upsample_nearest2x", "x");
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty({N, C, 2 * H, 2 * W});
    const float* a = xc.f32();
    float* o = y.f32();
    parallel_for(N * C, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t h = 0; h < 2 * H; ++h)
                for (int64_t w = 0; w < 2 * W; ++w) o[(i * 2 * H + h) * 2 * W + w] = a[(i * H + h / 2) * W + w / 2];
    });
    return y;
}

Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float shift, float max_period) {
    ST2V_CHECK_ARG(dim >= 2, "timestep_embedding: dim must be >= 2");
    const int half = dim / 2;
    Tensor y = Tensor::zeros({static_cast<int64_t>(t.size()), dim});
    float* o = y.f32();
    // Same float32 operation order as diffusers get_timestep_embedding.
    std::vector<float> freq(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
        float e = -std::log(max_period) * static_cast<float>(i);
        e = e / (static_cast<float>(half) - shift);
        freq[static_cast<size_t>(i)] = std::exp(e);
    }
    for (size_t r = 0; r < t.size(); ++r) {
        for (int i = 0; i < half; ++i) {
            float a = t[r] * freq[static_cast<size_t>(i)];
            float s = std::sin(a), c = std::cos(a);
            if (flip_sin_to_cos) { o[r * dim + i] = c; o[r * dim + half + i] = s; }
            else { o[r * dim + i] = s; o[r * dim + half + i] = c; }
        }
    }
    return y;
}

}  // namespace st2v::ops
