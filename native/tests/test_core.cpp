#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "core/arena.h"
#include "core/cpu.h"
#include "core/half.h"
#include "core/profile.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/ops.h"

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

// Element (multi-index idx) of a strided tensor, as raw 4-byte bits.
namespace {
uint32_t bits_at(const Tensor& t, const std::vector<int64_t>& idx) {
    int64_t off = 0;
    for (int d = 0; d < t.ndim(); ++d) off += idx[static_cast<size_t>(d)] * t.stride(d);
    return static_cast<const uint32_t*>(t.raw())[off];
}
// Every element of dst equals the same element of src (by multi-index), bit for bit.
void expect_same_elements(const Tensor& src, const Tensor& dst, const std::string& what) {
    ASSERT_EQ(src.shape(), dst.shape()) << what;
    std::vector<int64_t> idx(static_cast<size_t>(src.ndim()), 0);
    for (int64_t n = 0; n < src.numel(); ++n) {
        ASSERT_EQ(bits_at(src, idx), bits_at(dst, idx)) << what << " element " << n;
        for (int d = src.ndim() - 1; d >= 0; --d) {
            if (++idx[static_cast<size_t>(d)] < src.size(d)) break;
            idx[static_cast<size_t>(d)] = 0;
        }
    }
}
}  // namespace

// Permuting copies (the blocked-transpose path for 4-byte elements, AVX2 and scalar, with odd extents and size-1
// dims, into contiguous and strided destinations) against the element-by-index reference; 2-byte dtypes and
// small tensors take the element loop.
TEST(Core, PermutingCopiesMatchElementByElement) {
    struct Case {
        Shape shape;
        std::vector<int> order;
    };
    const Case cases[] = {
        {{2, 16, 128, 32, 32}, {0, 3, 4, 1, 2}},  // frames -> temporal tokens [B, H, W, F, C]
        {{2, 32, 32, 16, 128}, {0, 3, 4, 1, 2}},  // tokens -> frames
        {{32, 128, 1024}, {0, 2, 1}},            // [N, C, HW] -> [N, HW, C]
        {{3, 37, 45}, {0, 2, 1}},                // odd extents: 8 x 8 blocks + tails
        {{1, 9, 1, 70, 13}, {0, 4, 2, 3, 1}},    // size-1 dims
        {{5, 7, 3, 61}, {3, 1, 0, 2}},
        {{4, 96, 96}, {2, 1, 0}},
    };
    Isa prev = active_isa();
    for (Isa isa : {Isa::kAvx2, Isa::kPortable}) {
        if (!set_isa(isa)) continue;
        for (const Case& c : cases) {
            Tensor t = Tensor::empty(c.shape);
            for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = static_cast<float>(i) * 0.5f - 7.f;
            Tensor p;
            switch (c.order.size()) {
                case 3: p = t.permute({c.order[0], c.order[1], c.order[2]}); break;
                case 4: p = t.permute({c.order[0], c.order[1], c.order[2], c.order[3]}); break;
                default: p = t.permute({c.order[0], c.order[1], c.order[2], c.order[3], c.order[4]}); break;
            }
            const std::string what = std::string(isa_name(isa)) + " " + c.shape.str();
            expect_same_elements(p, p.contiguous(), what + " contiguous");
            // into a strided destination: a slice of a wider tensor
            Shape wide = p.shape();
            wide[0] += 2;
            Tensor big = Tensor::empty(wide);
            Tensor view = big.slice(0, 1, 1 + p.size(0));
            view.copy_from(p);
            expect_same_elements(p, view, what + " into a slice");
        }
        // 2-byte elements: the element loop (values exact in f16)
        Tensor t16 = Tensor::empty({3, 37, 45});
        for (int64_t i = 0; i < t16.numel(); ++i) t16.f32()[i] = static_cast<float>(i % 100) * 0.25f;
        Tensor hp = t16.to(DType::F16).permute({0, 2, 1}).contiguous().to(DType::F32);
        expect_same_elements(t16.permute({0, 2, 1}), hp, "f16");
        // i32 is copied bitwise like f32
        Tensor ti = Tensor::empty({3, 50, 40}, DType::I32);
        for (int64_t i = 0; i < ti.numel(); ++i) static_cast<int32_t*>(ti.raw())[i] = static_cast<int32_t>(i * 7919 - 100000);
        expect_same_elements(ti.permute({0, 2, 1}), ti.permute({0, 2, 1}).contiguous(), "i32");
    }
    set_isa(prev);
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

// Back-to-back regions (workers and caller catch them while spinning) and regions after a pause longer than the spin
// (workers asleep on the condition variable), from two submitting threads at once: every region runs each index
// exactly once and returns only when all of its work is done.
TEST(Core, ThreadPoolRegionsBackToBackAndAfterSleep) {
    ThreadPool pool(3);
    auto burst = [&](int regions, int pause_us, int64_t* bad) {
        for (int r = 0; r < regions; ++r) {
            std::vector<int> hit(64, 0);
            pool.parallel_for(64, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; ++i) hit[size_t(i)]++; });
            for (int v : hit) *bad += v != 1;
            std::atomic<int> ran{0};
            pool.run_on_all([&](int) { ran.fetch_add(1); });
            *bad += ran.load() != 3;
            if (pause_us) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
        }
    };
    int64_t bad1 = 0, bad2 = 0;
    burst(2000, 0, &bad1);
    burst(20, 2000, &bad1);
    std::thread other([&] { burst(500, 0, &bad2); });
    burst(500, 0, &bad1);
    other.join();
    EXPECT_EQ(bad1, 0);
    EXPECT_EQ(bad2, 0);
    {
        ThreadPool brief(2);  // destroyed right after a region, while its worker spins
        std::atomic<int> n{0};
        brief.run_on_all([&](int) { n.fetch_add(1); });
        EXPECT_EQ(n.load(), 2);
    }
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

