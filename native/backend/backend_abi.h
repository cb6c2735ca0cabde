// The C ABI between the engine (st2v_core, inside the Node addon or a tool) and a compute backend that lives in
// its own shared library, loaded with dlopen() only when it is asked for (backend 'cuda'). Plain C types only:
// no C++ exceptions, std:: types or allocators cross the boundary, so the two sides may link different C++
// runtimes (the addon links libstdc++ statically).
//
// Every entry point returns an st2v_status (0 = ok). On failure the library keeps a per-thread message that
// last_error() returns (valid until the next call on that thread); the engine side turns it into st2v::Error
// (backend/backend.h). Pointers named d_* are device pointers from alloc(); h_* are host pointers.
// All tensors are contiguous row-major fp32 unless a dtype argument says otherwise. Calls are asynchronous on
// the backend's stream unless they say otherwise; synchronize() waits and reports any asynchronous error.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// 2: + conv2d, conv_temporal, copy_strided, add_broadcast, upsample_nearest (appended at the end of the table).
#define ST2V_BACKEND_ABI_VERSION 2u

typedef enum st2v_status {
    ST2V_OK = 0,
    ST2V_E_NO_CUDA = 1,      // no driver / no device / a library (cuBLASLt) missing: ERR_NO_CUDA
    ST2V_E_CUDA = 2,         // a CUDA or cuBLASLt call failed: ERR_CUDA
    ST2V_E_CUDA_FATAL = 3,   // sticky device error (illegal address ...): the context is unusable: ERR_CUDA_FATAL
    ST2V_E_INVALID_ARG = 4,  // ERR_INVALID_ARG
    ST2V_E_OUT_OF_MEMORY = 5,
    ST2V_E_UNSUPPORTED = 6,
} st2v_status;

typedef enum st2v_memcpy_kind { ST2V_H2D = 0, ST2V_D2H = 1, ST2V_D2D = 2 } st2v_memcpy_kind;
typedef enum st2v_dtype { ST2V_F32 = 0, ST2V_F16 = 1, ST2V_BF16 = 2 } st2v_dtype;
typedef enum st2v_act { ST2V_ACT_NONE = 0, ST2V_ACT_SILU = 1, ST2V_ACT_GELU = 2 /* exact erf */ } st2v_act;

typedef struct st2v_device_info {
    char name[256];             // e.g. "NVIDIA H100 80GB HBM3"
    int device;                 // ordinal in use
    int device_count;
    int cc_major, cc_minor;     // compute capability
    int sm_count;
    int driver_version;         // cudaDriverGetVersion, e.g. 13000
    int runtime_version;        // cudaRuntimeGetVersion of the (static) runtime linked in
    size_t total_mem, free_mem; // bytes
    size_t cublaslt_version;    // cublasLtGetVersion(), e.g. 130100
    char cublaslt_path[512];    // the file dlopen() found
    char build[128];            // nvcc version and archs the library was built with
} st2v_device_info;

// GEMM: C[M, N] (row-major, leading dimension ldc, fp32) = act(alpha * op(A) op(B) + bias + (accumulate ? C : 0)).
// A is M x K (row-major, lda; trans_a = 1 means A is stored K x M), B is K x N (ldb; trans_b = 1: stored N x K,
// i.e. nn.Linear's weight). a_type/b_type: ST2V_F32 (TF32 off: full fp32), ST2V_F16 or ST2V_BF16 (both operands
// the same 2-byte type, fp32 accumulate). bias (fp32, length N, may be NULL) is added per column.
typedef struct st2v_gemm_args {
    int64_t M, N, K;
    const void* d_a; int64_t lda; int trans_a; int a_type;
    const void* d_b; int64_t ldb; int trans_b; int b_type;
    float* d_c; int64_t ldc;
    const float* d_bias;
    int act;         // st2v_act
    int accumulate;  // C += ...
    float alpha;
} st2v_gemm_args;

// Attention, softmax(Q K^T * scale) V per head, no mask. Q [B, Lq, H*D] with row stride q_rs and batch stride
// q_bs (elements), K [B, Lk, H*D] (k_rs, k_bs), V [B, Lk, H*Dv] (v_rs, v_bs); head h uses columns
// [h*D, (h+1)*D). Output O [B, Lq, H*Dv] contiguous. fp32 in and out, fp32 accumulation, online softmax.
typedef struct st2v_attention_args {
    int64_t B, Lq, Lk; int H, D, Dv;
    const float* d_q; int64_t q_rs, q_bs;
    const float* d_k; int64_t k_rs, k_bs;
    const float* d_v; int64_t v_rs, v_bs;
    float* d_o;
    float scale;
} st2v_attention_args;

