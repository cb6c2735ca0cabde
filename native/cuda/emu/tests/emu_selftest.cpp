// Self-test of the CPU emulation of CUDA (native/cuda/emu): that it runs correct kernels correctly (thread and
// block numbering, __syncthreads, shuffles, votes, dynamic shared memory, the half/bf16 conversions, cuBLASLt
// semantics) and that it fails loudly on the misuse it claims to catch (barrier and warp deadlocks, launch
// limits, dynamic shared memory, host pointers passed to kernels, copy directions, cuBLASLt shape errors).
// One JSON line per case, then {"summary": true, "passed": N, "failed": N}; exit code 1 when a case fails.
// Built only with ST2V_CUDA_EMU (CMake), as C++ against native/cuda/emu/include.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "cuda/launch.h"

namespace {

int g_pass = 0, g_fail = 0;

void result(const char* name, bool ok, const std::string& detail = "") {
    (ok ? g_pass : g_fail)++;
    std::string d;
    for (char c : detail) d += (c == '"' || c == '\\') ? '\'' : c;
    std::printf("{\"emu_case\": \"%s\", \"pass\": %s%s%s%s}\n", name, ok ? "true" : "false",
            d.empty() ? "" : ", \"detail\": \"",
                d.c_str(), d.empty() ? "" : "\"");
    std::fflush(stdout);
}

template <class T>
T* dev(size_t n) {
    void* p = nullptr;
    cudaMalloc(&p, n * sizeof(T));
    return static_cast<T*>(p);
}

// Expects the launch just made to have failed with `code` and a message containing `needle`.
void expect_failure(const char* name, cudaError_t code, const char* needle) {
    const cudaError_t e = cudaGetLastError();
    const std::string msg = cudaGetErrorString(e);
    result(name, e == code && msg.find(needle) != std::string::npos,
           std::string(cudaGetErrorName(e)) + ": " + msg.substr(0, 300));
}

// ---- kernels ----
__global__ void ids_kernel(unsigned* out) {
    const unsigned bt = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    out[b * (blockDim.x * blockDim.y * blockDim.z) + bt] = b * 100000u + bt;
}

// Tree reduction in static shared memory (needs every __syncthreads).
__global__ void block_sum_kernel(const float* x, float* out, int n) {
    __shared__ float s[256];
    float v = 0.f;
    for (int i = blockIdx.x * 256 + threadIdx.x; i < n; i += gridDim.x * 256) v += x[i];
    s[threadIdx.x] = v;
    __syncthreads();
    for (int w = 128; w > 0; w >>= 1) {
        if (static_cast<int>(threadIdx.x) < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

__global__ void shuffle_kernel(int* out) {
    const int lane = threadIdx.x & 31, t = threadIdx.x;
    int v = lane;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);  // 496 everywhere
    out[t * 6 + 0] = v;
    int d = lane;
    for (int o = 16; o > 0; o >>= 1) d += __shfl_down_sync(0xffffffffu, d, o);  // lane 0: 496
    out[t * 6 + 1] = d;
    int p = 1;
    for (int o = 1; o < 32; o <<= 1) {
        const int u = __shfl_up_sync(0xffffffffu, p, o);
        if (lane >= o) p += u;
    }
    out[t * 6 + 2] = p;  // inclusive scan of ones: lane + 1
    out[t * 6 + 3] = __shfl_sync(0xffffffffu, lane * 10, 3, 16);  // width 16: lane 3 of each half
    out[t * 6 + 4] = static_cast<int>(__ballot_sync(0xffffffffu, lane % 3 == 0));
    out[t * 6 + 5] = __shfl_sync(0xffffffffu, 1.5 * lane, 31) == 46.5 ? 1 : 0;  // doubles travel whole
}

// Reads a neighbour's shared-memory element with no __syncthreads after the writes: a race.
__global__ void missing_barrier_kernel(int* out, int up) {
    __shared__ int s[64];
    s[threadIdx.x] = static_cast<int>(threadIdx.x) + 1;
    const int nb = up ? (threadIdx.x + 1) % 64 : (threadIdx.x + 63) % 64;
    out[blockIdx.x * 64 + threadIdx.x] = s[nb];
}

__global__ void early_exit_barrier_kernel(float* y) {
    if (threadIdx.x < 16) return;
    __syncthreads();
    y[threadIdx.x] = 1.f;
}

__global__ void divergent_shuffle_kernel(float* y) {
    float v = 1.f;
    if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    y[threadIdx.x] = v;
}

__global__ void partial_warp_shuffle_kernel(float* y) {
    y[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

__global__ void dyn_smem_kernel(float* y, int n_write) {
    ST2V_DYNAMIC_SMEM(float, smem);
    if (threadIdx.x == 0)
        for (int i = 0; i < n_write; ++i) smem[i] = static_cast<float>(i);
    __syncthreads();
    y[threadIdx.x] = smem[threadIdx.x];
}

__global__ void nop_kernel(float* y) {
    if (y) y[0] = 0.f;
}

// ---- cuBLASLt: D = epi(alpha op(A) op(B) + beta C + bias) against a double loop ----
struct LtCase {
    int ta, tb;
    int m, n, k;
    int lda_pad, ldb_pad, ldc_pad;
    cudaDataType_t ab;
    float beta;
    cublasLtEpilogue_t epi;
};

float to_type(float v, cudaDataType_t t) {
    if (t == CUDA_R_16F) return st2v::f16_to_f32(st2v::f32_to_f16(v));
    if (t == CUDA_R_16BF) return st2v::bf16_to_f32(st2v::f32_to_bf16(v));
    return v;
}

void lt_case(cublasLtHandle_t h, const LtCase& c, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    const int a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k, b_rows = c.tb ? c.n : c.k,
            b_cols = c.tb ? c.k : c.n;
    const int lda = a_rows + c.lda_pad, ldb = b_rows + c.ldb_pad, ldc = c.m + c.ldc_pad;
    const size_t es = c.ab == CUDA_R_32F ? 4 : 2;
    std::vector<float> A(size_t(lda) * a_cols), B(size_t(ldb) * b_cols), C(size_t(ldc) * c.n), bias(c.m);
    for (float& v : A) v = to_type(nd(rng), c.ab);
    for (float& v : B) v = to_type(nd(rng), c.ab);
    for (float& v : C) v = nd(rng);
    for (float& v : bias) v = nd(rng);
    auto pack = [&](const std::vector<float>& v) {
        std::vector<uint16_t> h(v.size());
        for (size_t i = 0; i < v.size(); ++i)
            h[i] = c.ab == CUDA_R_16F ? st2v::f32_to_f16(v[i]) : st2v::f32_to_bf16(v[i]);
        return h;
    };
    void *dA = dev<char>(A.size() * es), *dB = dev<char>(B.size() * es);
    float *dC = dev<float>(C.size()), *dbias = dev<float>(c.m);
    if (es == 4) {
        cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
        cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
    } else {
        auto ha = pack(A), hb = pack(B);
        cudaMemcpy(dA, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice);
        cudaMemcpy(dB, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice);
    }
    cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dbias, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const cublasOperation_t oa = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &oa, sizeof oa);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &ob, sizeof ob);
    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &c.epi, sizeof c.epi);
    const void* bp = dbias;
    if (c.epi & CUBLASLT_EPILOGUE_BIAS) cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp,
            sizeof bp);
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, c.ab, a_rows, a_cols, lda);
    cublasLtMatrixLayoutCreate(&lb, c.ab, b_rows, b_cols, ldb);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, c.m, c.n, ldc);
    const float alpha = 0.75f;
    const cublasStatus_t st =
        cublasLtMatmul(h, op, &alpha, dA, la, dB, lb, &c.beta, dC, lc, dC, lc, nullptr, nullptr, 0, nullptr);
    std::vector<float> got(C.size());
    cudaMemcpy(got.data(), dC, got.size() * 4, cudaMemcpyDeviceToHost);
    double worst = 0;
    bool pad_intact = true;
    for (int j = 0; j < c.n; ++j) {
        for (int i = 0; i < c.m; ++i) {
            double s = 0;
            for (int p = 0; p < c.k; ++p) {
                const double a = c.ta ? A[p + size_t(i) * lda] : A[i + size_t(p) * lda];
                const double b = c.tb ? B[j + size_t(p) * ldb] : B[p + size_t(j) * ldb];
                s += a * b;
            }
            double v = alpha * s + c.beta * C[i + size_t(j) * ldc];
            if (c.epi & CUBLASLT_EPILOGUE_BIAS) v += bias[i];
            if ((c.epi & ~CUBLASLT_EPILOGUE_BIAS) == CUBLASLT_EPILOGUE_RELU) v = v > 0 ? v : 0;
            if ((c.epi & ~CUBLASLT_EPILOGUE_BIAS) == CUBLASLT_EPILOGUE_GELU)
                v = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            worst = std::max(worst, std::fabs(v - got[i + size_t(j) * ldc]) / std::max(1.0, std::fabs(v)));
        }
        for (int i = c.m; i < ldc; ++i) pad_intact = pad_intact && got[i + size_t(j) * ldc] == C[i + size_t(j) * ldc];
    }
    char name[160], detail[160];
    std::snprintf(name, sizeof name, "cublaslt_%s%s_%dx%dx%d_ld+%d+%d+%d_%s_beta%g_epi%d", c.ta ? "T" : "N",
                  c.tb ? "T" : "N", c.m, c.n, c.k, c.lda_pad, c.ldb_pad, c.ldc_pad,
                  c.ab == CUDA_R_32F ? "f32" : c.ab == CUDA_R_16F ? "f16" : "bf16", c.beta, int(c.epi));
    std::snprintf(detail, sizeof detail, "status %d, worst rel err %.3e, ld padding untouched %s", int(st), worst,
                  pad_intact ? "yes" : "no");
    result(name, st == CUBLAS_STATUS_SUCCESS && worst < 1e-5 && pad_intact, detail);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
    cudaFree(dA), cudaFree(dB), cudaFree(dC), cudaFree(dbias);
}

