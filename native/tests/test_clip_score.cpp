// CLIP score (issue 8): open_clip 2.24.0 encode_text / encode_image / 100 x cos on the tiny OpenCLIP model of
// golden/clip, against tools/make_clip_score_golden.py (NumPy float64 reference, Pillow for the resize; the
// reference's towers are checked against open_clip's own golden outputs when it runs).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "io/npy.h"
#include "io/weights.h"
#include "models/clip/clip_score.h"
#include "models/clip/weights_util.h"

using namespace st2v;
namespace fs = std::filesystem;

namespace {
std::string shared() {
    const char* e = std::getenv("ST2V_SHARED");
    return std::string(e ? e : "../shared");
}
std::string tiny() { return shared() + "/golden/clip/openclip_tiny.safetensors"; }
fs::path data_dir() { return fs::path(__FILE__).parent_path() / "data" / "clip_score"; }
Tensor ref(const std::string& n) { return io::read_npy((data_dir() / n).string()); }

double at(const Tensor& t, int64_t i) {
    switch (t.dtype()) {
        case DType::F32: return t.data<float>()[i];
        case DType::F64: return t.data<double>()[i];
        default: return NAN;
    }
}
// max over elements of |a - b| / max(1, |b|)
double rel_err(const Tensor& a_in, const Tensor& b_in) {
    EXPECT_EQ(a_in.numel(), b_in.numel()) << a_in.desc() << " vs " << b_in.desc();
    Tensor a = a_in.contiguous(), b = b_in.contiguous();
    double worst = 0;
    for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i)
        worst = std::max(worst, std::fabs(at(a, i) - at(b, i)) / std::max(1.0, std::fabs(at(b, i))));
    return worst;
}
Tensor rows(const std::vector<Tensor>& parts) {
    int64_t n = 0, e = parts[0].size(1);
    for (const auto& p : parts) n += p.size(0);
    Tensor out = Tensor::empty(Shape({n, e}));
    int64_t r = 0;
    for (const auto& p : parts) {
        Tensor c = p.contiguous();
        std::copy(c.f32(), c.f32() + c.numel(), out.f32() + r * e);
        r += p.size(0);
    }
    return out;
}
}  // namespace

TEST(ClipScorePreprocess, PillowBicubicResizeAndCenterCropExact) {
    Tensor fb = ref("frames_b.npy"), want = ref("crop_b.npy");  // 250x240 -> 233x224, crop offset 4.5 -> 4
    ASSERT_EQ(fb.dtype(), DType::U8);
    std::vector<uint8_t> got = enc::openclip_resize_crop_rgb24(fb.data<uint8_t>(), 250, 240, 224);
    ASSERT_EQ((int64_t)got.size(), want.numel());
    int64_t diff = 0;
    for (int64_t i = 0; i < want.numel(); ++i) diff += got[(size_t)i] != want.data<uint8_t>()[i];
    EXPECT_EQ(diff, 0) << "bytes differing from Pillow's resize + crop";
}

TEST(ClipScorePreprocess, ErrorsAreTyped) {
    uint8_t px[3] = {1, 2, 3};
    try {
        enc::openclip_resize_crop_rgb24(px, 0, 1, 224);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kInvalidArgument);
    }
}

TEST(ClipScore, EncodeTextImageAndScoreMatchReference) {
    if (!fs::exists(tiny())) GTEST_SKIP() << "ST2V_SHARED not found (needs golden/clip/openclip_tiny.safetensors)";
    auto m = enc::OpenClipScoreModel::load(tiny());
    EXPECT_EQ(m->image_size(), 224);
    EXPECT_EQ(m->embed_dim(), 32);
    EXPECT_EQ(m->context_length(), 77);

    Tensor text = m->encode_text(ref("text_ids.npy"));
    const double et = rel_err(text, ref("text_features.npy"));
    EXPECT_LE(et, 1e-4) << "encode_text";

    Tensor fa = ref("frames_a.npy"), fb = ref("frames_b.npy");
    Tensor img = rows({m->encode_frames_rgb24(fa.data<uint8_t>(), 2, 64, 48),
                       m->encode_frames_rgb24(fb.data<uint8_t>(), 1, 250, 240)});
    const double ei = rel_err(img, ref("image_features.npy"));
    EXPECT_LE(ei, 1e-4) << "encode_image";

    Tensor want = ref("scores.npy");  // [prompt, frame] f64
    Tensor got = Tensor::empty(Shape({3, 3}), DType::F64);
    for (int p = 0; p < 3; ++p) {
        const auto s = enc::clip_scores(text.select(0, p), img);
        ASSERT_EQ(s.size(), 3u);
        for (int f = 0; f < 3; ++f) got.data<double>()[p * 3 + f] = s[(size_t)f];
    }
    const double es = rel_err(got, want);
    EXPECT_LE(es, 1e-4) << "scores";
    // Raw cosines: this random model gives negative scores, and they are kept (no clamping at 0).
    EXPECT_LT(want.data<double>()[0], 0);
    EXPECT_LT(got.data<double>()[0], 0);
    std::printf("[clip_score] max rel err: encode_text %.2e, encode_image %.2e, scores %.2e\n", et, ei, es);
}

TEST(ClipScore, MissingTowersAreTyped) {
    if (!fs::exists(tiny())) GTEST_SKIP() << "ST2V_SHARED not found (needs golden/clip/openclip_tiny.safetensors)";
    io::WeightStore all = enc::load_canonical(tiny());
    // Without the last text block (what a streaming_t2v.ckpt conversion has): ERR_WEIGHTS_MISSING naming it.
    io::WeightStore w;
    for (const auto& n : all.names())
        if (n.rfind("text_last_block.", 0) != 0) w.add(n, all.get(n));
    try {
        enc::OpenClipScoreModel m(w);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kWeightsMissing);
        EXPECT_NE(std::string(e.what()).find("text_last_block"), std::string::npos) << e.what();
    }
    try {
        enc::OpenClipScoreModel::load(shared() + "/golden/clip/no_such_model");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kNotFound);
    }
}
