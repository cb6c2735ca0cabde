// libstreamingt2v_cuda: the context, memory entry points and the exported ABI table (backend/backend_abi.h).
// Nothing here throws across the boundary; every failure is a status plus a per-thread message.
#include "cuda/context.h"
#include "cuda/kernels_layout.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#ifndef ST2V_CUDA_BUILD_INFO
#define ST2V_CUDA_BUILD_INFO "unknown build"
#endif

namespace st2v::cuda {
namespace {
thread_local std::string g_err;
std::mutex g_init_mu;
std::mutex g_alloc_mu;
Context g_ctx;
}  // namespace

st2v_status fail(st2v_status s, const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_err = buf;
    return s;
}
const char* last_error() { return g_err.c_str(); }

st2v_status from_cuda(cudaError_t e, const char* what) {
    st2v_status s = ST2V_E_CUDA;
    switch (e) {
        case cudaErrorInsufficientDriver:
        case cudaErrorNoDevice:
        case cudaErrorInvalidDevice:
        case cudaErrorDevicesUnavailable:
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorUnsupportedPtxVersion:
        case cudaErrorSystemDriverMismatch:
        case cudaErrorCompatNotSupportedOnDevice:
            s = ST2V_E_NO_CUDA;
            break;
        case cudaErrorMemoryAllocation: s = ST2V_E_OUT_OF_MEMORY; break;
        case cudaErrorIllegalAddress:
        case cudaErrorLaunchFailure:
        case cudaErrorHardwareStackError:
        case cudaErrorIllegalInstruction:
        case cudaErrorMisalignedAddress:
        case cudaErrorInvalidAddressSpace:
        case cudaErrorInvalidPc:
        case cudaErrorAssert:
        case cudaErrorECCUncorrectable:
            s = ST2V_E_CUDA_FATAL;
            break;
        default: break;
    }
    return fail(s, "%s: %s (%d): %s", what, cudaGetErrorName(e), static_cast<int>(e), cudaGetErrorString(e));
}

Context& ctx() { return g_ctx; }

st2v_status require_ready() {
    if (!g_ctx.ready) return fail(ST2V_E_NO_CUDA, "the CUDA backend is not initialised (init() failed or was not called)");
    return ST2V_OK;
}

st2v_status scratch(size_t bytes, void** out) {
    if (bytes > g_ctx.scratch_bytes) {
        if (g_ctx.scratch) {
            ST2V_CU(cudaStreamSynchronize(g_ctx.stream));
            ST2V_CU(cudaFree(g_ctx.scratch));
            g_ctx.scratch = nullptr;
            g_ctx.scratch_bytes = 0;
        }
        const size_t want = bytes < 4096 ? 4096 : bytes;
        ST2V_CU(cudaMalloc(&g_ctx.scratch, want));
        g_ctx.scratch_bytes = want;
    }
    *out = g_ctx.scratch;
    return ST2V_OK;
}

namespace {

st2v_status api_init(int device) {
    std::lock_guard<std::mutex> lock(g_init_mu);
    if (g_ctx.ready) {
        if (device == g_ctx.device) return ST2V_OK;
        return fail(ST2V_E_INVALID_ARG, "the CUDA backend is already initialised on device %d", g_ctx.device);
    }
    std::string missing;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        missing = std::string("no usable CUDA device: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
        cudaGetLastError();
    } else if (count == 0) {
        missing = "no CUDA device";
    } else if (device < 0 || device >= count) {
        return fail(ST2V_E_INVALID_ARG, "CUDA device %d requested, %d present", device, count);
    }
    std::string why;
    if (load_cublaslt(&why) != ST2V_OK) missing += (missing.empty() ? "" : "; ") + why;
    if (!missing.empty()) return fail(ST2V_E_NO_CUDA, "%s", missing.c_str());

    ST2V_CU(cudaSetDevice(device));
    ST2V_CU(cudaGetDeviceProperties(&g_ctx.prop, device));
    if (g_ctx.prop.major < 8)
        return fail(ST2V_E_NO_CUDA, "%s has compute capability %d.%d; this build needs 8.0 or newer", g_ctx.prop.name,
                    g_ctx.prop.major, g_ctx.prop.minor);
    ST2V_CU(cudaStreamCreateWithFlags(&g_ctx.stream, cudaStreamNonBlocking));
    {
        int pools = 0;
        const char* mode = std::getenv("ST2V_CUDA_ALLOC");
        const bool want_async = !(mode && std::strcmp(mode, "sync") == 0);
        if (want_async && cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess &&
            pools) {
            cudaMemPool_t pool = nullptr;
            ST2V_CU(cudaDeviceGetDefaultMemPool(&pool, device));
            uint64_t keep = UINT64_MAX;  // freed memory stays in the pool for the next allocation (bounded by the peak)
            ST2V_CU(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
            g_ctx.pool = pool;
            g_ctx.async_alloc = true;
        }
        cudaGetLastError();
    }
    g_ctx.workspace_bytes = size_t(32) << 20;
    ST2V_CU(cudaMalloc(&g_ctx.workspace, g_ctx.workspace_bytes));
    g_ctx.device = device;
    g_ctx.ready = true;
    return ST2V_OK;
}

st2v_status api_device_info(st2v_device_info* out) {
    if (!out) return fail(ST2V_E_INVALID_ARG, "device_info: null output");
    if (st2v_status s = require_ready()) return s;
    std::memset(out, 0, sizeof *out);
    std::snprintf(out->name, sizeof out->name, "%s", g_ctx.prop.name);
    out->device = g_ctx.device;
    cudaGetDeviceCount(&out->device_count);
    out->cc_major = g_ctx.prop.major;
    out->cc_minor = g_ctx.prop.minor;
    out->sm_count = g_ctx.prop.multiProcessorCount;
    cudaDriverGetVersion(&out->driver_version);
    cudaRuntimeGetVersion(&out->runtime_version);
    ST2V_CU(cudaMemGetInfo(&out->free_mem, &out->total_mem));
    out->cublaslt_version = cublaslt_version();
    std::snprintf(out->cublaslt_path, sizeof out->cublaslt_path, "%s", cublaslt_path());
    std::snprintf(out->build, sizeof out->build, "%s", ST2V_CUDA_BUILD_INFO);
    return ST2V_OK;
}

st2v_status api_alloc(void** p, size_t bytes) {
    if (!p) return fail(ST2V_E_INVALID_ARG, "alloc: null output");
    *p = nullptr;
    if (st2v_status s = require_ready()) return s;
    if (bytes == 0) return ST2V_OK;
    if (g_ctx.async_alloc) ST2V_CU(cudaMallocAsync(p, bytes, g_ctx.stream));
    else ST2V_CU(cudaMalloc(p, bytes));
    std::lock_guard<std::mutex> lk(g_alloc_mu);
    ++g_ctx.live_allocs;
    return ST2V_OK;
}
st2v_status api_free(void* p) {
    if (!p) return ST2V_OK;
    if (st2v_status s = require_ready()) return s;
    if (g_ctx.async_alloc) {
        ST2V_CU(cudaFreeAsync(p, g_ctx.stream));  // in stream order: after every queued kernel that uses it
        std::lock_guard<std::mutex> lk(g_alloc_mu);
        if (--g_ctx.live_allocs <= 0) {  // nothing of ours is left on the device (models released): give it back
            g_ctx.live_allocs = 0;
            ST2V_CU(cudaStreamSynchronize(g_ctx.stream));
            ST2V_CU(cudaMemPoolTrimTo(g_ctx.pool, 0));
        }
        return ST2V_OK;
    }
    ST2V_CU(cudaStreamSynchronize(g_ctx.stream));  // no kernel may still use it
    ST2V_CU(cudaFree(p));
    std::lock_guard<std::mutex> lk(g_alloc_mu);
    if (g_ctx.live_allocs > 0) --g_ctx.live_allocs;
    return ST2V_OK;
}
st2v_status api_memcpy(void* dst, const void* src, size_t bytes, int kind) {
    if (st2v_status s = require_ready()) return s;
    if (bytes == 0) return ST2V_OK;
    if (!dst || !src) return fail(ST2V_E_INVALID_ARG, "memcpy: null pointer");
    switch (kind) {
        case ST2V_H2D:
            ST2V_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_ctx.stream));
            ST2V_CU(cudaStreamSynchronize(g_ctx.stream));
            return ST2V_OK;
        case ST2V_D2H:
            ST2V_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_ctx.stream));
            ST2V_CU(cudaStreamSynchronize(g_ctx.stream));
            return ST2V_OK;
        case ST2V_D2D:
            ST2V_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_ctx.stream));
            return ST2V_OK;
        default: return fail(ST2V_E_INVALID_ARG, "memcpy: unknown kind %d", kind);
    }
}
st2v_status api_memset0(void* p, size_t bytes) {
    if (st2v_status s = require_ready()) return s;
    if (bytes == 0) return ST2V_OK;
    ST2V_CU(cudaMemsetAsync(p, 0, bytes, g_ctx.stream));
    return ST2V_OK;
}
st2v_status api_sync() {
    if (st2v_status s = require_ready()) return s;
    ST2V_CU(cudaStreamSynchronize(g_ctx.stream));
    return ST2V_OK;
}

