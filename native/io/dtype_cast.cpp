#include "io/dtype_cast.h"

#include <cstring>
#include <vector>

#include "core/half.h"

namespace st2v::io {

bool is_float_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

namespace {
inline float load(const unsigned char* p, DType t, size_t i) {
    switch (t) {
        case DType::F32: { float f; std::memcpy(&f, p + 4 * i, 4); return f; }
        case DType::F16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return f16_to_f32(h); }
        case DType::BF16: { uint16_t h; std::memcpy(&h, p + 2 * i, 2); return bf16_to_f32(h); }
        default: { double d; std::memcpy(&d, p + 8 * i, 8); return static_cast<float>(d); }
    }
}
inline void store(unsigned char* p, DType t, size_t i, float f) {
    switch (t) {
        case DType::F32: std::memcpy(p + 4 * i, &f, 4); break;
        case DType::F16: { uint16_t h = f32_to_f16(f); std::memcpy(p + 2 * i, &h, 2); break; }
        case DType::BF16: { uint16_t h = f32_to_bf16(f); std::memcpy(p + 2 * i, &h, 2); break; }
        default: { double d = f; std::memcpy(p + 8 * i, &d, 8); break; }
    }
}
}  // namespace

void cast_elements(const void* src, DType from, void* dst, DType to, size_t n) {
    ST2V_CHECK(is_float_dtype(from) && is_float_dtype(to), Code::kDtype, "cannot convert %s to %s (floating dtypes only)",
               dtype_name(from), dtype_name(to));
    const auto* s = static_cast<const unsigned char*>(src);
    auto* d = static_cast<unsigned char*>(dst);
    if (from == to) {
        std::memmove(d, s, n * dtype_size(from));
        return;
    }
    if (from == DType::F64 || to == DType::F64) {
        if (from == DType::F64 && to == DType::F32) {
            for (size_t i = 0; i < n; ++i) { double x; std::memcpy(&x, s + 8 * i, 8); float f = static_cast<float>(x); std::memcpy(d + 4 * i, &f, 4); }
            return;
        }
        if (to == DType::F64) {
            for (size_t i = 0; i < n; ++i) { double x = load(s, from, i); std::memcpy(d + 8 * i, &x, 8); }
            return;
        }
    }
    for (size_t i = 0; i < n; ++i) store(d, to, i, load(s, from, i));
}

}  // namespace st2v::io
