// GEMM-based ops: portable GEMM, linear, conv2d, temporal conv, conv1d.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/half.h"
#include "core/cpu.h"
#include "core/profile.h"
#include "core/threadpool.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "ops/weight_util.h"

namespace st2v::ops {

using detail::act_apply;
using detail::check_float_weight;
using detail::load_w;
using detail::vec_f32;

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

namespace {
// x's rows as one strided matrix [rows, in]: leading dims collapsed when their strides allow, else a copy.
struct LinearRows {
    Tensor x;
    int64_t rows, rs;
};
LinearRows linear_rows(const Tensor& x, int64_t in) {
    const int64_t rows = in ? x.numel() / in : 0;
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
    if (!ok) return {x.contiguous(), rows, in};
    return {x, rows, rs};
}

// B of linear_concat: the weights' rows one after another (every part but the last a multiple of 32 rows, so no
// micro-panel of the GEMM levels (8, 16 or 32 wide) straddles two parts).
struct CatPack {
    std::vector<detail::MatPack> parts;
    std::vector<int64_t> starts;
};
void pack_cat(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const CatPack& c = *static_cast<const CatPack*>(ctx);
    size_t p = c.parts.size() - 1;
    while (p > 0 && c.starts[p] > r0) --p;
    detail::pack_mat(&c.parts[p], r0 - c.starts[p], nr, k0, kc, R, dst);
}
}  // namespace

Tensor linear_concat(const Tensor& x, const std::vector<Tensor>& ws) {
    check_dtype(x, DType::F32, "linear_concat", "x");
    ST2V_CHECK_ARG(!ws.empty(), "linear_concat: no weights");
    ST2V_CHECK(x.ndim() >= 1, Code::kShapeMismatch, "linear_concat: input must be at least 1-d");
    const int64_t in = x.size(-1);
    int64_t out = 0;
    bool aligned = true;
    for (size_t i = 0; i < ws.size(); ++i) {
        check_float_weight(ws[i], "linear_concat", "weight");
        ST2V_CHECK(ws[i].ndim() == 2 && ws[i].size(1) == in, Code::kShapeMismatch,
                   "linear_concat: input %s does not match weight %s", x.desc().c_str(), ws[i].desc().c_str());
        if (i + 1 < ws.size() && ws[i].size(0) % 32 != 0) aligned = false;
        out += ws[i].size(0);
    }
    std::vector<int64_t> oshape = x.shape().vec();
    oshape.back() = out;
    if (!aligned || active_isa() == Isa::kPortable) {  // one linear per part into its columns (same sums)
        Tensor y = Tensor::empty(Shape(oshape));
        int64_t off = 0;
        for (const Tensor& w : ws) {
            y.slice(-1, off, off + w.size(0)).copy_from(linear(x, w, Tensor()));
            off += w.size(0);
        }
        return y;
    }
    ProfScope prof("linear", 2.0 * static_cast<double>(x.numel()) * static_cast<double>(out));
    const auto [xc, rows, rs] = linear_rows(x, in);
    std::vector<Tensor> wc;
    CatPack cat;
    int64_t start = 0;
    for (const Tensor& w : ws) {
        wc.push_back(w.contiguous());
        cat.parts.push_back({wc.back().raw(), wc.back().dtype(), in, 1});  // B[k, n] = w[n, k]
        cat.starts.push_back(start);
        start += w.size(0);
    }
    Tensor y = Tensor::empty(Shape(oshape));
    detail::MatPack pa{xc.raw(), DType::F32, rs, 1};
    detail::gemm_packed(rows, out, in, {detail::pack_mat, &pa}, {pack_cat, &cat}, y.f32(), out, GemmEpilogue{});
    return y;
}

namespace {
// linear's and linear_add_'s checks (x f32 [..., in], w [out, in] f32 / f16 / bf16); returns x W^T's shape.
Shape linear_out_shape(const char* op, const Tensor& x, const Tensor& w) {
    check_dtype(x, DType::F32, op, "x");
    check_float_weight(w, op, "weight");
    ST2V_CHECK(w.ndim() == 2, Code::kShapeMismatch, "%s: weight must be 2-d, got %s", op, w.desc().c_str());
    ST2V_CHECK(x.ndim() >= 1 && x.size(-1) == w.size(1), Code::kShapeMismatch,
               "%s: input %s does not match weight %s (in_features %lld)", op, x.desc().c_str(), w.desc().c_str(),
               (long long)w.size(1));
    std::vector<int64_t> oshape = x.shape().vec();
    oshape.back() = w.size(0);
    return Shape(oshape);
}
// y (x's rows by out, contiguous) = act(x W^T + b), or with accumulate y = y + x W^T + b in the GEMM's tile stores.
void linear_gemm(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, Act act, bool accumulate,
                 float* y) {
    const int64_t in = w.size(1), out = w.size(0);
    ProfScope prof("linear", 2.0 * static_cast<double>(x.numel()) * static_cast<double>(out));
    const auto [xc, rows, rs] = linear_rows(x, in);
    Tensor wc = w.contiguous();
    std::vector<float> bias = vec_f32(b, out, op, "bias");
    MatRef A{xc.raw(), DType::F32, rs, 1};
    MatRef B{wc.raw(), wc.dtype(), 1, in};  // B[k, n] = w[n, k]
    GemmEpilogue ep;
    ep.bias_col = bias.empty() ? nullptr : bias.data();
    ep.act = act;
    ep.accumulate = accumulate;
    gemm(rows, out, in, A, B, y, out, ep);
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Act act) {
    Tensor y = Tensor::empty(linear_out_shape("linear", x, w));
    linear_gemm("linear", x, w, b, act, false, y.f32());
    return y;
}

void linear_add_(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b) {
    check_dtype(y, DType::F32, "linear_add_", "y");
    const Shape oshape = linear_out_shape("linear_add_", x, w);
    ST2V_CHECK(y.shape() == oshape, Code::kShapeMismatch, "linear_add_: output %s is not x W^T's shape %s",
               y.desc().c_str(), oshape.str().c_str());
    if (!y.is_contiguous()) {  // the GEMM writes rows of `out` floats: a strided y takes the two-pass way
        Tensor t = linear(x, w, b);
        add_(t, y.contiguous());
        y.copy_from(t);
        return;
    }
    linear_gemm("linear_add_", x, w, b, Act::kNone, true, y.f32());  // no second pass over y
}

namespace {
std::atomic<bool> g_geglu_fused{detail::winograd_mode_from_env("ST2V_GEGLU_FUSED") != detail::WinogradMode::kOff};
// linear_geglu's B: the weight's rows reordered so that every micro-panel of R = 2H columns holds H value rows and
// the H gate rows that pair with them (panel q: rows [qH, qH+H) then [I+qH, I+qH+H)); each tile of C then holds
// whole GEGLU pairs, H outputs per row.
struct GegluPack {
    detail::MatPack w;  // B[k, n] = w[n, k], n < 2I
    int64_t I;
};
// The weight row that column n of the GEMM reads (panels of R columns).
int64_t geglu_row_of(int64_t n, int64_t R, int64_t I) {
    const int64_t q = n / R, j = n % R, H = R / 2;
    return j < H ? q * H + j : I + q * H + (j - H);
}
thread_local std::vector<float> t_geglu_half;
void pack_geglu(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const GegluPack& g = *static_cast<const GegluPack*>(ctx);
    const int H = R / 2;
    ST2V_CHECK(R % 2 == 0 && r0 % R == 0 && nr == R, Code::kInternal, "linear_geglu: panel %lld+%lld of width %d",
               static_cast<long long>(r0), static_cast<long long>(nr), R);
    // the values into columns [0, H) (pack_mat zeroes [H, R)), the gates beside them through a scratch panel
    detail::pack_mat(&g.w, geglu_row_of(r0, R, g.I), H, k0, kc, R, dst);
    t_geglu_half.resize(static_cast<size_t>(kc * H));
    float* gates = t_geglu_half.data();
    detail::pack_mat(&g.w, geglu_row_of(r0 + H, R, g.I), H, k0, kc, H, gates);
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * R + H, gates + k * H, sizeof(float) * static_cast<size_t>(H));
}
struct GegluSink {
    float* y;  // [rows, I]
    int64_t I;
    detail::GegluRowsFn f;
};
// A tile of C (columns [n0, n0+nr), whole panels of value / gate pairs) into y's columns [n0/2, (n0+nr)/2).
void geglu_sink(void* ctx, const float* t, int64_t ld, int64_t m0, int64_t mr, int64_t n0, int64_t nr) {
    const GegluSink& s = *static_cast<const GegluSink*>(ctx);
    s.f(t, ld, s.y + m0 * s.I + n0 / 2, s.I, mr, nr / 2);
}
}  // namespace

namespace detail {
bool set_linear_geglu_fused(bool on) { return g_geglu_fused.exchange(on); }
}  // namespace detail

Tensor linear_geglu(const Tensor& x, const Tensor& w, const Tensor& b) {
    const Shape pshape = linear_out_shape("linear_geglu", x, w);
    const int64_t in = w.size(1), out2 = w.size(0), I = out2 / 2;
    ST2V_CHECK(out2 % 2 == 0, Code::kShapeMismatch, "linear_geglu: weight %s has an odd number of rows",
               w.desc().c_str());
    const detail::GemmTileBlocking tb = detail::gemm_blocking(in);
    const int NR = tb.NR;
    const int64_t KC = tb.KC;
    const int64_t rows = in ? x.numel() / in : 0;
    // Panels must hold whole pairs: I a multiple of NR / 2; an empty product, the portable level or the switch off
    // (ST2V_GEGLU_FUSED=off, set_linear_geglu_fused): two passes.
    if (active_isa() == Isa::kPortable || NR % 2 != 0 || I % (NR / 2) != 0 || in == 0 || rows == 0 ||
        !g_geglu_fused.load(std::memory_order_relaxed))
        return geglu(linear(x, w, b));
    std::vector<int64_t> oshape = pshape.vec();
    oshape.back() = I;
    Tensor y = Tensor::empty(Shape(oshape));
    ProfScope prof("linear + geglu", 2.0 * static_cast<double>(x.numel()) * static_cast<double>(out2));
    const LinearRows xr = linear_rows(x, in);
    Tensor wc = w.contiguous();
    // the bias in the panels' column order
    std::vector<float> bias = vec_f32(b, out2, "linear_geglu", "bias"), bias_p;
    if (!bias.empty()) {
        bias_p.resize(static_cast<size_t>(out2));
        for (int64_t n = 0; n < out2; ++n)
            bias_p[static_cast<size_t>(n)] = bias[static_cast<size_t>(geglu_row_of(n, NR, I))];
    }
    // a GEMM deeper than one depth block keeps its partial sums in C; one block needs no C at all
    Tensor partial = in > KC ? Tensor::empty({rows, out2}) : Tensor();
    GegluPack gp{{wc.raw(), wc.dtype(), in, 1}, I};
    GegluSink sink{y.f32(), I, detail::geglu_rows_kernel()};
    GemmEpilogue ep;
    ep.bias_col = bias_p.empty() ? nullptr : bias_p.data();
    ep.tile_sink = geglu_sink;
    ep.sink_ctx = &sink;
    detail::MatPack pa{xr.x.raw(), DType::F32, xr.rs, 1};
    detail::gemm_packed(rows, out2, in, {detail::pack_mat, &pa}, {pack_geglu, &gp},
                        partial.defined() ? partial.f32() : nullptr, out2, ep);
    return y;
}

// ---------------------------------------------------------------------------------------------------
// Convolutions are implicit GEMMs: A = weights [O, C*kh*kw] (packed/widened by the GEMM driver), B = the
// im2col matrix [C*kh*kw, Ho*Wo], generated panel by panel inside B packing (never materialised).
namespace {
struct Im2col {
    const float* x;  // image 0 [C, H, W]
    int64_t H, W, Wo, kh, kw, stride, pt, pl;
    // Columns of several images side by side (a batch of small maps in one GEMM): column n is pixel n % P of image
    // n / P, which starts img_stride floats after the one before. P = 0: one image (every column in image 0).
    int64_t P = 0, img_stride = 0;
};
// The panel's columns split into runs that stay in one output row (so in one image).
struct Seg {
    int64_t off, oh, ow, len, img;
};

// AVX2 im2col panels, planned once per panel: for each kernel tap (i, j) and 8-column chunk of the panel, where
// each lane's value sits in a channel plane and which lanes read the image (the others are padding or lie outside
// the panel) is the same for every channel; each depth row is then one masked load per chunk and one store.
//   contiguous (stride 1, every chunk inside one output row): lane l reads off[tap][ch][0] + l, one masked load
//   otherwise (stride 2, or output rows narrower than a chunk): lane l reads off[tap][ch][l], one masked gather
// Masked-off lanes are never read.
struct Im2colPlan {
    static constexpr int kMaxChunks = 8, kMaxTaps = 9;
    alignas(32) int32_t off[kMaxTaps][kMaxChunks][8];  // element offsets in the channel plane
    alignas(32) int32_t ld[kMaxTaps][kMaxChunks][8];   // -1: lane reads the image
    bool contiguous = false;
};
// Fills `p` for the panel (columns split into segments `seg`); false when the panel does not fit a plan.
bool plan_im2col(const Im2col& g, const Seg* seg, int ns, int64_t nr, int R, Im2colPlan* p) {
    const int taps = static_cast<int>(g.kh * g.kw), chunks = (R + 7) / 8;
    if (taps > Im2colPlan::kMaxTaps || chunks > Im2colPlan::kMaxChunks ||
        seg[ns - 1].img * g.img_stride + g.H * g.W > INT32_MAX)
        return false;
    // One offset per chunk needs stride 1 and chunks that do not straddle two segments (two output rows).
    p->contiguous = g.stride == 1;
    for (int q = 0; q < ns; ++q)
        if (seg[q].off % 8 != 0) p->contiguous = false;
    for (int tap = 0; tap < taps; ++tap) {
        const int64_t i = tap / g.kw, j = tap % g.kw;
        int q = 0;
        for (int64_t col = 0; col < chunks * 8; ++col) {
            int64_t o = 0;
            int32_t m = 0;
            if (col < nr) {
                while (seg[q].off + seg[q].len <= col) ++q;
            } else if (!p->contiguous) {
                p->off[tap][col / 8][col % 8] = 0;
                p->ld[tap][col / 8][col % 8] = 0;
                continue;
            }
            // past the panel (contiguous plans only) the lane keeps its segment's addressing and is masked off
            const Seg& sg = seg[q];
            const int64_t ih = sg.oh * g.stride - g.pt + i, iw = (sg.ow + col - sg.off) * g.stride - g.pl + j;
            o = sg.img * g.img_stride + ih * g.W + iw;
            if (col < nr && ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) m = -1;
            p->off[tap][col / 8][col % 8] = static_cast<int32_t>(o);
            p->ld[tap][col / 8][col % 8] = m;
        }
    }
    return true;
}
__attribute__((target("avx2"))) void run_im2col_plan_avx2(const Im2col& g, const Im2colPlan& p, int64_t k0, int64_t kc,
                                                          int R, float* dst) {
    const int taps = static_cast<int>(g.kh * g.kw), chunks = (R + 7) / 8;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i last_st = _mm256_cmpgt_epi32(_mm256_set1_epi32(R - (chunks - 1) * 8), lane);
    int64_t c = k0 / taps;
    int tap = static_cast<int>(k0 % taps);
    const int64_t plane = g.H * g.W;
    for (int64_t kk = 0; kk < kc; ++kk) {
        const float* base = g.x + c * plane;
        float* d = dst + kk * R;
        for (int ch = 0; ch < chunks; ++ch) {
            const __m256i m = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.ld[tap][ch]));
            // lane 0's address may lie in the padding: only unmasked lanes are read
            const __m256 v =
                p.contiguous ? _mm256_maskload_ps(base + p.off[tap][ch][0], m)
                             : _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base,
                                                        _mm256_load_si256(reinterpret_cast<const __m256i*>(p.off[tap][ch])),
                                                        _mm256_castsi256_ps(m), 4);
            if (ch + 1 < chunks || R % 8 == 0) _mm256_storeu_ps(d + ch * 8, v);
            else _mm256_maskstore_ps(d + ch * 8, last_st, v);
        }
        if (++tap == taps) {
            tap = 0;
            ++c;
        }
    }
}

