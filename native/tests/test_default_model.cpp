#include <gtest/gtest.h>
#include <cstdlib>
#include <filesystem>
#include "engine/default_model.h"
#include "io/weights.h"
using namespace st2v;
TEST(DefaultModel, KeyGeneratorMatchesGoldenLayout) {
    const char* e = std::getenv("ST2V_SHARED");
    std::string p = std::string(e ? e : "../shared") + "/golden/st2v/weights.safetensors";
    if (!std::filesystem::exists(p)) GTEST_SKIP() << "golden data not found";
    io::WeightStore w = io::load_safetensors(p);
    engine::TinyConfig c;
    c.channels = {64, 128};
    c.context_dim = 1024;
    c.image_dim = 1024;
    c.head_dim = 32;
    c.cond_channels = {16, 16, 32, 32};
    c.resampler_inner = 64;
    auto keys = engine::tiny_unet_keys(c);
    EXPECT_EQ(keys.size(), w.size());
    for (auto& kv : keys) {
        const Tensor* t = w.find(kv.first);
        ASSERT_NE(t, nullptr) << kv.first;
        EXPECT_EQ(t->shape(), kv.second) << kv.first << " golden " << t->shape().str() << " ours " << kv.second.str();
    }
}
