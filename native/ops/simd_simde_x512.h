// Test-only: the AVX-512 intrinsics ops/simd_math.h's level-2 wrappers use, for level 3 on CPUs without
// AVX-512. Each st2v_x512_<name> forwards to SIMDe's portable simde_mm512_<name> (Debian libsimde-dev); the six
// that SIMDe 0.7.4 lacks (masked loads/stores, cvtps_epi32, reduce_add/max) are written here lane by lane from
// Intel's definitions. Defines ST2V_SIMD_HAVE_SIMDE when SIMDe was found at build time (and ST2V_NO_SIMDE is not
// set); otherwise defines nothing and the callers fall back to their AVX2 emulation of the AVX-512 geometry.
#pragma once
#if defined(__has_include)
#if __has_include(<simde/x86/avx512.h>) && !defined(ST2V_NO_SIMDE)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <simde/x86/avx512.h>
#pragma GCC diagnostic pop
#define ST2V_SIMD_HAVE_SIMDE 1
#endif
#endif

#ifdef ST2V_SIMD_HAVE_SIMDE
#include <cmath>
#include <cstdint>

#define ST2V_X512_FWD(name) template <typename... A> static inline auto st2v_x512_##name(A... a) { return simde_mm512_##name(a...); }
ST2V_X512_FWD(setzero_ps)
ST2V_X512_FWD(set1_ps)
ST2V_X512_FWD(loadu_ps)
ST2V_X512_FWD(load_ps)
ST2V_X512_FWD(storeu_ps)
ST2V_X512_FWD(maskz_mov_ps)
ST2V_X512_FWD(add_ps)
ST2V_X512_FWD(sub_ps)
ST2V_X512_FWD(mul_ps)
ST2V_X512_FWD(div_ps)
ST2V_X512_FWD(max_ps)
ST2V_X512_FWD(min_ps)
ST2V_X512_FWD(fmadd_ps)
ST2V_X512_FWD(fnmadd_ps)
ST2V_X512_FWD(add_epi32)
ST2V_X512_FWD(set1_epi32)
ST2V_X512_FWD(set_epi32)
ST2V_X512_FWD(castsi512_ps)
ST2V_X512_FWD(castps_si512)
ST2V_X512_FWD(permutexvar_ps)
#undef ST2V_X512_FWD
// immediate operands must stay constant expressions: macros, not forwarding functions
#define st2v_x512_roundscale_ps(a, imm) simde_mm512_roundscale_ps((a), (imm))
#define st2v_x512_slli_epi32(a, imm) simde_mm512_slli_epi32((a), (imm))

namespace st2v_x512_detail {
union F16 {
    simde__m512 v;
    float f[16];
};
union I16 {
    simde__m512i v;
    int32_t i[16];
};
}  // namespace st2v_x512_detail

// dst[i] = mask bit i ? mem[i] : 0 (masked-off lanes are not read)
static inline simde__m512 st2v_x512_maskz_loadu_ps(simde__mmask16 k, const float* p) {
    st2v_x512_detail::F16 r;
    for (int i = 0; i < 16; ++i) r.f[i] = ((k >> i) & 1) ? p[i] : 0.f;
    return r.v;
}
// dst[i] = mask bit i ? mem[i] : src[i]
static inline simde__m512 st2v_x512_mask_loadu_ps(simde__m512 src, simde__mmask16 k, const float* p) {
    st2v_x512_detail::F16 r;
    r.v = src;
    for (int i = 0; i < 16; ++i)
        if ((k >> i) & 1) r.f[i] = p[i];
    return r.v;
}
// mem[i] = a[i] where mask bit i is set; other lanes of memory untouched
static inline void st2v_x512_mask_storeu_ps(float* p, simde__mmask16 k, simde__m512 a) {
    st2v_x512_detail::F16 r;
    r.v = a;
    for (int i = 0; i < 16; ++i)
        if ((k >> i) & 1) p[i] = r.f[i];
}
// float -> int32 with the current rounding mode (round to nearest even by default); out of range -> INT32_MIN
static inline simde__m512i st2v_x512_cvtps_epi32(simde__m512 a) {
    st2v_x512_detail::F16 x;
    st2v_x512_detail::I16 r;
    x.v = a;
    for (int i = 0; i < 16; ++i) {
        const float v = std::nearbyint(x.f[i]);
        r.i[i] = (v >= -2147483648.f && v < 2147483648.f) ? static_cast<int32_t>(v) : INT32_MIN;
    }
    return r.v;
}
// horizontal reduction in GCC's _mm512_reduce_*_ps order: halves 512 -> 256 -> 128 -> 64 -> 32
template <typename Op>
static inline float st2v_x512_reduce(simde__m512 a, Op op) {
    st2v_x512_detail::F16 x;
    x.v = a;
    float t[16];
    for (int i = 0; i < 16; ++i) t[i] = x.f[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; ++i) t[i] = op(t[i], t[i + w]);
    return t[0];
}
static inline float st2v_x512_reduce_add_ps(simde__m512 a) {
    return st2v_x512_reduce(a, [](float x, float y) { return x + y; });
}
static inline float st2v_x512_reduce_max_ps(simde__m512 a) {
    return st2v_x512_reduce(a, [](float x, float y) { return x > y ? x : y; });
}
#endif  // ST2V_SIMD_HAVE_SIMDE
