// ST2V_CUDA_EMU shim of <cuda_bf16.h>: __nv_bfloat16 as the upper 16 bits of a float, converted with round to
// nearest even (NaN stays a quiet NaN), written independently of core/half.h.
#pragma once
#include <stdint.h>
#include <string.h>

#include "cuda/emu/emu.h"

struct __nv_bfloat16_raw { unsigned short x; };

namespace st2v::cuda_emu {
inline unsigned short f32_to_bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return static_cast<unsigned short>((u >> 16) | 0x40u);
    const uint32_t lower = u & 0xffffu, upper = u >> 16;
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) return static_cast<unsigned short>(upper + 1u);
    return static_cast<unsigned short>(upper);
}
inline float bf16_bits_to_f32(unsigned short h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
}  // namespace st2v::cuda_emu

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(__nv_bfloat16_raw r) : __x(r.x) {}
    __nv_bfloat16(float f) : __x(::st2v::cuda_emu::f32_to_bf16_bits(f)) {}
    __nv_bfloat16(double f) : __x(::st2v::cuda_emu::f32_to_bf16_bits(static_cast<float>(f))) {}
    operator float() const { return ::st2v::cuda_emu::bf16_bits_to_f32(__x); }
    operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
};
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 is 2 bytes");
struct __attribute__((aligned(4))) __nv_bfloat162 { __nv_bfloat16 x, y; };

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return static_cast<float>(h); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return __nv_bfloat162{__nv_bfloat16(a),
        __nv_bfloat16(b)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{static_cast<float>(h.x), static_cast<float>(h.y)}; }
