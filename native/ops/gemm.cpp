// GEMM dispatch. The portable path lives in ops_basic.cpp; SIMD paths are added here.
#include "core/cpu.h"
#include "ops/ops.h"

namespace st2v::ops {

void gemm_portable(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
                   const GemmEpilogue& ep);

void gemm(int64_t M, int64_t N, int64_t K, const MatRef& A, const MatRef& B, float* C, int64_t ldc,
          const GemmEpilogue& ep) {
    ST2V_CHECK_ARG(M >= 0 && N >= 0 && K >= 0, "gemm: negative size");
    ST2V_CHECK_ARG(C != nullptr || M * N == 0, "gemm: null output");
    if (M == 0 || N == 0) return;
    gemm_portable(M, N, K, A, B, C, ldc, ep);
}

}  // namespace st2v::ops
