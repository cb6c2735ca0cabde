// Encoders and VAE (issue 6) against golden/vae, golden/clip and golden/st2v/ddim.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/arena.h"
#include "io/npy.h"
#include "io/weights.h"
#include "models/clip/verify.h"
#include "models/clip/weights_util.h"
#include "models/vae/vae.h"

using namespace st2v;

namespace {
std::string shared() {
    const char* e = std::getenv("ST2V_SHARED");
    return std::string(e ? e : "../shared");
}
bool have_golden() { return std::filesystem::exists(shared() + "/golden/vae/manifest.json"); }
Tensor vnpy(const std::string& n) { return io::read_npy(shared() + "/golden/vae/io/" + n + ".npy"); }

double max_abs(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape()) << a.desc() << " vs " << b.desc();
    Tensor x = a.contiguous(), y = b.contiguous();
    double worst = 0;
    for (int64_t i = 0; i < std::min(x.numel(), y.numel()); ++i)
        worst = std::max(worst, std::fabs(double(x.f32()[i]) - y.f32()[i]));
    return worst;
}

void check_vae(const std::string& file) {
    io::WeightStore w = enc::load_canonical(shared() + "/golden/vae/" + file);
    vae::AutoencoderKL m(w);
    EXPECT_EQ(m.config().block_out, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(m.config().layers_per_block, 2);
    std::vector<std::pair<std::string, Tensor>> inter;
    Tensor h = m.encoder(vnpy("image"), &inter);
    EXPECT_LE(max_abs(h, vnpy("enc_h")), 1e-4) << file;
    for (auto& kv : inter) EXPECT_LE(max_abs(kv.second, vnpy("inter_" + kv.first)), 1e-4) << file << " " << kv.first;
    vae::Posterior p = m.encode(vnpy("image"));
    EXPECT_LE(max_abs(p.moments, vnpy("moments")), 1e-4);
    EXPECT_LE(max_abs(p.mean, vnpy("post_mean")), 1e-4);
    EXPECT_LE(max_abs(p.logvar, vnpy("post_logvar")), 1e-4);
    EXPECT_LE(max_abs(p.std, vnpy("post_std")), 1e-4);
    Tensor s = vae::AutoencoderKL::sample(p, vnpy("sample_noise"));
    EXPECT_LE(max_abs(s, vnpy("post_sample")), 1e-4);
    inter.clear();
    EXPECT_LE(max_abs(m.decode(p.mean, &inter), vnpy("dec_of_mean")), 1e-4);
    for (auto& kv : inter) EXPECT_LE(max_abs(kv.second, vnpy("inter_" + kv.first)), 1e-4) << file << " " << kv.first;
    EXPECT_LE(max_abs(m.decode(vnpy("z_in")), vnpy("dec_of_z")), 1e-4);
}
}  // namespace

TEST(EncodersVae, DiffusersNamesMatchGolden) {
    if (!have_golden()) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    check_vae("vae_diffusers.safetensors");
}
TEST(EncodersVae, LegacyAttentionNamesMatchGolden) {
    if (!have_golden()) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    check_vae("vae_diffusers_legacy_attn.safetensors");
}
TEST(EncodersVae, LdmNamesMatchGolden) {
    if (!have_golden()) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    check_vae("vae_ldm.safetensors");
}

TEST(EncodersVerify, EveryGoldenCaseWithin1e4) {
    if (!have_golden()) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    std::vector<verify::CaseResult> r = enc::verify_encoders(shared());
    EXPECT_EQ(r.size(), 3u * 15u + 2u + 8u + 1u);  // 3 VAE namings x 15, 2 text, 8 image steps, the ddim video
    for (const auto& c : r) {
        EXPECT_TRUE(c.pass) << c.name << " max_abs " << c.max_abs << " max_rel " << c.max_rel << " " << c.note;
        printf("  %-48s max_abs %.3g\n", c.name.c_str(), c.max_abs);
    }
}

