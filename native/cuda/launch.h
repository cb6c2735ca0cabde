// Kernel launches and dynamic shared memory go through these macros, so the same .cu sources compile both with
// nvcc (the real backend) and as plain C++ against the CPU emulation of the CUDA execution model
// (native/cuda/emu/, ST2V_CUDA_EMU), which the tests use to run every kernel on machines without a GPU.
//
//   ST2V_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)   ==  kernel<<<grid, block, smem, stream>>>(args...)
//   ST2V_DYNAMIC_SMEM(float, smem);                                   ==  extern __shared__ float smem[];
//
// `kernel` may be a template instance without commas in its argument list (attention_kernel<DPL>).
#pragma once

#ifdef ST2V_CUDA_EMU
#include "cuda/emu/emu.h"
// (the emulation also gets the kernel's name and address: its messages name the kernel, it checks the
// cudaFuncSetAttribute limit and that pointer arguments are device memory)
#define ST2V_LAUNCH(kernel, grid, block, smem, stream, ...) \
    ::st2v::cuda_emu::launch_kernel(#kernel, &kernel, (grid), (block), (smem), (stream), ##__VA_ARGS__)
#define ST2V_DYNAMIC_SMEM(type, name) type* name = static_cast<type*>(::st2v::cuda_emu::dynamic_smem())
#else
#define ST2V_LAUNCH(kernel, grid, block, smem, stream, ...) kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__)
#define ST2V_DYNAMIC_SMEM(type, name) extern __shared__ type name[]
#endif