// The CPU op profile (core/profile.h, the step bench's --profile): off records nothing; on, each outermost op adds
// one call with its FLOPs under its name; work nested in an op (the conv's input copy, the ops inside a worker's
// region) counts in that op only; set_cpu_profile(true) starts a fresh table.
TEST(Core, CpuOpProfileCountsOutermostOpsOnly) {
    auto row = [](const std::vector<ProfileRow>& rows, const std::string& name) -> const ProfileRow* {
        for (const ProfileRow& r : rows)
            if (r.name == name) return &r;
        return nullptr;
    };
    Tensor x = Tensor::empty({2, 8, 5, 6});  // [N, C, H, W]
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = static_cast<float>(i % 11) * 0.1f;
    Tensor w = Tensor::empty({4, 8, 3, 3});
    for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] = static_cast<float>(i % 5) * 0.01f;
    Tensor lw = Tensor::empty({3, 6});
    for (int64_t i = 0; i < lw.numel(); ++i) lw.f32()[i] = 0.5f;
    ops::Conv2dParams p;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
    const Tensor xt = x.permute({0, 1, 3, 2});  // a non-contiguous input: conv2d copies it inside

    set_cpu_profile(false);
    (void)ops::conv2d(xt, w, Tensor(), p);
    EXPECT_TRUE(cpu_profile().empty());

    set_cpu_profile(true);
    (void)ops::conv2d(xt, w, Tensor(), p);
    (void)ops::conv2d(xt, w, Tensor(), p);
    (void)ops::linear(x, lw, Tensor());  // rows 2*8*5 = 80 of 6 inputs, 3 outputs
    (void)x.permute({1, 0, 2, 3}).contiguous();  // a copy outside any op: its own row
    set_cpu_profile(false);
    (void)ops::linear(x, lw, Tensor());  // off again: not counted
    const std::vector<ProfileRow> rows = cpu_profile();
    ASSERT_EQ(rows.size(), 3u);
    const ProfileRow* conv = row(rows, "conv2d 3x3 (im2col)");  // C = 8 < 96: not Winograd
    ASSERT_NE(conv, nullptr);
    EXPECT_EQ(conv->calls, 2);
    EXPECT_DOUBLE_EQ(conv->flop, 2 * (2.0 * 2 * 4 * 6 * 5 * 8 * 9));  // 2 * N*O*Ho*Wo*C*9, twice
    const ProfileRow* lin = row(rows, "linear");
    ASSERT_NE(lin, nullptr);
    EXPECT_EQ(lin->calls, 1);
    EXPECT_DOUBLE_EQ(lin->flop, 2.0 * 80 * 6 * 3);
    const ProfileRow* cp = row(rows, "copy (layout / dtype)");
    ASSERT_NE(cp, nullptr);
    EXPECT_EQ(cp->calls, 1);  // the conv's two input copies were inside conv2d
    EXPECT_DOUBLE_EQ(cp->bytes, 2.0 * 4 * x.numel());
    for (const ProfileRow& r : rows) EXPECT_GE(r.seconds, 0.0);
    for (size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1].seconds, rows[i].seconds);  // by time

    set_cpu_profile(true);  // a fresh table
    EXPECT_TRUE(cpu_profile().empty());
    set_cpu_profile(false);
}
