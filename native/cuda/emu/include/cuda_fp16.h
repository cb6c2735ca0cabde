// ST2V_CUDA_EMU shim of <cuda_fp16.h>: __half as IEEE binary16 bits with the conversions the kernels use,
// round to nearest even (NaN stays NaN, overflow -> inf, subnormals kept), written independently of
// core/half.h so that the cast check compares two implementations.
#pragma once
#include <stdint.h>
#include <string.h>

#include "cuda/emu/emu.h"

struct __half_raw { unsigned short x; };

namespace st2v::cuda_emu {
inline unsigned short f32_to_f16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<unsigned short>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
    if (a >= 0x47800000u) return static_cast<unsigned short>(sign | 0x7c00u);  // >= 65536 (and inf): inf
    const int e = static_cast<int>(a >> 23) - 127;
    if (e >= -14) {  // normal f16 range: round the 23-bit mantissa to 10 bits (may carry into the exponent)
        uint32_t m = a & 0x7fffffu, h = (static_cast<uint32_t>(e + 15) << 10) | (m >> 13);
        const uint32_t rest = m & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // 65520 and above round to inf here
        return static_cast<unsigned short>(sign | h);
    }
    if (e < -25) return static_cast<unsigned short>(sign);  // below half the smallest subnormal
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;        // subnormal: value = m * 2^(e-23), unit 2^-24
    const int shift = -e - 1;                              // 14 .. 24 bits dropped (m >> (shift) = m*2^(e+1))
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (h & 1u))) ++h;
    return static_cast<unsigned short>(sign | h);
}
inline float f16_bits_to_f32(unsigned short h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t u;
    if (e == 31) u = sign | 0x7f800000u | (m << 13);
    else if (e != 0) u = sign | ((e + 112u) << 23) | (m << 13);
    else {
        const float v = static_cast<float>(m) * 5.9604644775390625e-08f;  // m * 2^-24, exact
        memcpy(&u, &v, 4);
        u |= sign;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}
}  // namespace st2v::cuda_emu

struct __half {
    unsigned short __x;
    __half() = default;
    __half(__half_raw r) : __x(r.x) {}
    __half(float f) : __x(::st2v::cuda_emu::f32_to_f16_bits(f)) {}
    __half(double f) : __x(::st2v::cuda_emu::f32_to_f16_bits(static_cast<float>(f))) {}
    operator float() const { return ::st2v::cuda_emu::f16_bits_to_f32(__x); }
    operator __half_raw() const { return __half_raw{__x}; }
};
static_assert(sizeof(__half) == 2, "__half is 2 bytes");
struct __attribute__((aligned(4))) __half2 { __half x, y; };
typedef __half half;
typedef __half2 half2;

inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return static_cast<float>(h); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float2half2_rn(float a) { return __half2{__half(a), __half(a)}; }
inline float2 __half22float2(__half2 h) { return float2{static_cast<float>(h.x), static_cast<float>(h.y)}; }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline float __low2float(__half2 h) { return static_cast<float>(h.x); }
inline float __high2float(__half2 h) { return static_cast<float>(h.y); }
inline __half __hadd(__half a, __half b) { return __half(float(a) + float(b)); }
inline __half __hmul(__half a, __half b) { return __half(float(a) * float(b)); }
inline __half __hfma(__half a, __half b, __half c) { return __half(fmaf(float(a), float(b), float(c))); }