#define READY_OR_RETURN() \
    do { if (st2v_status s_ = require_ready()) return s_; } while (0)

st2v_status api_silu(const float* x, float* y, int64_t n) { READY_OR_RETURN(); return k_silu(x, y, n); }
st2v_status api_gelu(const float* x, float* y, int64_t n) { READY_OR_RETURN(); return k_gelu(x, y, n); }
st2v_status api_geglu(const float* x, float* y, int64_t rows, int64_t C) {
    READY_OR_RETURN();
    return k_geglu(x, y, rows, C);
}
st2v_status api_axpby(const float* x, float a, const float* y2, float b, float* out, int64_t n) {
    READY_OR_RETURN();
    return k_axpby(x, a, y2, b, out, n);
}
st2v_status api_group_norm(const float* x, float* y, int64_t NF, int64_t C, int64_t S, int frames, int groups,
                           const float* gamma, const float* beta, float eps, int silu) {
    READY_OR_RETURN();
    return k_group_norm(x, y, NF, C, S, frames, groups, gamma, beta, eps, silu);
}
st2v_status api_layer_norm(const float* x, float* y, int64_t rows, int64_t C, const float* gamma, const float* beta,
                           float eps) {
    READY_OR_RETURN();
    return k_layer_norm(x, y, rows, C, gamma, beta, eps);
}
st2v_status api_timestep(const float* t, int64_t n, const float* freq, int half, int flip, float* out) {
    READY_OR_RETURN();
    return k_timestep_embedding(t, n, freq, half, flip, out);
}
st2v_status api_cfg(const float* u, const float* c, float scale, float* out, int64_t n) {
    READY_OR_RETURN();
    return k_cfg_combine(u, c, scale, out, n);
}
st2v_status api_ddim(const float* x, const float* eps, const float* noise, const float* coefs, float* out, int64_t n) {
    READY_OR_RETURN();
    if (!coefs) return fail(ST2V_E_INVALID_ARG, "ddim_step: null coefficients");
    return k_ddim_step(x, eps, noise, coefs, out, n);
}
st2v_status api_dpm(const float* x, const float* eps, const float* prev, const float* coefs, float* x0, float* out,
                    int64_t n) {
    READY_OR_RETURN();
    if (!coefs) return fail(ST2V_E_INVALID_ARG, "dpmpp_2m_step: null coefficients");
    return k_dpmpp_2m_step(x, eps, prev, coefs, x0, out, n);
}
st2v_status api_blend(const float* const* chunks, int64_t n_chunks, int64_t B, int64_t Ch, int64_t L, int64_t HW,
                      int64_t chunk, int64_t overlap, const int64_t* r, float* out) {
    READY_OR_RETURN();
    if (!chunks || !r) return fail(ST2V_E_INVALID_ARG, "blend_merge: null table");
    return k_blend_merge(chunks, n_chunks, B, Ch, L, HW, chunk, overlap, r, out);
}
st2v_status api_gemm(const st2v_gemm_args* a) {
    READY_OR_RETURN();
    if (!a) return fail(ST2V_E_INVALID_ARG, "gemm: null arguments");
    return gemm(a);
}
st2v_status api_attention(const st2v_attention_args* a) {
    READY_OR_RETURN();
    if (!a) return fail(ST2V_E_INVALID_ARG, "attention: null arguments");
    return k_attention(a);
}

