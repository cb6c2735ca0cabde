#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/npy.h"
#include "io/weights.h"

using namespace st2v;

std::string shared_dir() {
    const char* e = std::getenv("ST2V_SHARED");
    return e ? e : "../shared";
}

TEST(Io, NpyRoundTrip) {
    Tensor t = Tensor::empty({3, 5});
    for (int i = 0; i < 15; ++i) t.f32()[i] = i * 0.5f;
    std::string p = std::filesystem::temp_directory_path() / "st2v_npy_test.npy";
    io::write_npy(p, t);
    Tensor r = io::read_npy(p);
    ASSERT_EQ(r.shape(), t.shape());
    for (int i = 0; i < 15; ++i) EXPECT_EQ(r.f32()[i], t.f32()[i]);
}

TEST(Io, GoldenWeightsLoad) {
    std::string p = shared_dir() + "/golden/st2v/weights.safetensors";
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "ST2V_SHARED not found: " << p;
    io::WeightStore w = io::load_safetensors(p);
    EXPECT_EQ(w.size(), 1153u);
    EXPECT_TRUE(w.has("resampler.context_embedding.0.weight"));
}
