// Run-time CPU feature detection and kernel-level selection.
//
// Kernels are compiled for several ISA levels in one binary (per-function target attributes; the
// build never uses -march=native) and the widest level the CPU supports is chosen at run time.
// ST2V_ISA=portable|avx2|avx512 (or set_isa()) lowers the level, e.g. to test every path on one machine.
#pragma once
#include <string>

namespace st2v {

enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
    bool avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512bf16 = false, avx512vnni = false;
    std::string brand;
};

const CpuFeatures& cpu_features();
Isa max_supported_isa();
Isa active_isa();            // min(max_supported, ST2V_ISA / set_isa override)
bool set_isa(Isa isa);       // false if unsupported on this CPU (level unchanged)
const char* isa_name(Isa isa);

}  // namespace st2v
