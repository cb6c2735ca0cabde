#include "core/cpu.h"

#include <cpuid.h>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace st2v {

namespace {
uint64_t xgetbv0() {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
    CpuFeatures f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    bool osxsave = (c >> 27) & 1;
    bool avx = (c >> 28) & 1;
    bool fma = (c >> 12) & 1;
    bool f16c = (c >> 29) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm_os = (xcr0 & 0x6) == 0x6;
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;
    unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
    __cpuid_count(7, 0, a7, b7, c7, d7);
    unsigned a71 = 0, b71 = 0, c71 = 0, d71 = 0;
    if (a7 >= 1) __cpuid_count(7, 1, a71, b71, c71, d71);
    f.avx2 = avx && ymm_os && ((b7 >> 5) & 1);
    f.fma = fma && ymm_os;
    f.f16c = f16c && ymm_os;
    f.avx512f = zmm_os && ((b7 >> 16) & 1);
    f.avx512dq = zmm_os && ((b7 >> 17) & 1);
    f.avx512bw = zmm_os && ((b7 >> 30) & 1);
    f.avx512vl = zmm_os && ((b7 >> 31) & 1);
    f.avx512vnni = zmm_os && ((c7 >> 11) & 1);
    f.avx512bf16 = zmm_os && ((a71 >> 5) & 1);
    char brand[49] = {};
    unsigned maxext = __get_cpuid_max(0x80000000, nullptr);
    if (maxext >= 0x80000004) {
        for (unsigned i = 0; i < 3; ++i) {
            unsigned r[4];
            __cpuid(0x80000002 + i, r[0], r[1], r[2], r[3]);
            std::memcpy(brand + 16 * i, r, 16);
        }
    }
    f.brand = brand;
    while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
    return f;
}

std::atomic<int> g_override{-1};
}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

Isa max_supported_isa() {
    const CpuFeatures& f = cpu_features();
    if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.f16c) return Isa::kAvx512;
    if (f.avx2 && f.fma && f.f16c) return Isa::kAvx2;
    return Isa::kPortable;
}

Isa active_isa() {
    int o = g_override.load();
    if (o < 0) {
        const char* env = std::getenv("ST2V_ISA");
        int want = 99;
        if (env) {
            if (!std::strcmp(env, "portable")) want = 0;
            else if (!std::strcmp(env, "avx2")) want = 1;
            else if (!std::strcmp(env, "avx512")) want = 2;
        }
        int mx = static_cast<int>(max_supported_isa());
        o = want < mx ? want : mx;
        g_override.store(o);
    }
    return static_cast<Isa>(o);
}

bool set_isa(Isa isa) {
    if (static_cast<int>(isa) > static_cast<int>(max_supported_isa())) return false;
    g_override.store(static_cast<int>(isa));
    return true;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::kPortable: return "portable";
        case Isa::kAvx2: return "avx2";
        case Isa::kAvx512: return "avx512";
    }
    return "?";
}

}  // namespace st2v
