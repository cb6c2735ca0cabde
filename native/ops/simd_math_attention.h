// Fused multi-head attention kernel for one ISA level, written against the primitives of ops/simd_math.h.
// Included without include guard by ops/simd_math_kernels.h inside each level's namespace (AVX2+FMA: W = 8,
// MR = 6; AVX-512: W = 16, MR = 8), so the same code compiles once per level and is picked at run time.
// Needs AttnArgs and AttnBuf (ops/norm_attn_elementwise.cpp).
//
// Per thread, per head (re-packed only when the head changes):
//   kp  K^T in strips of NR = 2W keys: strip s is [D][NR] contiguous (key s*NR + c in lane c; keys >= Lk 0)
//   vp  V in strips of NR columns: strip c is [Lkp][NR] contiguous (Lkp = Lk rounded up to NR; padding 0)
// Per query block (BQ rows, scale folded into the packed rows qp [BQp][D]), per key block (BK keys: the K^T
// and V blocks, 32 KiB each at d 64, stay in L2 while the block's MR-row panels pass over them), per panel:
//   S = Q K^T     microkernel attn_qk: MR x NR tile in 2*MR named accumulators, broadcast q, two vector loads
//                 of the contiguous K^T strip per depth step; row maxima kept as vectors (padded keys masked)
//   softmax       on the MR x kv panel in L1, in base 2 (Q is scaled by scale * log2 e): m_new =
//                 max(m, rowmax), alpha = 2^(m - m_new), P = 2^(S - m_new) in place, running sums l kept as vectors (one horizontal add at the end)
//   O = aO + P V  microkernel attn_pv: MR x NR tile of O, rescaled by alpha while loaded, P broadcast,
//                 two vector loads of the contiguous V strip per key
// and finally O / l is written to the output. The Lq x Lk score matrix is never materialised.
#if ST2V_SIMD_LEVEL == 1
#define ST2V_MK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#else
#define ST2V_MK_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#endif
#define ST2V_MK_DECL(i) V c##i##0 = vzero(), c##i##1 = vzero();
#define ST2V_MK_STEP(i)                                                                \
    {                                                                                  \
        const V t = vset1(A[(i) * lda + kk]);                                          \
        c##i##0 = vfma(t, b0, c##i##0);                                                \
        c##i##1 = vfma(t, b1, c##i##1);                                                \
    }