void pack_im2col(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const Im2col& g = *static_cast<const Im2col*>(ctx);
    // The panel's columns split into runs that stay in one output row; computed once for all depth rows.
    Seg seg[64];
    int ns = 0;
    for (int64_t n = r0, filled = 0; filled < nr && ns < 64; ++ns) {
        const int64_t img = g.P > 0 ? n / g.P : 0, q = g.P > 0 ? n % g.P : n;
        const int64_t oh = q / g.Wo, ow = q % g.Wo, len = std::min(g.Wo - ow, nr - filled);
        seg[ns] = {filled, oh, ow, len, img};
        filled += len;
        n += len;
    }
    ST2V_CHECK(seg[ns - 1].off + seg[ns - 1].len == nr, Code::kInternal, "conv2d: im2col panel of %lld columns too wide",
               (long long)nr);
    Im2colPlan plan;
    if (active_isa() != Isa::kPortable && plan_im2col(g, seg, ns, nr, R, &plan)) {
        run_im2col_plan_avx2(g, plan, k0, kc, R, dst);
        return;
    }
    int64_t c = k0 / (g.kh * g.kw), i = (k0 / g.kw) % g.kh, j = k0 % g.kw;
    for (int64_t kk = 0; kk < kc; ++kk) {
        float* d = dst + kk * R;
        for (int q = 0; q < ns; ++q) {
            const Seg& sg = seg[q];
            const float* xc = g.x + sg.img * g.img_stride + c * g.H * g.W;
            const int64_t ih = sg.oh * g.stride - g.pt + i, len = sg.len;
            float* o = d + sg.off;
            if (ih < 0 || ih >= g.H) {
                for (int64_t t = 0; t < len; ++t) o[t] = 0.f;
                continue;
            }
            const float* row = xc + ih * g.W;
            const int64_t iw0 = sg.ow * g.stride - g.pl + j;
            if (g.stride == 1) {
                const int64_t t0 = std::min(len, std::max<int64_t>(0, -iw0));
                const int64_t t1 = std::max(t0, std::min(len, g.W - iw0));
                for (int64_t t = 0; t < t0; ++t) o[t] = 0.f;
                const float* src = row + iw0;
                for (int64_t t = t0; t < t1; ++t) o[t] = src[t];  // short runs: a loop beats a memcpy call
                for (int64_t t = t1; t < len; ++t) o[t] = 0.f;
            } else {
                for (int64_t t = 0; t < len; ++t) {
                    const int64_t iw = iw0 + t * g.stride;
                    o[t] = (iw >= 0 && iw < g.W) ? row[iw] : 0.f;
                }
            }
        }
        for (int64_t t = nr; t < R; ++t) d[t] = 0.f;
        if (++j == g.kw) {
            j = 0;
            if (++i == g.kh) { i = 0; ++c; }
        }
    }
}
// Temporal conv: depth index = c*3 + t reads frame f + t - 1 of the same sample (zero outside).
struct TimeCol {
    const float* x;  // all frames [NF, C, S]
    int64_t nf, f, frames, C, S;
};
// Depth row k (channel k / 3 of frame f + k % 3 - 1 of the same sample): its start, or null outside the sample.
inline const float* timecol_row(const TimeCol& g, int64_t k) {
    const int64_t c = k / 3, t = k % 3, src = g.f + t - 1;
    return src < 0 || src >= g.frames ? nullptr : g.x + ((g.nf + t - 1) * g.C + c) * g.S;
}
// Whole panels (nr == R, R = 16 or 32) in registers, not a memcpy call per depth row.
__attribute__((target("avx2"))) void timecol_full_avx2(const TimeCol& g, int64_t r0, int64_t k0, int64_t kc, int R,
                                                       float* dst) {
    for (int64_t kk = 0; kk < kc; ++kk) {
        const float* s = timecol_row(g, k0 + kk);
        float* d = dst + kk * R;
        for (int j = 0; j < R; j += 8) _mm256_storeu_ps(d + j, s ? _mm256_loadu_ps(s + r0 + j) : _mm256_setzero_ps());
    }
}
void pack_timecol(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const TimeCol& g = *static_cast<const TimeCol*>(ctx);
    if (nr == R && (R == 16 || R == 32) && cpu_features().avx2) {
        timecol_full_avx2(g, r0, k0, kc, R, dst);
        return;
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
        const float* s = timecol_row(g, k0 + kk);
        float* d = dst + kk * R;
        const int64_t n = s ? nr : 0;
        if (n) std::memcpy(d, s + r0, static_cast<size_t>(n) * sizeof(float));
        for (int64_t i = n; i < R; ++i) d[i] = 0.f;
    }
}

