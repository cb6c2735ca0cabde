// GEMM-based ops: portable GEMM, linear, conv2d, temporal conv, conv1d.
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
void gemm_portable(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
                   const GemmEpilogue& ep) {
    parallel_for(M, [&](int64_t m0, int64_t m1, int) {
        std::vector<float> arow(static_cast<size_t>(K));
        std::vector<float> acc(static_cast<size_t>(N));
        for (int64_t m = m0; m < m1; ++m) {
            for (int64_t k = 0; k < K; ++k) arow[static_cast<size_t>(k)] = load_w(A.data, A.dtype, m * A.rs + k * A.cs);
            std::fill(acc.begin(), acc.end(), 0.f);
            for (int64_t k = 0; k < K; ++k) {
                float a = arow[static_cast<size_t>(k)];
                if (a == 0.f) continue;
                for (int64_t n = 0; n < N; ++n) acc[static_cast<size_t>(n)] += a * load_w(B.data, B.dtype, k * B.rs + n * B.cs);
            }
            float* c = C + m * ldc;
            for (int64_t n = 0; n < N; ++n) {
                float v = ep.alpha * acc[static_cast<size_t>(n)];
                if (ep.accumulate) v += c[n];
                if (ep.bias_col) v += ep.bias_col[n];
                if (ep.bias_row) v += ep.bias_row[m];
                c[n] = act_apply(v, ep.act);
            }
        }
    }, 1);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Act act) {
    check_dtype(x, DType::F32, "linear", "x");
    check_float_weight(w, "linear", "weight");
    ST2V_CHECK(w.ndim() == 2, Code::kShapeMismatch, "linear: weight must be 2-d, got %s", w.desc().c_str());
    ST2V_CHECK(x.ndim() >= 1 && x.size(-1) == w.size(1), Code::kShapeMismatch,
               "linear: input %s does not match weight %s (in_features %lld)", x.desc().c_str(), w.desc().c_str(),
               (long long)w.size(1));
    const int64_t in = w.size(1), out = w.size(0);
    Tensor xc = x;
    // Rows must be addressable with one stride: collapse leading dims when possible.
    int64_t rows = in ? x.numel() / in : 0;
    int64_t rs = in;
    bool ok = x.stride(-1) == 1;
    if (ok && x.ndim() >= 2) {
        rs = x.stride(-2);
        int64_t expect = x.stride(-2) * x.size(-2);
        for (int d = x.ndim() - 3; d >= 0 && ok; --d) {
            if (x.size(d) != 1 && x.stride(d) != expect) ok = false;
            expect *= x.size(d);
        }
    }
    if (!ok) { xc = x.contiguous(); rs = in; }
    Tensor wc = w.contiguous();
    std::vector<float> bias = vec_f32(b, out, "linear", "bias");
    std::vector<int64_t> oshape = x.shape().vec();
    oshape.back() = out;
    Tensor y = Tensor::empty(Shape(oshape));
    MatRef A{xc.raw(), DType::F32, rs, 1};
    MatRef B{wc.raw(), wc.dtype(), 1, in};  // B[k, n] = w[n, k]
    GemmEpilogue ep;
    ep.bias_col = bias.empty() ? nullptr : bias.data();
    ep.act = act;
    gemm(rows, out, in, A, B, y.f32(), out, ep);
    return y;
}

// ---------------------------------------------------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
    check_dtype(x, DType::F32, "conv2d", "x");
    check_ndim(x, 4, "conv2d", "x");
    check_float_weight(w, "conv2d", "weight");
    Tensor wc = w.contiguous();
    int64_t kh = 1, kw = 1;
    if (w.ndim() == 4) { kh = w.size(2); kw = w.size(3); }
    else ST2V_CHECK(w.ndim() == 2, Code::kShapeMismatch, "conv2d: weight must be [O, C, kh, kw], got %s", w.desc().c_str());
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv2d: input %s has %lld channels, weight %s expects %lld",
               x.desc().c_str(), (long long)C, w.desc().c_str(), (long long)w.size(1));
    ST2V_CHECK_ARG(p.stride >= 1 && p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0,
                   "conv2d: bad stride/padding");
    const int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
    const int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
    ST2V_CHECK(Ho > 0 && Wo > 0, Code::kShapeMismatch, "conv2d: input %s too small for kernel %lldx%lld",
               x.desc().c_str(), (long long)kh, (long long)kw);
    std::vector<float> bias = vec_f32(b, O, "conv2d", "bias");
    Tensor xcont = x.contiguous();
    Tensor y = Tensor::empty({N, O, Ho, Wo});
    const int64_t Kdim = C * kh * kw, P = Ho * Wo;
    const bool direct = kh == 1 && kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0;
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = xcont.f32() + n * C * H * W;
        float* yn = y.f32() + n * O * P;
        MatRef A{wc.raw(), wc.dtype(), Kdim, 1};
        GemmEpilogue ep;
        ep.bias_row = bias.empty() ? nullptr : bias.data();
        if (direct) {
            MatRef B{xn, DType::F32, P, 1};
            gemm(O, P, Kdim, A, B, yn, P, ep);
            continue;
        }
        Tensor col = Tensor::empty({Kdim, P});
        float* cp = col.f32();
        parallel_for(C, [&](int64_t c0, int64_t c1, int) {
            for (int64_t c = c0; c < c1; ++c)
                for (int64_t i = 0; i < kh; ++i)
                    for (int64_t j = 0; j < kw; ++j) {
                        float* row = cp + ((c * kh + i) * kw + j) * P;
                        for (int64_t oh = 0; oh < Ho; ++oh) {
                            int64_t ih = oh * p.stride - p.pad_top + i;
                            for (int64_t ow = 0; ow < Wo; ++ow) {
                                int64_t iw = ow * p.stride - p.pad_left + j;
                                row[oh * Wo + ow] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? xn[(c * H + ih) * W + iw] : 0.f;
                            }
                        }
                    }
        });
        MatRef B{cp, DType::F32, P, 1};
        gemm(O, P, Kdim, A, B, yn, P, ep);
    }
    return y;
}

