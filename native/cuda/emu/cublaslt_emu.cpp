// CPU implementation of the cuBLASLt subset in include/cublasLt.h (ST2V_CUDA_EMU). Written from NVIDIA's
// documented semantics, not from cuBLASLt's code: it is the independent side that checks our row-major ->
// column-major mapping in native/cuda/cublaslt.cpp. fp32 accumulation (CUBLAS_COMPUTE_32F: no TF32).
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

struct st2v_emu_lt_handle { uint32_t magic = 0x4c54484e; };
struct st2v_emu_lt_matmul_desc {
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    cudaDataType_t scale = CUDA_R_32F;
    int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void* bias = nullptr;
    int32_t bias_type = -1;  // -1: the default (D's type)
};
struct st2v_emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch = 1;    // CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT
    int64_t stride = 0;   // CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET (elements)
};
struct st2v_emu_lt_pref {
    uint64_t max_workspace = 0;
    uint32_t align[4] = {256, 256, 256, 256};  // MIN_ALIGNMENT_{A,B,C,D}_BYTES
};

namespace {

constexpr uint64_t kAlgoMagic = 0x53543256454d5531ull;  // "ST2VEMU1"

cublasStatus_t lt_fail(cublasStatus_t s, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
cublasStatus_t lt_fail(cublasStatus_t s, const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::fprintf(stderr, "[cuda_emu cuBLASLt] %s\n", buf);
    return s;
}

size_t type_bytes(cudaDataType_t t) {
    switch (t) {
        case CUDA_R_32F: return 4;
        case CUDA_R_16F:
        case CUDA_R_16BF: return 2;
        default: return 0;
    }
}
const char* type_name(int t) {
    switch (t) {
        case CUDA_R_32F: return "CUDA_R_32F";
        case CUDA_R_16F: return "CUDA_R_16F";
        case CUDA_R_16BF: return "CUDA_R_16BF";
        case CUDA_R_64F: return "CUDA_R_64F";
        default: return "other";
    }
}

float load(const void* p, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_16F) return static_cast<float>(static_cast<const __half*>(p)[i]);
    if (t == CUDA_R_16BF) return static_cast<float>(static_cast<const __nv_bfloat16*>(p)[i]);
    return static_cast<const float*>(p)[i];
}
void store(void* p, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_16F) static_cast<__half*>(p)[i] = __half(v);
    else if (t == CUDA_R_16BF) static_cast<__nv_bfloat16*>(p)[i] = __nv_bfloat16(v);
    else static_cast<float*>(p)[i] = v;
}

// Bytes one column-major rows x cols matrix with leading dimension ld spans.
size_t span1(const st2v_emu_lt_layout* l) {
    if (l->rows == 0 || l->cols == 0) return 0;
    return type_bytes(l->type) * (static_cast<size_t>(l->ld) * (l->cols - 1) + l->rows);
}
// Bytes from the first matrix of the batch to the end of the last (strides are >= 0, checked in validate).
size_t span(const st2v_emu_lt_layout* l) {
    const size_t one = span1(l);
    if (one == 0) return 0;
    return one + type_bytes(l->type) * static_cast<size_t>(l->stride) * static_cast<size_t>(l->batch - 1);
}

struct Problem {
    uint64_t m, n, k;
};

