#include "backend/backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/profile.h"

namespace st2v::backend {
namespace {

constexpr const char* kLibName = "libstreamingt2v_cuda.so";

struct Loaded {
    bool tried = false;
    const st2v_backend_api* api = nullptr;
    st2v_status status = ST2V_E_NO_CUDA;
    std::string error;  // why it is not usable
    std::string library;
    bool lib_found = false;
};
std::mutex g_mu;
Loaded g_loaded;

// Directory of the module (the .node addon or an executable) that holds this code.
std::string own_dir() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&own_dir), &info) && info.dli_fname) {
        std::string f = info.dli_fname;
        const size_t slash = f.rfind('/');
        if (slash != std::string::npos) return f.substr(0, slash);
    }
    return ".";
}

void load_locked() {
    if (g_loaded.tried) return;
    g_loaded.tried = true;
    std::vector<std::string> files;
    if (const char* env = std::getenv("ST2V_CUDA_LIB"); env && *env) files.push_back(env);
    files.push_back(own_dir() + "/" + kLibName);
    std::string dl_errors;
    void* so = nullptr;
    for (const std::string& f : files) {
        so = dlopen(f.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (so) {
            g_loaded.library = f;
            break;
        }
        const char* e = dlerror();
        dl_errors += (dl_errors.empty() ? "" : "; ") + std::string(e ? e : f.c_str());
    }
    if (!so) {
        g_loaded.library = files.back();
#ifdef ST2V_HAVE_CUDA_LIB
        g_loaded.error = "the CUDA backend library could not be loaded (" + dl_errors + ")";
#else
        g_loaded.error = "not built: this build has no CUDA backend (configured with ST2V_CUDA=OFF or without nvcc; "
                         "scripts/install-cuda-toolchain.sh installs one, then reconfigure with -DST2V_CUDA=AUTO)";
#endif
        return;
    }
    g_loaded.lib_found = true;
    auto get = reinterpret_cast<st2v_backend_get_api_fn>(dlsym(so, ST2V_BACKEND_ENTRY));
    if (!get) {
        g_loaded.error = g_loaded.library + " does not export " + ST2V_BACKEND_ENTRY;
        return;
    }
    const st2v_backend_api* api = get(ST2V_BACKEND_ABI_VERSION);
    if (!api || api->struct_size < sizeof(st2v_backend_api)) {
        g_loaded.error = g_loaded.library + " implements another backend ABI than " +
                         std::to_string(ST2V_BACKEND_ABI_VERSION) + " (rebuild it)";
        return;
    }
    const st2v_status s = api->init(0);
    if (s != ST2V_OK) {
        g_loaded.status = s;
        g_loaded.error = api->last_error();
        return;
    }
    g_loaded.api = api;
    g_loaded.status = ST2V_OK;
}

Code code_of(st2v_status s) {
    switch (s) {
        case ST2V_OK: return Code::kOk;
        case ST2V_E_NO_CUDA: return Code::kNoCuda;
        case ST2V_E_CUDA: return Code::kCuda;
        case ST2V_E_CUDA_FATAL: return Code::kCudaFatal;
        case ST2V_E_INVALID_ARG: return Code::kInvalidArgument;
        case ST2V_E_OUT_OF_MEMORY: return Code::kOutOfMemory;
        case ST2V_E_UNSUPPORTED: return Code::kUnsupported;
    }
    return Code::kCuda;
}

}  // namespace

Kind parse_kind(const std::string& s) {
    if (s == "auto") return Kind::kAuto;
    if (s == "cpu") return Kind::kCpu;
    if (s == "cuda") return Kind::kCuda;
    ST2V_THROW(Code::kInvalidArgument, "unknown backend '%s' (auto, cpu, cuda)", s.c_str());
}

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::kAuto: return "auto";
        case Kind::kCpu: return "cpu";
        case Kind::kCuda: return "cuda";
    }
    return "?";
}

CudaStatus cuda_status() {
    std::lock_guard<std::mutex> lock(g_mu);
    load_locked();
    CudaStatus st;
#ifdef ST2V_HAVE_CUDA_LIB
    st.compiled = true;
#else
    st.compiled = g_loaded.lib_found;
#endif
    st.library = g_loaded.library;
    if (!g_loaded.api) {
        st.message = g_loaded.lib_found || st.compiled ? "built, no device: " + g_loaded.error : g_loaded.error;
        return st;
    }
    if (g_loaded.api->device_info(&st.info) != ST2V_OK) {
        st.message = std::string("built, no device: ") + g_loaded.api->last_error();
        return st;
    }
    st.available = true;
    const st2v_device_info& d = st.info;
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "%s (sm_%d%d, %d SMs, %.1f GiB), driver %d.%d, runtime %d.%d, cuBLASLt %zu.%zu.%zu (%s); %s", d.name,
                  d.cc_major, d.cc_minor, d.sm_count, static_cast<double>(d.total_mem) / (1u << 30),
                  d.driver_version / 1000, (d.driver_version % 1000) / 10, d.runtime_version / 1000,
                  (d.runtime_version % 1000) / 10, d.cublaslt_version / 10000, (d.cublaslt_version / 100) % 100,
                  d.cublaslt_version % 100, d.cublaslt_path, d.build);
    st.message = buf;
    return st;
}