// Convolution as an implicit GEMM (ABI 2): y[n, o, oh, ow] = bias[o] + sum_{c, i, j} w[o, c, i, j] *
// x[n, c, oh*stride - pad_top + i, ow*stride - pad_left + j] (zero outside x). x [N, C, H, W] fp32, w [O, C, kh, kw]
// contiguous in w_type (ST2V_F32 / F16 / BF16, widened on load, fp32 accumulate), bias fp32 [O] or NULL,
// y [N, O, Ho, Wo] fp32 (Ho, Wo as the caller computed them from the padding: the bottom/right padding is implied).
typedef struct st2v_conv2d_args {
    int64_t N, C, H, W;
    int64_t O; int kh, kw;
    int stride, pad_top, pad_left;
    int64_t Ho, Wo;
    const float* d_x;
    const void* d_w; int w_type;
    const float* d_bias;
    float* d_y;
} st2v_conv2d_args;

// Temporal convolution (ABI 2): Conv3d kernel (kt, 1, 1), kt odd, zero padding kt/2 in time, on frame-major
// x [B*frames, C, S] fp32: y[b*F + f, o, s] = bias[o] + sum_{c, t} w[o, c, t] * x[b*F + f + t - kt/2, c, s] for
// 0 <= f + t - kt/2 < F. w [O, C, kt] contiguous in w_type (as conv2d), bias fp32 [O] or NULL, y [B*F, O, S].
typedef struct st2v_conv_temporal_args {
    int64_t NF; int frames; int kt;
    int64_t C, S, O;
    const float* d_x;
    const void* d_w; int w_type;
    const float* d_bias;
    float* d_y;
} st2v_conv_temporal_args;

// Most dimensions copy_strided takes.
#define ST2V_MAX_COPY_DIMS 8

