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
#undef ST2V_MK_ROWS
#undef ST2V_MK_DECL
#undef ST2V_MK_STEP
#undef ST2V_MK_STORE
#undef ST2V_MK_MAX
#undef ST2V_MK_MAXN
#undef ST2V_MK_LOADA

// Tasks [t0, t1) of the (batch*head, query block) grid.
ST2V_TGT static void attn_range(const AttnArgs& a, int64_t t0, int64_t t1) {
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
            if (h == 0 && b + 1 < a.B && (Lq + 2 * Lk) * a.H * std::max(D, Dv) <= 16384) {
                // small problems (temporal attention): start the DRAM reads of the next batch entry now
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
