// st2v status and errors.
//
// Every failure that user input can reach is reported by throwing st2v::Error with a stable Code.
// The N-API layer turns it into a JS St2vError whose `code` is code_name(code) ("ERR_INVALID_ARG", ...).
// Nothing in the engine calls abort()/exit()/assert() on such paths. ST2V_DCHECK is for internal
// invariants only and compiles to nothing in release builds.
#pragma once
#include <cstdarg>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace st2v {

enum class Code : int32_t {
    kOk = 0,
    kInvalidArgument,   // ERR_INVALID_ARG
    kNotFound,          // ERR_NOT_FOUND
    kWeightsMissing,    // ERR_WEIGHTS_MISSING
    kShapeMismatch,     // ERR_SHAPE_MISMATCH
    kDtype,             // ERR_DTYPE
    kUnsupported,       // ERR_UNSUPPORTED
    kOutOfMemory,       // ERR_OUT_OF_MEMORY
    kIo,                // ERR_IO
    kFormat,            // ERR_FORMAT (corrupt or malformed file)
    kUnsafe,            // ERR_UNSAFE (e.g. pickle global not allowed)
    kNoCuda,            // ERR_NO_CUDA
    kCuda,              // ERR_CUDA
    kCudaFatal,         // ERR_CUDA_FATAL
    kCancelled,         // ERR_CANCELLED
    kBusy,              // ERR_BUSY
    kDisposed,          // ERR_DISPOSED
    kInternal,          // ERR_INTERNAL
    kCount_
};

// Stable string for a code; these strings are part of the public API.
const char* code_name(Code c);
// All codes (except kOk) in enum order; used by errorCodes() in the addon.
int code_count();

class Error : public std::runtime_error {
  public:
    Error(Code code, std::string message) : std::runtime_error(std::move(message)), code_(code) {}
    Code code() const { return code_; }

  private:
    Code code_;
};

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace st2v

#define ST2V_CHECK(cond, code, ...)                                        \
    do {                                                                   \
        if (!(cond)) throw ::st2v::Error((code), ::st2v::format(__VA_ARGS__)); \
    } while (0)
#define ST2V_CHECK_ARG(cond, ...) ST2V_CHECK(cond, ::st2v::Code::kInvalidArgument, __VA_ARGS__)
#define ST2V_THROW(code, ...) throw ::st2v::Error((code), ::st2v::format(__VA_ARGS__))

#ifdef NDEBUG
#define ST2V_DCHECK(cond) ((void)0)
#else
#define ST2V_DCHECK(cond) \
    do { if (!(cond)) ST2V_THROW(::st2v::Code::kInternal, "internal check failed: %s at %s:%d", #cond, __FILE__, __LINE__); } while (0)
#endif
