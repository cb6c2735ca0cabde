// Internal to libstreamingt2v_cuda: launchers of kernels_layout.cu (convolutions and data movement, ABI 2).
// All run on ctx().stream; they validate their sizes and return a status, never throw.
#pragma once
#include <cstdint>

#include "backend/backend_abi.h"

namespace st2v::cuda {

st2v_status k_conv2d(const st2v_conv2d_args* a);
st2v_status k_conv_temporal(const st2v_conv_temporal_args* a);
st2v_status k_copy_strided(const void* src, const int64_t* src_strides, void* dst, const int64_t* dst_strides,
                           const int64_t* shape, int ndim, int elem_bytes);
st2v_status k_add_broadcast(float* a, const float* b, int64_t n, int64_t div, int64_t inner);
st2v_status k_upsample_nearest(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t oh, int64_t ow);

}  // namespace st2v::cuda
