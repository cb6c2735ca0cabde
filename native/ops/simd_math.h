// SIMD primitives for one ISA level, included (without include guard) inside a per-ISA namespace by
// ops/norm_attn_elementwise.cpp with ST2V_SIMD_LEVEL = 1 (AVX2 + FMA, 8 lanes) or 2 (AVX-512F/BW/VL/DQ,
// 16 lanes), and 3 (tests only, on AVX2 CPUs: level 2's own wrappers over SIMDe's portable AVX-512 intrinsics
// when ST2V_SIMD_HAVE_SIMDE is defined, else 16 lanes as AVX2 pairs: the AVX-512 geometry). Every
// function carries the level's __attribute__((target(...))) (the build never uses -march), so the same
// generic kernels in ops/simd_math_kernels.h compile once per level and are picked at run time with
// active_isa(). <immintrin.h> must be included before.
//
// Provides: V (vector type), W (lanes), MR (rows of the register-blocked attention microkernel), loads /
// stores with a lane count (tails), arithmetic, horizontal sum/max, and the transcendental functions
//   vexp  — Cody-Waite range reduction + degree-6 polynomial (Cephes expf coefficients), ~1 ulp on
//           [-87.3, 88]; inputs are clamped to that range (exp(-inf) -> 1.2e-38, not 0: harmless in sums).
//   vexp2_nonpos — 2^t for t <= 0 (attention softmax in base 2), ~2e-7 relative.
//   verf  — odd rational approximation x*P(x^2)/Q(x^2) on [-4, 4] (clamped; |erf(4) - 1| < 2e-8),
//           max abs error ~1e-7 against std::erf (checked by the tests).
#ifndef ST2V_SIMD_LEVEL
#error "define ST2V_SIMD_LEVEL before including ops/simd_math.h"
#endif

