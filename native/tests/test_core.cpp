#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "core/arena.h"
#include "core/half.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threadpool.h"

using namespace st2v;

TEST(Core, TensorViewsAndCopies) {
    Tensor t = Tensor::empty({2, 3, 4});
    for (int i = 0; i < 24; ++i) t.f32()[i] = float(i);
    Tensor p = t.permute({2, 0, 1});
    EXPECT_EQ(p.shape(), Shape({4, 2, 3}));
    EXPECT_FALSE(p.is_contiguous());
    Tensor c = p.contiguous();
    EXPECT_TRUE(c.is_contiguous());
    // c[k, i, j] = t[i, j, k]
    EXPECT_EQ(c.f32()[(3 * 2 + 1) * 3 + 2], t.f32()[(1 * 3 + 2) * 4 + 3]);
    Tensor s = t.slice(2, 1, 3);
    EXPECT_EQ(s.shape(), Shape({2, 3, 2}));
    Tensor sc = s.contiguous();
    EXPECT_EQ(sc.f32()[1], 2.f);
    Tensor sel = t.select(1, 2);
    EXPECT_EQ(sel.shape(), Shape({2, 4}));
    EXPECT_EQ(sel.contiguous().f32()[5], t.f32()[(1 * 3 + 2) * 4 + 1]);
    EXPECT_THROW(p.reshape({24}), Error);
    EXPECT_EQ(t.reshape({-1, 4}).shape(), Shape({6, 4}));
    try {
        t.reshape({5, 5});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::kShapeMismatch);
    }
}

TEST(Core, HalfConversionsRoundTrip) {
    for (uint32_t h = 0; h < 65536; ++h) {
        float f = f16_to_f32(static_cast<uint16_t>(h));
        if (std::isnan(f)) continue;
        EXPECT_EQ(f32_to_f16(f), h) << h;
    }
    EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);
    EXPECT_EQ(f32_to_f16(65519.f), 0x7bff);
    EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
    Tensor t = Tensor::full({5}, 1.5f).to(DType::F16).to(DType::F32);
    EXPECT_EQ(t.f32()[4], 1.5f);
}

TEST(Core, ThreadPoolCoversRangeAndPropagatesErrors) {
    ThreadPool pool(3);
    std::vector<int> hit(1000, 0);
    pool.parallel_for(1000, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; ++i) hit[size_t(i)]++; });
    for (int v : hit) EXPECT_EQ(v, 1);
    EXPECT_THROW(pool.parallel_for(10, [&](int64_t b, int64_t, int) { if (b > 0) ST2V_THROW(Code::kInternal, "x"); }),
                 Error);
    std::atomic<int> n{0};
    pool.parallel_for(10, [&](int64_t, int64_t, int) {
        // nested regions run inline
        pool.parallel_for(5, [&](int64_t b, int64_t e, int) { n += int(e - b); });
    });
    EXPECT_EQ(n.load(), 15);
}

TEST(Core, ArenaReusesBlocks) {
    Arena arena;
    void* first;
    {
        ArenaScope scope(&arena);
        Tensor a = Tensor::empty({1000, 1000});
        first = a.raw();
        EXPECT_GE(arena.bytes_in_use(), 4000000u);
    }
    EXPECT_EQ(arena.bytes_in_use(), 0u);
    EXPECT_GE(arena.bytes_cached(), 4000000u);
    {
        ArenaScope scope(&arena);
        Tensor b = Tensor::empty({1000, 1000});
        EXPECT_EQ(b.raw(), first);
    }
    arena.trim();
    EXPECT_EQ(arena.bytes_cached(), 0u);
}