st2v_status api_cast(const void* src, int st, void* dst, int dt, int64_t n) {
    READY_OR_RETURN();
    if (n > 0 && (!src || !dst)) return fail(ST2V_E_INVALID_ARG, "cast: null pointer");
    return k_cast(src, st, dst, dt, n);
}

// ---- ABI 2 (kernels_layout.cu) ----
st2v_status api_conv2d(const st2v_conv2d_args* a) {
    READY_OR_RETURN();
    if (!a) return fail(ST2V_E_INVALID_ARG, "conv2d: null arguments");
    return k_conv2d(a);
}
st2v_status api_conv_temporal(const st2v_conv_temporal_args* a) {
    READY_OR_RETURN();
    if (!a) return fail(ST2V_E_INVALID_ARG, "conv_temporal: null arguments");
    return k_conv_temporal(a);
}
st2v_status api_copy_strided(const void* src, const int64_t* ss, void* dst, const int64_t* ds, const int64_t* shape,
                             int ndim, int elem_bytes) {
    READY_OR_RETURN();
    return k_copy_strided(src, ss, dst, ds, shape, ndim, elem_bytes);
}
st2v_status api_add_broadcast(float* a, const float* b, int64_t n, int64_t div, int64_t inner) {
    READY_OR_RETURN();
    return k_add_broadcast(a, b, n, div, inner);
}
st2v_status api_upsample_nearest(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t oh, int64_t ow) {
    READY_OR_RETURN();
    return k_upsample_nearest(x, y, NC, H, W, oh, ow);
}

