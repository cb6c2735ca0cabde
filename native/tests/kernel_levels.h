// Shared by the kernel tests (test_attn_norm.cpp, test_gemm_conv.cpp): the kernel levels to run every check
// on, and seeded uniform test data.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/cpu.h"

namespace st2v::testing_util {

// A kernel level under test: an ISA the CPU has, or (emu) the AVX-512 geometry emulated on AVX2 (what exactly is
// emulated is the test file's business: it flips its module's emulation switch when `emu` is set).
struct Level {
    Isa isa;
    bool emu;
};

// Every ISA up to the widest this CPU has, then the AVX-512 emulation when AVX2 is present.
inline std::vector<Level> kernel_levels() {
    std::vector<Level> v;
    for (Isa i : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512})
        if (static_cast<int>(i) <= static_cast<int>(max_supported_isa())) v.push_back({i, false});
    if (static_cast<int>(max_supported_isa()) >= static_cast<int>(Isa::kAvx2)) v.push_back({Isa::kAvx2, true});
    return v;
}

// n values uniform in [lo, hi) from mt19937(seed).
inline std::vector<float> randv(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

}  // namespace st2v::testing_util