void lt_errors(cublasLtHandle_t h) {
    float* d = dev<float>(64);
    cublasLtMatmulDesc_t op;
    cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayout_t a, b, b3, c, small_ld, big;
    cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, 4, 3, 4);
    cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, 2, 4, 2);  // op(B) is 2x4: k mismatch with op(A) 4x3
    cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, 4, 4, 4);
    cublasLtMatrixLayoutCreate(&b3, CUDA_R_32F, 3, 4, 3);
    cublasLtMatrixLayoutCreate(&small_ld, CUDA_R_32F, 4, 3, 3);
    cublasLtMatrixLayoutCreate(&big, CUDA_R_32F, 3, 40, 3);  // 480 bytes > the 256-byte allocation
    const float one = 1.f, zero = 0.f;
    result("cublaslt_rejects_k_mismatch",
           cublasLtMatmul(h, op, &one, d, a, d, b, &zero, d, c, d, c, nullptr, nullptr, 0, nullptr) ==
               CUBLAS_STATUS_INVALID_VALUE);
    result("cublaslt_rejects_ld_below_rows",
           cublasLtMatmul(h, op, &one, d, small_ld, d, b3, &zero, d, c, d, c, nullptr, nullptr, 0, nullptr) !=
               CUBLAS_STATUS_SUCCESS);
    float* e = dev<float>(64);
    cublasLtMatrixLayout_t d4;
    cublasLtMatrixLayoutCreate(&d4, CUDA_R_32F, 4, 40, 4);
    result("cublaslt_rejects_matrix_past_its_allocation",
           cublasLtMatmul(h, op, &one, d, a, e, big, &zero, nullptr, d4, e, d4, nullptr, nullptr, 0, nullptr) ==
               CUBLAS_STATUS_INVALID_VALUE);
    for (auto* l : {a, b, b3, c, small_ld, big, d4}) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(op);
    cudaFree(d), cudaFree(e);
}

}  // namespace