// (a, b) <- (a + b, a - b) over whole 8-float chunks of [0, n): *done = the count handled.
__attribute__((target("avx2"))) void butterfly_avx2(float* a, float* b, int64_t n, int64_t* done) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(a + i), z = _mm256_loadu_ps(b + i);
        _mm256_storeu_ps(a + i, _mm256_add_ps(x, z));
        _mm256_storeu_ps(b + i, _mm256_sub_ps(x, z));
    }
    *done = i;
}

// Temporal conv by Winograd F(2,3) over time: a transformed input V = a + sb * b of two frames' [C, S] planes (sb
// = +1 or -1; a null plane is a frame outside the sample, i.e. zero), as a row-major [C, S] B operand.
struct TimeWino {
    const float* a;
    const float* b;
    float sb;
    int64_t S;
};
__attribute__((target("avx2"))) void timewino_full_avx2(const TimeWino& g, int64_t r0, int64_t k0, int64_t kc, int R,
                                                        float* dst) {
    if (!g.b) {  // one frame as it is
        detail::copy_rows_avx2(g.a + k0 * g.S + r0, g.S, kc, R, dst);
        return;
    }
    const __m256 sb = _mm256_set1_ps(g.sb);
    for (int64_t kk = 0; kk < kc; ++kk) {
        const int64_t off = (k0 + kk) * g.S + r0;
        float* d = dst + kk * R;
        if (g.a) {
            for (int j = 0; j < R; j += 8)
                _mm256_storeu_ps(d + j, _mm256_add_ps(_mm256_loadu_ps(g.a + off + j),
                                                      _mm256_mul_ps(sb, _mm256_loadu_ps(g.b + off + j))));
        } else {
            for (int j = 0; j < R; j += 8) _mm256_storeu_ps(d + j, _mm256_mul_ps(sb, _mm256_loadu_ps(g.b + off + j)));
        }
    }
}
void pack_timewino(const void* ctx, int64_t r0, int64_t nr, int64_t k0, int64_t kc, int R, float* dst) {
    const TimeWino& g = *static_cast<const TimeWino*>(ctx);
    if (nr == R && (R == 16 || R == 32) && cpu_features().avx2) {
        timewino_full_avx2(g, r0, k0, kc, R, dst);
        return;
    }
    for (int64_t kk = 0; kk < kc; ++kk) {
        const int64_t off = (k0 + kk) * g.S + r0;
        float* d = dst + kk * R;
        for (int64_t i = 0; i < nr; ++i) d[i] = (g.a ? g.a[off + i] : 0.f) + (g.b ? g.sb * g.b[off + i] : 0.f);
        for (int64_t i = nr; i < R; ++i) d[i] = 0.f;
    }
}