// The checks cuBLASLt documents for a matmul (heuristic and matmul alike).
cublasStatus_t validate(cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                        cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d, Problem* pr) {
    if (!op || !a || !b || !c || !d) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "null descriptor");
    if (op->compute != CUBLAS_COMPUTE_32F || op->scale != CUDA_R_32F)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d / scale type %s: only CUBLAS_COMPUTE_32F with "
                       "CUDA_R_32F scale is emulated", static_cast<int>(op->compute), type_name(op->scale));
    if (op->pointer_mode != CUBLASLT_POINTER_MODE_HOST)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "only CUBLASLT_POINTER_MODE_HOST is emulated");
    if (a->type != b->type || type_bytes(a->type) == 0)
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "A %s with B %s: A and B must be the same 32F/16F/16BF type",
                       type_name(a->type), type_name(b->type));
    if (c->type != d->type || (d->type != CUDA_R_32F && d->type != a->type))
        return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "C %s / D %s with A/B %s: C and D must be 32F or the A/B type",
                       type_name(c->type), type_name(d->type), type_name(a->type));
    const bool ta = op->transa != CUBLAS_OP_N, tb = op->transb != CUBLAS_OP_N;
    const uint64_t m = ta ? a->cols : a->rows, k = ta ? a->rows : a->cols;
    const uint64_t kb = tb ? b->cols : b->rows, n = tb ? b->rows : b->cols;
    if (k != kb)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "op(A) is %llux%llu but op(B) is %llux%llu (transa %d, transb %d)",
                       (unsigned long long)m, (unsigned long long)k, (unsigned long long)kb, (unsigned long long)n,
                       op->transa, op->transb);
    if (c->rows != m || c->cols != n || d->rows != m || d->cols != n)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "C %llux%llu / D %llux%llu do not match op(A) op(B) = %llux%llu",
                       (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)d->rows,
                       (unsigned long long)d->cols, (unsigned long long)m, (unsigned long long)n);
    for (const auto* l : {a, b, c, d})
        if (l->ld < static_cast<int64_t>(l->rows < 1 ? 1 : l->rows))
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "leading dimension %lld < %llu rows (column-major)",
                           (long long)l->ld, (unsigned long long)l->rows);
    for (const auto* l : {a, b, c, d})
        if (l->batch != d->batch || l->stride < 0)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "batch count %d (stride %lld) against D's %d: every layout "
                           "needs the same batch count", l->batch, (long long)l->stride, d->batch);
    if (d->batch > 1 && d->stride < static_cast<int64_t>(d->ld * (d->cols - 1) + d->rows))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "D's batch stride %lld is smaller than one matrix: outputs overlap",
                       (long long)d->stride);
    switch (op->epilogue) {
        case CUBLASLT_EPILOGUE_DEFAULT:
        case CUBLASLT_EPILOGUE_RELU:
        case CUBLASLT_EPILOGUE_GELU: break;
        case CUBLASLT_EPILOGUE_BIAS:
        case CUBLASLT_EPILOGUE_RELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU_BIAS:
            if (!op->bias) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "bias epilogue without BIAS_POINTER");
            break;
        default: return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "epilogue %u is not emulated", op->epilogue);
    }
    pr->m = m, pr->n = n, pr->k = k;
    return CUBLAS_STATUS_SUCCESS;
}

typedef float v8f __attribute__((vector_size(32)));

// out[j * m + i] = sum_p at[i * kp + p] * bt[j * kp + p]; kp a multiple of 8 (zero padded).
#define ST2V_LT_DOTS_BODY                                                                                    \
    for (uint64_t j0 = 0; j0 < n; j0 += 64) {                                                                \
        const uint64_t j1 = j0 + 64 < n ? j0 + 64 : n;                                                       \
        for (uint64_t i = 0; i < m; i += 4) {                                                                \
            const float* a0 = at + i * kp;                                                                   \
            const float* a1 = i + 1 < m ? a0 + kp : a0;                                                      \
            const float* a2 = i + 2 < m ? a0 + 2 * kp : a0;                                                  \
            const float* a3 = i + 3 < m ? a0 + 3 * kp : a0;                                                  \
            for (uint64_t j = j0; j < j1; j += 2) {                                                          \
                const float* b0 = bt + j * kp;                                                               \
                const float* b1 = j + 1 < j1 ? b0 + kp : b0;                                                 \
                v8f c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};           \
                for (uint64_t p = 0; p < kp; p += 8) {                                                       \
                    v8f x0, x1, x2, x3, y0, y1;                                                              \
                    std::memcpy(&x0, a0 + p, 32);                                                            \
                    std::memcpy(&x1, a1 + p, 32);                                                            \
                    std::memcpy(&x2, a2 + p, 32);                                                            \
                    std::memcpy(&x3, a3 + p, 32);                                                            \
                    std::memcpy(&y0, b0 + p, 32);                                                            \
                    std::memcpy(&y1, b1 + p, 32);                                                            \
                    c00 += x0 * y0, c01 += x0 * y1, c10 += x1 * y0, c11 += x1 * y1;                          \
                    c20 += x2 * y0, c21 += x2 * y1, c30 += x3 * y0, c31 += x3 * y1;                          \
                }                                                                                            \
                const v8f* acc[4][2] = {{&c00, &c01}, {&c10, &c11}, {&c20, &c21}, {&c30, &c31}};             \
                for (int r = 0; r < 4 && i + r < m; ++r)                                                     \
                    for (int s = 0; s < 2 && j + s < j1; ++s) {                                              \
                        const v8f v = *acc[r][s];                                                            \
                        out[(j + s) * m + i + r] = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); \
                    }                                                                                        \
            }                                                                                                \
        }                                                                                                    \
    }

