// Internal to libstreamingt2v_cuda: the one CUDA context of the library (device, stream, cuBLASLt handle,
// scratch), error reporting through a per-thread message, and the kernel launchers of kernels.cu.
#pragma once
#include <cuda_runtime.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <string>

#include "backend/backend_abi.h"

namespace st2v::cuda {

// Per-thread last error (returned by the ABI's last_error()).
st2v_status fail(st2v_status s, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
const char* last_error();
// Maps a CUDA runtime error to a status (no driver/device -> NO_CUDA, sticky -> FATAL, allocation -> OOM).
st2v_status from_cuda(cudaError_t e, const char* what);
#define ST2V_CU(call)                                                        \
    do {                                                                     \
        cudaError_t e_ = (call);                                             \
        if (e_ != cudaSuccess) return ::st2v::cuda::from_cuda(e_, #call);    \
    } while (0)
#define ST2V_CU_LAUNCHED(what)                                               \
    do {                                                                     \
        cudaError_t e_ = cudaGetLastError();                                 \
        if (e_ != cudaSuccess) return ::st2v::cuda::from_cuda(e_, what);     \
    } while (0)

struct Context {
    bool ready = false;
    int device = -1;
    cudaStream_t stream = nullptr;
    cudaDeviceProp prop{};
    void* workspace = nullptr;  // cuBLASLt workspace
    size_t workspace_bytes = 0;
    void* scratch = nullptr;    // small per-call tables (blend chunk pointers ...)
    size_t scratch_bytes = 0;
    // Stream-ordered allocation (cudaMallocAsync / cudaFreeAsync on `stream`, the device's default memory pool
    // keeping what is freed): a free needs no synchronisation; when the last buffer is freed (every model
    // released) the pool is trimmed, so an idle process holds no device memory of ours. Off when the device has no memory pools or
    // ST2V_CUDA_ALLOC=sync: then cudaMalloc, and cudaFree after a stream synchronisation.
    bool async_alloc = false;
    cudaMemPool_t pool = nullptr;  // the default pool when async_alloc
    int64_t live_allocs = 0;       // api_alloc'ed buffers not yet freed: at 0 the pool gives its memory back
};
Context& ctx();
// Fails with NO_CUDA unless init() succeeded.
st2v_status require_ready();
// Grows the scratch buffer (synchronises the stream when it reallocates).
st2v_status scratch(size_t bytes, void** out);

// cuBLASLt (cublaslt.cpp): loaded with dlopen; load_cublaslt fills the version/path or the reason it is missing.
st2v_status load_cublaslt(std::string* why);
size_t cublaslt_version();
const char* cublaslt_path();
st2v_status gemm(const st2v_gemm_args* a);
// batch GEMMs of one shape: matrix i of A / B / C starts stride_a / stride_b / stride_c elements after matrix i - 1
// (0: the same matrix for every i). batch > 1 takes no bias, activation or K = 0. batch 1 is gemm().
st2v_status gemm_strided_batched(const st2v_gemm_args* a, int batch, int64_t stride_a, int64_t stride_b,
                                 int64_t stride_c);

// ---- kernels.cu launchers (all on ctx().stream, fp32) ----
st2v_status k_silu(const float* x, float* y, int64_t n);
st2v_status k_gelu(const float* x, float* y, int64_t n);
st2v_status k_geglu(const float* x, float* y, int64_t rows, int64_t C);
st2v_status k_axpby(const float* x, float a, const float* y2, float b, float* out, int64_t n);
st2v_status k_bias_act(float* c, int64_t ldc, int64_t M, int64_t N, const float* bias, int act);
st2v_status k_group_norm(const float* x, float* y, int64_t NF, int64_t C, int64_t S, int frames, int groups,
                         const float* gamma, const float* beta, float eps, int silu);
st2v_status k_layer_norm(const float* x, float* y, int64_t rows, int64_t C, const float* gamma, const float* beta,
                         float eps);
st2v_status k_timestep_embedding(const float* t, int64_t n, const float* freq, int half, int flip, float* out);
st2v_status k_cfg_combine(const float* u, const float* c, float scale, float* out, int64_t n);
st2v_status k_ddim_step(const float* x, const float* eps, const float* noise, const float* coefs5, float* out,
                        int64_t n);
st2v_status k_dpmpp_2m_step(const float* x, const float* eps, const float* prev_x0, const float* coefs5, float* x0,
                            float* out, int64_t n);
st2v_status k_blend_merge(const float* const* chunk_ptrs, int64_t n_chunks, int64_t B, int64_t Ch, int64_t L,
                          int64_t HW, int64_t chunk, int64_t overlap, const int64_t* r, float* out);
st2v_status k_attention(const st2v_attention_args* a);
st2v_status k_cast(const void* src, int src_type, void* dst, int dst_type, int64_t n);

}  // namespace st2v::cuda
