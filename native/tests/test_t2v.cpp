// StreamingT2V extension model (UNet3D + CAM + APM) against the official outputs in golden/st2v/step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "io/npy.h"
#include "io/weights.h"
#include "models/t2v/unet3d.h"

using namespace st2v;

namespace {
std::string golden() {
    const char* e = std::getenv("ST2V_SHARED");
    return std::string(e ? e : "../shared") + "/golden/st2v";
}
double max_abs_rel(const Tensor& a, const Tensor& ref, const char* name = "") {
    EXPECT_EQ(a.numel(), ref.numel()) << a.desc() << " vs " << ref.desc();
    Tensor x = a.contiguous(), y = ref.contiguous();
    double worst = 0;
    for (int64_t i = 0; i < std::min(x.numel(), y.numel()); ++i) {
        double d = std::fabs(double(x.f32()[i]) - y.f32()[i]) / std::max(1.0, std::fabs(double(y.f32()[i])));
        worst = std::max(worst, d);
    }
    std::printf("  %-14s max |err| / max(1, |ref|) = %.3g\n", name, worst);
    return worst;
}
Tensor npy(const std::string& n) { return io::read_npy(golden() + "/step/" + n + ".npy"); }
}  // namespace

TEST(T2vModel, GoldenStepMatchesOfficial) {
    if (!std::filesystem::exists(golden() + "/weights.safetensors")) GTEST_SKIP() << "golden data not found (ST2V_SHARED)";
    io::WeightStore w = io::load_safetensors(golden() + "/weights.safetensors");
    t2v::UNet3D unet(w, "base_model.");
    t2v::CamNet cam(w, "unet.");
    t2v::Resampler res(w, "resampler.", unet.config().context_dim);
    EXPECT_TRUE(unet.config().apm);
    EXPECT_TRUE(unet.config().cam_mergers);

    Tensor img = res.forward(npy("clip_anchor"));
    Tensor img_unc = res.forward(npy("clip_zero"));
    EXPECT_LE(max_abs_rel(img, npy("img_tokens"), "img_tokens"), 1e-4);
    EXPECT_LE(max_abs_rel(img_unc, npy("img_tokens_unc"), "img_tokens_unc"), 1e-4);

    Tensor x_t = npy("x_t");                       // [1, 4, 16, 8, 8]
    Tensor X = ops::concat({x_t, x_t}, 0);         // CFG batch
    Tensor ctx = npy("ctx");                       // [2, 93, 1024]
    Tensor cond = npy("cond_frames");              // [1, 8, 3, 64, 64]
    const int Fc = static_cast<int>(cond.size(1));
    Tensor c1 = cond.reshape({Fc, 3, cond.size(3), cond.size(4)});
    Tensor cond2 = ops::concat({c1, c1}, 0);
    Tensor e_cond;
    t2v::CamResiduals r = cam.forward(X, 981.f, ctx, cond2, Fc, &e_cond);
    EXPECT_LE(max_abs_rel(e_cond, npy("e_cond"), "e_cond"), 1e-4);
    for (int i = 0; i < 6; ++i) {
        char n[32];
        std::snprintf(n, sizeof n, "cam_down_%02d", i);
        EXPECT_LE(max_abs_rel(r.down[static_cast<size_t>(i)], npy(n), n), 1e-4) << n;
    }
    EXPECT_LE(max_abs_rel(r.mid, npy("cam_mid"), "cam_mid"), 1e-4);
    Tensor eps_nocam = unet.forward(X, 981.f, ctx, nullptr);
    EXPECT_LE(max_abs_rel(eps_nocam, npy("eps_nocam"), "eps_nocam"), 1e-4);
    Tensor eps = unet.forward(X, 981.f, ctx, &r);
    EXPECT_LE(max_abs_rel(eps, npy("eps"), "eps"), 1e-4);
}
