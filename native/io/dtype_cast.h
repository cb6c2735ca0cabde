// Element-wise conversion between the floating dtypes of weight files (f32, f16, bf16, f64), used by
// `st2v convert` (through the addon) on streamed chunks. f32 -> f16 / bf16 round to nearest even
// (core/half.h), f64 -> f32 is the C++ conversion (round to nearest).
#pragma once
#include <cstddef>

#include "core/tensor.h"

namespace st2v::io {

bool is_float_dtype(DType t);
// dst must hold n elements of `to`; src n elements of `from`. ERR_DTYPE when either is not a float dtype.
void cast_elements(const void* src, DType from, void* dst, DType to, size_t n);

}  // namespace st2v::io
