#include "core/status.h"

#include <cstdio>
#include <vector>

namespace st2v {

const char* code_name(Code c) {
    switch (c) {
        case Code::kOk: return "OK";
        case Code::kInvalidArgument: return "ERR_INVALID_ARG";
        case Code::kNotFound: return "ERR_NOT_FOUND";
        case Code::kWeightsMissing: return "ERR_WEIGHTS_MISSING";
        case Code::kShapeMismatch: return "ERR_SHAPE_MISMATCH";
        case Code::kDtype: return "ERR_DTYPE";
        case Code::kUnsupported: return "ERR_UNSUPPORTED";
        case Code::kOutOfMemory: return "ERR_OUT_OF_MEMORY";
        case Code::kIo: return "ERR_IO";
        case Code::kFormat: return "ERR_FORMAT";
        case Code::kUnsafe: return "ERR_UNSAFE";
        case Code::kNoCuda: return "ERR_NO_CUDA";
        case Code::kCuda: return "ERR_CUDA";
        case Code::kCudaFatal: return "ERR_CUDA_FATAL";
        case Code::kCancelled: return "ERR_CANCELLED";
        case Code::kBusy: return "ERR_BUSY";
        case Code::kDisposed: return "ERR_DISPOSED";
        case Code::kInternal: return "ERR_INTERNAL";
        case Code::kCount_: break;
    }
    return "ERR_INTERNAL";
}

int code_count() { return static_cast<int>(Code::kCount_); }

std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string out;
    if (n > 0) {
        out.resize(static_cast<size_t>(n));
        std::vsnprintf(out.data(), out.size() + 1, fmt, ap2);
    }
    va_end(ap2);
    return out;
}

}  // namespace st2v