#define ST2V_MK_STORE(i)                                                               \
    vstore(C + (i) * ldc, c##i##0);                                                    \
    vstore(C + (i) * ldc + W, c##i##1);
#define ST2V_MK_MAX(i) mx[i] = vmax(mx[i], vmax(c##i##0, c##i##1));
#define ST2V_MK_MAXN(i)                                                                \
    mx[i] = vmax(mx[i], vmax(vloadn_fill(C + (i) * ldc, n0, -INFINITY),                \
                             vloadn_fill(C + (i) * ldc + W, n1, -INFINITY)));
#define ST2V_MK_LOADA(i)                                                               \
    {                                                                                  \
        const V al = vset1(alpha[i]);                                                  \
        c##i##0 = vmul(vload(C + (i) * ldc), al);                                      \
        c##i##1 = vmul(vload(C + (i) * ldc + W), al);                                  \
    }

// C[MR, NR] = A[MR, K] (row-major, lda) * B[K, NR] (contiguous strip); mx[i] = max(mx[i], C[i, j < valid]).
ST2V_TGT __attribute__((always_inline)) static inline void attn_qk(int64_t K, const float* __restrict A, int64_t lda,
                                                                   const float* __restrict B, float* __restrict C,
                                                                   int64_t ldc, V* mx, int64_t valid) {
    ST2V_MK_ROWS(ST2V_MK_DECL)
#pragma GCC unroll 2
    for (int64_t kk = 0; kk < K; ++kk) {
        const V b0 = vload(B + kk * 2 * W), b1 = vload(B + kk * 2 * W + W);
        ST2V_MK_ROWS(ST2V_MK_STEP)
    }
    ST2V_MK_ROWS(ST2V_MK_STORE)
    if (valid >= 2 * W) {
        ST2V_MK_ROWS(ST2V_MK_MAX)
    } else {  // the last strip of the keys: lanes >= valid are padding
        const int n0 = static_cast<int>(std::min<int64_t>(valid, W));
        const int n1 = static_cast<int>(std::max<int64_t>(valid - W, 0));
        ST2V_MK_ROWS(ST2V_MK_MAXN)
    }
}

// C[MR, NR] = alpha[i] * C (alpha null: 0) + A[MR, K] (row-major, lda) * B[K, NR] (contiguous strip).
ST2V_TGT __attribute__((always_inline)) static inline void attn_pv(int64_t K, const float* __restrict A, int64_t lda,
                                                                   const float* __restrict B, float* __restrict C,
                                                                   int64_t ldc, const float* alpha) {
    ST2V_MK_ROWS(ST2V_MK_DECL)
    if (alpha) {
        ST2V_MK_ROWS(ST2V_MK_LOADA)
    }
#pragma GCC unroll 2
    for (int64_t kk = 0; kk < K; ++kk) {
        const V b0 = vload(B + kk * 2 * W), b1 = vload(B + kk * 2 * W + W);
        ST2V_MK_ROWS(ST2V_MK_STEP)
    }
    ST2V_MK_ROWS(ST2V_MK_STORE)
}

// Small problems (the temporal attention): starts the DRAM reads of batch entry b + 1 (all its heads) while entry b
// is computed. Both kernels call it at each entry's first head.
ST2V_TGT __attribute__((always_inline)) static inline void prefetch_next_entry(const AttnArgs& a, int64_t b) {
    const int64_t Lq = a.Lq, Lk = a.Lk, D = a.D, Dv = a.Dv;
    if (b + 1 >= a.B || (Lq + 2 * Lk) * a.H * std::max(D, Dv) > 16384) return;
    for (int64_t i = 0; i < Lq; ++i)
        for (int64_t c = 0; c < a.H * D; c += 16)
            _mm_prefetch(reinterpret_cast<const char*>(a.q + (b + 1) * a.qsb + i * a.qsl + c), _MM_HINT_T0);
    for (int64_t j = 0; j < Lk; ++j) {
        for (int64_t c = 0; c < a.H * D; c += 16)
            _mm_prefetch(reinterpret_cast<const char*>(a.k + (b + 1) * a.ksb + j * a.ksl + c), _MM_HINT_T0);
        for (int64_t c = 0; c < a.H * Dv; c += 16)
            _mm_prefetch(reinterpret_cast<const char*>(a.v + (b + 1) * a.vsb + j * a.vsl + c), _MM_HINT_T0);
    }
}

// ---- short attention: Lq <= 2W queries, Lk <= kAttnShortLk keys (the UNet's temporal attention over a chunk's
// frames, the CAM mergers). Queries sit in the vector lanes (QV = 1 or 2 vectors of W), so the softmax runs down the
// columns of S^T with no horizontal max / sum, and K and V are read in place with no packing:
//   qt  Q^T [D][QV*W] (8x8 register transposes; lanes >= Lq stay zero)
//   st  S^T [Lk][QV*W] = K Q^T, keys 6 at a time with K's elements broadcast from its rows, times scale * log2 e;
//       then P^T = 2^(S^T - m) in place, m and l the column maxima and sums
//   O   [Lq][Dv] = P V: MR x 2W tiles with P broadcast from P^T and V's rows loaded in place, / l on the store.
// Six keys per group: the last group repeats the last key (computed, never stored). The next batch entry is
// prefetched as in the tiled kernel (without it: 1.15-1.21x over the tiled kernel at the tattn shape in 3 runs, with
// it 1.19-1.34x in 8). Tiled time / short time, interleaved, 2 threads, Zen 3 (ops bench tattn_short_5120x16x16_d64):
// 1.19-1.34x at the tattn shape, 1.33-1.47x at the mid config's first two levels, 1.51-1.69x at the third.
#define ST2V_SQ_KEYS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define ST2V_SQ_DECL(g) V s##g##0 = vzero(), s##g##1 = vzero();
#define ST2V_SQ_STEP(g)                                                  \
    {                                                                    \
        const V t = vset1(k##g[d]);                                      \
        s##g##0 = vfma(t, q0, s##g##0);                                  \
        if (QV == 2) s##g##1 = vfma(t, q1, s##g##1);                     \
    }
#define ST2V_SQ_STORE(g)                                                 \
    if (g < nk) {                                                        \
        vstore(st + (j0 + g) * QW, vmul(s##g##0, sc));                   \
        if (QV == 2) vstore(st + (j0 + g) * QW + W, vmul(s##g##1, sc));  \
    }
template <int QV>
ST2V_TGT __attribute__((always_inline)) static inline void attn_short_scores(const float* kb, int64_t ksl, int64_t Lk,
                                                                             int64_t D, const float* __restrict qt,
                                                                             float* __restrict st, V sc) {
    constexpr int64_t QW = QV * W;
    for (int64_t j0 = 0; j0 < Lk; j0 += 6) {
        const int64_t nk = std::min<int64_t>(6, Lk - j0);
        const float *k0 = kb + std::min(j0 + 0, Lk - 1) * ksl, *k1 = kb + std::min(j0 + 1, Lk - 1) * ksl,
                    *k2 = kb + std::min(j0 + 2, Lk - 1) * ksl, *k3 = kb + std::min(j0 + 3, Lk - 1) * ksl,
                    *k4 = kb + std::min(j0 + 4, Lk - 1) * ksl, *k5 = kb + std::min(j0 + 5, Lk - 1) * ksl;
        ST2V_SQ_KEYS(ST2V_SQ_DECL)
#pragma GCC unroll 4
        for (int64_t d = 0; d < D; ++d) {
            const V q0 = vload(qt + d * QW), q1 = QV == 2 ? vload(qt + d * QW + W) : vzero();
            ST2V_SQ_KEYS(ST2V_SQ_STEP)
        }
        ST2V_SQ_KEYS(ST2V_SQ_STORE)
    }
}
#undef ST2V_SQ_KEYS
#undef ST2V_SQ_DECL
#undef ST2V_SQ_STEP
#undef ST2V_SQ_STORE

// One MR x 2W tile of O: out[r][c] = inv[r] * sum over the Lk keys of P[r][j] V[j][c], P[r][j] = pt[j * QW + r],
// V[j][c] = vb[j * vsl + c], for the first nc <= 2W columns; rows r >= nr are computed and not stored.
#define ST2V_SO_DECL(i) V o##i##0 = vzero(), o##i##1 = vzero();
#define ST2V_SO_STEP(i)                                      \
    {                                                        \
        const V t = vset1(p[(i)]);                           \
        o##i##0 = vfma(t, v0, o##i##0);                      \
        o##i##1 = vfma(t, v1, o##i##1);                      \
    }
#define ST2V_SO_STORE(i)                                                              \
    if ((i) < nr) {                                                                   \
        const V s = vset1(inv[(i)]);                                                  \
        float* dst = out + (i) * ldo;                                                 \
        if (n0 == W) vstore(dst, vmul(o##i##0, s));                                   \
        else vstoren(dst, vmul(o##i##0, s), n0);                                      \
        if (n1 == W) vstore(dst + W, vmul(o##i##1, s));                               \
        else if (n1 > 0) vstoren(dst + W, vmul(o##i##1, s), n1);                      \
    }
ST2V_TGT __attribute__((always_inline)) static inline void attn_short_pv(const float* __restrict pt, int64_t QW,
                                                                         const float* vb, int64_t vsl, int64_t Lk,
                                                                         int64_t nc, const float* inv, float* out,
                                                                         int64_t ldo, int64_t nr) {
    const int n0 = static_cast<int>(std::min<int64_t>(nc, W)), n1 = static_cast<int>(std::max<int64_t>(nc - W, 0));
    ST2V_MK_ROWS(ST2V_SO_DECL)
    if (nc == 2 * W) {
#pragma GCC unroll 2
        for (int64_t j = 0; j < Lk; ++j) {
            const float* p = pt + j * QW;
            const V v0 = vload(vb + j * vsl), v1 = vload(vb + j * vsl + W);
            ST2V_MK_ROWS(ST2V_SO_STEP)
        }
    } else {
        for (int64_t j = 0; j < Lk; ++j) {
            const float* p = pt + j * QW;
            const V v0 = vloadn(vb + j * vsl, n0), v1 = n1 > 0 ? vloadn(vb + j * vsl + W, n1) : vzero();
            ST2V_MK_ROWS(ST2V_SO_STEP)
        }
    }
    ST2V_MK_ROWS(ST2V_SO_STORE)
}
#undef ST2V_SO_DECL
#undef ST2V_SO_STEP
#undef ST2V_SO_STORE

// Tasks [t0, t1) of the (batch*head) grid (one query block: Lq <= 2W).
template <int QV>
ST2V_TGT static void attn_short_range(const AttnArgs& a, int64_t t0, int64_t t1) {
    constexpr int64_t QW = QV * W;
    const int64_t D = a.D, Dv = a.Dv, Lq = a.Lq, Lk = a.Lk;
    // qt: D rows of QW lanes; st: Lk rows, then MR - 1 more lanes read (never used) by the last row tile
    AttnBuf qt(D * QW), st(Lk * QW + MR), inv(QW + MR);
    const V sc = vset1(a.scale * 1.44269504088896341f);  // scores in base 2: exp(x) = 2^(x log2 e)
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / a.H, h = t % a.H;
        if (h == 0) prefetch_next_entry(a, b);
        // Q^T: lanes >= Lq are never written (zero from the allocation)
        const float* qb = a.q + b * a.qsb + h * D;
        {
            int64_t i = 0;
            for (; i + 8 <= Lq; i += 8) {
                int64_t d = 0;
                for (; d + 8 <= D; d += 8) transpose8x8(qb + i * a.qsl + d, a.qsl, qt.p + d * QW + i, QW);
                for (; d < D; ++d)
                    for (int64_t r = i; r < i + 8; ++r) qt.p[d * QW + r] = qb[r * a.qsl + d];
            }
            for (; i < Lq; ++i)
                for (int64_t d = 0; d < D; ++d) qt.p[d * QW + i] = qb[i * a.qsl + d];
        }
        attn_short_scores<QV>(a.k + b * a.ksb + h * D, a.ksl, Lk, D, qt.p, st.p, sc);
        // softmax down the columns
        V m0 = vload(st.p), m1 = QV == 2 ? vload(st.p + W) : vzero();
        for (int64_t j = 1; j < Lk; ++j) {
            m0 = vmax(m0, vload(st.p + j * QW));
            if (QV == 2) m1 = vmax(m1, vload(st.p + j * QW + W));
        }
        V l0 = vzero(), l1 = vzero();
        for (int64_t j = 0; j < Lk; ++j) {
            const V e0 = vexp2_nonpos(vsub(vload(st.p + j * QW), m0));
            vstore(st.p + j * QW, e0);
            l0 = vadd(l0, e0);
            if (QV == 2) {
                const V e1 = vexp2_nonpos(vsub(vload(st.p + j * QW + W), m1));
                vstore(st.p + j * QW + W, e1);
                l1 = vadd(l1, e1);
            }
        }
        // 1 / l per query (lanes >= Lq: l = Lk, harmless)
        vstore(inv.p, vdiv(vset1(1.f), l0));
        if (QV == 2) vstore(inv.p + W, vdiv(vset1(1.f), l1));
        const float* vb = a.v + b * a.vsb + h * Dv;
        float* ob = a.o + (b * Lq * a.H + h) * Dv;
        const int64_t ldo = a.H * Dv;
        for (int64_t r0 = 0; r0 < Lq; r0 += MR)
            for (int64_t c0 = 0; c0 < Dv; c0 += 2 * W)
                attn_short_pv(st.p + r0, QW, vb + c0, a.vsl, Lk, std::min<int64_t>(2 * W, Dv - c0), inv.p + r0,
                              ob + r0 * ldo + c0, ldo, std::min<int64_t>(MR, Lq - r0));
    }
}
#undef ST2V_MK_ROWS
#undef ST2V_MK_DECL
#undef ST2V_MK_STEP
#undef ST2V_MK_STORE
#undef ST2V_MK_MAX
#undef ST2V_MK_MAXN
#undef ST2V_MK_LOADA

// Tasks [t0, t1) of the (batch*head, query block) grid.
ST2V_TGT static void attn_range(const AttnArgs& a, int64_t t0, int64_t t1) {
    if (a.short_ok) {  // Lq <= 2W and Lk <= kAttnShortLk at this level (attention_short_fits)
        if (a.Lq <= W) attn_short_range<1>(a, t0, t1);
        else attn_short_range<2>(a, t0, t1);
        return;
    }
    constexpr int64_t NR = 2 * W;
    static_assert(MR <= W, "the row statistics of one panel are handled as one vector");
    const int64_t D = a.D, Dv = a.Dv, Lq = a.Lq, Lk = a.Lk;
    const int64_t BQ = std::min<int64_t>(a.BQ, Lq);
    const int64_t BQp = (BQ + MR - 1) / MR * MR;
    const int64_t Lkp = (Lk + NR - 1) / NR * NR;
    const int64_t BK = std::min<int64_t>((a.BK + NR - 1) / NR * NR, Lkp);  // a multiple of NR
    const int64_t nkb = (Lk + BK - 1) / BK, nqb = (Lq + BQ - 1) / BQ;
    const int64_t Dvp = (Dv + NR - 1) / NR * NR, nvs = Dvp / NR;
    AttnBuf kp(Lkp * D), vp(nvs * Lkp * NR), qp(BQp * D), s(MR * BK), o(BQp * Dvp), m(BQp), l(BQp * W);
    const V sc = vset1(a.scale * 1.44269504088896341f);  // scores in base 2: exp(x) = 2^(x log2 e)
    int64_t cur = -1;
    for (int64_t t = t0; t < t1; ++t) {
        const int64_t bh = t / nqb, qb = t % nqb, b = bh / a.H, h = bh % a.H;
        if (bh != cur) {
            cur = bh;
            if (h == 0) prefetch_next_entry(a, b);
            // Padding (keys >= Lk, columns >= Dv) is never written: it stays zero from the allocation.
            float* kd = kp.p;
            int64_t j = 0;
            if (D % 8 == 0)  // 8 keys x 8 dims at a time through register transposes
                for (; j + 8 <= Lk; j += 8)
                    for (int64_t d = 0; d < D; d += 8)
                        transpose8x8(a.k + b * a.ksb + j * a.ksl + h * D + d, a.ksl,
                                     kd + (j / NR) * D * NR + d * NR + (j % NR), NR);
            for (; j < Lk; ++j) {
                const float* kr = a.k + b * a.ksb + j * a.ksl + h * D;
                float* dst = kd + (j / NR) * D * NR + (j % NR);
                for (int64_t d = 0; d < D; ++d) dst[d * NR] = kr[d];
            }
            for (j = 0; j < Lk; ++j) {
                const float* vr = a.v + b * a.vsb + j * a.vsl + h * Dv;
                for (int64_t c = 0; c < nvs; ++c) {
                    float* dst = vp.p + (c * Lkp + j) * NR;
                    const int64_t n = std::min<int64_t>(NR, Dv - c * NR);
                    if (n == NR) {
                        vstore(dst, vload(vr + c * NR));
                        vstore(dst + W, vload(vr + c * NR + W));
                    } else {
                        std::memcpy(dst, vr + c * NR, static_cast<size_t>(n) * sizeof(float));
                    }
                }
            }
        }
        const int64_t q0 = qb * BQ, nq = std::min(BQ, Lq - q0);
        for (int64_t i = 0; i < nq; ++i) {  // rows >= nq keep earlier (finite) values: computed, never output
            const float* src = a.q + b * a.qsb + (q0 + i) * a.qsl + h * D;
            float* dst = qp.p + i * D;
            int64_t d = 0;
            for (; d + W <= D; d += W) vstore(dst + d, vmul(vload(src + d), sc));
            if (d < D) vstoren(dst + d, vmul(vloadn(src + d, static_cast<int>(D - d)), sc), static_cast<int>(D - d));
        }
        for (int64_t kb = 0; kb < nkb; ++kb) {
            const int64_t k0 = kb * BK, kv = std::min(BK, Lk - k0);
            for (int64_t g = 0; g < nq; g += MR) {
                V mx[MR];
                for (int i = 0; i < MR; ++i) mx[i] = vset1(-INFINITY);
                for (int64_t j0 = 0; j0 < kv; j0 += NR)
                    attn_qk(D, qp.p + g * D, D, kp.p + (k0 + j0) * D, s.p + j0, BK, mx, kv - j0);
                // new running maxima and alpha = 2^(m_old - m_new) of the MR rows, as one vector (MR <= W)
                alignas(64) float mnew[W], alpha[W];
                for (int i = 0; i < MR; ++i) mnew[i] = vhmax(mx[i]);
                {
                    const V rm = vloadn(mnew, MR);
                    if (kb == 0) {
                        vstoren(m.p + g, rm, MR);
                    } else {
                        const V mo = vloadn(m.p + g, MR), mn = vmax(mo, rm);
                        vstoren(m.p + g, mn, MR);
                        vstore(mnew, mn);
                        vstore(alpha, vexp2_nonpos(vsub(mo, mn)));
                    }
                }
                for (int i = 0; i < MR; ++i) {
                    float* sr = s.p + i * BK;
                    const V mv = vset1(mnew[i]);
                    V sum = vzero();
                    int64_t j = 0;
                    for (; j + W <= kv; j += W) {
                        const V e = vexp2_nonpos(vsub(vload(sr + j), mv));
                        vstore(sr + j, e);
                        sum = vadd(sum, e);
                    }
                    if (j < kv) {
                        const V e = vkeep(vexp2_nonpos(vsub(vload(sr + j), mv)), static_cast<int>(kv - j));
                        vstore(sr + j, e);
                        sum = vadd(sum, e);
                    }
                    float* lr = l.p + (g + i) * W;
                    vstore(lr, kb == 0 ? sum : vfma(vload(lr), vset1(alpha[i]), sum));
                }
                for (int64_t c = 0; c < nvs; ++c)
                    attn_pv(kv, s.p, BK, vp.p + (c * Lkp + k0) * NR, o.p + g * Dvp + c * NR, Dvp,
                            kb == 0 ? nullptr : alpha);
            }
        }
        for (int64_t i = 0; i < nq; ++i) {
            const V inv = vset1(1.f / vhsum(vload(l.p + i * W)));
            const float* orow = o.p + i * Dvp;
            float* dst = a.o + ((b * Lq + q0 + i) * a.H + h) * Dv;
            int64_t d = 0;
            for (; d + W <= Dv; d += W) vstore(dst + d, vmul(vload(orow + d), inv));
            if (d < Dv) vstoren(dst + d, vmul(vload(orow + d), inv), static_cast<int>(Dv - d));
        }
    }
}