// ST2V_TEMPORAL_WINOGRAD=off|auto|always (default auto): the process's starting mode (docs/native.md).
std::atomic<int> g_temporal_winograd{static_cast<int>(detail::winograd_mode_from_env("ST2V_TEMPORAL_WINOGRAD"))};
// conv2d over a batch: small maps grouped, else image by image on the threads (conv_batch_path), unless a test, the
// bench or ST2V_CONV_BATCHING=off (or 0; read by the Winograd switches' parser, whose other modes mean on) turns
// batching off.
std::atomic<bool> g_conv_batching{detail::winograd_mode_from_env("ST2V_CONV_BATCHING") != detail::WinogradMode::kOff};

// Y[f] and Y[f + 1] of every pair of frames (f even, f + 1 < frames) of every sample, by Winograd F(2,3) over
// time. With d_j = X[f - 1 + j] (zero outside the sample) and the kernel taps W_t = w[:, :, t]:
//   m1 = W0 (d0 - d2), m2 = (W0 + W1 + W2)/2 (d1 + d2), m3 = (W0 - W1 + W2)/2 (d2 - d1), m4 = W2 (d1 - d3),
//   Y[f] = m1 + m2 + m3 + bias, Y[f + 1] = m2 - m3 - m4 + bias:
// four GEMMs of depth C (8 O C S FLOPs per pair) instead of two of depth 3C (12 O C S). m2 and m3 are computed into
// Y[f] and Y[f + 1], turned into m2 + m3 and m2 - m3 in place, and m1 and -m4 (with the bias) are added by the GEMM
// epilogue. The transformed inputs are made by the B packer (pack_timewino) and never stored.
void conv_temporal_winograd_pairs(const float* x, int64_t NF, int frames, int64_t C, int64_t S, const Tensor& w,
                                  int64_t O, const float* bias, float* y) {
    Tensor U = Tensor::empty({4, O, C});  // U1 .. U4, row-major [O, C] each
    {
        const Tensor wf = w.contiguous();
        const void* wp = wf.raw();
        const DType wdt = wf.dtype();
        float* u = U.f32();
        parallel_for(O, [&](int64_t o0, int64_t o1, int) {
            for (int64_t o = o0; o < o1; ++o)
                for (int64_t c = 0; c < C; ++c) {
                    const int64_t i = (o * C + c) * 3;
                    const float g0 = load_w(wp, wdt, i), g1 = load_w(wp, wdt, i + 1), g2 = load_w(wp, wdt, i + 2);
                    u[(0 * O + o) * C + c] = g0;
                    u[(1 * O + o) * C + c] = 0.5f * (g0 + g1 + g2);
                    u[(2 * O + o) * C + c] = 0.5f * (g0 - g1 + g2);
                    u[(3 * O + o) * C + c] = g2;
                }
        }, std::max<int64_t>(1, 4096 / std::max<int64_t>(C, 1)));
    }
    detail::MatPack um[4];
    detail::PrepackedA up[4];
    detail::PackSrc us[4];
    for (int i = 0; i < 4; ++i) {
        um[i] = detail::MatPack{U.f32() + i * O * C, DType::F32, C, 1};
        detail::prepack_a(O, C, {detail::pack_mat, &um[i]}, &up[i]);
        us[i] = detail::PackSrc{detail::pack_prepacked, &up[i]};
    }
    GemmEpilogue plain, add_m1, sub_m4;
    add_m1.accumulate = sub_m4.accumulate = true;
    sub_m4.alpha = -1.f;
    add_m1.bias_row = sub_m4.bias_row = bias;
    const int64_t plane = C * S, oplane = O * S;
    for (int64_t n0 = 0; n0 < NF; n0 += frames)
        for (int f = 0; f + 1 < frames; f += 2) {
            const float* d0 = f >= 1 ? x + (n0 + f - 1) * plane : nullptr;
            const float* d1 = x + (n0 + f) * plane;
            const float* d2 = x + (n0 + f + 1) * plane;
            const float* d3 = f + 2 < frames ? x + (n0 + f + 2) * plane : nullptr;
            float* y0 = y + (n0 + f) * oplane;
            float* y1 = y0 + oplane;
            const TimeWino v2{d1, d2, 1.f, S}, v3{d2, d1, -1.f, S};
            detail::gemm_packed(O, S, C, us[1], {pack_timewino, &v2}, y0, S, plain);
            detail::gemm_packed(O, S, C, us[2], {pack_timewino, &v3}, y1, S, plain);
            parallel_for(oplane, [&](int64_t i0, int64_t i1, int) {
                int64_t done = 0;
                if (cpu_features().avx2) butterfly_avx2(y0 + i0, y1 + i0, i1 - i0, &done);
                for (int64_t i = i0 + done; i < i1; ++i) {
                    const float m2 = y0[i], m3 = y1[i];
                    y0[i] = m2 + m3;
                    y1[i] = m2 - m3;
                }
            }, 4096);
            // V1 = d0 - d2 (d0 may be outside: then -d2), V4 = d1 - d3 (d3 may be outside: then d1)
            const TimeWino v1 = d0 ? TimeWino{d0, d2, -1.f, S} : TimeWino{nullptr, d2, -1.f, S};
            const TimeWino v4{d1, d3, -1.f, S};
            detail::gemm_packed(O, S, C, us[0], {pack_timewino, &v1}, y0, S, add_m1);
            detail::gemm_packed(O, S, C, us[3], {pack_timewino, &v4}, y1, S, sub_m4);
        }
}
}  // namespace