__attribute__((target("avx2,fma"))) void dots_avx2(const float* at, const float* bt, float* out, uint64_t m,
                                                     uint64_t n, uint64_t kp) {
    ST2V_LT_DOTS_BODY
}
void dots_portable(const float* at, const float* bt, float* out, uint64_t m, uint64_t n, uint64_t kp) {
    ST2V_LT_DOTS_BODY
}

bool in_dev(const void* p, size_t bytes) { return st2v::cuda_emu::is_device_range(p, bytes); }

bool overlaps(const void* p, size_t pn, const void* q, size_t qn) {
    const char *a = static_cast<const char*>(p), *b = static_cast<const char*>(q);
    return pn && qn && a < b + qn && b < a + pn;
}

}  // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
    if (!h) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: null output");
    *h = new st2v_emu_lt_handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
size_t cublasLtGetVersion(void) { return 130100; }  // the API level emulated (cuBLAS 13.1 headers)
const char* cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!d) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate: null output");
    *d = new st2v_emu_lt_matmul_desc;
    (*d)->compute = compute;
    (*d)->scale = scale;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    if (!d || !buf) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MatmulDescSetAttribute: null argument");
    auto need = [&](size_t n) { return size == n; };
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
            if (!need(4)) break;
            std::memcpy(&d->compute, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
            if (!need(4)) break;
            std::memcpy(&d->scale, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_POINTER_MODE:
            if (!need(4)) break;
            std::memcpy(&d->pointer_mode, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_TRANSA:
        case CUBLASLT_MATMUL_DESC_TRANSB: {
            if (!need(4)) break;
            int32_t v;
            std::memcpy(&v, buf, 4);
            if (v != CUBLAS_OP_N && v != CUBLAS_OP_T && v != CUBLAS_OP_C)
                return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "TRANS%c = %d",
                        attr == CUBLASLT_MATMUL_DESC_TRANSA ? 'A' : 'B', v);
            (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->transa : d->transb) = v;
            return CUBLAS_STATUS_SUCCESS;
        }
        case CUBLASLT_MATMUL_DESC_EPILOGUE:
            if (!need(4)) break;
            std::memcpy(&d->epilogue, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
            if (!need(sizeof(void*))) break;
            std::memcpy(&d->bias, buf, sizeof(void*));
            return CUBLAS_STATUS_SUCCESS;
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
            if (!need(4)) break;
            std::memcpy(&d->bias_type, buf, 4);
            return CUBLAS_STATUS_SUCCESS;
        default:
            return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "matmul descriptor attribute %d is not emulated",
                           static_cast<int>(attr));
    }
    return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matmul descriptor attribute %d: %zu bytes is the wrong size",
                   static_cast<int>(attr), size);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    if (!l) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MatrixLayoutCreate: null output");
    *l = new st2v_emu_lt_layout{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
    if (!l || !buf) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MatrixLayoutSetAttribute: null argument");
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
        if (size != 4) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "BATCH_COUNT takes an int32_t, got %zu bytes", size);
        int32_t v;
        std::memcpy(&v, buf, 4);
        if (v < 1) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "BATCH_COUNT %d < 1", v);
        l->batch = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET) {
        if (size != 8)
            return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "STRIDED_BATCH_OFFSET takes an int64_t, got %zu bytes", size);
        std::memcpy(&l->stride, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "matrix layout attribute %d is not emulated", static_cast<int>(attr));
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
    if (!p) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MatmulPreferenceCreate: null output");
    *p = new st2v_emu_lt_pref;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
    if (!p || !buf) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MatmulPreferenceSetAttribute: null argument");
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (size != 8) return lt_fail(CUBLAS_STATUS_INVALID_VALUE,
                "MAX_WORKSPACE_BYTES takes a uint64_t, got %zu bytes", size);
        std::memcpy(&p->max_workspace, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr == CUBLASLT_MATMUL_PREF_SEARCH_MODE) return CUBLAS_STATUS_SUCCESS;
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES) {
        if (size != 4) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MIN_ALIGNMENT takes a uint32_t, got %zu bytes", size);
        uint32_t v;
        std::memcpy(&v, buf, 4);
        if (v == 0 || (v & (v - 1)) != 0) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "MIN_ALIGNMENT %u is not a power of two", v);
        p->align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = v;
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_fail(CUBLAS_STATUS_NOT_SUPPORTED, "preference attribute %d is not emulated", static_cast<int>(attr));
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    if (!h || !pref || !results || !returned || requested < 1)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "AlgoGetHeuristic: bad arguments");
    *returned = 0;
    Problem pr;
    if (validate(op, a, b, c, d, &pr) != CUBLAS_STATUS_SUCCESS) return CUBLAS_STATUS_NOT_SUPPORTED;
    std::memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = kAlgoMagic;
    // the alignments the algorithm was chosen for: cublasLtMatmul checks the operands against them (an algorithm
    // picked for 256-byte operands may use vector loads that fault on a less aligned one)
    for (int i = 0; i < 4; ++i) results[0].algo.data[1 + i] = pref->align[i];
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t op, const void* alpha_p, const void* A,
                              cublasLtMatrixLayout_t ad, const void* B, cublasLtMatrixLayout_t bd, const void* beta_p,
                              const void* C, cublasLtMatrixLayout_t cd, void* D, cublasLtMatrixLayout_t dd,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    if (!h) return lt_fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtMatmul: null handle");
    if (!alpha_p || !beta_p) return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: null alpha/beta");
    Problem pr;
    if (cublasStatus_t s = validate(op, ad, bd, cd, dd, &pr)) return s;
    if (algo && algo->data[0] != kAlgoMagic)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: the algo did not come from AlgoGetHeuristic");
    if (st2v::cuda_emu::is_device_range(alpha_p, 0) || st2v::cuda_emu::is_device_range(beta_p, 0))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "alpha/beta are device pointers but the pointer mode is HOST");
    float alpha, beta;
    std::memcpy(&alpha, alpha_p, 4);
    std::memcpy(&beta, beta_p, 4);
    const uint64_t m = pr.m, n = pr.n, k = pr.k;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const size_t sa = span(ad), sb = span(bd), sc = span(cd), sd = span(dd);
    if (k > 0 && (!A || !in_dev(A, sa)))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "A (%p, %zu bytes by its layout %llux%llu ld %lld) is not inside a "
                       "cudaMalloc allocation", A, sa, (unsigned long long)ad->rows, (unsigned long long)ad->cols,
                       (long long)ad->ld);
    if (k > 0 && (!B || !in_dev(B, sb)))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "B (%p, %zu bytes by its layout %llux%llu ld %lld) is not inside a "
                       "cudaMalloc allocation", B, sb, (unsigned long long)bd->rows, (unsigned long long)bd->cols,
                       (long long)bd->ld);
    if (!D || !in_dev(D, sd))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "D (%p, %zu bytes by its layout %llux%llu ld %lld) is not inside a "
                       "cudaMalloc allocation", D, sd, (unsigned long long)dd->rows, (unsigned long long)dd->cols,
                       (long long)dd->ld);
    if (beta != 0.0f && (!C || !in_dev(C, sc)))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "C (%p, %zu bytes) is not inside a cudaMalloc allocation", C, sc);
    if (C == D && beta != 0.0f && cd->ld != dd->ld)
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "in-place C == D needs ldc == ldd (%lld vs %lld)",
                (long long)cd->ld,
                       (long long)dd->ld);
    if (algo) {
        const void* ptrs[4] = {A, B, C, D};
        const st2v_emu_lt_layout* ls[4] = {ad, bd, cd, dd};
        for (int i = 0; i < 4; ++i) {
            if (i == 2 && beta == 0.0f) continue;  // C is not read
            const uint64_t need = algo->data[1 + i];
            uint64_t v = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptrs[i]));
            if (ls[i]->batch > 1) v |= static_cast<uint64_t>(ls[i]->stride) * type_bytes(ls[i]->type);
            if (need > 1 && v % need != 0)
                return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "matrix %c (%p, batch stride %lld) is not aligned to the %llu "
                               "bytes its algorithm was chosen for (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES)",
                               "ABCD"[i], ptrs[i], (long long)ls[i]->stride, (unsigned long long)need, "ABCD"[i]);
        }
    }
    if (overlaps(D, sd, A, sa) || overlaps(D, sd, B, sb))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "D overlaps A or B");
    const bool has_bias = op->epilogue & CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType_t bias_type = op->bias_type < 0 ? dd->type : static_cast<cudaDataType_t>(op->bias_type);
    if (has_bias && (type_bytes(bias_type) == 0 || !in_dev(op->bias, m * type_bytes(bias_type))))
        return lt_fail(CUBLAS_STATUS_INVALID_VALUE, "bias (%p, %llu x %s: one per row of D) is not inside a cudaMalloc "
                       "allocation", op->bias, (unsigned long long)m, type_name(bias_type));
    (void)workspace, (void)workspace_bytes, (void)stream;

    // op(A) as m rows of k (zero padded to kp), op(B) as n rows of k: every dot product reads contiguous memory.
    const uint64_t kp = (k + 7) / 8 * 8;
    std::vector<float> at(m * kp, 0.f), bt(n * kp, 0.f), acc(m * n, 0.f);
    const bool ta = op->transa != CUBLAS_OP_N, tb = op->transb != CUBLAS_OP_N;
    const void *A0 = A, *B0 = B, *C0 = C;
    void* D0 = D;
    for (int32_t bi = 0; bi < dd->batch; ++bi) {
    auto at_batch = [&](const void* p, const st2v_emu_lt_layout* l) -> const void* {
        return p ? static_cast<const char*>(p) + type_bytes(l->type) * static_cast<size_t>(l->stride) * bi : p;
    };
    A = at_batch(A0, ad), B = at_batch(B0, bd), C = at_batch(C0, cd);
    D = const_cast<void*>(at_batch(D0, dd));
    for (uint64_t i = 0; i < m; ++i)
        for (uint64_t p = 0; p < k; ++p)  // op(A)(i, p) = A(i, p) or A(p, i); A(r, c) = A[r + c * lda]
            at[i * kp + p] = load(A, ad->type, ta ? p + i * ad->ld : i + p * ad->ld);
    for (uint64_t j = 0; j < n; ++j)
        for (uint64_t p = 0; p < k; ++p)  // op(B)(p, j) = B(p, j) or B(j, p)
            bt[j * kp + p] = load(B, bd->type, tb ? j + p * bd->ld : p + j * bd->ld);
    if (kp > 0) {
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) dots_avx2(at.data(), bt.data(),
                acc.data(), m, n, kp);
        else dots_portable(at.data(), bt.data(), acc.data(), m, n, kp);
    }
    for (uint64_t j = 0; j < n; ++j)
        for (uint64_t i = 0; i < m; ++i) {
            float v = alpha * acc[j * m + i];
            if (beta != 0.0f) v += beta * load(C, cd->type, i + j * cd->ld);
            if (has_bias) v += load(op->bias, bias_type, i);
            const uint32_t act = op->epilogue & ~static_cast<uint32_t>(CUBLASLT_EPILOGUE_BIAS);
            if (act == CUBLASLT_EPILOGUE_RELU) v = v > 0.f ? v : 0.f;
            else if (act == CUBLASLT_EPILOGUE_GELU)  // cuBLASLt's GELU is the tanh approximation
                v = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            store(D, dd->type, i + j * dd->ld, v);
        }
    }  // batch
    return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
