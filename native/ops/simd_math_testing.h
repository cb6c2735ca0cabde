// Test and bench hooks of ops/norm_attn_elementwise.cpp (not part of the ops API).
//
// The AVX-512 kernels cannot run on CPUs without AVX-512 (the Zen 3 development machines). Their code is the
// generic code of ops/simd_math_kernels.h / simd_math_attention.h compiled for W = 16 lanes and MR = 8 rows;
// with this hook on, and the active ISA AVX2, the norm/attention/elementwise ops use that same generic code
// compiled for W = 16 / MR = 8 (ST2V_SIMD_LEVEL 3), so the tests check the AVX-512 geometry (16-lane tails,
// 32-key strips, 8-row panels) on any AVX2 machine: with SIMDe at build time through the AVX-512 primitive
// wrappers of ops/simd_math.h themselves (SIMDe's portable _mm512_* implementations), else on pairs of AVX2
// vectors.
#pragma once
#include <cstdint>

namespace st2v::ops::detail {

// Process-wide; for tests only (slow: 32 ymm accumulators spill). Returns the previous setting.
bool set_emulated_wide_kernels(bool on);
// What the emulated level runs: "AVX-512 wrappers over SIMDe" when the build found SIMDe (libsimde-dev), so the
// AVX-512 primitive wrappers of ops/simd_math.h themselves run on AVX2 CPUs; else "AVX2 pairs ..." (geometry only).
const char* emulated_wide_kind();

// The short attention kernel (Lq <= 2W queries in the vector lanes, Lk <= 32 keys read in place: the temporal
// attention; simd_math_attention.h): on (the default) where it applies, off = every shape through the tiled
// kernel. ST2V_ATTN_SHORT=off (or 0) sets the starting mode. Process-wide; returns the previous setting.
bool set_attention_short(bool on);
// Whether attention(q, k, v) with these lengths takes the short kernel at the active ISA level now.
bool attention_short_applies(int64_t Lq, int64_t Lk);

}  // namespace st2v::ops::detail