#if ST2V_SIMD_LEVEL == 1
#define ST2V_TGT __attribute__((target("avx2,fma,f16c")))
#define PRIM ST2V_TGT __attribute__((always_inline)) static inline
typedef __m256 V;
constexpr int W = 8;
constexpr int MR = 6;
alignas(64) static const int32_t kTailTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
PRIM __m256i tailmask(int n) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailTable + 8 - n)); }
PRIM V vzero() { return _mm256_setzero_ps(); }
PRIM V vset1(float x) { return _mm256_set1_ps(x); }
PRIM V vload(const float* p) { return _mm256_loadu_ps(p); }
PRIM void vstore(float* p, V v) { _mm256_storeu_ps(p, v); }
PRIM V vloadn(const float* p, int n) { return _mm256_maskload_ps(p, tailmask(n)); }
PRIM void vstoren(float* p, V v, int n) { _mm256_maskstore_ps(p, tailmask(n), v); }
PRIM V vkeep(V v, int n) { return _mm256_and_ps(v, _mm256_castsi256_ps(tailmask(n))); }
PRIM V vloadn_fill(const float* p, int n, float fill) {
    const __m256i m = tailmask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
}
PRIM V vadd(V a, V b) { return _mm256_add_ps(a, b); }
PRIM V vsub(V a, V b) { return _mm256_sub_ps(a, b); }
PRIM V vmul(V a, V b) { return _mm256_mul_ps(a, b); }
PRIM V vdiv(V a, V b) { return _mm256_div_ps(a, b); }
PRIM V vmax(V a, V b) { return _mm256_max_ps(a, b); }
PRIM V vmin(V a, V b) { return _mm256_min_ps(a, b); }
PRIM V vfma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }    // a*b + c
PRIM V vfnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a*b
PRIM V vround(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
PRIM V vpow2i(V n) {  // 2^n for integral n in [-126, 127]
    __m256i i = _mm256_cvtps_epi32(n);
    i = _mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23);
    return _mm256_castsi256_ps(i);
}
PRIM V vldexp(V p, V n) {  // p * 2^n for integral n, by adding n to the exponent field (no overflow checks)
    return _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
}
PRIM float vhsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
PRIM float vhmax(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
// lo = x0 x0 x1 x1 .. x3 x3, hi = x4 x4 .. x7 x7
PRIM void vdup2(V x, V* lo, V* hi) {
    const V l = _mm256_unpacklo_ps(x, x), h = _mm256_unpackhi_ps(x, x);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
#elif ST2V_SIMD_LEVEL == 2 || (ST2V_SIMD_LEVEL == 3 && defined(ST2V_SIMD_HAVE_SIMDE))
// Level 2 (AVX-512) — and, for the tests on CPUs without AVX-512, level 3 when SIMDe (Debian libsimde-dev,
// header-only) is available: the very same wrapper text with every _mm512_* intrinsic, type and constant
// taken from SIMDe's portable implementation of Intel's semantics (ST2V_X / ST2V_XT / ST2V_XC below), so the
// AVX-512 primitive wrappers themselves are exercised on AVX2 machines, not only the 16-lane geometry.
#if ST2V_SIMD_LEVEL == 2
#define ST2V_TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define ST2V_X(name) _mm512_##name
#define ST2V_XT(name) __##name
#define ST2V_XC(name) name
#else
#define ST2V_TGT __attribute__((target("avx2,fma,f16c")))
#define ST2V_X(name) st2v_x512_##name  // ops/simd_simde_x512.h
#define ST2V_XT(name) simde__##name
#define ST2V_XC(name) SIMDE##name
#endif
#define PRIM ST2V_TGT __attribute__((always_inline)) static inline
typedef ST2V_XT(m512) V;
constexpr int W = 16;
constexpr int MR = 8;
PRIM ST2V_XT(mmask16) tailmask(int n) { return static_cast<ST2V_XT(mmask16)>((1u << n) - 1u); }
PRIM V vzero() { return ST2V_X(setzero_ps)(); }
PRIM V vset1(float x) { return ST2V_X(set1_ps)(x); }
PRIM V vload(const float* p) { return ST2V_X(loadu_ps)(p); }
PRIM void vstore(float* p, V v) { ST2V_X(storeu_ps)(p, v); }
PRIM V vloadn(const float* p, int n) { return ST2V_X(maskz_loadu_ps)(tailmask(n), p); }
PRIM void vstoren(float* p, V v, int n) { ST2V_X(mask_storeu_ps)(p, tailmask(n), v); }
PRIM V vkeep(V v, int n) { return ST2V_X(maskz_mov_ps)(tailmask(n), v); }
PRIM V vloadn_fill(const float* p, int n, float fill) { return ST2V_X(mask_loadu_ps)(ST2V_X(set1_ps)(fill), tailmask(n), p); }
PRIM V vadd(V a, V b) { return ST2V_X(add_ps)(a, b); }
PRIM V vsub(V a, V b) { return ST2V_X(sub_ps)(a, b); }
PRIM V vmul(V a, V b) { return ST2V_X(mul_ps)(a, b); }
PRIM V vdiv(V a, V b) { return ST2V_X(div_ps)(a, b); }
PRIM V vmax(V a, V b) { return ST2V_X(max_ps)(a, b); }
PRIM V vmin(V a, V b) { return ST2V_X(min_ps)(a, b); }
PRIM V vfma(V a, V b, V c) { return ST2V_X(fmadd_ps)(a, b, c); }
PRIM V vfnma(V a, V b, V c) { return ST2V_X(fnmadd_ps)(a, b, c); }
PRIM V vround(V x) { return ST2V_X(roundscale_ps)(x, ST2V_XC(_MM_FROUND_TO_NEAREST_INT) | ST2V_XC(_MM_FROUND_NO_EXC)); }
PRIM V vpow2i(V n) {
    ST2V_XT(m512i) i = ST2V_X(cvtps_epi32)(n);
    i = ST2V_X(slli_epi32)(ST2V_X(add_epi32)(i, ST2V_X(set1_epi32)(127)), 23);
    return ST2V_X(castsi512_ps)(i);
}
PRIM V vldexp(V p, V n) {
    return ST2V_X(castsi512_ps)(
        ST2V_X(add_epi32)(ST2V_X(castps_si512)(p), ST2V_X(slli_epi32)(ST2V_X(cvtps_epi32)(n), 23)));
}
PRIM float vhsum(V v) { return ST2V_X(reduce_add_ps)(v); }
PRIM float vhmax(V v) { return ST2V_X(reduce_max_ps)(v); }
PRIM void vdup2(V x, V* lo, V* hi) {
    *lo = ST2V_X(permutexvar_ps)(ST2V_X(set_epi32)(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0), x);
    *hi = ST2V_X(permutexvar_ps)(ST2V_X(set_epi32)(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8), x);
}
#undef ST2V_X
#undef ST2V_XT
#undef ST2V_XC
#elif ST2V_SIMD_LEVEL == 3
// Test-only level without SIMDe: 16 lanes as a pair of AVX2 vectors and MR 8, i.e. the geometry of the AVX-512 kernels
// (W 16, 2W-wide attention strips, 8-row panels, 16-lane tails) on CPUs without AVX-512, so that the generic
// kernel code of that geometry is exercised by the tests everywhere (ops/simd_math_testing.h). Never picked
// for real work.
#define ST2V_TGT __attribute__((target("avx2,fma,f16c")))
#define PRIM ST2V_TGT __attribute__((always_inline)) static inline
struct V {
    __m256 lo, hi;
};
constexpr int W = 16;
constexpr int MR = 8;
alignas(64) static const int32_t kTailTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
PRIM __m256i tailmask8(int n) {
    n = n < 0 ? 0 : (n > 8 ? 8 : n);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kTailTable + 8 - n));
}
#define ST2V_V2(expr_lo, expr_hi) V{expr_lo, expr_hi}
PRIM V vzero() { return ST2V_V2(_mm256_setzero_ps(), _mm256_setzero_ps()); }
PRIM V vset1(float x) { return ST2V_V2(_mm256_set1_ps(x), _mm256_set1_ps(x)); }
PRIM V vload(const float* p) { return ST2V_V2(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)); }
PRIM void vstore(float* p, V v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
PRIM V vloadn(const float* p, int n) {
    return ST2V_V2(_mm256_maskload_ps(p, tailmask8(n)), _mm256_maskload_ps(p + 8, tailmask8(n - 8)));
}
PRIM void vstoren(float* p, V v, int n) {
    _mm256_maskstore_ps(p, tailmask8(n), v.lo);
    _mm256_maskstore_ps(p + 8, tailmask8(n - 8), v.hi);
}
PRIM V vkeep(V v, int n) {
    return ST2V_V2(_mm256_and_ps(v.lo, _mm256_castsi256_ps(tailmask8(n))),
                   _mm256_and_ps(v.hi, _mm256_castsi256_ps(tailmask8(n - 8))));
}
PRIM V vloadn_fill(const float* p, int n, float fill) {
    const __m256i m0 = tailmask8(n), m1 = tailmask8(n - 8);
    const __m256 f = _mm256_set1_ps(fill);
    return ST2V_V2(_mm256_blendv_ps(f, _mm256_maskload_ps(p, m0), _mm256_castsi256_ps(m0)),
                   _mm256_blendv_ps(f, _mm256_maskload_ps(p + 8, m1), _mm256_castsi256_ps(m1)));
}
PRIM V vadd(V a, V b) { return ST2V_V2(_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)); }
PRIM V vsub(V a, V b) { return ST2V_V2(_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)); }
PRIM V vmul(V a, V b) { return ST2V_V2(_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)); }
PRIM V vdiv(V a, V b) { return ST2V_V2(_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)); }
PRIM V vmax(V a, V b) { return ST2V_V2(_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)); }
PRIM V vmin(V a, V b) { return ST2V_V2(_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)); }
PRIM V vfma(V a, V b, V c) { return ST2V_V2(_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)); }
PRIM V vfnma(V a, V b, V c) {
    return ST2V_V2(_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi));
}
PRIM V vround(V x) {
    return ST2V_V2(_mm256_round_ps(x.lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                   _mm256_round_ps(x.hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
PRIM __m256 pow2i8(__m256 n) {
    __m256i i = _mm256_cvtps_epi32(n);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23));
}
PRIM V vpow2i(V n) { return ST2V_V2(pow2i8(n.lo), pow2i8(n.hi)); }
PRIM __m256 ldexp8(__m256 p, __m256 n) {
    return _mm256_castsi256_ps(
        _mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23)));
}
PRIM V vldexp(V p, V n) { return ST2V_V2(ldexp8(p.lo, n.lo), ldexp8(p.hi, n.hi)); }
PRIM float vhsum(V v) {
    const __m256 x = _mm256_add_ps(v.lo, v.hi);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
PRIM float vhmax(V v) {
    const __m256 x = _mm256_max_ps(v.lo, v.hi);
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
PRIM void dup2_8(__m256 x, __m256* lo, __m256* hi) {
    const __m256 l = _mm256_unpacklo_ps(x, x), h = _mm256_unpackhi_ps(x, x);
    *lo = _mm256_permute2f128_ps(l, h, 0x20);
    *hi = _mm256_permute2f128_ps(l, h, 0x31);
}
PRIM void vdup2(V x, V* lo, V* hi) {  // lo = x0 x0 .. x7 x7, hi = x8 x8 .. x15 x15
    dup2_8(x.lo, &lo->lo, &lo->hi);
    dup2_8(x.hi, &hi->lo, &hi->hi);
}
#undef ST2V_V2
#else
#error "unknown ST2V_SIMD_LEVEL"
#endif

// dst[c * ldd + r] = src[r * lds + c] for an 8x8 block (AVX2 instructions: both levels have them).
PRIM void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
    __m256 r[8], o[8];
    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(src + q * lds);
    ::st2v::transpose8x8_ps(r, o);
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + q * ldd, o[q]);
}

