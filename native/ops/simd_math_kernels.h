
// Generic SIMD kernels of ops/norm_attn_elementwise.cpp, written once against the primitives of
// ops/simd_math.h and compiled once per ISA level (included without include guard inside the level's
// namespace, after simd_math.h). Needs AttnArgs, AttnBuf and <cmath>/<cstring>/<vector>/<algorithm>.

// ---- attention: ops/simd_math_attention.h -----------------------------------------------------------
#include "ops/simd_math_attention.h"

// ---- normalisation ---------------------------------------------------------------------------------
// Sums of (x - shift) and (x - shift)^2 over n floats: float lanes per 1024-element block, blocks added in
// double (error ~1e-7 relative per block, not growing with n).
ST2V_TGT static void sum_shifted(const float* x, int64_t n, float shift, double* s1, double* s2) {
    const V sh = vset1(shift);
    double t1 = 0, t2 = 0;
    for (int64_t b0 = 0; b0 < n; b0 += 1024) {
        const int64_t e = std::min<int64_t>(n, b0 + 1024);
        V a0 = vzero(), a1 = vzero(), q0 = vzero(), q1 = vzero();
        int64_t i = b0;
        for (; i + 2 * W <= e; i += 2 * W) {
            const V d0 = vsub(vload(x + i), sh), d1 = vsub(vload(x + i + W), sh);
            a0 = vadd(a0, d0);
            a1 = vadd(a1, d1);
            q0 = vfma(d0, d0, q0);
            q1 = vfma(d1, d1, q1);
        }
        for (; i < e; i += W) {
            const int c = static_cast<int>(std::min<int64_t>(W, e - i));
            const V d0 = vkeep(vsub(vloadn(x + i, c), sh), c);
            a0 = vadd(a0, d0);
            q0 = vfma(d0, d0, q0);
        }
        t1 += vhsum(vadd(a0, a1));
        t2 += vhsum(vadd(q0, q1));
    }
    *s1 += t1;
    *s2 += t2;
}

// y = (x - mean) * a + b, optionally SiLU'd.
ST2V_TGT static void affine_act(const float* x, float* y, int64_t n, float mean, float a, float b, bool silu) {
    const V mv = vset1(mean), av = vset1(a), bv = vset1(b);
    int64_t i = 0;
    if (silu) {
        for (; i + W <= n; i += W) vstore(y + i, vsilu(vfma(vsub(vload(x + i), mv), av, bv)));
        if (i < n) {
            const int c = static_cast<int>(n - i);
            vstoren(y + i, vsilu(vfma(vsub(vloadn(x + i, c), mv), av, bv)), c);
        }
    } else {
        for (; i + 2 * W <= n; i += 2 * W) {
            vstore(y + i, vfma(vsub(vload(x + i), mv), av, bv));
            vstore(y + i + W, vfma(vsub(vload(x + i + W), mv), av, bv));
        }
        for (; i + W <= n; i += W) vstore(y + i, vfma(vsub(vload(x + i), mv), av, bv));
        if (i < n) {
            const int c = static_cast<int>(n - i);
            vstoren(y + i, vfma(vsub(vloadn(x + i, c), mv), av, bv), c);
        }
    }
}

// One LayerNorm row: y = (x - mean) * rstd * g + bt (g/bt may be null).
ST2V_TGT static void ln_row(const float* x, float* y, int64_t C, const float* g, const float* bt, float eps) {
    double s1 = 0, s2 = 0;
    const float shift = x[0];
    sum_shifted(x, C, shift, &s1, &s2);
    const double dm = s1 / static_cast<double>(C);
    double var = s2 / static_cast<double>(C) - dm * dm;
    if (var < 0) var = 0;
    const V rs = vset1(static_cast<float>(1.0 / std::sqrt(var + eps)));
    const V mv = vset1(static_cast<float>(shift + dm));
    int64_t c = 0;
    for (; c < C; c += W) {
        const int n = static_cast<int>(std::min<int64_t>(W, C - c));
        V v = vmul(vsub(vloadn(x + c, n), mv), rs);
        if (g) v = vmul(v, vloadn(g + c, n));
        if (bt) v = vadd(v, vloadn(bt + c, n));
        if (n == W) vstore(y + c, v);
        else vstoren(y + c, v, n);
    }
}

// ---- elementwise -----------------------------------------------------------------------------------
#define ST2V_EW_LOOP(EXPR_FULL, EXPR_TAIL)                                  \
    int64_t i = 0;                                                          \
    for (; i + W <= n; i += W) EXPR_FULL;                                   \
    if (i < n) {                                                            \
        const int c = static_cast<int>(n - i);                              \
        EXPR_TAIL;                                                          \
    }
ST2V_TGT static void silu_n(const float* x, float* y, int64_t n) {
    ST2V_EW_LOOP(vstore(y + i, vsilu(vload(x + i))), vstoren(y + i, vsilu(vloadn(x + i, c)), c))
}
ST2V_TGT static void gelu_n(const float* x, float* y, int64_t n) {
    ST2V_EW_LOOP(vstore(y + i, vgelu(vload(x + i))), vstoren(y + i, vgelu(vloadn(x + i, c)), c))
}
// y[r * ldy + c] = x[r * ldx + c] * gelu(x[r * ldx + n + c]) for rows r < rows of 2n inputs (GEGLU; ops::geglu's
// rows, and the tiles linear_geglu hands over, one call per tile).
ST2V_TGT static void geglu_rows(const float* x, int64_t ldx, float* y, int64_t ldy, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r, x += ldx, y += ldy) {
        ST2V_EW_LOOP(vstore(y + i, vmul(vload(x + i), vgelu(vload(x + n + i)))),
                     vstoren(y + i, vmul(vloadn(x + i, c), vgelu(vloadn(x + n + i, c))), c))
    }
}
ST2V_TGT static void add_n(const float* a, const float* b, float* y, int64_t n) {
    ST2V_EW_LOOP(vstore(y + i, vadd(vload(a + i), vload(b + i))),
                 vstoren(y + i, vadd(vloadn(a + i, c), vloadn(b + i, c)), c))
}
ST2V_TGT static void mul_n(const float* a, const float* b, float* y, int64_t n) {
    ST2V_EW_LOOP(vstore(y + i, vmul(vload(a + i), vload(b + i))),
                 vstoren(y + i, vmul(vloadn(a + i, c), vloadn(b + i, c)), c))
}
ST2V_TGT static void scale_n(const float* x, float s, float* y, int64_t n) {
    const V sv = vset1(s);
    ST2V_EW_LOOP(vstore(y + i, vmul(vload(x + i), sv)), vstoren(y + i, vmul(vloadn(x + i, c), sv), c))
}
ST2V_TGT static void axpby_n(const float* x, float a, const float* y0, float b, float* y, int64_t n) {
    const V av = vset1(a), bv = vset1(b);
    ST2V_EW_LOOP(vstore(y + i, vfma(vload(x + i), av, vmul(vload(y0 + i), bv))),
                 vstoren(y + i, vfma(vloadn(x + i, c), av, vmul(vloadn(y0 + i, c), bv)), c))
}
#undef ST2V_EW_LOOP
// dst[2w] = dst[2w + 1] = src[w], w < n.
ST2V_TGT static void dup2_n(const float* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) {
        V lo, hi;
        vdup2(vload(src + i), &lo, &hi);
        vstore(dst + 2 * i, lo);
        vstore(dst + 2 * i + W, hi);
    }
    for (; i < n; ++i) dst[2 * i] = dst[2 * i + 1] = src[i];
}
