// Helpers shared by the op implementations: reading f32/f16/bf16 weight elements, checking a weight's dtype,
// and widening small bias/affine vectors to f32.
#pragma once
#include <vector>

#include "core/half.h"
#include "core/tensor.h"

namespace st2v::ops::detail {

inline float load_w(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return static_cast<const float*>(p)[i];
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        default: return 0.f;
    }
}

inline void check_float_weight(const Tensor& w, const char* op, const char* what) {
    check_defined(w, op, what);
    ST2V_CHECK(w.dtype() == DType::F32 || w.dtype() == DType::F16 || w.dtype() == DType::BF16, Code::kDtype,
               "%s: %s must be f32, f16 or bf16, got %s", op, what, w.desc().c_str());
}

// Bias/affine vectors as contiguous f32 (small; converted per call). Empty when t is undefined.
inline std::vector<float> vec_f32(const Tensor& t, int64_t n, const char* op, const char* what) {
    std::vector<float> v;
    if (!t.defined()) return v;
    check_float_weight(t, op, what);
    ST2V_CHECK(t.numel() == n, Code::kShapeMismatch, "%s: %s has %lld elements, expected %lld", op, what,
               (long long)t.numel(), (long long)n);
    Tensor c = t.contiguous();
    v.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = load_w(c.raw(), c.dtype(), i);
    return v;
}

}  // namespace st2v::ops::detail
