// PyTorch- and Python-compatible random number generators.
//
// TorchGenerator reproduces torch's CPU generator (at::mt19937 + CPUGeneratorImpl) and the CPU kernels
// of torch.randn / torch.rand for float32 bit for bit (torch 1.13, checked against golden/randn):
//   * rand:  u = (mt() & 0xFFFFFF) * 2^-24, one 32-bit draw per element (all paths).
//   * randn, numel >= 16 (contiguous f32): first every element gets one uniform u (32-bit draw), then
//     each block of 16 is turned by Box-Muller into normals: for j in 0..7, u1 = 1 - d[j], u2 = d[j+8],
//     d[j] = r cos(θ), d[j+8] = r sin(θ), r = sqrt(-2 log u1), θ = 2π u2. A tail (numel % 16 != 0)
//     redraws 16 fresh uniforms for the last 16 elements and transforms them again.
//     Two variants of the per-block math exist in torch and differ in the last bits:
//       RandnPath::kAvx2    – torch built for AVX2 (the default on any x86 CPU with AVX2): avx_mathfun's
//                             log256_ps / sincos256_ps (Cephes polynomials) emulated here lane by lane.
//       RandnPath::kDefault – ATEN_CPU_CAPABILITY=default: libm logf / cosf / sinf on floats.
//   * randn, numel < 16: at::normal_distribution<double> per element (two 53-bit uniforms per pair,
//     the second normal cached in the generator and consumed by the next scalar draw, across calls).
// The generator state (mt19937 + cached normal) continues across calls like torch.Generator.
//
// PyRandom reproduces CPython's `random` module core: random.seed(int) (init_by_array over the 32-bit
// words of |seed|), getrandbits(k), randbelow(n), randint(a, b), random().
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace st2v::runtime {

// Standard MT19937 (32-bit), seeded like at::mt19937(seed) / std::mt19937(seed) (init_genrand).
class Mt19937 {
  public:
    explicit Mt19937(uint32_t seed = 5489u) { seed_u32(seed); }
    void seed_u32(uint32_t seed);
    void seed_by_array(const uint32_t* key, size_t n);  // CPython's init_by_array
    uint32_t next_u32();

  private:
    void twist();
    uint32_t s_[624];
    int i_ = 624;
};

enum class RandnPath { kAvx2 = 0, kDefault = 1 };

class TorchGenerator {
  public:
    // torch.Generator().manual_seed(seed): the engine is seeded with the low 32 bits of the seed.
    explicit TorchGenerator(uint64_t seed = 67280421310721ull, RandnPath path = RandnPath::kAvx2);
    void manual_seed(uint64_t seed);
    RandnPath path() const { return path_; }
    void set_path(RandnPath p) { path_ = p; }

    // New f32 tensors (contiguous), drawn as torch.randn(shape, generator=g) / torch.rand(...).
    Tensor randn(const Shape& shape);
    Tensor rand(const Shape& shape);
    // Fill raw memory (n contiguous floats) in the same way.
    void randn_fill(float* out, int64_t n);
    void rand_fill(float* out, int64_t n);

    uint32_t random_u32() { return mt_.next_u32(); }
    uint64_t random_u64();  // (hi << 32) | lo, hi drawn first (at::CPUGeneratorImpl::random64)

  private:
    double normal_double();  // at::normal_distribution<double>(0, 1) incl. the cached second sample
    Mt19937 mt_;
    RandnPath path_;
    bool has_next_double_ = false;
    double next_double_ = 0;
};

// The 16-element Box-Muller block of torch's vectorised randn, in place (d holds 16 uniforms in [0,1)).
void torch_normal_fill_16(float* d, RandnPath path);

class PyRandom {
  public:
    explicit PyRandom(int64_t seed = 0) { seed_int(seed); }
    void seed_int(int64_t seed);      // random.seed(seed) for an int seed
    uint32_t getrandbits32(int k);    // getrandbits(k), 1 <= k <= 32
    uint64_t getrandbits(int k);      // 1 <= k <= 64
    uint64_t randbelow(uint64_t n);   // _randbelow_with_getrandbits, n >= 1
    int64_t randint(int64_t a, int64_t b);  // inclusive bounds, a <= b
    double random();                  // random.random(), 53-bit

  private:
    Mt19937 mt_;
};

}  // namespace st2v::runtime