TEST(EncodersVerify, RegisteredWithStVerify) {
    const auto g = verify::registered_groups();
    EXPECT_NE(std::find(g.begin(), g.end(), "encoders"), g.end());
}

// Tiled (banded, exact) decode of a 90x160 latent (the enhancer's 1280x720 frames) vs the untiled decode, with the
// tiny golden VAE (block_out {32, 64}: 2 levels, factor 2). Peak activation memory is measured with
// st2v::tensor_bytes_peak(). With 2 levels the untiled latent-resolution part (the mid block and its attention over
// all 90*160 tokens) is half the output resolution, so it bounds the saving here (measured ratio 0.60); the quarter
// memory bound of issue 6 is asserted for the 4-level SD-2.1 structure in test_vae_tiled.cpp.
TEST(EncodersVae, TiledDecode90x160MatchesUntiled) {
    if (!have_golden()) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    vae::AutoencoderKL m(enc::load_canonical(shared() + "/golden/vae/vae_diffusers.safetensors"));
    // A smooth latent (low-frequency mixture), as real latents are spatially correlated.
    Tensor z = Tensor::empty(Shape({1, 4, 90, 160}));
    for (int64_t c = 0; c < 4; ++c)
        for (int64_t y = 0; y < 90; ++y)
            for (int64_t x = 0; x < 160; ++x)
                z.f32()[(c * 90 + y) * 160 + x] =
                    std::sin(0.07 * x + 0.9 * c) * std::cos(0.05 * y - 0.4 * c) + 0.3 * std::sin(0.013 * (x + y) * (c + 1));
    const size_t base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    Tensor full = m.decode(z);
    const size_t peak_full = tensor_bytes_peak() - base;
    const size_t base2 = tensor_bytes_live();
    tensor_bytes_reset_peak();
    vae::TileOptions o;
    o.band_rows = 16;
    Tensor tiled = m.decode_tiled(z, o);
    const size_t peak_tiled = tensor_bytes_peak() - base2;
    const double d = max_abs(tiled, full);
    double mx = 0;
    for (int64_t i = 0; i < full.numel(); ++i) mx = std::max(mx, std::fabs(double(full.f32()[i])));
    printf("  max |untiled| %.3g\n", mx);
    printf("  tiled vs untiled max_abs %.3g; peak activation bytes untiled %zu tiled %zu (ratio %.3f)\n", d, peak_full,
           peak_tiled, double(peak_tiled) / double(peak_full));
    EXPECT_GT(mx, 0.1);
    EXPECT_LE(d, 1e-3);
    EXPECT_LT(peak_tiled, peak_full);
}

TEST(EncodersVae, RandomVaeRoundTripShapesAndTiledEncode) {
    vae::AutoencoderKL m(vae::make_random_vae({32, 64}, 1, 3));
    EXPECT_EQ(m.factor(), 2);
    Tensor x = Tensor::full(Shape({1, 3, 40, 72}), 0.25f);
    vae::Posterior p = m.encode(x);
    EXPECT_EQ(p.mean.shape(), Shape({1, 4, 20, 36}));
    vae::TileOptions o;
    o.latent_tile = 8;
    vae::Posterior pt = m.encode_tiled(x, o);
    EXPECT_EQ(pt.mean.shape(), p.mean.shape());
    EXPECT_EQ(m.decode_tiled(p.mean, o).shape(), Shape({1, 3, 40, 72}));
    EXPECT_THROW(m.decode(Tensor::zeros(Shape({1, 3, 8, 8}))), st2v::Error);
    EXPECT_LE(max_abs(m.decode_tiled(p.mean, o), m.decode(p.mean)), 1e-4);
    EXPECT_LE(max_abs(pt.moments, p.moments), 1e-4);
    o.band_rows = -1;
    EXPECT_THROW(m.encode_tiled(x, o), st2v::Error);
    EXPECT_THROW(m.decode_tiled(p.mean, o), st2v::Error);
}