typedef struct st2v_backend_api {
    uint32_t abi_version;   // ST2V_BACKEND_ABI_VERSION
    uint32_t struct_size;   // sizeof(st2v_backend_api) of the library
    const char* name;       // "cuda"

    const char* (*last_error)(void);
    // Picks device `device`, creates the stream and the cuBLASLt handle (dlopen'ed). Idempotent.
    st2v_status (*init)(int device);
    st2v_status (*device_info)(st2v_device_info* out);

    st2v_status (*alloc)(void** d_ptr, size_t bytes);
    st2v_status (*free)(void* d_ptr);
    // H2D and D2H are synchronous with respect to the host buffer (it may be reused on return).
    st2v_status (*memcpy)(void* dst, const void* src, size_t bytes, int kind /* st2v_memcpy_kind */);
    st2v_status (*memset0)(void* d_ptr, size_t bytes);
    st2v_status (*synchronize)(void);

    // ---- element-wise ----
    st2v_status (*silu)(const float* d_x, float* d_y, int64_t n);
    st2v_status (*gelu)(const float* d_x, float* d_y, int64_t n);  // exact erf
    // x [rows, 2C] -> y [rows, C] = x[:, :C] * gelu(x[:, C:])
    st2v_status (*geglu)(const float* d_x, float* d_y, int64_t rows, int64_t C);
    // y = a*x + b*y2 (any of the pointers may alias)
    st2v_status (*axpby)(const float* d_x, float a, const float* d_y2, float b, float* d_out, int64_t n);

    // ---- normalisation ----
    // x [B*frames, C, S] frame-major; statistics per (sample, group) over frames x C/groups x S; gamma/beta [C]
    // (fp32, may be NULL); optional fused SiLU. frames = 1: per-frame GroupNorm; frames = F: across frames.
    st2v_status (*group_norm)(const float* d_x, float* d_y, int64_t NF, int64_t C, int64_t S, int frames, int groups,
                              const float* d_gamma, const float* d_beta, float eps, int silu);
    // LayerNorm over the last axis: x [rows, C]; gamma/beta [C] or NULL.
    st2v_status (*layer_norm)(const float* d_x, float* d_y, int64_t rows, int64_t C, const float* d_gamma,
                              const float* d_beta, float eps);

    // ---- embeddings / guidance / samplers ----
    // out [n, 2*half]: angle = t[r] * freq[i]; [cos, sin] when flip else [sin, cos]. freq (device, `half` values)
    // is computed by the caller with the CPU's exp so both backends use the same table.
    st2v_status (*timestep_embedding)(const float* d_t, int64_t n, const float* d_freq, int half, int flip,
                                      float* d_out);
    // out = u + scale * (c - u)
    st2v_status (*cfg_combine)(const float* d_u, const float* d_c, float scale, float* d_out, int64_t n);
    // DDIM step with the coefficients of backend/kernel_math.h (DdimCoefs as 5 floats: sqrt_beta_t, sqrt_a_t,
    // sqrt_a_prev, dir_coef, std_dev); d_noise may be NULL when std_dev == 0.
    st2v_status (*ddim_step)(const float* d_x, const float* d_eps, const float* d_noise, const float* h_coefs5,
                             float* d_out, int64_t n);
    // DPM-Solver++(2M): x0 = (x - sigma*eps)/alpha written to d_x0; out = first order (d_prev_x0 == NULL) or
    // second order update. h_coefs: {sigma, alpha, coef_x, coef_d, inv_r0}.
    st2v_status (*dpmpp_2m_step)(const float* d_x, const float* d_eps, const float* d_prev_x0, const float* h_coefs5,
                                 float* d_x0, float* d_out, int64_t n);
    // Randomized-blending merge (runtime/blend_math.h): video [B, Ch, L, HW] from n_chunks chunks
    // [B, Ch, chunk, HW], the chunk tensors given as an array of device pointers held in host memory.
    st2v_status (*blend_merge)(const float* const* h_chunk_ptrs, int64_t n_chunks, int64_t B, int64_t Ch, int64_t L,
                               int64_t HW, int64_t chunk, int64_t overlap, const int64_t* h_r, float* d_out);

    // ---- GEMM / attention ----
    st2v_status (*gemm)(const st2v_gemm_args* args);
    st2v_status (*attention)(const st2v_attention_args* args);

    // ---- dtype conversion (f32 <-> f16 / bf16, round to nearest even as core/half.h) ----
    st2v_status (*cast)(const void* d_src, int src_type, void* d_dst, int dst_type, int64_t n);

    // ==== ABI 2: the remaining ops of the UNet3D / CAM / APM forward ====
    st2v_status (*conv2d)(const st2v_conv2d_args* args);
    st2v_status (*conv_temporal)(const st2v_conv_temporal_args* args);
    // Element-wise copy of an ndim-d box (ndim <= ST2V_MAX_COPY_DIMS, h_shape[ndim]) between two strided layouts
    // (h_src_strides / h_dst_strides in elements, host arrays; a stride may be 0 on the source side:
    // broadcast). elem_bytes 1, 2, 4 or 8. Source and destination must not overlap. Permute, slice, concat and
    // repeat_interleave are this copy with the right strides and base pointers.
    st2v_status (*copy_strided)(const void* d_src, const int64_t* h_src_strides, void* d_dst,
                                const int64_t* h_dst_strides, const int64_t* h_shape, int ndim, int elem_bytes);
    // a[i] += b[(i / div) % inner] for i < n (fp32): div = 1, inner = b's size is a suffix broadcast (add_);
    // div = S, inner = N*C adds v[N, C] over the trailing S of x [N, C, S] (add_channel_). b may equal a.
    st2v_status (*add_broadcast)(float* d_a, const float* d_b, int64_t n, int64_t div, int64_t inner);
    // Nearest resize x [NC, H, W] -> y [NC, oh, ow] (fp32): row floor(r * (float)H/oh) clamped to H-1 (float
    // arithmetic, as t2v::upsample_nearest), same for columns.
    st2v_status (*upsample_nearest)(const float* d_x, float* d_y, int64_t NC, int64_t H, int64_t W, int64_t oh,
                                    int64_t ow);
} st2v_backend_api;

// The one symbol a backend library exports. Returns NULL when abi_version is not one it implements.
typedef const st2v_backend_api* (*st2v_backend_get_api_fn)(uint32_t abi_version);
#define ST2V_BACKEND_ENTRY "st2v_backend_get_api"

#ifdef __cplusplus
}
#endif
