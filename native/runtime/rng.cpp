#include "runtime/rng.h"

#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "core/cpu.h"

namespace st2v::runtime {

// ---------------------------------------------------------------------------------------------- MT19937
void Mt19937::seed_u32(uint32_t seed) {
    s_[0] = seed;
    for (uint32_t j = 1; j < 624; ++j) s_[j] = 1812433253u * (s_[j - 1] ^ (s_[j - 1] >> 30)) + j;
    i_ = 624;
}

void Mt19937::seed_by_array(const uint32_t* key, size_t n) {
    seed_u32(19650218u);
    size_t i = 1, j = 0;
    size_t k = 624 > n ? 624 : n;
    for (; k; --k) {
        s_[i] = (s_[i] ^ ((s_[i - 1] ^ (s_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<uint32_t>(j);
        ++i;
        ++j;
        if (i >= 624) {
            s_[0] = s_[623];
            i = 1;
        }
        if (j >= n) j = 0;
    }
    for (k = 623; k; --k) {
        s_[i] = (s_[i] ^ ((s_[i - 1] ^ (s_[i - 1] >> 30)) * 1566083941u)) - static_cast<uint32_t>(i);
        ++i;
        if (i >= 624) {
            s_[0] = s_[623];
            i = 1;
        }
    }
    s_[0] = 0x80000000u;
    i_ = 624;
}

void Mt19937::twist() {
    constexpr uint32_t kUpper = 0x80000000u, kLower = 0x7fffffffu, kMatrix = 0x9908b0dfu;
    for (int k = 0; k < 624; ++k) {
        const uint32_t y = (s_[k] & kUpper) | (s_[(k + 1) % 624] & kLower);
        s_[k] = s_[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? kMatrix : 0u);
    }
    i_ = 0;
}

uint32_t Mt19937::next_u32() {
    if (i_ >= 624) twist();
    uint32_t y = s_[i_++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

// ------------------------------------------------------------------------------ torch Box-Muller blocks
namespace {

inline uint32_t fbits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bitsf(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// torch compiles its AVX2 kernels with -mavx2 -mfma and GCC contracts the mul/add pairs of avx_mathfun's
// vector expressions into FMAs (the first multiply feeding an add is fused); emulated here with std::fma
// in exactly those places (bit-identical to golden/randn; the unfused form differs in ~1% of values).
constexpr bool kFused = true;
inline float madd(float a, float b, float c) { return kFused ? std::fma(a, b, c) : a * b + c; }

// avx_mathfun log256_ps, one lane.
float cephes_logf(float x0) {
    const bool invalid = x0 <= 0.0f;  // _CMP_LE_OS: false for NaN
    float x = x0;
    const float mnp = bitsf(0x00800000u);
    x = (x > mnp) ? x : mnp;  // _mm256_max_ps(x, mnp): returns mnp when x is NaN
    int32_t imm0 = static_cast<int32_t>(fbits(x) >> 23);
    x = bitsf((fbits(x) & ~0x7f800000u) | fbits(0.5f));
    imm0 -= 0x7f;
    float e = static_cast<float>(imm0);
    e = e + 1.0f;
    const bool mask = x < 0.707106781186547524f;
    const float tmp0 = mask ? x : 0.0f;
    x = x - 1.0f;
    e = e - (mask ? 1.0f : 0.0f);
    x = x + tmp0;
    const float z = x * x;
    float y = 7.0376836292E-2f;
    y = madd(y, x, -1.1514610310E-1f);
    y = madd(y, x, 1.1676998740E-1f);
    y = madd(y, x, -1.2420140846E-1f);
    y = madd(y, x, +1.4249322787E-1f);
    y = madd(y, x, -1.6668057665E-1f);
    y = madd(y, x, +2.0000714765E-1f);
    y = madd(y, x, -2.4999993993E-1f);
    y = madd(y, x, +3.3333331174E-1f);
    y = y * x;
    y = madd(y, z, e * -2.12194440e-4f);  // GCC fuses the first multiply that feeds the add
    y = madd(-z, 0.5f, y);
    x = x + y;
    x = madd(e, 0.693359375f, x);
    if (invalid) x = bitsf(fbits(x) | 0xffffffffu);
    return x;
}

// avx_mathfun sincos256_ps, one lane.
void cephes_sincosf(float xin, float* s, float* c) {
    uint32_t sign_bit_sin = fbits(xin) & 0x80000000u;
    float x = bitsf(fbits(xin) & 0x7fffffffu);
    float y = x * 1.27323954473516f;
    int32_t imm2 = static_cast<int32_t>(y);  // cvttps (in range for our arguments)
    imm2 = (imm2 + 1) & ~1;
    y = static_cast<float>(imm2);
    int32_t imm4 = imm2;
    const uint32_t swap_sign_bit_sin = static_cast<uint32_t>(imm2 & 4) << 29;
    const bool poly_sin = (imm2 & 2) == 0;  // poly_mask all-ones -> use the sine polynomial for sin
    x = madd(y, -0.78515625f, x);
    x = madd(y, -2.4187564849853515625e-4f, x);
    x = madd(y, -3.77489497744594108e-8f, x);
    imm4 = imm4 - 2;
    const uint32_t sign_bit_cos = static_cast<uint32_t>(~imm4 & 4) << 29;
    sign_bit_sin ^= swap_sign_bit_sin;
    const float z = x * x;
    float yc = 2.443315711809948E-005f;
    yc = madd(yc, z, -1.388731625493765E-003f);
    yc = madd(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    yc = madd(yc, z, -(z * 0.5f));
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;
    ys = madd(ys, z, 8.3321608736E-3f);
    ys = madd(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = madd(ys, x, x);
    // select: sin gets ys where poly_mask, yc elsewhere; cos the other one
    const float sv = poly_sin ? ys : yc;
    const float cv = poly_sin ? yc : ys;
    *s = bitsf(fbits(sv) ^ sign_bit_sin);
    *c = bitsf(fbits(cv) ^ sign_bit_cos);
}

// The same per-block math with AVX2/FMA intrinsics (used when the CPU has them; identical results: every
// fused operation above is an explicit _mm256_fmadd/_fnmadd here, everything else rounds the same way).
__attribute__((target("avx2,fma"))) void normal_fill_avx2_blocks(float* d, int64_t n_blocks) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256 two_pi = _mm256_set1_ps(static_cast<float>(2.0f * 3.14159265358979323846));
    const __m256 minus_two = _mm256_set1_ps(-2.0f);
    const __m256 mnp = _mm256_castsi256_ps(_mm256_set1_epi32(0x00800000));
    const __m256i inv_mant = _mm256_set1_epi32(~0x7f800000);
    const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
    const __m256 inv_sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t b = 0; b < n_blocks; ++b) {
        float* p = d + 16 * b;
        // log256_ps(1 - u)
        __m256 x = _mm256_sub_ps(one, _mm256_loadu_ps(p));
        const __m256 invalid = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OS);
        x = _mm256_max_ps(x, mnp);
        __m256i imm0 = _mm256_srli_epi32(_mm256_castps_si256(x), 23);
        x = _mm256_and_ps(x, _mm256_castsi256_ps(inv_mant));
        x = _mm256_or_ps(x, half);
        imm0 = _mm256_sub_epi32(imm0, _mm256_set1_epi32(0x7f));
        __m256 e = _mm256_add_ps(_mm256_cvtepi32_ps(imm0), one);
        const __m256 mask = _mm256_cmp_ps(x, _mm256_set1_ps(0.707106781186547524f), _CMP_LT_OS);
        const __m256 tmp0 = _mm256_and_ps(x, mask);
        x = _mm256_sub_ps(x, one);
        e = _mm256_sub_ps(e, _mm256_and_ps(one, mask));
        x = _mm256_add_ps(x, tmp0);
        const __m256 z = _mm256_mul_ps(x, x);
        __m256 y = _mm256_set1_ps(7.0376836292E-2f);
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.1514610310E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.1676998740E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.2420140846E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(+1.4249322787E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-1.6668057665E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(+2.0000714765E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(-2.4999993993E-1f));
        y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(+3.3333331174E-1f));
        y = _mm256_mul_ps(y, x);
        y = _mm256_fmadd_ps(y, z, _mm256_mul_ps(e, _mm256_set1_ps(-2.12194440e-4f)));
        y = _mm256_fnmadd_ps(z, half, y);
        x = _mm256_add_ps(x, y);
        x = _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), x);
        const __m256 logv = _mm256_or_ps(x, invalid);
        const __m256 radius = _mm256_sqrt_ps(_mm256_mul_ps(minus_two, logv));
        // sincos256_ps(2π u2)
        __m256 xs = _mm256_mul_ps(two_pi, _mm256_loadu_ps(p + 8));
        __m256 sign_bit_sin = _mm256_and_ps(xs, sign_mask);
        xs = _mm256_and_ps(xs, inv_sign_mask);
        __m256 yy = _mm256_mul_ps(xs, _mm256_set1_ps(1.27323954473516f));
        __m256i imm2 = _mm256_cvttps_epi32(yy);
        imm2 = _mm256_add_epi32(imm2, _mm256_set1_epi32(1));
        imm2 = _mm256_and_si256(imm2, _mm256_set1_epi32(~1));
        yy = _mm256_cvtepi32_ps(imm2);
        __m256i imm4 = imm2;
        const __m256i swap = _mm256_slli_epi32(_mm256_and_si256(imm2, _mm256_set1_epi32(4)), 29);
        const __m256 poly_mask = _mm256_castsi256_ps(
            _mm256_cmpeq_epi32(_mm256_and_si256(imm2, _mm256_set1_epi32(2)), _mm256_setzero_si256()));
        xs = _mm256_fmadd_ps(yy, _mm256_set1_ps(-0.78515625f), xs);
        xs = _mm256_fmadd_ps(yy, _mm256_set1_ps(-2.4187564849853515625e-4f), xs);
        xs = _mm256_fmadd_ps(yy, _mm256_set1_ps(-3.77489497744594108e-8f), xs);
        imm4 = _mm256_sub_epi32(imm4, _mm256_set1_epi32(2));
        imm4 = _mm256_andnot_si256(imm4, _mm256_set1_epi32(4));
        const __m256 sign_bit_cos = _mm256_castsi256_ps(_mm256_slli_epi32(imm4, 29));
        sign_bit_sin = _mm256_xor_ps(sign_bit_sin, _mm256_castsi256_ps(swap));
        const __m256 zz = _mm256_mul_ps(xs, xs);
        __m256 yc = _mm256_set1_ps(2.443315711809948E-005f);
        yc = _mm256_fmadd_ps(yc, zz, _mm256_set1_ps(-1.388731625493765E-003f));
        yc = _mm256_fmadd_ps(yc, zz, _mm256_set1_ps(4.166664568298827E-002f));
        yc = _mm256_mul_ps(yc, zz);
        yc = _mm256_fmsub_ps(yc, zz, _mm256_mul_ps(zz, half));
        yc = _mm256_add_ps(yc, one);
        __m256 ys = _mm256_set1_ps(-1.9515295891E-4f);
        ys = _mm256_fmadd_ps(ys, zz, _mm256_set1_ps(8.3321608736E-3f));
        ys = _mm256_fmadd_ps(ys, zz, _mm256_set1_ps(-1.6666654611E-1f));
        ys = _mm256_mul_ps(ys, zz);
        ys = _mm256_fmadd_ps(ys, xs, xs);
        const __m256 sv = _mm256_blendv_ps(yc, ys, poly_mask);
        const __m256 cv = _mm256_blendv_ps(ys, yc, poly_mask);
        const __m256 sn = _mm256_xor_ps(sv, sign_bit_sin), cs = _mm256_xor_ps(cv, sign_bit_cos);
        _mm256_storeu_ps(p, _mm256_mul_ps(radius, cs));
        _mm256_storeu_ps(p + 8, _mm256_mul_ps(radius, sn));
    }
}

bool use_avx2_blocks() {
    static const bool ok = cpu_features().avx2 && cpu_features().fma;
    return ok;
}

}  // namespace

void torch_normal_fill_16(float* d, RandnPath path) {
    if (path == RandnPath::kAvx2) {
        const float two_pi = static_cast<float>(2.0f * 3.14159265358979323846);
        for (int j = 0; j < 8; ++j) {
            const float u1 = 1.0f - d[j];
            const float u2 = d[j + 8];
            const float radius = std::sqrt(-2.0f * cephes_logf(u1));
            const float theta = two_pi * u2;
            float st, ct;
            cephes_sincosf(theta, &st, &ct);
            d[j] = radius * ct;      // fmadd(n1, std=1, mean=0) is exact
            d[j + 8] = radius * st;
        }
    } else {
        for (int j = 0; j < 8; ++j) {
            const float u1 = 1.0f - d[j];
            const float u2 = d[j + 8];
            const float radius = std::sqrt(-2.0f * std::log(u1));
            const float theta = static_cast<float>(2.0 * 3.14159265358979323846 * static_cast<double>(u2));
            d[j] = radius * std::cos(theta);
            d[j + 8] = radius * std::sin(theta);
        }
    }
}

// ------------------------------------------------------------------------------------ TorchGenerator
TorchGenerator::TorchGenerator(uint64_t seed, RandnPath path) : path_(path) { manual_seed(seed); }

void TorchGenerator::manual_seed(uint64_t seed) {
    mt_.seed_u32(static_cast<uint32_t>(seed & 0xffffffffu));
    has_next_double_ = false;
    next_double_ = 0;
}

uint64_t TorchGenerator::random_u64() {
    const uint64_t hi = mt_.next_u32();
    const uint64_t lo = mt_.next_u32();
    return (hi << 32) | lo;
}

double TorchGenerator::normal_double() {
    if (has_next_double_) {
        has_next_double_ = false;
        return next_double_;
    }
    constexpr double kDiv = 1.0 / 9007199254740992.0;  // 2^-53
    const double u1 = static_cast<double>(random_u64() & ((1ull << 53) - 1)) * kDiv;
    const double u2 = static_cast<double>(random_u64() & ((1ull << 53) - 1)) * kDiv;
    const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
    const double theta = 2.0 * 3.14159265358979323846 * u1;
    next_double_ = r * std::sin(theta);
    has_next_double_ = true;
    return r * std::cos(theta);
}

void TorchGenerator::rand_fill(float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(mt_.next_u32() & 0xFFFFFFu) * (1.0f / 16777216.0f);
}

void TorchGenerator::randn_fill(float* out, int64_t n) {
    if (n >= 16) {
        rand_fill(out, n);
        if (path_ == RandnPath::kAvx2 && use_avx2_blocks()) normal_fill_avx2_blocks(out, n / 16);
        else for (int64_t i = 0; i + 16 <= n; i += 16) torch_normal_fill_16(out + i, path_);
        if (n % 16 != 0) {
            float* tail = out + n - 16;
            rand_fill(tail, 16);
            torch_normal_fill_16(tail, path_);
        }
    } else {
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(normal_double());
    }
}

Tensor TorchGenerator::randn(const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    randn_fill(t.f32(), t.numel());
    return t;
}

Tensor TorchGenerator::rand(const Shape& shape) {
    Tensor t = Tensor::empty(shape, DType::F32);
    rand_fill(t.f32(), t.numel());
    return t;
}

// ------------------------------------------------------------------------------------------ PyRandom
void PyRandom::seed_int(int64_t seed) {
    uint64_t n = seed < 0 ? static_cast<uint64_t>(-(seed + 1)) + 1u : static_cast<uint64_t>(seed);
    uint32_t key[2] = {static_cast<uint32_t>(n & 0xffffffffu), static_cast<uint32_t>(n >> 32)};
    mt_.seed_by_array(key, key[1] ? 2 : 1);
}

uint32_t PyRandom::getrandbits32(int k) {
    ST2V_CHECK_ARG(k >= 1 && k <= 32, "getrandbits32: k must be in 1..32, got %d", k);
    return mt_.next_u32() >> (32 - k);
}

uint64_t PyRandom::getrandbits(int k) {
    ST2V_CHECK_ARG(k >= 1 && k <= 64, "getrandbits: k must be in 1..64, got %d", k);
    if (k <= 32) return getrandbits32(k);
    const uint64_t lo = mt_.next_u32();
    const uint64_t hi = mt_.next_u32() >> (64 - k);
    return (hi << 32) | lo;
}

uint64_t PyRandom::randbelow(uint64_t n) {
    ST2V_CHECK_ARG(n >= 1, "randbelow: n must be >= 1");
    int k = 0;
    for (uint64_t v = n; v; v >>= 1) ++k;
    uint64_t r = getrandbits(k);
    while (r >= n) r = getrandbits(k);
    return r;
}

int64_t PyRandom::randint(int64_t a, int64_t b) {
    ST2V_CHECK_ARG(a <= b, "randint: empty range (%lld, %lld)", static_cast<long long>(a), static_cast<long long>(b));
    const uint64_t width = static_cast<uint64_t>(b) - static_cast<uint64_t>(a) + 1u;
    ST2V_CHECK_ARG(width != 0, "randint: range too wide");
    return static_cast<int64_t>(static_cast<uint64_t>(a) + randbelow(width));
}

double PyRandom::random() {
    const uint32_t a = mt_.next_u32() >> 5, b = mt_.next_u32() >> 6;
    return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

}  // namespace st2v::runtime
