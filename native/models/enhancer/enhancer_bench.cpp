// Bench suite "enhance": seconds per solver step of a mid-size random enhancer (official key names, official
// layout: widths 64·[1,2,4,4], spatial+temporal transformers at levels 0-2, head size 64, first temporal
// transformer 8x64, f16 weights as the real run) at 90x160 latents, 24 frames = one chunk: one step is the
// blended model_fn = UNet(x, t, y) + UNet(x, t, y_neg), CFG 7.5 + rescale, v -> x0 (the solver update itself
// is a few elementwise passes). The level-0 spatial self-attention over 14,400 tokens x 24 frames dominates
// (~1.3 TFLOP per transformer at any width of one 64-wide head per 64 channels), so a rep takes minutes on
// 2 cores: one timed repetition, no warm-up.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/arena.h"

#include "bench/bench.h"
#include "core/tensor.h"
#include "models/enhancer/vid2vid_unet.h"
#include "runtime/enhancer_sampling.h"

namespace {

using namespace st2v;

const io::WeightStore& mid_weights() {
    static const io::WeightStore w = enhancer::random_vid2vid_weights(64, {1, 2, 4, 4}, 3, 64, 8, 1024, 9, DType::F16);
    return w;
}

bench::Result enh_step_mid() {
    const io::WeightStore& w = mid_weights();
    static const enhancer::Vid2VidUNet net = [&w] {
        enhancer::Vid2VidUNet n(w);
        n.set_ff_token_chunk(16384);  // token tiling as the pipeline runs it (same result, bounded intermediates)
        return n;
    }();
    Tensor x = Tensor::full({1, 4, 24, 90, 160}, 0.1f);
    Tensor y = Tensor::full({1, 77, 1024}, 0.05f), yn = Tensor::full({1, 77, 1024}, -0.05f);
    runtime::EnhancerSchedule sch;
    runtime::PyRandom rng(8888);
    const float sigma = sch.solver_sigmas(30, 599, 0)[15];  // a mid-schedule step
    const size_t live0 = tensor_bytes_live();
    tensor_bytes_reset_peak();
    const double c0 = bench::process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    Tensor d = runtime::enhancer_model_fn(
        x, sigma, sch,
        [&](const Tensor& xc, int64_t t, bool cond) { return net.forward(xc, {static_cast<float>(t)}, cond ? y : yn); }, rng);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = bench::process_cpu_seconds() - c0;
    bench::Result r;
    r.name = "enh_step_mid_90x160";
    r.seconds = sec;
    r.cpu_seconds = cpu;  // process CPU seconds: on a shared machine wall/cpu shows how many cores the case got
    char note[256];
    std::snprintf(note, sizeof note, "s/solver step (2 UNet forwards, CFG; FF in 16384-token slices); random enhancer %s, %zu tensors f16, 1x4x24x90x160, 1 rep",
                  net.config().str().c_str(), w.size());
    r.note = note;
    r.extra.emplace_back("peak_tensor_mb", static_cast<double>(tensor_bytes_peak() - live0) / 1e6);
    (void)d;
    return r;
}

// Peak activation memory of one forward of the same mid-size enhancer (24 frames, 42x80 latents: the level-0
// temporal transformer is 512 wide on 64 channels) with the pipeline's token tiling (FF slices and temporal
// transformer tiles of 16384 tokens) against FF slices only, and the largest difference of the two outputs
// (the tiling regroups independent rows and sequences: expected 0). About a minute on 2 cores.
bench::Result enh_memory_mid() {
    const io::WeightStore& w = mid_weights();
    Tensor x = Tensor::empty({1, 4, 24, 42, 80});
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = 0.5f * std::sin(0.013f * static_cast<float>(i));
    Tensor y = Tensor::full({1, 77, 1024}, 0.05f);
    auto peak_of = [&](int64_t temporal_chunk, Tensor* out) {
        enhancer::Vid2VidUNet n(w);
        n.set_token_chunks(16384, temporal_chunk);
        const size_t live0 = tensor_bytes_live();
        tensor_bytes_reset_peak();
        *out = n.forward(x, {500.f}, y);
        return static_cast<double>(tensor_bytes_peak() - live0) / 1e6;
    };
    const auto t0 = std::chrono::steady_clock::now();
    Tensor a, b;
    const double tiled = peak_of(16384, &a);
    const double ff_only = peak_of(0, &b);
    double d = 0;
    for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, static_cast<double>(std::fabs(a.f32()[i] - b.f32()[i])));
    bench::Result r;
    r.name = "enh_memory_mid_42x80";
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.extra = {{"peak_tensor_mb_tiled", tiled}, {"peak_tensor_mb_ff_only", ff_only}, {"tiled_over_ff_only", tiled / ff_only},
               {"max_abs_diff", d}};
    char note[200];
    std::snprintf(note, sizeof note, "one forward, 1x4x24x42x80, mid-size random enhancer f16: peak tensor MB %.1f with temporal tiles vs %.1f FF-only, max |diff| %.3g",
                  tiled, ff_only, d);
    r.note = note;
    return r;
}

}  // namespace

ST2V_BENCH("enhance", "enh_memory_mid_42x80", enh_memory_mid);
ST2V_BENCH("enhance", "enh_step_mid_90x160", enh_step_mid);