int main() {
    std::mt19937 rng(7);
    // thread / block numbering in 3-D
    {
        const dim3 grid(3, 2, 2), block(8, 4, 3);
        const unsigned n = 12 * 96;
        unsigned* d = dev<unsigned>(n);
        ST2V_LAUNCH(ids_kernel, grid, block, 0, nullptr, d);
        std::vector<unsigned> h(n);
        cudaMemcpy(h.data(), d, n * 4, cudaMemcpyDeviceToHost);
        bool ok = cudaGetLastError() == cudaSuccess;
        for (unsigned b = 0; b < 12; ++b)
            for (unsigned t = 0; t < 96; ++t) ok = ok && h[b * 96 + t] == b * 100000u + t;
        result("thread_and_block_indices_3d", ok);
        cudaFree(d);
    }
    // shared memory + __syncthreads: tree reduction
    {
        const int n = 100003, blocks = 7;
        std::vector<float> x(n);
        for (float& v : x) v = std::uniform_real_distribution<float>(-1, 1)(rng);
        float *dx = dev<float>(n), *dy = dev<float>(blocks);
        cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice);
        ST2V_LAUNCH(block_sum_kernel, blocks, 256, 0, nullptr, dx, dy, n);
        std::vector<float> y(blocks);
        cudaMemcpy(y.data(), dy, blocks * 4, cudaMemcpyDeviceToHost);
        double got = 0, want = 0;
        for (float v : y) got += v;
        for (float v : x) want += v;
        result("shared_memory_tree_reduction", cudaGetLastError() == cudaSuccess && std::fabs(got - want) < 1e-2,
               "sum " + std::to_string(got) + " vs " + std::to_string(want));
        cudaFree(dx), cudaFree(dy);
    }
    // warp shuffles and votes
    {
        int* d = dev<int>(64 * 6);
        ST2V_LAUNCH(shuffle_kernel, 1, 64, 0, nullptr, d);
        std::vector<int> h(64 * 6);
        cudaMemcpy(h.data(), d, h.size() * 4, cudaMemcpyDeviceToHost);
        bool ok = cudaGetLastError() == cudaSuccess;
        unsigned ballot = 0;
        for (int l = 0; l < 32; ++l)
            if (l % 3 == 0) ballot |= 1u << l;
        for (int t = 0; t < 64; ++t) {
            const int lane = t & 31;
            ok = ok && h[t * 6 + 0] == 496 && h[t * 6 + 2] == lane + 1 && h[t * 6 + 3] == ((lane & 16) + 3) * 10 &&
                 unsigned(h[t * 6 + 4]) == ballot && h[t * 6 + 5] == 1;
            if (lane == 0) ok = ok && h[t * 6 + 1] == 496;
        }
        result("warp_shuffles_xor_down_up_width_ballot", ok);
        cudaFree(d);
    }
    // a missing barrier gives a wrong result in at least one block, whichever way the data flows
    for (int up = 0; up < 2; ++up) {
        int* d = dev<int>(2 * 64);
        ST2V_LAUNCH(missing_barrier_kernel, 2, 64, 0, nullptr, d, up);
        std::vector<int> h(128);
        cudaMemcpy(h.data(), d, h.size() * 4, cudaMemcpyDeviceToHost);
        int wrong = 0;
        for (int b = 0; b < 2; ++b)
            for (int t = 0; t < 64; ++t) wrong += h[b * 64 + t] != (up ? (t + 1) % 64 : (t + 63) % 64) + 1;
        result(up ? "missing_barrier_shows_reading_up" : "missing_barrier_shows_reading_down", wrong > 0,
               std::to_string(wrong) + " of 128 outputs wrong");
        cudaFree(d);
    }
    // misuse that must fail loudly
    std::fprintf(stderr, "cuda_emu_selftest: the [cuda_emu] messages that follow are the expected reports of the "
                         "misuse cases\n");
    float* y = dev<float>(2048);
    ST2V_LAUNCH(early_exit_barrier_kernel, 1, 64, 0, nullptr, y);
    expect_failure("detects_syncthreads_after_early_return", cudaErrorLaunchFailure, "__syncthreads deadlock");
    ST2V_LAUNCH(divergent_shuffle_kernel, 1, 32, 0, nullptr, y);
    expect_failure("detects_divergent_full_mask_shuffle", cudaErrorLaunchFailure, "warp op deadlock");
    ST2V_LAUNCH(partial_warp_shuffle_kernel, 1, 48, 0, nullptr, y);
    expect_failure("detects_full_mask_in_partial_warp", cudaErrorLaunchFailure, "does not exist");
    ST2V_LAUNCH(nop_kernel, 1, 1025, 0, nullptr, y);
    expect_failure("rejects_block_of_1025_threads", cudaErrorInvalidConfiguration, "exceeds the limits");
    ST2V_LAUNCH(nop_kernel, dim3(1, 70000), 32, 0, nullptr, y);
    expect_failure("rejects_grid_y_above_65535", cudaErrorInvalidConfiguration, "exceeds the limits");
    ST2V_LAUNCH(dyn_smem_kernel, 1, 32, 64 << 10, nullptr, y, 32);
    expect_failure("rejects_64k_dynamic_smem_without_attribute", cudaErrorInvalidValue, "cudaFuncSetAttribute");
    cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 << 10);
    ST2V_LAUNCH(dyn_smem_kernel, 1, 32, 64 << 10, nullptr, y, 32);
    result("allows_64k_dynamic_smem_after_attribute", cudaGetLastError() == cudaSuccess);