Tensor conv_temporal(const Tensor& x, int frames, const Tensor& w, const Tensor& b) {
    check_dtype(x, DType::F32, "conv_temporal", "x");
    check_ndim(x, 4, "conv_temporal", "x");
    check_float_weight(w, "conv_temporal", "weight");
    ST2V_CHECK_ARG(frames >= 1 && x.size(0) % frames == 0, "conv_temporal: batch %lld is not a multiple of frames %d",
                   (long long)x.size(0), frames);
    const int64_t NF = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), O = w.size(0);
    ST2V_CHECK(w.numel() == O * C * 3 && w.size(1) == C, Code::kShapeMismatch,
               "conv_temporal: weight %s does not fit input %s (want [O, %lld, 3, 1, 1])", w.desc().c_str(),
               x.desc().c_str(), (long long)C);
    std::vector<float> bias = vec_f32(b, O, "conv_temporal", "bias");
    Tensor xc = x.contiguous();
    Tensor wc = w.contiguous();
    Tensor y = Tensor::empty({NF, O, x.size(2), x.size(3)});
    for (int64_t nf = 0; nf < NF; ++nf) {
        const int64_t f = nf % frames;
        float* yn = y.f32() + nf * O * S;
        GemmEpilogue ep;
        ep.bias_row = bias.empty() ? nullptr : bias.data();
        bool first = true;
        for (int k = 0; k < 3; ++k) {
            int64_t src = f + k - 1;
            if (src < 0 || src >= frames) continue;
            const float* xn = xc.f32() + (nf + k - 1) * C * S;
            // A[o, c] = w[o, c, k]: row stride C*3, col stride 3
            MatRef A{static_cast<const char*>(wc.raw()) + k * static_cast<int64_t>(dtype_size(wc.dtype())), wc.dtype(), C * 3, 3};
            MatRef B{xn, DType::F32, S, 1};
            GemmEpilogue e2 = ep;
            e2.accumulate = !first;
            if (!first) e2.bias_row = nullptr;
            gemm(O, S, C, A, B, yn, S, e2);
            first = false;
        }
    }
    return y;
}

Tensor conv1d_same(const Tensor& x, const Tensor& w, const Tensor& b) {
    check_dtype(x, DType::F32, "conv1d", "x");
    check_ndim(x, 3, "conv1d", "x");
    check_float_weight(w, "conv1d", "weight");
    check_ndim(w, 3, "conv1d", "weight");
    const int64_t N = x.size(0), C = x.size(1), L = x.size(2), O = w.size(0), k = w.size(2);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv1d: weight %s does not fit input %s", w.desc().c_str(),
               x.desc().c_str());
    ST2V_CHECK_ARG(k % 2 == 1, "conv1d_same: kernel size must be odd");
    std::vector<float> bias = vec_f32(b, O, "conv1d", "bias");
    Tensor xc = x.contiguous();
    Tensor y = Tensor::empty({N, O, L});
    const int64_t pad = k / 2;
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = xc.f32() + n * C * L;
        float* yn = y.f32() + n * O * L;
        bool first = true;
        for (int64_t j = 0; j < k; ++j) {
            int64_t shift = j - pad;  // y[o, l] += w[o, c, j] * x[c, l + shift]
            int64_t l0 = std::max<int64_t>(0, -shift), l1 = std::min<int64_t>(L, L - shift);
            if (!first && l1 <= l0) continue;
            MatRef A{static_cast<const char*>(w.contiguous().raw()) + j * static_cast<int64_t>(dtype_size(w.dtype())), w.dtype(), C * k, k};
            if (first) {
                // initialise full output with bias, then accumulate the valid window
                for (int64_t o = 0; o < O; ++o)
                    for (int64_t l = 0; l < L; ++l) yn[o * L + l] = bias.empty() ? 0.f : bias[static_cast<size_t>(o)];
                first = false;
            }
            if (l1 <= l0) continue;
            MatRef B{xn + l0 + shift, DType::F32, L, 1};
            GemmEpilogue ep;
            ep.accumulate = true;
            gemm(O, l1 - l0, C, A, B, yn + l0, L, ep);
        }
    }
    return y;
}

}  // namespace st2v::ops
