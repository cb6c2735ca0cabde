
// Generic SIMD kernels of ops/norm_attn_elementwise.cpp, written once against the primitives of
// ops/simd_math.h and compiled once per ISA level (included without include guard inside the level's
// namespace, after simd_math.h). Needs AttnArgs and <cmath>/<cstring>/<vector>/<algorithm>.

// ---- attention ---------------------------------------------------------------------------------------
#if ST2V_SIMD_LEVEL == 1
#define ST2V_MK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#else
#define ST2V_MK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#endif
#define ST2V_MK_DECL(i) V c##i##0, c##i##1;
#define ST2V_MK_INIT(i)                                                                \
    if (acc) {                                                                         \
        c##i##0 = vload(C + (i) * ldc);                                                \
        c##i##1 = vload(C + (i) * ldc + W);                                            \
    } else {                                                                           \
        c##i##0 = vzero();                                                             \
        c##i##1 = vzero();                                                             \
    }
#define ST2V_MK_STEP(i)                                                                \
    {                                                                                  \
        const V a = vset1(A[(i) * lda + kk]);                                          \
        c##i##0 = vfma(a, b0, c##i##0);                                                \
        c##i##1 = vfma(a, b1, c##i##1);                                                \
    }
#define ST2V_MK_STORE(i)                                                               \
    vstore(C + (i) * ldc, c##i##0);                                                    \
    vstore(C + (i) * ldc + W, c##i##1);

// C[MR, 2W] (=|+=) A[MR, K] * B[K, 2W]: A broadcast element-wise (row stride lda), B rows of 2W floats
// (stride ldb), accumulators in named registers.
ST2V_TGT __attribute__((always_inline)) static inline void attn_mk(int64_t K, const float* A, int64_t lda,
                                                                   const float* B, int64_t ldb, float* C,
                                                                   int64_t ldc, bool acc) {
    ST2V_MK_ROWS(ST2V_MK_DECL)
    ST2V_MK_ROWS(ST2V_MK_INIT)
    for (int64_t kk = 0; kk < K; ++kk) {
        const V b0 = vload(B + kk * ldb), b1 = vload(B + kk * ldb + W);
        ST2V_MK_ROWS(ST2V_MK_STEP)
    }
    ST2V_MK_ROWS(ST2V_MK_STORE)
}
#undef ST2V_MK_ROWS
#undef ST2V_MK_DECL
#undef ST2V_MK_INIT
#undef ST2V_MK_STEP
#undef ST2V_MK_STORE

// Tasks [t0, t1) of the (batch*head, query block) grid. Per head: K^T packed per key block as
// [D][BK] (keys in lanes) and V as [BK][Dv rounded up to 2W], both zero padded; per query block Q packed
// as [BQ][D]. Then per key block: S = Q K^T (microkernel), online softmax on S in place (running max m,
// running sum l, rescale of O by exp(m_old - m_new)), O += P V (microkernel). Finally O / l -> output.
ST2V_TGT static void attn_range(const AttnArgs& a, int64_t t0, int64_t t1) {
    const int64_t D = a.D, Dv = a.Dv, Lq = a.Lq, Lk = a.Lk;
    const int64_t NR = 2 * W;
    const int64_t BQ = std::min<int64_t>(a.BQ, Lq);
    const int64_t BQp = (BQ + MR - 1) / MR * MR;
    const int64_t BK = std::min<int64_t>(kAttnBK, (Lk + NR - 1) / NR * NR);
    const int64_t nkb = (Lk + BK - 1) / BK, nqb = (Lq + BQ - 1) / BQ;
    const int64_t Dvp = (Dv + NR - 1) / NR * NR;
    std::vector<float> kp(static_cast<size_t>(nkb * D * BK)), vp(static_cast<size_t>(nkb * BK * Dvp));
    std::vector<float> qp(static_cast<size_t>(BQp * D)), s(static_cast<size_t>(BQp * BK)),
        o(static_cast<size_t>(BQp * Dvp)), m(static_cast<size_t>(BQp)), l(static_cast<size_t>(BQp));
    const V sc = vset1(a.scale);
    int64_t cur = -1;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t bh = t / nqb, qb = t % nqb, b = bh / a.H, h = bh % a.H;
        if (bh != cur) {
            cur = bh;
            if (h == 0 && b + 1 < a.B && (Lq + 2 * Lk) * a.H * std::max(D, Dv) <= 16384) {
                // small problems (temporal attention): start the DRAM reads of the next batch entry now
                for (int64_t i = 0; i < Lq; ++i)
                    for (int64_t c = 0; c < a.H * D; c += 16) _mm_prefetch(reinterpret_cast<const char*>(a.q + (b + 1) * a.qsb + i * a.qsl + c), _MM_HINT_T0);
                for (int64_t j = 0; j < Lk; ++j) {
                    for (int64_t c = 0; c < a.H * D; c += 16) _mm_prefetch(reinterpret_cast<const char*>(a.k + (b + 1) * a.ksb + j * a.ksl + c), _MM_HINT_T0);
                    for (int64_t c = 0; c < a.H * Dv; c += 16) _mm_prefetch(reinterpret_cast<const char*>(a.v + (b + 1) * a.vsb + j * a.vsl + c), _MM_HINT_T0);
                }
            }
            // kp/vp padding (keys >= Lk, columns >= Dv) is never written: it stays zero from construction.
            int64_t j = 0;
            if (D % 8 == 0)  // 8 keys x 8 dims at a time through register transposes
                for (; j + 8 <= Lk && (j % BK) + 8 <= BK; j += 8)
                    for (int64_t d = 0; d < D; d += 8)
                        transpose8x8(a.k + b * a.ksb + j * a.ksl + h * D + d, a.ksl,
                                     kp.data() + (j / BK) * D * BK + d * BK + (j % BK), BK);
            for (; j < Lk; ++j) {
                const float* kr = a.k + b * a.ksb + j * a.ksl + h * D;
                float* dst = kp.data() + (j / BK) * D * BK + (j % BK);
                for (int64_t d = 0; d < D; ++d) dst[d * BK] = kr[d];
            }
            for (j = 0; j < Lk; ++j)
                std::memcpy(vp.data() + j * Dvp, a.v + b * a.vsb + j * a.vsl + h * Dv,
                            static_cast<size_t>(Dv) * sizeof(float));
        }
        const int64_t q0 = qb * BQ, nq = std::min(BQ, Lq - q0);
        for (int64_t i = 0; i < BQp; ++i) {
            if (i < nq) {  // Q pre-scaled: S = (scale Q) K^T
                const float* src = a.q + b * a.qsb + (q0 + i) * a.qsl + h * D;
                float* dst = qp.data() + i * D;
                int64_t d = 0;
                for (; d + W <= D; d += W) vstore(dst + d, vmul(vload(src + d), sc));
                if (d < D) vstoren(dst + d, vmul(vloadn(src + d, static_cast<int>(D - d)), sc), static_cast<int>(D - d));
            } else
                std::memset(qp.data() + i * D, 0, static_cast<size_t>(D) * sizeof(float));
        }
        std::fill(m.begin(), m.end(), -INFINITY);
        std::fill(l.begin(), l.end(), 0.f);
        for (int64_t kb = 0; kb < nkb; ++kb) {
            const int64_t kv = std::min(BK, Lk - kb * BK);
            const float* kblk = kp.data() + kb * D * BK;
            for (int64_t ig = 0; ig < BQp; ig += MR)
                for (int64_t jc = 0; jc < BK; jc += NR)
                    attn_mk(D, qp.data() + ig * D, D, kblk + jc, BK, s.data() + ig * BK + jc, BK, false);
            for (int64_t i = 0; i < nq; ++i) {
                float* sr = s.data() + i * BK;
                V mxv = vset1(-INFINITY);
                int64_t j = 0;
                for (; j + W <= kv; j += W) mxv = vmax(mxv, vload(sr + j));
                if (j < kv) mxv = vmax(mxv, vloadn_fill(sr + j, static_cast<int>(kv - j), -INFINITY));
                const float mold = m[static_cast<size_t>(i)];
                const float mnew = std::max(mold, vhmax(mxv));
                const V mv = vset1(mnew);
                V sum = vzero();
                for (j = 0; j + W <= kv; j += W) {
                    const V e = vexp(vsub(vload(sr + j), mv));
                    vstore(sr + j, e);
                    sum = vadd(sum, e);
                }
                if (j < kv) {
                    const V e = vkeep(vexp(vsub(vload(sr + j), mv)), static_cast<int>(kv - j));
                    vstore(sr + j, e);
                    sum = vadd(sum, e);
                }
                const float alpha = mold == -INFINITY ? 0.f : std::exp(mold - mnew);
                l[static_cast<size_t>(i)] = l[static_cast<size_t>(i)] * alpha + vhsum(sum);
                m[static_cast<size_t>(i)] = mnew;
                if (alpha != 1.f && kb > 0) {
                    const V av = vset1(alpha);
                    float* orow = o.data() + i * Dvp;
                    for (int64_t d = 0; d < Dvp; d += W) vstore(orow + d, vmul(vload(orow + d), av));
                }
            }
            const float* vblk = vp.data() + kb * BK * Dvp;
            for (int64_t ig = 0; ig < BQp; ig += MR)
                for (int64_t jc = 0; jc < Dvp; jc += NR)
                    attn_mk(kv, s.data() + ig * BK, BK, vblk + jc, Dvp, o.data() + ig * Dvp + jc, Dvp, kb > 0);
        }
        for (int64_t i = 0; i < nq; ++i) {
            const V inv = vset1(1.f / l[static_cast<size_t>(i)]);
            const float* orow = o.data() + i * Dvp;
            float* dst = a.o + ((b * Lq + q0 + i) * a.H + h) * Dv;
            int64_t d = 0;
            for (; d + W <= Dv; d += W) vstore(dst + d, vmul(vload(orow + d), inv));
            if (d < Dv) vstoren(dst + d, vmul(vload(orow + d), inv), static_cast<int>(Dv - d));
        }
    }
}

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
// y[c] = x[c] * gelu(x[n + c]) for one row of 2n inputs.
ST2V_TGT static void geglu_row(const float* x, float* y, int64_t n) {
    ST2V_EW_LOOP(vstore(y + i, vmul(vload(x + i), vgelu(vload(x + n + i)))),
                 vstoren(y + i, vmul(vloadn(x + i, c), vgelu(vloadn(x + n + i, c))), c))
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
