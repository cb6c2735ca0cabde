// CPU emulation of the CUDA execution model (ST2V_CUDA_EMU): the CUDA backend's kernel sources (native/cuda/*.cu)
// compile with g++ as plain C++ against this header and the shims in native/cuda/emu/include/, and run on the
// CPU so that native/cuda/tests/cuda_check.cpp can compare them with the CPU ops on machines without a GPU.
//
// What it is: blocks run one after the other on the calling host thread; the threads of a block run as
// cooperative fibers (own stacks, explicit switches), so __syncthreads() is a real barrier and the warp
// intrinsics (__shfl_*_sync, __ballot_sync, __syncwarp ...) exchange values through a per-warp barrier. A thread
// that never reaches a barrier runs to completion in one go. `__shared__` is `static`: with one block at a
// time, a function-static array is exactly the block's shared memory. Device memory is host memory (malloc), so
// AddressSanitizer checks kernel accesses (ST2V_CUDA_EMU_ASAN).
//
// What it checks loudly: launch geometry (block > 1024 threads or beyond the per-dimension limits, empty grid),
// dynamic shared memory above 48 KiB without cudaFuncSetAttribute or above the device's opt-in limit, writes
// past the requested dynamic shared memory (guard bytes; ASan: any access), __syncthreads / warp-op deadlocks
// (some threads exited or wait elsewhere while others wait), shuffles that read a lane outside the mask or
// beyond the block, pointer kernel arguments that are not inside a cudaMalloc allocation, cudaMemcpy
// directions that do not match where the pointers live. Fresh dynamic shared memory holds NaN bytes (0xff).
//
// What it is not: no memory model (stores are seen at once, in program order: a missing __syncthreads between
// a write and another thread's read is NOT detected unless the fiber order happens to expose it), no race
// detection, no weak ordering, no timing or performance meaning, no concurrency between streams, no
// tensor-core or TF32 numerics (fp32 is fp32), no fused multiply-add contraction unless the source says fmaf.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#ifndef ST2V_CUDA_EMU
#define ST2V_CUDA_EMU 1
#endif

// ---- qualifiers ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// Static shared memory: function-static variables gathered in one section, which the emulator fills with 0xff
// (NaN / -1) before every block, so a block never sees the previous block's data and a read before the
// block's own write (a missing barrier) shows. One block at a time: a function-static is the block's memory.
// g++ 12 ignores the section attribute on a static local of a function template: those arrays (the convolution
// tiles of kernels_layout.cu) are not refilled and keep the previous block's data.
#define __shared__ __attribute__((section("st2v_emu_shared"))) static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