namespace detail {
WinogradMode set_temporal_winograd(WinogradMode mode) {
    return static_cast<WinogradMode>(g_temporal_winograd.exchange(static_cast<int>(mode)));
}
bool set_conv_batching(bool on) { return g_conv_batching.exchange(on); }
// How conv2d's im2col / 1x1 paths spread a batch of N images of P output pixels (GEMM depth Kdim) over `threads`:
// - kGrouped: maps of fewer than kGroupMaxPixels pixels, side by side in GEMMs of up to kGroupColumns columns
//   (conv_group_images images each) on all threads. One image of a 4x4 map is a 16-column GEMM that streams all the
//   weights for 32 FLOPs per weight; 32 images side by side reuse each packed weight block 32 times, and a 1x1
//   convolution's weights are packed once, not once per image.
// - kByImage: each thread whole images (each image's GEMM on one thread). What that saves is the threads' meeting
//   points inside each image's GEMM (two per depth block: pack B, then the row blocks), so it needs a GEMM of more
//   than one depth block (Kdim > KC); and images that split evenly over the threads, or enough of them that the last
//   uneven round costs little.
// - kPerImage: each image in turn on all threads.
// Measured on Zen 3, 2 threads, 32 images, f16 weights (GFLOP/s, grouped / by image / per image, interleaved):
// 3x3 512 ch at 4x4: 144 / 150 / 130; 1x1 1024 -> 512 at 4x4: 140 / 98 / 94; 3x3 stride 2, 512 ch 8x8 -> 4x4:
// 141 / 142 / 128; 256 ch 16x16 -> 8x8 (64 pixels): 107 / 110 / 108, so 64 pixels and more are not grouped. By image
// against per image (bench `ops`, conv_batch_32x512x4x4): 1.02-1.26x at depths > KC, 0.93-0.99x at depths <= 288
// (conv_in's 36, a 32-channel stride-2 one's 288), which stay per image.
ConvBatchPath conv_batch_path(int64_t N, int threads, int64_t P, int64_t Kdim) {
    if (N < 2 || active_isa() == Isa::kPortable || !g_conv_batching.load(std::memory_order_relaxed))
        return ConvBatchPath::kPerImage;
    if (P < kGroupMaxPixels) return ConvBatchPath::kGrouped;
    if (threads < 2 || N < threads) return ConvBatchPath::kPerImage;
    if (N % threads != 0 && N < 4 * static_cast<int64_t>(threads)) return ConvBatchPath::kPerImage;
    return Kdim > gemm_blocking(INT64_MAX).KC ? ConvBatchPath::kByImage : ConvBatchPath::kPerImage;
}
int64_t conv_group_images(int64_t N, int64_t P) {
    return std::max<int64_t>(1, std::min<int64_t>(N, kGroupColumns / std::max<int64_t>(P, 1)));
}
bool temporal_winograd_applies(int frames, int64_t C, int64_t O, int64_t S) {
    const auto mode = static_cast<WinogradMode>(g_temporal_winograd.load(std::memory_order_relaxed));
    if (mode == WinogradMode::kOff || frames < 2 || active_isa() == Isa::kPortable) return false;
    if (mode == WinogradMode::kAlways) return true;
    // Measured on Zen 3, 2 threads, f16 weights, 2 samples x 16 frames (ABA against the direct GEMM, 11 rounds):
    // 1.95x at 128 channels x 1024 pixels, 1.42x at 256 x 256, 1.33x at 512 x 64, but 1.03x at 512 x 16 and 0.63-0.88x
    // for 16-64 channels or 16 pixels: shallow or narrow GEMMs lose more to their C tiles and the extra calls.
    return C >= 96 && O >= 64 && S >= 32;
}
}  // namespace detail

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
    check_dtype(x, DType::F32, "conv2d", "x");
    check_ndim(x, 4, "conv2d", "x");
    check_float_weight(w, "conv2d", "weight");
    int64_t kh = 1, kw = 1;
    if (w.ndim() == 4) { kh = w.size(2); kw = w.size(3); }
    else ST2V_CHECK(w.ndim() == 2, Code::kShapeMismatch, "conv2d: weight must be [O, C, kh, kw], got %s", w.desc().c_str());
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(0);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv2d: input %s has %lld channels, weight %s expects %lld",
               x.desc().c_str(), (long long)C, w.desc().c_str(), (long long)w.size(1));
    ST2V_CHECK(kh >= 1 && kw >= 1, Code::kShapeMismatch, "conv2d: empty kernel in weight %s", w.desc().c_str());
    ST2V_CHECK_ARG(p.stride >= 1 && p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0,
                   "conv2d: bad stride/padding");
    const int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
    const int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
    ST2V_CHECK(H + p.pad_top + p.pad_bottom >= kh && W + p.pad_left + p.pad_right >= kw && Ho > 0 && Wo > 0,
               Code::kShapeMismatch, "conv2d: input %s too small for kernel %lldx%lld", x.desc().c_str(),
               (long long)kh, (long long)kw);
    std::vector<float> bias = vec_f32(b, O, "conv2d", "bias");
    const int64_t Kdim = C * kh * kw, P = Ho * Wo;
    const bool direct = kh == 1 && kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                        p.pad_bottom == 0 && p.pad_right == 0;
    const bool same3x3 = kh == 3 && kw == 3 && p.stride == 1 && p.pad_top == 1 && p.pad_left == 1 &&
                         p.pad_bottom == 1 && p.pad_right == 1;
    const bool winograd = same3x3 && detail::conv3x3_winograd_applies(N, C, O, H, W);
    ProfScope prof(winograd ? "conv2d 3x3 (winograd)"
                   : direct ? "conv2d 1x1"
                   : same3x3 ? "conv2d 3x3 (im2col)"
                   : kh == 3 && kw == 3 && p.stride == 2 ? "conv2d 3x3 stride 2"
                   : "conv2d other",
                   2.0 * static_cast<double>(N * O * P) * static_cast<double>(Kdim));
    Tensor wc = w.contiguous();
    Tensor xcont = x.contiguous();
    Tensor y = Tensor::empty({N, O, Ho, Wo});
    if (winograd) {
        detail::conv3x3_winograd(xcont.f32(), N, C, H, W, wc.raw(), wc.dtype(), O, bias.empty() ? nullptr : bias.data(),
                                 y.f32());
        return y;
    }
    GemmEpilogue ep;
    ep.bias_row = bias.empty() ? nullptr : bias.data();
    // Weights packed (and widened) once for the whole batch.
    detail::MatPack pa{wc.raw(), wc.dtype(), Kdim, 1};
    detail::PrepackedA wpack;
    ThreadPool& pool = current_pool();
    const detail::ConvBatchPath path = detail::conv_batch_path(N, pool.size(), P, Kdim);
    const bool implicit = (!direct || path == detail::ConvBatchPath::kGrouped) && active_isa() != Isa::kPortable;
    if (implicit && N > 1) detail::prepack_a(O, Kdim, {detail::pack_mat, &pa}, &wpack);
    const detail::PackSrc asrc = implicit && N > 1 ? detail::PackSrc{detail::pack_prepacked, &wpack}
                                                   : detail::PackSrc{detail::pack_mat, &pa};
    // One image's GEMM (the portable level materialises its im2col matrix from the arena: callers' thread only).
    auto image = [&](int64_t n) {
        const float* xn = xcont.f32() + n * C * H * W;
        float* yn = y.f32() + n * O * P;
        MatRef A{wc.raw(), wc.dtype(), Kdim, 1};
        if (direct) {
            MatRef B{xn, DType::F32, P, 1};
            gemm(O, P, Kdim, A, B, yn, P, ep);
            return;
        }
        if (active_isa() == Isa::kPortable) {
            // portable path: explicit im2col into scratch + the portable GEMM
            Tensor col = Tensor::empty({Kdim, P});
            Im2col g{xn, H, W, Wo, kh, kw, p.stride, p.pad_top, p.pad_left};
            for (int64_t k = 0; k < Kdim; ++k)
                for (int64_t oh = 0; oh < Ho; ++oh)  // one output row per call (the packer handles <= 64 runs)
                    pack_im2col(&g, oh * Wo, Wo, k, 1, static_cast<int>(Wo), col.f32() + k * P + oh * Wo);
            MatRef B{col.f32(), DType::F32, P, 1};
            gemm(O, P, Kdim, A, B, yn, P, ep);
            return;
        }
        Im2col g{xn, H, W, Wo, kh, kw, p.stride, p.pad_top, p.pad_left};
        detail::gemm_packed(O, P, Kdim, asrc, {pack_im2col, &g}, yn, P, ep);
    };
    if (path == detail::ConvBatchPath::kGrouped) {
        // G images side by side: one GEMM [O, G * P] into a scratch matrix (im2col columns of all G images), then
        // each image's [O, P] block copied into y. An element's sum is the same as in its own image's GEMM.
        const int64_t G = detail::conv_group_images(N, P);
        Tensor tmp = Tensor::empty({O, G * P});
        for (int64_t n0 = 0; n0 < N; n0 += G) {
            const int64_t gn = std::min(G, N - n0), cols = gn * P;
            Im2col g{xcont.f32() + n0 * C * H * W, H, W, Wo, kh, kw, p.stride, p.pad_top, p.pad_left, P, C * H * W};
            detail::gemm_packed(O, cols, Kdim, asrc, {pack_im2col, &g}, tmp.f32(), cols, ep);
            float* yg = y.f32() + n0 * O * P;
            const float* t = tmp.f32();
            pool.parallel_for(gn * O, [&](int64_t b, int64_t e, int) {
                for (int64_t r = b; r < e; ++r)  // r = image i of the group, channel o
                    std::memcpy(yg + r * P, t + (r % O) * cols + (r / O) * P, sizeof(float) * static_cast<size_t>(P));
            });
        }
    } else if (path == detail::ConvBatchPath::kByImage) {
        // Each thread whole images, taken from a shared counter; the GEMMs inside run on the thread that took the
        // image (nested pool calls run inline), so no thread waits on another between depth blocks. Same bits: an
        // element's sum does not depend on the thread count.
        std::atomic<int64_t> next{0};
        pool.run_on_all([&](int) {
            for (int64_t n; (n = next.fetch_add(1, std::memory_order_relaxed)) < N;) image(n);
        });
    } else {
        for (int64_t n = 0; n < N; ++n) image(n);
    }
    return y;
}

