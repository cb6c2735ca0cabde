// Runtime: PyTorch/Python-compatible RNG, schedules and samplers, randomized blending — checked against
// the official references in $ST2V_SHARED/golden/{randn,samplers,st2v}.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/npy.h"
#include "runtime/rng.h"

namespace fs = std::filesystem;
using namespace st2v;
using namespace st2v::runtime;

namespace {

std::string shared_root() {
    const char* e = std::getenv("ST2V_SHARED");
    return e ? e : "../shared";
}
fs::path golden(const std::string& sub) { return fs::path(shared_root()) / "golden" / sub; }

#define REQUIRE_GOLDEN(dir)                                                                       \
    do {                                                                                          \
        if (!fs::exists(golden(dir))) GTEST_SKIP() << "ST2V_SHARED golden/" << dir << " not found"; \
    } while (0)

Tensor npy(const std::string& rel) { return io::read_npy(golden(rel).string()); }

Shape shape_of(const std::string& s) {  // "16x4x32x32"
    std::vector<int64_t> d;
    size_t p = 0;
    while (p < s.size()) {
        size_t q = s.find('x', p);
        if (q == std::string::npos) q = s.size();
        d.push_back(std::stoll(s.substr(p, q - p)));
        p = q + 1;
    }
    return Shape(d);
}

// Number of elements whose bits differ.
int64_t bit_mismatches(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.numel(), b.numel());
    const float* x = a.contiguous().f32();
    const float* y = b.contiguous().f32();
    int64_t n = 0;
    for (int64_t i = 0; i < a.numel(); ++i) n += std::memcmp(x + i, y + i, 4) != 0;
    return n;
}

const int kSeeds[] = {0, 1, 33, 42, 12345};
const char* kShapes[] = {"1x4x16x32x32", "16x4x32x32", "7", "3x5"};

}  // namespace

TEST(RuntimeRng, Mt19937MatchesTorchEngine) {
    REQUIRE_GOLDEN("randn");
    for (int seed : kSeeds) {
        Tensor ref = npy("randn/mt19937/seed" + std::to_string(seed) + "_u32_first1248.npy");
        ASSERT_EQ(ref.numel(), 1248);
        TorchGenerator g(static_cast<uint64_t>(seed));
        int64_t bad = 0;
        for (int64_t i = 0; i < ref.numel(); ++i) {
            const uint32_t want = ref.dtype() == DType::I64 ? static_cast<uint32_t>(ref.data<int64_t>()[i])
                                                            : ref.data<uint32_t>()[i];
            bad += g.random_u32() != want;
        }
        EXPECT_EQ(bad, 0) << "seed " << seed;
    }
}

TEST(RuntimeRng, FreshRandnAndRandAreBitIdentical) {
    REQUIRE_GOLDEN("randn");
    for (RandnPath path : {RandnPath::kAvx2, RandnPath::kDefault}) {
        const std::string dir = path == RandnPath::kAvx2 ? "randn/fresh/" : "randn/fresh_default/";
        for (int seed : kSeeds) {
            for (const char* s : kShapes) {
                Tensor ref = npy(dir + "seed" + std::to_string(seed) + "_randn_" + s + ".npy");
                TorchGenerator g(static_cast<uint64_t>(seed), path);
                Tensor got = g.randn(shape_of(s));
                EXPECT_EQ(got.shape(), ref.shape());
                EXPECT_EQ(bit_mismatches(got, ref), 0) << dir << " seed " << seed << " shape " << s;
            }
            Tensor ref = npy(dir + "seed" + std::to_string(seed) + "_rand_10.npy");
            TorchGenerator g(static_cast<uint64_t>(seed), path);
            EXPECT_EQ(bit_mismatches(g.rand(Shape{10}), ref), 0) << dir << " rand seed " << seed;
        }
    }
}

TEST(RuntimeRng, SequencesContinueTheGeneratorState) {
    REQUIRE_GOLDEN("randn");
    for (RandnPath path : {RandnPath::kAvx2, RandnPath::kDefault}) {
        const std::string dir = path == RandnPath::kAvx2 ? "randn/seq/" : "randn/seq_default/";
        for (int seed : kSeeds) {
            TorchGenerator g(static_cast<uint64_t>(seed), path);
            const std::string p = dir + "seed" + std::to_string(seed) + "_";
            EXPECT_EQ(bit_mismatches(g.randn(shape_of("1x4x16x32x32")), npy(p + "0_randn_1x4x16x32x32.npy")), 0) << p;
            EXPECT_EQ(bit_mismatches(g.randn(shape_of("16x4x32x32")), npy(p + "1_randn_16x4x32x32.npy")), 0) << p;
            EXPECT_EQ(bit_mismatches(g.randn(Shape{7}), npy(p + "2_randn_7.npy")), 0) << p;
            EXPECT_EQ(bit_mismatches(g.randn(Shape{3, 5}), npy(p + "3_randn_3x5.npy")), 0) << p;
            EXPECT_EQ(bit_mismatches(g.rand(Shape{10}), npy(p + "4_rand_10.npy")), 0) << p;
        }
    }
}
