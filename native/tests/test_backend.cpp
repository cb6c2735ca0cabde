// Backend selection without a GPU (native/backend): the CUDA status never throws, 'cuda' on a machine without
// a usable GPU (or without the CUDA build) throws ERR_NO_CUDA naming what is missing, 'auto' resolves to cpu.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "backend/backend.h"
#include "backend/kernel_math.h"
#include "ops/ops.h"

using namespace st2v;

TEST(Backend, ParseKind) {
    EXPECT_EQ(backend::parse_kind("auto"), backend::Kind::kAuto);
    EXPECT_EQ(backend::parse_kind("cpu"), backend::Kind::kCpu);
    EXPECT_EQ(backend::parse_kind("cuda"), backend::Kind::kCuda);
    try {
        backend::parse_kind("gpu");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kInvalidArgument);
    }
    EXPECT_EQ(backend::resolve(backend::Kind::kAuto), backend::Kind::kCpu);
    EXPECT_EQ(backend::resolve(backend::Kind::kCpu), backend::Kind::kCpu);
}

TEST(Backend, CudaUnavailableIsErrNoCuda) {
    const backend::CudaStatus st = backend::cuda_status();
    std::printf("cuda status: %s\n", st.message.c_str());
    ASSERT_FALSE(st.message.empty());
    if (st.available) GTEST_SKIP() << "a usable GPU is present: " << st.message;
    EXPECT_TRUE(st.message.rfind(st.compiled ? "built, no device: " : "not built", 0) == 0) << st.message;
    try {
        backend::cuda();
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kNoCuda);
        EXPECT_NE(std::string(e.what()).find("not available: "), std::string::npos) << e.what();
    }
    try {
        backend::resolve(backend::Kind::kCuda);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kNoCuda);
    }
}

TEST(Backend, SharedMathMatchesTheCpuOps) {
    // kmath::timestep_emb with the CPU table gives the CPU op's output bit for bit (same float expressions).
    const int dim = 320;
    const std::vector<float> t = {999.f, 500.f, 1.f};
    const Tensor ref = ops::timestep_embedding(t, dim, true, 0.f, 10000.f);
    const std::vector<float> freq = ops::timestep_frequencies(dim, 0.f, 10000.f);
    for (size_t r = 0; r < t.size(); ++r)
        for (int i = 0; i < dim; ++i)
            ASSERT_EQ(kmath::timestep_emb(t[r], freq.data(), dim / 2, i, true), ref.f32()[r * dim + i]) << r << " " << i;
    // GEGLU and CFG formulas against their definitions
    EXPECT_FLOAT_EQ(kmath::cfg(1.f, 3.f, 7.5f), 1.f + 7.5f * 2.f);
    EXPECT_FLOAT_EQ(kmath::geglu(2.f, 1.f), 2.f * 0.5f * (1.f + std::erf(1.f / std::sqrt(2.f))));
}

#include "backend/cuda_ops.h"

TEST(Backend, CudaOpsValidateAndFailCleanlyWithoutGpu) {
    namespace co = backend::cuda_ops;
    auto code_of = [](const std::function<void()>& f) {
        try {
            f();
        } catch (const Error& e) {
            return e.code();
        }
        return Code::kOk;
    };
    // argument errors come before any device work
    EXPECT_EQ(code_of([] { co::silu(co::DeviceTensor{}); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([] { co::timestep_embedding({1.f}, 7); }), Code::kInvalidArgument);
    EXPECT_EQ(code_of([] { co::DeviceTensor::empty({2, 3}, DType::I64); }), Code::kDtype);
    if (backend::cuda_status().available) GTEST_SKIP() << "a usable GPU is present";
    EXPECT_EQ(code_of([] { co::DeviceTensor::empty({2, 3}); }), Code::kNoCuda);
    EXPECT_EQ(code_of([] { co::DeviceTensor::from_host(Tensor::zeros({4})); }), Code::kNoCuda);
}
