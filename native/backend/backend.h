// Compute backends seen from the engine: 'cpu' (native/ops, always there) and 'cuda' (libstreamingt2v_cuda, a
// separate shared library dlopen()ed on first use; backend_abi.h is the boundary). Nothing here needs CUDA
// headers or libraries: a CPU-only build compiles and runs this file and reports the CUDA part as "not built".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend_abi.h"
#include "core/status.h"

namespace st2v::backend {

enum class Kind { kAuto, kCpu, kCuda };
// "auto" | "cpu" | "cuda"; anything else throws ERR_INVALID_ARG.
Kind parse_kind(const std::string& s);
const char* kind_name(Kind k);

// What systemInfo()/`st2v info` show about the CUDA part. Never throws.
struct CudaStatus {
    bool compiled = false;   // this build has the CUDA library (ST2V_HAVE_CUDA_LIB) or one was found
    bool available = false;  // library loaded, device initialised, cuBLASLt found
    std::string message;     // "not built", "built, no device: <why>", or the GPU summary
    std::string library;     // path of libstreamingt2v_cuda.so that was loaded (or looked for)
    st2v_device_info info{}; // valid when available
};
CudaStatus cuda_status();

// The loaded, initialised CUDA backend (device 0). Throws st2v::Error ERR_NO_CUDA naming what is missing (the
// library, a driver/device, cuBLASLt), never crashes. The first call does the work; later calls are cheap.
const st2v_backend_api& cuda();
// Throws the st2v::Error matching a failed status of the CUDA library (its last_error() as the message).
void check(st2v_status s, const char* what);
// The backend that `requested` resolves to on this machine: auto -> cpu (the models do not run on CUDA yet),
// cpu -> cpu, cuda -> cuda when available, else ERR_NO_CUDA.
Kind resolve(Kind requested);

// Allocator counter over DeviceBuffer: bytes held by live DeviceBuffers now, and the most held at once since the
// last reset (weights + activations; the CUDA library's own workspaces, e.g. cuBLASLt's, are not counted).
size_t device_bytes_live();
size_t device_bytes_peak();
void reset_device_bytes_peak();  // peak := live
// Opt-in buffer cache (default off): freed DeviceBuffers are kept per exact size and handed to the next buffer of
// that size, without the stream synchronisation + cudaFree of a real free (safe: every backend operation runs on
// its one stream, in order). Turning it off frees what it holds. device_bytes_cached(): bytes held by the cache.
void set_device_buffer_cache(bool on);
size_t device_bytes_cached();

// Device-op profile (tools: cuda_model_check --profile). While on, every timed region (each typed CUDA op of
// backend/cuda_ops.h, and each DeviceBuffer allocation / free made outside an op: the model code's temporaries)
// synchronises the device before and after itself and adds its wall time (and FLOPs, where the op counts them) to
// a table keyed by region name; nested regions count in the outermost one only. Every region then pays two
// synchronisations, so a profiled step is slower than an unprofiled one; the shares are what it is for. Off (the
// default): one relaxed atomic load per region. set_op_profile(true) clears the table.
struct OpProfileRow {
    std::string name;
    int64_t calls = 0;
    double ms = 0, flop = 0;
};
void set_op_profile(bool on);
bool op_profile_on();
std::vector<OpProfileRow> op_profile();  // by ms, descending
class OpScope {
  public:
    explicit OpScope(const char* name, double flop = 0);
    ~OpScope();
    OpScope(const OpScope&) = delete;
    OpScope& operator=(const OpScope&) = delete;

  private:
    const char* name_ = nullptr;  // null: not recording (profile off, nested, or the start sync failed)
    bool counted_ = false;        // this scope holds one level of the thread's nesting depth
    double flop_ = 0, t0_ = 0;
};

// A device buffer of the CUDA backend (RAII).
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    void* get() const { return p_; }
    float* f32() const { return static_cast<float*>(p_); }
    size_t bytes() const { return bytes_; }
    void upload(const void* host, size_t bytes);
    void download(void* host, size_t bytes) const;

  private:
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace st2v::backend
