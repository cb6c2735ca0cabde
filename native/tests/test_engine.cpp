// The generation loop with the embedded default model: streaming order, frame counts, cancellation and
// memory that does not grow with the number of chunks.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/arena.h"
#include "engine/engine.h"

using namespace st2v;

namespace {
engine::GenerateOptions opts(int frames, int steps) {
    engine::GenerateOptions o;
    o.prompt_ids.assign(77, 0);
    o.prompt_ids[0] = 512;
    o.prompt_ids[1] = 65;
    o.prompt_ids[2] = 513;
    o.negative_ids.assign(77, 0);
    o.negative_ids[0] = 512;
    o.negative_ids[1] = 513;
    o.frames = frames;
    o.steps = steps;
    o.base_steps = steps;
    return o;
}
}  // namespace

TEST(Engine, StreamsChunksInOrderBeforeTheNextChunkStarts) {
    engine::Engine e(2);
    engine::ModelInfo mi = e.load("", {});
    EXPECT_TRUE(mi.untrained);
    std::vector<std::pair<int, int>> chunks;  // (index, frames)
    std::vector<std::string> log;
    engine::Summary s = e.generate(
        opts(32, 2),
        [&](engine::Chunk&& c) {
            chunks.emplace_back(c.index, c.frames);
            EXPECT_EQ(c.rgb.size(), size_t(c.frames) * c.height * c.width * 3);
            log.push_back("chunk" + std::to_string(c.index));
        },
        [&](const engine::Progress& p) {
            if (p.step == 1) log.push_back(std::string(p.stage) + std::to_string(p.chunk));
        });
    ASSERT_EQ(chunks.size(), 3u);
    EXPECT_EQ(chunks[0], std::make_pair(0, 16));
    EXPECT_EQ(chunks[1], std::make_pair(16, 8));
    EXPECT_EQ(chunks[2], std::make_pair(24, 8));
    EXPECT_EQ(s.frames, 32);
    // chunk k is delivered before the first step of chunk k+1
    auto pos = [&](const std::string& x) { return std::find(log.begin(), log.end(), x) - log.begin(); };
    EXPECT_LT(pos("chunk0"), pos("extend1"));
    EXPECT_LT(pos("chunk16"), pos("extend2"));
}

TEST(Engine, MemoryDoesNotGrowWithTheNumberOfChunks) {
    engine::Engine e(2);
    e.load("", {});
    engine::Summary s3 = e.generate(opts(16 + 8 * 2, 1), [](engine::Chunk&&) {}, [](const engine::Progress&) {});
    engine::Summary s12 = e.generate(opts(16 + 8 * 11, 1), [](engine::Chunk&&) {}, [](const engine::Progress&) {});
    EXPECT_EQ(s3.chunks, 3);
    EXPECT_EQ(s12.chunks, 12);
    std::printf("  peak activation memory: 3 chunks %.2f MB, 12 chunks %.2f MB\n", s3.peak_arena_bytes / 1e6,
                s12.peak_arena_bytes / 1e6);
    EXPECT_LE(double(s12.peak_arena_bytes), 1.10 * double(s3.peak_arena_bytes));
}

TEST(Engine, CancelStopsWithinOneStep) {
    engine::Engine e(2);
    e.load("", {});
    int steps_after_cancel = 0;
    bool cancelled = false;
    try {
        e.generate(opts(24, 50), [](engine::Chunk&&) {}, [&](const engine::Progress& p) {
            if (cancelled) ++steps_after_cancel;
            if (p.step == 2 && !cancelled) {
                cancelled = true;
                e.cancel();
            }
        });
        FAIL() << "expected ERR_CANCELLED";
    } catch (const Error& err) {
        EXPECT_EQ(err.code(), Code::kCancelled);
    }
    EXPECT_LE(steps_after_cancel, 1);
}