#if defined(__SANITIZE_ADDRESS__)
    std::printf("{\"emu_case\": \"detects_write_past_dynamic_smem\", \"skipped\": \"ASan build: AddressSanitizer "
                "itself reports this access (exact-size allocation)\"}\n");
#else
    ST2V_LAUNCH(dyn_smem_kernel, 1, 32, 32 * sizeof(float), nullptr, y, 40);
    expect_failure("detects_write_past_dynamic_smem", cudaErrorLaunchFailure, "past its dynamic shared memory");
#endif
    {
        std::vector<float> host(16);
        ST2V_LAUNCH(nop_kernel, 1, 32, 0, nullptr, host.data());
        expect_failure("detects_host_pointer_kernel_argument", cudaErrorLaunchFailure, "not inside any cudaMalloc");
        const cudaError_t e = cudaMemcpy(host.data(), host.data() + 8, 16, cudaMemcpyDeviceToHost);
        cudaGetLastError();
        result("detects_memcpy_direction_mismatch", e == cudaErrorInvalidValue);
    }
    cudaFree(y);
    // conversions: every f16 pattern round-trips, random and special floats round like core/half.h
    {
        bool ok = true;
        for (uint32_t b = 0; b < 65536; ++b) {
            const float f = __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
            const float r = st2v::f16_to_f32(static_cast<uint16_t>(b));
            ok = ok && (std::isnan(f) ? std::isnan(r) : std::memcmp(&f, &r, 4) == 0);
            if (!std::isnan(f)) ok = ok && __half_as_ushort(__float2half_rn(f)) == b;
        }
        std::vector<float> xs = {0.f, -0.f, 65504.f, 65519.99f, 65520.f, 1e-8f, 2.98e-8f, 5.96e-8f, 6.1e-5f,
                                 INFINITY, -INFINITY, 3.3895314e38f, 1.0009765625f, 1.00048828125f};
        std::uniform_int_distribution<uint32_t> bits;
        for (int i = 0; i < 200000; ++i) {
            const uint32_t u = bits(rng);
            float f;
            std::memcpy(&f, &u, 4);
            if (!std::isnan(f)) xs.push_back(f);
        }
        int bad_h = 0, bad_b = 0;
        for (float f : xs) {
            bad_h += __half_as_ushort(__float2half_rn(f)) != st2v::f32_to_f16(f);
            bad_b += __bfloat16_as_ushort(__float2bfloat16_rn(f)) != st2v::f32_to_bf16(f);
        }
        result("f16_bf16_conversions_match_core_half", ok && bad_h == 0 && bad_b == 0,
               std::to_string(xs.size()) + " floats: " + std::to_string(bad_h) + " f16 and " + std::to_string(bad_b) +
                   " bf16 differences");
    }
    // cuBLASLt semantics
    {
        cublasLtHandle_t h;
        cublasLtCreate(&h);
        const LtCase cases[] = {
            {0, 0, 13, 7, 5, 0, 0, 0, CUDA_R_32F, 0.f, CUBLASLT_EPILOGUE_DEFAULT},
            {1, 0, 13, 7, 5, 3, 0, 2, CUDA_R_32F, 1.f, CUBLASLT_EPILOGUE_BIAS},
            {0, 1, 9, 11, 17, 1, 4, 0, CUDA_R_16BF, 0.f, CUBLASLT_EPILOGUE_BIAS},
            {1, 1, 9, 11, 17, 0, 2, 5, CUDA_R_16F, 0.5f, CUBLASLT_EPILOGUE_RELU_BIAS},
            {1, 0, 33, 20, 40, 0, 0, 0, CUDA_R_32F, 0.f, CUBLASLT_EPILOGUE_GELU},
        };
        for (const LtCase& c : cases) lt_case(h, c, rng);
        lt_errors(h);
        cublasLtDestroy(h);
    }
    std::printf("{\"summary\": true, \"passed\": %d, \"failed\": %d}\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
