// Exact banded VAE decode (issue 6): decode_tiled equals decode up to float rounding and needs at most a quarter
// of its peak activation memory, on random-weight VAEs of the SD-2.1 structure at reduced width.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "core/arena.h"
#include "io/npy.h"
#include "models/clip/weights_util.h"
#include "models/vae/vae.h"

using namespace st2v;

namespace {
Tensor randn(const Shape& s, uint32_t seed) {
    Tensor t = Tensor::empty(s);
    std::mt19937 g(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = nd(g);
    return t;
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    double d = 0;
    for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i)
        d = std::max(d, std::fabs(double(a.f32()[i]) - double(b.f32()[i])));
    return d;
}
double max_abs(const Tensor& a) {
    double d = 0;
    for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(double(a.f32()[i])));
    return d;
}
}  // namespace

// SD-2.1 structure (4 levels, block_out ratios 1:2:4:4, 2 layers) at 1/8 width, groups 8, 40x64 latent -> 320x512
// image, 8-row bands: 40 bands at full resolution, 5 at latent resolution, halos crossing every band border.
TEST(VaeTiled, FourLevelDecodeExactWithQuarterMemory) {
    vae::AutoencoderKL m(vae::make_random_vae({16, 32, 64, 64}, 2, 11), "vae.", 8);
    ASSERT_EQ(m.factor(), 8);
    Tensor z = randn(Shape({1, 4, 40, 64}), 5);
    size_t base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    Tensor full = m.decode(z);
    const size_t peak_full = tensor_bytes_peak() - base;
    vae::TileOptions o;
    o.band_rows = 8;
    base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    Tensor tiled = m.decode_tiled(z, o);
    const size_t peak_tiled = tensor_bytes_peak() - base;
    const double d = max_abs_diff(tiled, full);
    std::printf("  max|untiled| %.3g, max|tiled-untiled| %.3g; peak bytes untiled %zu tiled %zu (ratio %.3f)\n",
                max_abs(full), d, peak_full, peak_tiled, double(peak_tiled) / double(peak_full));
    EXPECT_GT(max_abs(full), 0.1);  // a non-trivial image
    EXPECT_LE(d, 1e-3);
    EXPECT_LE(peak_tiled * 4, peak_full);
}

// Odd sizes (bands that do not divide the height, one-row last band), a batch of 2, 1 layer per block, and
// bands smaller than the halo.
TEST(VaeTiled, OddSizesBatchAndSmallBands) {
    vae::AutoencoderKL m(vae::make_random_vae({8, 16, 16}, 1, 3), "vae.", 4);
    Tensor z = randn(Shape({2, 4, 9, 7}), 9);
    Tensor full = m.decode(z);
    for (int64_t band : {1, 3, 5, 0, 100}) {  // 100: every level in one band
        vae::TileOptions o;
        o.band_rows = band;
        Tensor tiled = m.decode_tiled(z, o);
        const double d = max_abs_diff(tiled, full);
        EXPECT_LE(d, 1e-4) << "band " << band;
    }
    vae::TileOptions bad;
    bad.band_rows = -1;
    EXPECT_THROW(m.decode_tiled(z, bad), st2v::Error);
    EXPECT_THROW(m.decode_tiled(Tensor::zeros(Shape({1, 3, 8, 8}))), st2v::Error);
}

// The banded encode_tiled equals encode (4 levels: conv_in and the stride-2 downsamplers recomputed per band).
TEST(VaeTiled, FourLevelEncodeExact) {
    vae::AutoencoderKL m(vae::make_random_vae({16, 32, 64, 64}, 2, 12), "vae.", 8);
    Tensor x = randn(Shape({1, 3, 128, 200}), 6);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::tanh(x.f32()[i]);
    size_t base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    vae::Posterior p = m.encode(x);
    const size_t peak_full = tensor_bytes_peak() - base;
    vae::TileOptions o;
    o.band_rows = 8;
    base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    vae::Posterior t = m.encode_tiled(x, o);
    const size_t peak_tiled = tensor_bytes_peak() - base;
    const double d = max_abs_diff(t.moments, p.moments);
    std::printf("  max|moments| %.3g, max|tiled-untiled| %.3g; peak bytes untiled %zu tiled %zu (ratio %.3f)\n",
                max_abs(p.moments), d, peak_full, peak_tiled, double(peak_tiled) / double(peak_full));
    EXPECT_GT(max_abs(p.moments), 0.1);
    EXPECT_LE(d, 1e-4 * std::max(1.0, max_abs(p.moments)));
    EXPECT_LE(max_abs_diff(t.mean, p.mean), 1e-4 * std::max(1.0, max_abs(p.mean)));
    EXPECT_LT(peak_tiled, peak_full);
    // A batch of 2 and bands of 1, 5 and 100 rows (the latter two hold the lower levels in one band).
    Tensor x2 = randn(Shape({2, 3, 24, 16}), 8);
    vae::Posterior p2 = m.encode(x2);
    for (int64_t band : {1, 5, 100}) {
        o.band_rows = band;
        EXPECT_LE(max_abs_diff(m.encode_tiled(x2, o).moments, p2.moments), 1e-4) << "band " << band;
    }
    EXPECT_THROW(m.encode_tiled(Tensor::zeros(Shape({1, 3, 20, 16}))), st2v::Error);  // not a multiple of 8
}

// The banded paths on the golden VAE (2 levels) against the recorded reference outputs, with 3-row bands.
TEST(VaeTiled, GoldenVaeBandedMatchesReference) {
    const char* e = std::getenv("ST2V_SHARED");
    const std::string dir = std::string(e ? e : "../shared") + "/golden/vae";
    if (!std::filesystem::exists(dir + "/manifest.json")) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    vae::AutoencoderKL m(enc::load_canonical(dir + "/vae_diffusers.safetensors"));
    vae::TileOptions o;
    o.band_rows = 3;
    const Tensor moments = io::read_npy(dir + "/io/moments.npy");
    const Tensor dec = io::read_npy(dir + "/io/dec_of_z.npy");
    EXPECT_LE(max_abs_diff(m.encode_tiled(io::read_npy(dir + "/io/image.npy"), o).moments, moments),
              1e-4 * std::max(1.0, max_abs(moments)));
    EXPECT_LE(max_abs_diff(m.decode_tiled(io::read_npy(dir + "/io/z_in.npy"), o), dec), 1e-4 * std::max(1.0, max_abs(dec)));
}