PRIM V vexp(V x) {
    x = vmin(vmax(x, vset1(-87.33654f)), vset1(88.0f));
    const V n = vround(vmul(x, vset1(1.44269504088896341f)));
    V r = vfnma(n, vset1(0.693359375f), x);  // ln2 split (Cody-Waite)
    r = vfnma(n, vset1(-2.12194440e-4f), r);
    V p = vset1(1.9875691500e-4f);
    p = vfma(p, r, vset1(1.3981999507e-3f));
    p = vfma(p, r, vset1(8.3334519073e-3f));
    p = vfma(p, r, vset1(4.1665795894e-2f));
    p = vfma(p, r, vset1(1.6666665459e-1f));
    p = vfma(p, r, vset1(5.0000001201e-1f));
    const V r2 = vmul(r, r);
    p = vfma(p, r2, vadd(r, vset1(1.f)));
    return vmul(p, vpow2i(n));
}
// 2^t for t <= 0 (the softmax of the attention kernel works in base 2): t clamped to -125, n = round(t),
// f = t - n in [-0.5, 0.5] exactly, 2^f = 1 + f*P(f) (Cephes exp2f coefficients, ~2e-7 relative), then
// the exponent field += n. Results below 2^-125 come out as ~2^-125 instead of 0: harmless in sums.
PRIM V vexp2_nonpos(V t) {
    t = vmax(t, vset1(-125.f));
    const V n = vround(t);
    const V f = vsub(t, n);
    V p = vset1(1.535336188319500e-4f);
    p = vfma(p, f, vset1(1.339887440266574e-3f));
    p = vfma(p, f, vset1(9.618437357674640e-3f));
    p = vfma(p, f, vset1(5.550332471162809e-2f));
    p = vfma(p, f, vset1(2.402264791363012e-1f));
    p = vfma(p, f, vset1(6.931472028550421e-1f));
    p = vfma(p, f, vset1(1.f));
    return vldexp(p, n);
}
PRIM V vsilu(V x) { return vdiv(x, vadd(vset1(1.f), vexp(vsub(vzero(), x)))); }
PRIM V verf(V x) {
    x = vmin(vmax(x, vset1(-4.f)), vset1(4.f));
    const V x2 = vmul(x, x);
    V p = vset1(-2.72614225801306e-10f);
    p = vfma(x2, p, vset1(2.77068142495902e-08f));
    p = vfma(x2, p, vset1(-2.10102402082508e-06f));
    p = vfma(x2, p, vset1(-5.69250639462346e-05f));
    p = vfma(x2, p, vset1(-7.34990630326855e-04f));
    p = vfma(x2, p, vset1(-2.95459980854025e-03f));
    p = vfma(x2, p, vset1(-1.60960333262415e-02f));
    p = vmul(x, p);
    V q = vset1(-1.45660718464996e-05f);
    q = vfma(x2, q, vset1(-2.13374055278905e-04f));
    q = vfma(x2, q, vset1(-1.68282697438203e-03f));
    q = vfma(x2, q, vset1(-7.37332916720468e-03f));
    q = vfma(x2, q, vset1(-1.42647390514189e-02f));
    return vdiv(p, q);
}
PRIM V vgelu(V x) {  // exact (erf) GELU
    const V e = verf(vmul(x, vset1(0.70710678118654752f)));
    return vmul(vmul(vset1(0.5f), x), vadd(vset1(1.f), e));
}