Tensor conv_temporal(const Tensor& x, int frames, const Tensor& w, const Tensor& b) {
    check_dtype(x, DType::F32, "conv_temporal", "x");
    check_ndim(x, 4, "conv_temporal", "x");
    check_float_weight(w, "conv_temporal", "weight");
    ST2V_CHECK_ARG(frames >= 1 && x.size(0) % frames == 0, "conv_temporal: batch %lld is not a multiple of frames %d",
                   (long long)x.size(0), frames);
    const int64_t NF = x.size(0), C = x.size(1), S = x.size(2) * x.size(3), O = w.ndim() >= 1 ? w.size(0) : 0;
    ST2V_CHECK(w.ndim() >= 3 && w.size(1) == C && w.size(2) == 3 && w.numel() == O * C * 3, Code::kShapeMismatch,
               "conv_temporal: weight %s does not fit input %s (want [O, %lld, 3, 1, 1])", w.desc().c_str(),
               x.desc().c_str(), (long long)C);
    std::vector<float> bias = vec_f32(b, O, "conv_temporal", "bias");
    ProfScope prof("conv temporal (3,1,1)", 6.0 * static_cast<double>(NF * O * S) * static_cast<double>(C));
    Tensor xc = x.contiguous();
    Tensor wc = w.contiguous();
    Tensor y = Tensor::empty({NF, O, x.size(2), x.size(3)});
    GemmEpilogue ep;
    ep.bias_row = bias.empty() ? nullptr : bias.data();
    detail::MatPack pa{wc.raw(), wc.dtype(), C * 3, 1};  // A[o, c*3 + t] = w[o, c, t]
    detail::PrepackedA wpack;
    // Winograd F(2,3) over time for the pairs of frames, the direct GEMM (depth 3C) for the last frame of an odd count;
    // the direct weights are prepacked when several frames use them (with Winograd: the last frames of odd counts)
    const bool wino = detail::temporal_winograd_applies(frames, C, O, S);
    const bool prepack = NF > 1 && active_isa() != Isa::kPortable && (!wino || (frames % 2 == 1 && NF / frames > 1));
    if (prepack) detail::prepack_a(O, C * 3, {detail::pack_mat, &pa}, &wpack);
    const detail::PackSrc asrc = prepack ? detail::PackSrc{detail::pack_prepacked, &wpack}
                                         : detail::PackSrc{detail::pack_mat, &pa};
    if (wino) conv_temporal_winograd_pairs(xc.f32(), NF, frames, C, S, wc, O, ep.bias_row, y.f32());
    for (int64_t nf = 0; nf < NF; ++nf) {
        const int64_t f = nf % frames;
        if (wino && (f % 2 == 1 || f + 1 < frames)) continue;  // done by the pairs
        TimeCol g{xc.f32(), nf, f, frames, C, S};
        detail::gemm_packed(O, S, C * 3, asrc, {pack_timecol, &g}, y.f32() + nf * O * S, S, ep);
    }
    return y;
}

Tensor conv1d_same(const Tensor& x, const Tensor& w, const Tensor& b) {
    check_dtype(x, DType::F32, "conv1d", "x");
    check_ndim(x, 3, "conv1d", "x");
    check_float_weight(w, "conv1d", "weight");
    check_ndim(w, 3, "conv1d", "weight");
    const int64_t C = x.size(1), L = x.size(2), O = w.size(0), k = w.size(2);
    ST2V_CHECK(w.size(1) == C, Code::kShapeMismatch, "conv1d: weight %s does not fit input %s", w.desc().c_str(),
               x.desc().c_str());
    ST2V_CHECK_ARG(k % 2 == 1, "conv1d_same: kernel size must be odd");
    Conv2dParams p;
    p.pad_left = p.pad_right = static_cast<int>(k / 2);
    Tensor y = conv2d(x.contiguous().reshape({x.size(0), C, 1, L}), w.contiguous().reshape({O, C, 1, k}), b, p);
    return y.reshape({x.size(0), O, L});
}

}  // namespace st2v::ops
