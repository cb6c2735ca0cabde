// cuda_engine_check: a whole generation (stage 1 + extension chunks + VAE decode) through engine::Engine with the
// denoisers on the CUDA backend (LoadOptions.backend = "cuda", weights resident in f32) against the same
// generation on the CPU, on the built-in default model (seeded tiny weights of the real architecture).
//
//   cuda_engine_check [--frames N (24 = 2 chunks)] [--steps S (3)] [--dtype f32|bf16]
//
// Prints one JSON line per chunk {"chunk", "frames", "max_abs_u8", "mean_abs_u8", "ms_cpu", "ms_cuda"} and a summary
// {"summary": true, "pass", ...}. The frames are uint8 after the VAE, so fp32 round-off of the denoisers can flip a
// value by 1 at a rounding boundary; the check passes when every byte is within 2 (f32) and the mean absolute
// difference is below 0.05 (f32). With --dtype bf16 it only reports. Exit 0 pass, 1 fail, 2 no CUDA.
// Under the CPU emulation of CUDA (ST2V_CUDA_LIB=<libstreamingt2v_cuda_emu.so>) a 2-chunk run with 1 step takes
// tens of minutes: it is a GPU-machine check (scripts/gpu-check.sh).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/status.h"
#include "engine/engine.h"

using namespace st2v;

namespace {
std::string json_escape(const std::string& in) {
    std::string o;
    for (char c : in) {
        if (c == '"' || c == '\\') o.push_back('\\');
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        o.push_back(c);
    }
    return o;
}
struct Run {
    std::vector<engine::Chunk> chunks;
    double ms = 0;
};
Run generate(const std::string& backend, const std::string& dtype, int frames, int steps) {
    engine::Engine e(0);
    engine::LoadOptions lo;
    lo.backend = backend;
    lo.cuda_dtype = dtype;
    const auto t0 = std::chrono::steady_clock::now();
    e.load("", lo);
    engine::GenerateOptions g;
    g.prompt = "a red ball rolling on grass";
    g.frames = frames;
    g.steps = steps;
    g.base_steps = steps;
    g.seed = 33;
    Run r;
    e.generate(g, [&](engine::Chunk&& c) { r.chunks.push_back(std::move(c)); }, [](const engine::Progress&) {});
    r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
}
}  // namespace

int main(int argc, char** argv) {
    int frames = 24, steps = 3;
    std::string dtype = "f32";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--frames" && i + 1 < argc) frames = std::atoi(argv[++i]);
        else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
        else if (a == "--dtype" && i + 1 < argc) dtype = argv[++i];
        else {
            std::fprintf(stderr, "usage: cuda_engine_check [--frames N] [--steps S] [--dtype f32|bf16]\n");
            return 2;
        }
    }
    try {
        (void)backend::cuda();  // ERR_NO_CUDA first, before the CPU run
    } catch (const Error& e) {
        std::printf("{\"error\": \"%s\", \"code\": \"%s\"}\n", json_escape(e.what()).c_str(), code_name(e.code()));
        return 2;
    }
    try {
        const Run cpu = generate("cpu", "f32", frames, steps);
        const Run gpu = generate("cuda", dtype, frames, steps);
        bool pass = cpu.chunks.size() == gpu.chunks.size();
        int worst = 0;
        double sum = 0, n = 0;
        for (size_t c = 0; c < cpu.chunks.size() && c < gpu.chunks.size(); ++c) {
            const auto& a = cpu.chunks[c].rgb;
            const auto& b = gpu.chunks[c].rgb;
            if (a.size() != b.size()) {
                pass = false;
                continue;
            }
            int mx = 0;
            double s = 0;
            for (size_t i = 0; i < a.size(); ++i) {
                const int d = std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
                mx = std::max(mx, d);
                s += d;
            }
            const double mean = a.empty() ? 0 : s / static_cast<double>(a.size());
            worst = std::max(worst, mx);
            sum += s;
            n += static_cast<double>(a.size());
            std::printf("{\"chunk\": %zu, \"frames\": %d, \"max_abs_u8\": %d, \"mean_abs_u8\": %.5f, \"ms_cpu\": %.1f, \"ms_cuda\": %.1f}\n",
                        c, cpu.chunks[c].frames, mx, mean, cpu.chunks[c].ms_total, gpu.chunks[c].ms_total);
        }
        const double mean = n > 0 ? sum / n : 0;
        if (dtype == "f32") pass = pass && worst <= 2 && mean < 0.05;
        std::printf("{\"summary\": true, \"dtype\": \"%s\", \"frames\": %d, \"steps\": %d, \"chunks\": %zu, \"max_abs_u8\": %d, "
                    "\"mean_abs_u8\": %.5f, \"ms_cpu_total\": %.1f, \"ms_cuda_total\": %.1f, \"pass\": %s}\n",
                    dtype.c_str(), frames, steps, gpu.chunks.size(), worst, mean, cpu.ms, gpu.ms,
                    dtype == "f32" ? (pass ? "true" : "false") : "null");
        return dtype == "f32" && !pass ? 1 : 0;
    } catch (const Error& e) {
        std::printf("{\"error\": \"%s\", \"code\": \"%s\"}\n", json_escape(e.what()).c_str(), code_name(e.code()));
        return e.code() == Code::kNoCuda ? 2 : 1;
    }
}