const st2v_backend_api& cuda() {
    std::lock_guard<std::mutex> lock(g_mu);
    load_locked();
    if (!g_loaded.api) {
        const Code c = code_of(g_loaded.status);
        throw Error(c == Code::kOk ? Code::kNoCuda : c, "backend 'cuda' is not available: " + g_loaded.error);
    }
    return *g_loaded.api;
}

void check(st2v_status s, const char* what) {
    if (s == ST2V_OK) return;
    const char* msg = g_loaded.api ? g_loaded.api->last_error() : "";
    throw Error(code_of(s), std::string(what) + ": " + msg);
}

Kind resolve(Kind requested) {
    if (requested == Kind::kCuda) {
        (void)cuda();  // throws ERR_NO_CUDA with the reason
        return Kind::kCuda;
    }
    return Kind::kCpu;
}

namespace {
std::atomic<size_t> g_live_bytes{0}, g_peak_bytes{0};
void count_alloc(size_t b) {
    const size_t now = g_live_bytes.fetch_add(b) + b;
    size_t peak = g_peak_bytes.load();
    while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
    }
}
}  // namespace
size_t device_bytes_live() { return g_live_bytes.load(); }
size_t device_bytes_peak() { return g_peak_bytes.load(); }
void reset_device_bytes_peak() { g_peak_bytes.store(g_live_bytes.load()); }

namespace {
std::mutex g_cache_mu;
bool g_cache_on = false;
std::unordered_multimap<size_t, void*> g_cache;
size_t g_cached_bytes = 0;
// Gives back p (bytes long) to the cache when it is on, else to the device.
void release(void* p, size_t bytes) {
    {
        std::lock_guard<std::mutex> lk(g_cache_mu);
        if (g_cache_on) {
            g_cache.emplace(bytes, p);
            g_cached_bytes += bytes;
            return;
        }
    }
    cuda().free(p);  // cannot fail once loaded; errors are sticky and reported by the next call
}
void* take_cached(size_t bytes) {
    std::lock_guard<std::mutex> lk(g_cache_mu);
    auto it = g_cache.find(bytes);
    if (it == g_cache.end()) return nullptr;
    void* p = it->second;
    g_cache.erase(it);
    g_cached_bytes -= bytes;
    return p;
}
}  // namespace
void set_device_buffer_cache(bool on) {
    std::unordered_multimap<size_t, void*> drop;
    {
        std::lock_guard<std::mutex> lk(g_cache_mu);
        g_cache_on = on;
        if (!on) {
            drop.swap(g_cache);
            g_cached_bytes = 0;
        }
    }
    for (auto& kv : drop) cuda().free(kv.second);
}
size_t device_bytes_cached() {
    std::lock_guard<std::mutex> lk(g_cache_mu);
    return g_cached_bytes;
}

namespace {
std::atomic<bool> g_prof_on{false};
ProfileTable g_prof;
thread_local int t_prof_depth = 0;
double prof_now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace
void set_op_profile(bool on) {
    if (on) g_prof.clear();
    g_prof_on = on;
}
bool op_profile_on() { return g_prof_on.load(std::memory_order_relaxed); }
std::vector<OpProfileRow> op_profile() {
    std::vector<OpProfileRow> v;
    for (const ProfileRow& r : g_prof.rows()) v.push_back({r.name, r.calls, r.seconds * 1e3, r.flop});
    return v;
}
// Never throws (it runs in DeviceBuffer's destructor): a failed synchronisation is sticky in the CUDA library and
// reported by the next checked call; a region whose start cannot synchronise is not recorded.
OpScope::OpScope(const char* name, double flop) {
    if (!g_prof_on.load(std::memory_order_relaxed)) return;
    counted_ = true;
    if (t_prof_depth++ > 0) return;
    try {
        if (cuda().synchronize() != ST2V_OK) return;
    } catch (...) {
        return;
    }
    name_ = name;
    flop_ = flop;
    t0_ = prof_now_ms();
}
OpScope::~OpScope() {
    if (counted_) --t_prof_depth;
    if (!name_) return;
    try {
        (void)cuda().synchronize();
    } catch (...) {
        return;
    }
    g_prof.add(name_, (prof_now_ms() - t0_) * 1e-3, flop_, 0);
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
    OpScope prof("alloc (outside ops)");
    p_ = take_cached(bytes);
    if (!p_) check(cuda().alloc(&p_, bytes), "cuda alloc");
    count_alloc(bytes);
}
DeviceBuffer::~DeviceBuffer() {
    if (p_) {
        OpScope prof("free (outside ops)");
        release(p_, bytes_);
        g_live_bytes.fetch_sub(bytes_);
    }
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        if (p_) {
            release(p_, bytes_);
            g_live_bytes.fetch_sub(bytes_);
        }
        p_ = o.p_, bytes_ = o.bytes_;
        o.p_ = nullptr, o.bytes_ = 0;
    }
    return *this;
}
void DeviceBuffer::upload(const void* host, size_t bytes) {
    ST2V_CHECK_ARG(bytes <= bytes_, "DeviceBuffer::upload: %zu bytes into %zu", bytes, bytes_);
    check(cuda().memcpy(p_, host, bytes, ST2V_H2D), "cuda upload");
}
void DeviceBuffer::download(void* host, size_t bytes) const {
    ST2V_CHECK_ARG(bytes <= bytes_, "DeviceBuffer::download: %zu bytes from %zu", bytes, bytes_);
    check(cuda().memcpy(host, p_, bytes, ST2V_D2H), "cuda download");
}

}  // namespace st2v::backend
