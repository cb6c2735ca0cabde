// cuBLASLt, found at run time: libcublasLt.so.13 is dlopen()ed from $ST2V_CUBLASLT (a file), $CUDA_HOME/lib64,
// $CUDA_PATH/lib64, /usr/local/cuda/lib64, the toolchain cache of scripts/install-cuda-toolchain.sh, the PyPI
// wheels' nvidia/cu13/lib folders of common Python installs, and finally the dynamic loader's own search
// (LD_LIBRARY_PATH, ldconfig). Missing -> ST2V_E_NO_CUDA naming every place tried. Never linked at build time.
//
// GEMM mapping: our row-major C[M, N] = A[M, K] B[K, N] is cuBLASLt's column-major C^T[N, M] = B^T A^T, so
// cuBLASLt's "A" is our B and its "B" is our A; a per-column bias of C is cuBLASLt's per-row bias (EPILOGUE_BIAS).
// cuBLASLt's GELU epilogue is the tanh approximation: exact-erf GELU and SiLU run as our own kernel after it.
#include <cublasLt.h>
#include <dlfcn.h>
#include <glob.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/context.h"

namespace st2v::cuda {
namespace {

struct Lt {
    void* so = nullptr;
    std::string path;
    size_t version = 0;
    cublasLtHandle_t handle = nullptr;
#define LT_FN(name) decltype(&::name) name = nullptr;
    LT_FN(cublasLtCreate)
    LT_FN(cublasLtGetVersion)
    LT_FN(cublasLtGetStatusString)
    LT_FN(cublasLtMatmulDescCreate)
    LT_FN(cublasLtMatmulDescDestroy)
    LT_FN(cublasLtMatmulDescSetAttribute)
    LT_FN(cublasLtMatrixLayoutCreate)
    LT_FN(cublasLtMatrixLayoutDestroy)
    LT_FN(cublasLtMatrixLayoutSetAttribute)
    LT_FN(cublasLtMatmulPreferenceCreate)
    LT_FN(cublasLtMatmulPreferenceDestroy)
    LT_FN(cublasLtMatmulPreferenceSetAttribute)
    LT_FN(cublasLtMatmulAlgoGetHeuristic)
    LT_FN(cublasLtMatmul)
#undef LT_FN
};
Lt g_lt;

std::vector<std::string> candidates() {
#ifdef ST2V_CUDA_EMU  // the CPU cuBLASLt of native/cuda/emu is exported by this very library
    Dl_info self{};
    if (dladdr(reinterpret_cast<void*>(&candidates), &self) && self.dli_fname) return {self.dli_fname};
#endif
    std::vector<std::string> dirs;
    auto env_dir = [&](const char* var, const char* sub) {
        const char* v = std::getenv(var);
        if (v && *v) dirs.push_back(std::string(v) + sub);
    };
    env_dir("CUDA_HOME", "/lib64");
    env_dir("CUDA_PATH", "/lib64");
    dirs.push_back("/usr/local/cuda/lib64");
    // scripts/install-cuda-toolchain.sh's cache
    env_dir("ST2V_CUDA_CACHE", "/nvidia/cu13/lib");
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x == '/')
        dirs.push_back(std::string(x) + "/streamingt2v/cuda-13.0.88/nvidia/cu13/lib");
    env_dir("HOME", "/.cache/streamingt2v/cuda-13.0.88/nvidia/cu13/lib");
    // PyPI wheels (nvidia-cublas) in virtual environments and system Pythons
    std::vector<std::string> patterns;
    if (const char* v = std::getenv("VIRTUAL_ENV"); v && *v)
        patterns.push_back(std::string(v) + "/lib/python3*/site-packages/nvidia/cu13/lib");
    patterns.push_back("/opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib");
    patterns.push_back("/usr/local/lib/python3*/dist-packages/nvidia/cu13/lib");
    patterns.push_back("/usr/local/lib/python3*/site-packages/nvidia/cu13/lib");
    patterns.push_back("/usr/lib/python3/dist-packages/nvidia/cu13/lib");
    for (const std::string& p : patterns) {
        glob_t g{};
        if (glob(p.c_str(), 0, nullptr, &g) == 0)
            for (size_t i = 0; i < g.gl_pathc; ++i) dirs.push_back(g.gl_pathv[i]);
        globfree(&g);
    }
    std::vector<std::string> files;
    if (const char* f = std::getenv("ST2V_CUBLASLT"); f && *f) files.push_back(f);
    for (const std::string& d : dirs) files.push_back(d + "/libcublasLt.so.13");
    files.push_back("libcublasLt.so.13");  // the loader's own search path
    return files;
}

const char* status_str(cublasStatus_t s) {
    return g_lt.cublasLtGetStatusString ? g_lt.cublasLtGetStatusString(s) : "?";
}

#define ST2V_LT(call)                                                                                           \
    do {                                                                                                        \
        cublasStatus_t s_ = (call);                                                                             \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                                        \
            return fail(s_ == CUBLAS_STATUS_ALLOC_FAILED ? ST2V_E_OUT_OF_MEMORY : ST2V_E_CUDA, "%s: %s (%d)", #call, \
                        status_str(s_), static_cast<int>(s_));                                                  \
    } while (0)

cudaDataType_t lt_type(int t) {
    switch (t) {
        case ST2V_F16: return CUDA_R_16F;
        case ST2V_BF16: return CUDA_R_16BF;
        default: return CUDA_R_32F;
    }
}

// RAII holders for the descriptors of one call.
// cuBLASLt's algorithm choice per GEMM shape, kept after the first heuristic query: the query costs far more host
// time than a small GEMM's launch, and the UNet repeats the same few hundred shapes every step. The key is every
// input of the query; the cached algorithm is the one the heuristic returned, so results are unchanged.
// ST2V_CUDA_LT_CACHE=0 turns the cache off (a query per call, as before).
struct AlgoKey {
    int64_t M, N, K, lda, ldb, ldc;
    int type, trans_a, trans_b, bias;
    int64_t batch, stride_a, stride_b, stride_c;
    uint32_t align_a, align_b, align_c;
    bool operator==(const AlgoKey& o) const {
        return M == o.M && N == o.N && K == o.K && lda == o.lda && ldb == o.ldb && ldc == o.ldc && type == o.type &&
               trans_a == o.trans_a && trans_b == o.trans_b && bias == o.bias && batch == o.batch &&
               stride_a == o.stride_a && stride_b == o.stride_b && stride_c == o.stride_c && align_a == o.align_a &&
               align_b == o.align_b && align_c == o.align_c;
    }
};
struct AlgoKeyHash {
    size_t operator()(const AlgoKey& k) const {
        uint64_t h = 1469598103934665603ull;
        for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc, int64_t(k.type), int64_t(k.trans_a), int64_t(k.trans_b),
                          int64_t(k.bias), k.batch, k.stride_a, k.stride_b, k.stride_c, int64_t(k.align_a),
                          int64_t(k.align_b), int64_t(k.align_c)})
            h = (h ^ static_cast<uint64_t>(v)) * 1099511628211ull;
        return static_cast<size_t>(h);
    }
};
std::mutex g_algo_mu;
std::unordered_map<AlgoKey, cublasLtMatmulAlgo_t, AlgoKeyHash> g_algos;
bool algo_cache_on() {
    static const bool on = [] {
        const char* e = std::getenv("ST2V_CUDA_LT_CACHE");
        return !(e && std::strcmp(e, "0") == 0);
    }();
    return on;
}

