// Bench: exact banded (tiled) vs untiled VAE decode of a 90x160 latent (the enhancer's 1280x720 frames; issue 6),
// with a random-weight VAE of the SD-2.1 structure (4 levels, block_out ratios 1:2:4:4, 2 layers, factor 8).
// Default widths {32, 64, 128, 128} (1/4 of SD-2.1, so the case runs in tens of seconds on 2 cores; the memory
// ratio barely depends on the width since every large activation scales with it); ST2V_BENCH_VAE_FULL=1 uses the
// real widths {128, 256, 512, 512} (~16x the FLOPs, ~2.4 GB untiled peak). Reports the tiled decode's seconds and,
// in the note, the peak activation bytes of both paths (st2v::tensor_bytes_peak), their ratio, the untiled time
// and max|tiled - untiled|.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/arena.h"
#include "models/vae/vae.h"

namespace st2v::vae {
namespace {

void add_rand(io::WeightStore& w, std::mt19937& g, const std::string& n, Shape s, bool norm_w = false) {
    Tensor t = Tensor::empty(s);
    std::normal_distribution<float> nd(0.f, 1.f);
    const float fan_in = s.ndim() >= 2 ? static_cast<float>(s.numel() / s[0]) : 1.f;
    for (int64_t i = 0; i < t.numel(); ++i)
        t.f32()[i] = s.ndim() >= 2 ? nd(g) / std::sqrt(fan_in) : (norm_w ? 1.f + 0.1f * nd(g) : 0.05f * nd(g));
    w.add(n, t);
}
void add_norm(io::WeightStore& w, std::mt19937& g, const std::string& p, int64_t c) {
    add_rand(w, g, p + ".weight", Shape({c}), true);
    add_rand(w, g, p + ".bias", Shape({c}));
}
void add_conv(io::WeightStore& w, std::mt19937& g, const std::string& p, int64_t o, int64_t i, int64_t k) {
    add_rand(w, g, p + ".weight", Shape({o, i, k, k}));
    add_rand(w, g, p + ".bias", Shape({o}));
}
void add_res(io::WeightStore& w, std::mt19937& g, const std::string& p, int64_t i, int64_t o) {
    add_norm(w, g, p + ".norm1", i);
    add_conv(w, g, p + ".conv1", o, i, 3);
    add_norm(w, g, p + ".norm2", o);
    add_conv(w, g, p + ".conv2", o, o, 3);
    if (i != o) add_conv(w, g, p + ".conv_shortcut", o, i, 1);
}
void add_mid(io::WeightStore& w, std::mt19937& g, const std::string& p, int64_t c) {
    add_res(w, g, p + ".resnets.0", c, c);
    add_res(w, g, p + ".resnets.1", c, c);
    const std::string a = p + ".attentions.0";
    add_norm(w, g, a + ".group_norm", c);
    for (const char* n : {".to_q", ".to_k", ".to_v", ".to_out.0"}) {
        add_rand(w, g, a + n + ".weight", Shape({c, c}));
        add_rand(w, g, a + n + ".bias", Shape({c}));
    }
}

}  // namespace

// A random AutoencoderKL in canonical ("vae.") names. Also used by tests.
io::WeightStore make_random_vae(const std::vector<int64_t>& block_out, int layers, uint32_t seed) {
    io::WeightStore w;
    std::mt19937 g(seed);
    const std::string E = "vae.encoder.", D = "vae.decoder.";
    const size_t nb = block_out.size();
    add_conv(w, g, E + "conv_in", block_out[0], 3, 3);
    int64_t c = block_out[0];
    for (size_t i = 0; i < nb; ++i) {
        const std::string p = E + "down_blocks." + std::to_string(i);
        for (int j = 0; j < layers; ++j) {
            add_res(w, g, p + ".resnets." + std::to_string(j), c, block_out[i]);
            c = block_out[i];
        }
        if (i + 1 < nb) add_conv(w, g, p + ".downsamplers.0.conv", c, c, 3);
    }
    add_mid(w, g, E + "mid_block", c);
    add_norm(w, g, E + "conv_norm_out", c);
    add_conv(w, g, E + "conv_out", 8, c, 3);
    add_conv(w, g, "vae.quant_conv", 8, 8, 1);
    add_conv(w, g, "vae.post_quant_conv", 4, 4, 1);
    c = block_out[nb - 1];
    add_conv(w, g, D + "conv_in", c, 4, 3);
    add_mid(w, g, D + "mid_block", c);
    for (size_t i = 0; i < nb; ++i) {
        const int64_t o = block_out[nb - 1 - i];
        const std::string p = D + "up_blocks." + std::to_string(i);
        for (int j = 0; j <= layers; ++j) {
            add_res(w, g, p + ".resnets." + std::to_string(j), c, o);
            c = o;
        }
        if (i + 1 < nb) add_conv(w, g, p + ".upsamplers.0.conv", c, c, 3);
    }
    add_norm(w, g, D + "conv_norm_out", c);
    add_conv(w, g, D + "conv_out", 3, c, 3);
    return w;
}

namespace {
bench::Result vae_decode_tiled_90x160() {
    const char* full_env = std::getenv("ST2V_BENCH_VAE_FULL");
    const bool full_width = full_env && std::string(full_env) == "1";
    const std::vector<int64_t> widths = full_width ? std::vector<int64_t>{128, 256, 512, 512}
                                                   : std::vector<int64_t>{32, 64, 128, 128};
    AutoencoderKL m(make_random_vae(widths, 2, 7), "vae.", full_width ? 32 : 8);
    Tensor z = Tensor::empty(Shape({1, 4, 90, 160}));
    std::mt19937 g(1);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int64_t i = 0; i < z.numel(); ++i) z.f32()[i] = nd(g);
    using clk = std::chrono::steady_clock;
    size_t base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    auto t0 = clk::now();
    const std::clock_t cf0 = std::clock();
    Tensor full = m.decode(z);
    const double cpu_full = double(std::clock() - cf0) / CLOCKS_PER_SEC;
    const double secs_full = std::chrono::duration<double>(clk::now() - t0).count();
    const size_t peak_full = tensor_bytes_peak() - base;
    base = tensor_bytes_live();
    tensor_bytes_reset_peak();
    t0 = clk::now();
    const std::clock_t c0 = std::clock();
    Tensor tiled = m.decode_tiled(z);  // default (auto) band height
    const double cpu = double(std::clock() - c0) / CLOCKS_PER_SEC;
    const double secs = std::chrono::duration<double>(clk::now() - t0).count();
    const size_t peak_tiled = tensor_bytes_peak() - base;
    double d = 0, mx = 0;
    for (int64_t i = 0; i < full.numel(); ++i) {
        d = std::max(d, double(std::fabs(full.f32()[i] - tiled.f32()[i])));
        mx = std::max(mx, double(std::fabs(full.f32()[i])));
    }
    bench::Result r;
    r.name = "vae_decode_tiled_90x160";
    r.seconds = secs;
    r.cpu_seconds = cpu;
    char buf[640];
    std::snprintf(buf, sizeof buf,
                  "widths {%lld,%lld,%lld,%lld}%s: peak activation bytes tiled %zu / untiled %zu = %.3f; "
                  "max|tiled-untiled| %.3g (max|untiled| %.3g); untiled %.2f s (cpu %.2f s), tiled %.2f s (cpu %.2f s; %.2fx the untiled cpu)",
                  (long long)widths[0], (long long)widths[1], (long long)widths[2], (long long)widths[3],
                  full_width ? " (SD-2.1)" : " (SD-2.1 structure at 1/4 width)", peak_tiled, peak_full,
                  double(peak_tiled) / double(peak_full), d, mx, secs_full, cpu_full, secs, cpu, cpu / std::max(1e-9, cpu_full));
    r.note = buf;
    return r;
}
}  // namespace

ST2V_BENCH("pipeline", "vae_decode_tiled_90x160", vae_decode_tiled_90x160);

}  // namespace st2v::vae