const st2v_backend_api kApi = {
    ST2V_BACKEND_ABI_VERSION,
    sizeof(st2v_backend_api),
    "cuda",
    &last_error,
    &api_init,
    &api_device_info,
    &api_alloc,
    &api_free,
    &api_memcpy,
    &api_memset0,
    &api_sync,
    &api_silu,
    &api_gelu,
    &api_geglu,
    &api_axpby,
    &api_group_norm,
    &api_layer_norm,
    &api_timestep,
    &api_cfg,
    &api_ddim,
    &api_dpm,
    &api_blend,
    &api_gemm,
    &api_attention,
    &api_cast,
    // ABI 2
    &api_conv2d,
    &api_conv_temporal,
    &api_copy_strided,
    &api_add_broadcast,
    &api_upsample_nearest,
};

}  // namespace
}  // namespace st2v::cuda

extern "C" __attribute__((visibility("default"))) const st2v_backend_api* st2v_backend_get_api(uint32_t abi_version) {
    if (abi_version != ST2V_BACKEND_ABI_VERSION) {
        st2v::cuda::fail(ST2V_E_UNSUPPORTED, "backend ABI %u requested, this library implements %u", abi_version,
                         ST2V_BACKEND_ABI_VERSION);
        return nullptr;
    }
    return &st2v::cuda::kApi;
}
