// .npy reader/writer (NumPy format 1.0/2.0/3.0, little-endian, C order) for reference dumps and tests.
#pragma once
#include <string>

#include "core/tensor.h"

namespace st2v::io {

// Reads f32/f16/f64/i64/i32/u8/bool arrays; Fortran order and big-endian data are refused (ERR_FORMAT).
Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& t);

}  // namespace st2v::io
