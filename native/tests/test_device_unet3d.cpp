// The device stage-2 networks (models/t2v/device_unet3d.h) on a machine without a usable CUDA backend: building
// one throws the typed ERR_NO_CUDA (never a crash), and an unsupported resident dtype is a typed dtype error.
// Parity with the CPU networks is checked by native/cuda/tests/cuda_model_check.cpp (GPU or CUDA emulation).
#include <gtest/gtest.h>

#include <functional>

#include "backend/backend.h"
#include "models/streamingt2v/config.h"
#include "models/t2v/device_unet3d.h"
#include "models/vae/device_vae.h"

using namespace st2v;

namespace {
Code code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    return Code::kOk;
}
}  // namespace

TEST(DeviceUNet3D, WithoutCudaThrowsErrNoCuda) {
    const io::WeightStore w = t2v::make_random_weights(t2v::St2vConfig::tiny(), 7);
    EXPECT_EQ(code_of([&] { t2v::DeviceUNet3D(w, "base_model.", DType::I32); }), Code::kDtype);
    if (backend::cuda_status().available) GTEST_SKIP() << "a usable CUDA backend is present: " << backend::cuda_status().message;
    for (DType dt : {DType::F32, DType::BF16}) {
        try {
            t2v::DeviceUNet3D u(w, "base_model.", dt);
            FAIL() << "DeviceUNet3D built without CUDA";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), Code::kNoCuda);
            EXPECT_NE(std::string(e.what()).find("not available"), std::string::npos) << e.what();
        }
        EXPECT_EQ(code_of([&] { t2v::DeviceCamNet c(w, "unet.", dt); }), Code::kNoCuda);
    }
}

TEST(DeviceAutoencoderKL, WithoutCudaThrowsErrNoCuda) {
    if (backend::cuda_status().available) GTEST_SKIP() << "a usable CUDA backend is present: " << backend::cuda_status().message;
    const io::WeightStore w = vae::make_random_vae({32, 64}, 1, 3);
    const vae::AutoencoderKL cpu(w, "vae.", 32);
    EXPECT_EQ(code_of([&] { vae::DeviceAutoencoderKL d(cpu); }), Code::kNoCuda);
}