struct Descs {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    ~Descs() {
        if (pref) g_lt.cublasLtMatmulPreferenceDestroy(pref);
        if (c) g_lt.cublasLtMatrixLayoutDestroy(c);
        if (b) g_lt.cublasLtMatrixLayoutDestroy(b);
        if (a) g_lt.cublasLtMatrixLayoutDestroy(a);
        if (op) g_lt.cublasLtMatmulDescDestroy(op);
    }
};

// The alignment (a power of two, at most cuBLASLt's default assumption of 256 bytes) that every matrix of a batch
// starts on: the base pointer's and, for batch > 1, the batch stride's. cuBLASLt picks algorithms for the
// alignment the preference declares, so an operand at an offset (one head's columns of Q) must declare its own.
uint32_t alignment(const void* p, int64_t stride_elems, size_t elem_bytes, int batch) {
    uint64_t v = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
    if (batch > 1) v |= static_cast<uint64_t>(stride_elems) * elem_bytes;
    uint32_t a = 256;
    while (a > 1 && v % a != 0) a >>= 1;
    return a;
}

}  // namespace

st2v_status load_cublaslt(std::string* why) {
    if (g_lt.so) return ST2V_OK;
    std::string tried, last_dl;
    for (const std::string& f : candidates()) {
        void* so = dlopen(f.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!so) {
            if (const char* e = dlerror()) last_dl = e;
            tried += (tried.empty() ? "" : ", ") + f;
            continue;
        }
        Lt lt;
        lt.so = so;
        bool ok = true;
#define LT_SYM(name)                                                             \
    lt.name = reinterpret_cast<decltype(lt.name)>(dlsym(so, #name));             \
    if (!lt.name) { ok = false; *why = f + " lacks " #name; }
        LT_SYM(cublasLtCreate)
        LT_SYM(cublasLtGetVersion)
        LT_SYM(cublasLtGetStatusString)
        LT_SYM(cublasLtMatmulDescCreate)
        LT_SYM(cublasLtMatmulDescDestroy)
        LT_SYM(cublasLtMatmulDescSetAttribute)
        LT_SYM(cublasLtMatrixLayoutCreate)
        LT_SYM(cublasLtMatrixLayoutDestroy)
        LT_SYM(cublasLtMatrixLayoutSetAttribute)
        LT_SYM(cublasLtMatmulPreferenceCreate)
        LT_SYM(cublasLtMatmulPreferenceDestroy)
        LT_SYM(cublasLtMatmulPreferenceSetAttribute)
        LT_SYM(cublasLtMatmulAlgoGetHeuristic)
        LT_SYM(cublasLtMatmul)
#undef LT_SYM
        if (!ok) {
            dlclose(so);
            return ST2V_E_NO_CUDA;
        }
        char real[4096];
        if (dlinfo(so, RTLD_DI_ORIGIN, real) == 0) lt.path = std::string(real) + "/libcublasLt.so.13";
        else lt.path = f;
#ifdef ST2V_CUDA_EMU
        lt.path = f + " (CPU emulation of cuBLASLt, native/cuda/emu)";
#endif
        lt.version = lt.cublasLtGetVersion();
        g_lt = lt;
        return ST2V_OK;
    }
    *why = "cuBLASLt (libcublasLt.so.13) not found; tried " + tried + (last_dl.empty() ? "" : " (last: " + last_dl + ")") +
           "; install the CUDA 13 toolkit or the PyPI wheel nvidia-cublas, or set ST2V_CUBLASLT";
    return ST2V_E_NO_CUDA;
}

size_t cublaslt_version() { return g_lt.version; }
const char* cublaslt_path() { return g_lt.path.c_str(); }

st2v_status gemm(const st2v_gemm_args* g) { return gemm_strided_batched(g, 1, 0, 0, 0); }

st2v_status gemm_strided_batched(const st2v_gemm_args* g, int batch, int64_t stride_a, int64_t stride_b,
                                 int64_t stride_c) {
    if (!g_lt.so) return fail(ST2V_E_NO_CUDA, "cuBLASLt is not loaded");
    if (batch < 1) return fail(ST2V_E_INVALID_ARG, "gemm: batch %d < 1", batch);
    if (batch > 1 && (g->d_bias || g->act != ST2V_ACT_NONE || g->K == 0))
        return fail(ST2V_E_UNSUPPORTED, "gemm: a batched GEMM takes no bias, activation or empty depth");
    if (g->M < 0 || g->N < 0 || g->K < 0) return fail(ST2V_E_INVALID_ARG, "gemm: negative size");
    if (g->M == 0 || g->N == 0) return ST2V_OK;
    if (g->a_type != g->b_type) return fail(ST2V_E_UNSUPPORTED, "gemm: A and B must have the same dtype");
    if (g->act < ST2V_ACT_NONE || g->act > ST2V_ACT_GELU) return fail(ST2V_E_INVALID_ARG, "gemm: unknown act %d", g->act);
    if (g->K == 0) {  // C = act(bias (+ C)): no product
        if (!g->accumulate)
            ST2V_CU(cudaMemset2DAsync(g->d_c, sizeof(float) * g->ldc, 0, sizeof(float) * g->N, g->M, ctx().stream));
        return k_bias_act(g->d_c, g->ldc, g->M, g->N, g->d_bias, g->act);
    }
    Context& c = ctx();
    if (!g_lt.handle) ST2V_LT(g_lt.cublasLtCreate(&g_lt.handle));
    const cudaDataType_t ab = lt_type(g->a_type);
    Descs d;
    ST2V_LT(g_lt.cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t opa = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS A = our B
    const cublasOperation_t opb = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLAS B = our A
    ST2V_LT(g_lt.cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    ST2V_LT(g_lt.cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    const bool bias_in_epilogue = g->d_bias != nullptr && !g->accumulate;
    if (bias_in_epilogue) {
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        ST2V_LT(g_lt.cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        const void* bias = g->d_bias;
        ST2V_LT(g_lt.cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    }
    // Stored (column-major) shapes: our B is [K, N] row-major = col-major N x K (ld ldb); transposed: K x N.
    const uint64_t a_rows = g->trans_b ? g->K : g->N, a_cols = g->trans_b ? g->N : g->K;
    const uint64_t b_rows = g->trans_a ? g->M : g->K, b_cols = g->trans_a ? g->K : g->M;
    ST2V_LT(g_lt.cublasLtMatrixLayoutCreate(&d.a, ab, a_rows, a_cols, g->ldb));
    ST2V_LT(g_lt.cublasLtMatrixLayoutCreate(&d.b, ab, b_rows, b_cols, g->lda));
    ST2V_LT(g_lt.cublasLtMatrixLayoutCreate(&d.c, CUDA_R_32F, g->N, g->M, g->ldc));
    if (batch > 1) {  // cuBLAS A = our B, cuBLAS B = our A (see the mapping above)
        const int32_t count = batch;
        for (auto [l, stride] : {std::pair{d.a, stride_b}, std::pair{d.b, stride_a}, std::pair{d.c, stride_c}}) {
            ST2V_LT(g_lt.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
            ST2V_LT(g_lt.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                          sizeof stride));
        }
    }
    ST2V_LT(g_lt.cublasLtMatmulPreferenceCreate(&d.pref));
    ST2V_LT(g_lt.cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &c.workspace_bytes, sizeof c.workspace_bytes));
    const size_t ab_bytes = g->a_type == ST2V_F32 ? 4 : 2;
    const uint32_t align_a = alignment(g->d_a, stride_a, ab_bytes, batch), align_b = alignment(g->d_b, stride_b, ab_bytes, batch),
                   align_c = alignment(g->d_c, stride_c, 4, batch);
    // cuBLAS A = our B, cuBLAS B = our A; C and D are our C
    for (auto [attr, v] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b},
                           std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a},
                           std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
                           std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}})
        ST2V_LT(g_lt.cublasLtMatmulPreferenceSetAttribute(d.pref, attr, &v, sizeof v));
    const AlgoKey key{g->M, g->N, g->K, g->lda, g->ldb, g->ldc, static_cast<int>(g->a_type), g->trans_a, g->trans_b,
                      bias_in_epilogue ? 1 : 0, batch, stride_a, stride_b, stride_c, align_a, align_b, align_c};
    cublasLtMatmulHeuristicResult_t heur{};
    bool cached = false;
    if (algo_cache_on()) {
        std::lock_guard<std::mutex> lk(g_algo_mu);
        auto it = g_algos.find(key);
        if (it != g_algos.end()) {
            heur.algo = it->second;
            cached = true;
        }
    }
    if (!cached) {
        int found = 0;
        ST2V_LT(g_lt.cublasLtMatmulAlgoGetHeuristic(g_lt.handle, d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found));
        if (found < 1)
            return fail(ST2V_E_UNSUPPORTED, "gemm: cuBLASLt has no algorithm for %lldx%lldx%lld", (long long)g->M,
                        (long long)g->N, (long long)g->K);
        if (algo_cache_on()) {
            std::lock_guard<std::mutex> lk(g_algo_mu);
            g_algos.emplace(key, heur.algo);
        }
    }
    const float alpha = g->alpha, beta = g->accumulate ? 1.0f : 0.0f;
    ST2V_LT(g_lt.cublasLtMatmul(g_lt.handle, d.op, &alpha, g->d_b, d.a, g->d_a, d.b, &beta, g->d_c, d.c, g->d_c, d.c,
                                &heur.algo, c.workspace, c.workspace_bytes, c.stream));
    // accumulate: C = act(C + AB + bias), bias after the product; activation always ours (exact erf / SiLU).
    const float* late_bias = bias_in_epilogue ? nullptr : g->d_bias;
    if (late_bias || g->act != ST2V_ACT_NONE) return k_bias_act(g->d_c, g->ldc, g->M, g->N, late_bias, g->act);
    return ST2V_OK;
}

}  // namespace st2v::cuda