// ---- vector types (as CUDA's vector_types.h: alignment included) ----
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct __attribute__((aligned(8))) float2 { float x, y; };
struct float3 { float x, y, z; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned int x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned int x, y, z, w; };
struct __attribute__((aligned(16))) double2 { double x, y; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

// ---- built-in variables: set by the scheduler before each fiber runs (one host thread runs all kernels) ----
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
constexpr int warpSize = 32;

typedef struct CUstream_st* cudaStream_t;

namespace st2v::cuda_emu {

// Barriers and warp exchange (emu.cpp). All of them fail loudly when called outside a kernel.
void block_barrier();
// Writes this lane's 8-byte value, waits for the lanes of `mask`, returns the warp's 32 slots of this op.
const uint64_t* warp_exchange(unsigned mask, uint64_t value);
// Fails the running launch (message to stderr; the launch reports cudaErrorLaunchFailure) and does not return
// to the kernel: the fiber is abandoned.
[[noreturn]] void kernel_fault(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void* dynamic_smem();
// Lane of the current thread within its warp (threads are numbered x-fastest, as on the GPU).
unsigned lane_id();
unsigned warp_lanes();  // mask of the lanes that exist in the current warp (a partial last warp has fewer)

// Type-erased launch: runs fn(ctx) as every thread of every block. name/fn_id may be null.
void launch_erased(const char* name, const void* fn_id, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, void (*fn)(void*), void* ctx);
// Whether [p, p + bytes) lies inside one cudaMalloc allocation.
bool is_device_range(const void* p, size_t bytes);
// Records a failure of a pointer-argument check (launch_kernel) and makes the launch fail.
void bad_kernel_pointer(const char* name, int index, const void* p);

// The form launch.h's ST2V_LAUNCH uses without a kernel name.
template <class F>
void launch(dim3 grid, dim3 block, size_t smem_bytes, F&& fn) {
    using Fn = std::remove_reference_t<F>;
    launch_erased(nullptr, nullptr, grid, block, smem_bytes, nullptr, [](void* c) { (*static_cast<Fn*>(c))(); },
                  const_cast<void*>(static_cast<const void*>(&fn)));
}

// kernel<<<grid, block, smem, stream>>>(args...): the arguments are converted to the kernel's parameter types
// once (as a real launch does); every emulated thread gets its own copy of them. Pointer parameters must be
// null or point into a cudaMalloc allocation (a host pointer passed to a kernel is an illegal address on a GPU).
template <class... P, class... A>
void launch_kernel(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    bool ok = true;
    int index = 0;
    std::apply(
        [&](const auto&... p) {
            auto check = [&](const auto& v) {
                using T = std::decay_t<decltype(v)>;
                if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>) {
                    if (ok && v != nullptr && !is_device_range(v, 0)) {
                        bad_kernel_pointer(name, index, static_cast<const void*>(v));
                        ok = false;
                    }
                }
                ++index;
            };
            (check(p), ...);
        },
        params);
    if (!ok) return;
    struct Ctx {
        void (*k)(P...);
        std::tuple<std::decay_t<P>...>* params;
    } ctx{kernel, &params};
    launch_erased(
        name, reinterpret_cast<const void*>(kernel), grid, block, smem_bytes, stream,
        [](void* c) {
            Ctx* x = static_cast<Ctx*>(c);
            std::tuple<std::decay_t<P>...> mine = *x->params;  // per-thread copy of the parameters
            std::apply(x->k, mine);
        },
        &ctx);
}

template <class T>
inline uint64_t to_slot(T v) {
    static_assert(sizeof(T) <= 8, "warp shuffles of types wider than 8 bytes are not emulated");
    uint64_t u = 0;
    memcpy(&u, &v, sizeof(T));
    return u;
}
template <class T>
inline T from_slot(uint64_t u) {
    T v;
    memcpy(&v, &u, sizeof(T));
    return v;
}
// Lane `src` of this op's slots; src must be in the mask (reading a non-participating lane is undefined on
// the GPU: here it is a loud failure).
template <class T>
inline T shfl_read(unsigned mask, const uint64_t* slots, unsigned src, const char* what) {
    if (!((mask >> src) & 1u)) kernel_fault("%s reads lane %u, which is not in the mask 0x%08x", what, src, mask);
    return from_slot<T>(slots[src]);
}

}  // namespace st2v::cuda_emu

// ---- synchronisation ----
inline void __syncthreads() { ::st2v::cuda_emu::block_barrier(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::st2v::cuda_emu::warp_exchange(mask, 0); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline unsigned __activemask() { return ::st2v::cuda_emu::warp_lanes(); }

// ---- warp shuffles / votes (width: a power of two <= 32, as CUDA) ----
template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
    const unsigned lane = ::st2v::cuda_emu::lane_id();
    const uint64_t* s = ::st2v::cuda_emu::warp_exchange(mask, ::st2v::cuda_emu::to_slot(var));
    const unsigned src = (lane & ~unsigned(width - 1)) + (unsigned(src_lane) & unsigned(width - 1));
    return ::st2v::cuda_emu::shfl_read<T>(mask, s, src, "__shfl_sync");
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    const unsigned lane = ::st2v::cuda_emu::lane_id();
    const uint64_t* s = ::st2v::cuda_emu::warp_exchange(mask, ::st2v::cuda_emu::to_slot(var));
    const unsigned src = lane ^ unsigned(lane_mask);
    if ((src & ~unsigned(width - 1)) != (lane & ~unsigned(width - 1)) || src >= 32) return var;
    return ::st2v::cuda_emu::shfl_read<T>(mask, s, src, "__shfl_xor_sync");
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    const unsigned lane = ::st2v::cuda_emu::lane_id();
    const uint64_t* s = ::st2v::cuda_emu::warp_exchange(mask, ::st2v::cuda_emu::to_slot(var));
    if ((lane & unsigned(width - 1)) + delta >= unsigned(width)) return var;
    return ::st2v::cuda_emu::shfl_read<T>(mask, s, lane + delta, "__shfl_down_sync");
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
    const unsigned lane = ::st2v::cuda_emu::lane_id();
    const uint64_t* s = ::st2v::cuda_emu::warp_exchange(mask, ::st2v::cuda_emu::to_slot(var));
    if ((lane & unsigned(width - 1)) < delta) return var;
    return ::st2v::cuda_emu::shfl_read<T>(mask, s, lane - delta, "__shfl_up_sync");
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    const uint64_t* s = ::st2v::cuda_emu::warp_exchange(mask, pred ? 1u : 0u);
    unsigned r = 0;
    for (unsigned l = 0; l < 32; ++l)
        if (((mask >> l) & 1u) && s[l]) r |= 1u << l;
    return r;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

// ---- atomics (one host thread runs every emulated thread: plain read-modify-write is atomic here) ----
template <class T>
inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T>
inline T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <class T>
inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T>
inline T atomicMax(T* p, T v) { T o = *p; if (v > o) *p = v; return o; }
template <class T>
inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T>
inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <class T>
inline T atomicOr(T* p, T v) { T o = *p; *p = o | v; return o; }
template <class T>
inline T atomicAnd(T* p, T v) { T o = *p; *p = o & v; return o; }
template <class T>
inline T __ldg(const T* p) { return *p; }

// ---- math intrinsics (fast-math variants computed at full precision: the emulation has no SFU) ----
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float exp10f(float x) { return powf(10.0f, x); }
inline void __sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
// CUDA's global min/max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
