// cuda_model_check: the StreamingT2V stage-2 networks on the CUDA backend (models/t2v/device_unet3d.h) against the
// CPU networks (the specification) on seeded random weights (St2vConfig::tiny() / ::mid(), make_random_weights).
//
//   cuda_model_check [--quick] [--bench] [--bench-tiny] [--profile] [--bench-dtype f32|bf16] [--dtype f32|bf16] [--attn-bf16-ab] [--reps N] [--frames F]
//                    [--latent N] [--config tiny|mid]
// (--bench-dtype: the bench in that weight dtype only; default both. --dtype: the parity cases likewise.)
// (--profile, with --bench / --bench-tiny: one more step per dtype with every device op timed on its own,
// {"case": "bench/stage2_profile", "ops": [{"op", "calls", "ms", "share", "tflops"}...]}, backend.h: OpScope; with
// --bench-enh / --bench-enh-tiny likewise one more enhancer solver step, "bench/enh_profile")
// (--bench-tiny: the bench code on the tiny config at --latent / --frames, also under emulation; a check of the tool)
//
// Under the CPU emulation of CUDA (cuda_model_check_emu, ST2V_CUDA_LIB=<libstreamingt2v_cuda_emu.so>) use small
// shapes, e.g. --quick --frames 4 --latent 4 (every layer still runs: temporal layers need 2+ frames).
//
// Per config (tiny at 8x8 latents (--latent N); mid at 2N unless --quick), 16 frames (--frames F), 8 conditioning frames
// (F / 2), CFG batch 2; one device stage-2 step per dtype gives all three outputs:
//   cam_residuals  the CAM branch (E_cond + encoder) skip and mid residuals, all of them together
//   unet_eps       CAM + UNet3D (APM context, CAM mergers) eps for [uncond, cond]
//   stage2_step    one step of engine::sample_extension_chunk: CAM + UNet, CFG 7.5, DDIM (eta 1, 50 steps)
//   stage2_step_stem_per_sample  the same step with Encoder::stem run per sample (t2v::detail::set_shared_stem(false));
//                  it must also give the same bits as stage2_step (which shares the CFG pair's stem)
//   stage2_step_econd_cached  the same step with E_cond from t2v::DeviceECondCache (engine::Model's once-per-chunk
//                  features; the cache's hit / miss counts are checked too)
// then the stage-3 enhancer (--config enhancer alone; a tiny random enhancer, 10x16 latents, F frames):
//   enhancer/forward          enhancer::DeviceVid2VidUNet::forward, batch 2 (a timestep and a context per sample)
//   enhancer/forward_host_b1  the pipeline's call: one sample, host tensors in and out
//   enhancer/forward_ff_slices  the forward with the feed-forwards in slices of ~100 tokens (f32)
//   enhancer/pipeline         enhancer::EnhanceStream end to end (2 chunks, randomized blending, 2 solver steps, VAE)
//                             with the device denoiser, against the CPU pipeline (f32 weights only)
//   enhancer/pipeline_device_vae  the same with the VAE's encode / decode on the device too
//   vae/decode_b2, vae/decode_host, vae/encode_host  vae::DeviceAutoencoderKL against the CPU AutoencoderKL (a
//                             512-wide mid-block attention head: the GEMM attention path)
// each with resident f32 weights (tolerance 1e-4 * max(1, max|ref|), the project's parity bound) and bf16 weights
// (tolerance 2e-2 * max|ref|: "bf16 within 2e-2 relative to the output scale", issue 11). The reference is the
// CPU fp32 forward. One JSON line per case:
//   {"case", "dtype", "max_abs", "ref_max_abs", "rel", "tol", "pass", "ms_cuda", "ms_cpu"}
// (ms_cuda: synchronised wall time of the device part: CAM, CAM + UNet, the whole step; the step's median of --reps
// runs after one warm-up when reps > 1; ms_cpu: the CPU reference's time of the same part).
//
// --bench (skipped on an emulated backend): the stage-2 step at the bench shape (St2vConfig::full(), CFG
// batch 2, 16 frames, 32x32 latents, 8 conditioning frames of 256x256, 93 context tokens) in f32 and bf16, median
// of --reps (default 5) after a warm-up, on bench weights (bench_weights(): make_random_weights' spreads, filled in
// parallel), and the peak device memory of the bf16 step: the backend's allocator
// counter (backend::device_bytes_peak(): bytes held by live DeviceBuffers, weights + activations; the CUDA
// library's own cuBLASLt workspace / scratch are not counted) and the device's used memory (cudaMemGetInfo) after
// the weights were uploaded. Each dtype is timed twice: as is (every temporary freed for real), and with the
// backend's opt-in buffer cache (backend::set_device_buffer_cache: freed buffers reused by size, no sync per free).
//
// --bench-enh (skipped on an emulated backend): the stage-3 enhancer's denoiser work of one solver step per chunk on the
// real MS-Vid2Vid-XL layout (random weights) at 24 frames of 90 x 160 latents: two forwards (prompt, negative prompt)
// and CFG, f32 and bf16 weights, median of --reps (default 3), peak device memory ({"case": "bench/enh_step", ...}).
// --bench-enh-tiny: the same code on a tiny enhancer (a check of the tool, also under emulation).
//
// The last line is {"summary": true, ...}. Exit 0 when every case passes, 1 when one fails, 2 when the CUDA
// backend is not available (ERR_NO_CUDA, printed as JSON).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda_ops.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "cuda/tests/check_util.h"
#include "models/enhancer/device_vid2vid.h"
#include "models/enhancer/pipeline.h"
#include "models/enhancer/vid2vid_unet.h"
#include "models/streamingt2v/config.h"
#include "models/t2v/device_unet3d.h"
#include "models/t2v/unet3d.h"
#include "models/vae/device_vae.h"
#include "models/vae/vae.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "runtime/schedules.h"

using namespace st2v;
namespace co = backend::cuda_ops;
using co::DeviceTensor;

namespace {

int g_reps = 1;
bool g_profile = false;
bool g_emulated = false;  // the backend is the CPU emulation of CUDA (deterministic GEMMs, no timing meaning)
// --attn-bf16-ab: --bench-enh times its bf16 step a second time with ST2V_CUDA_ATTN_BF16=1 (attention on bf16 operands)
bool g_attn_bf16_ab = false;
std::vector<DType> g_check_dtypes = {DType::F32, DType::BF16};  // --dtype f32|bf16: the parity cases in that one only
std::vector<DType> g_bench_dtypes = {DType::F32, DType::BF16};  // --bench-dtype f32|bf16: that one only  // --profile: the bench also prints a per-op profile of one step per dtype
int g_frames = 16;  // chunk frames of the parity cases (conditioning frames: half)
int g_latent = 8;   // tiny's latent size (mid: twice that)
int g_failed = 0, g_passed = 0;
double g_worst_fp32_abs = 0;    // worst max_abs over fp32 cases
double g_worst_fp32_rel = 0;    // worst max_abs / max(1, ref) over fp32 cases
double g_worst_bf16_rel = 0;    // worst max_abs / max|ref| over bf16 cases

double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
void sync() { backend::check(backend::cuda().synchronize(), "synchronize"); }

std::string json_escape(const std::string& s) {
    std::string o;
    for (char ch : s) {
        if (ch == '"' || ch == '\\') o.push_back('\\');
        if (static_cast<unsigned char>(ch) < 0x20) continue;
        o.push_back(ch);
    }
    return o;
}


// Runs f (reps > 1: one warm-up, then reps timed runs), returns the median ms.
double timed(int reps, const std::function<void()>& f) {
    if (reps > 1) {
        f();
        sync();
    }
    std::vector<double> t;
    for (int i = 0; i < std::max(1, reps); ++i) {
        sync();
        const double a = now_ms();
        f();
        sync();
        t.push_back(now_ms() - a);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

struct Diff {
    double max_abs = 0, ref_max_abs = 0;
    bool finite = true;
    void add(const Tensor& ref, const Tensor& got) {
        const Tensor r = ref.contiguous().to(DType::F32), g = got.contiguous().to(DType::F32);
        if (r.shape() != g.shape()) {
            finite = false;
            std::fprintf(stderr, "shape mismatch: ref %s vs got %s\n", r.shape().str().c_str(), g.shape().str().c_str());
            return;
        }
        for (int64_t i = 0; i < r.numel(); ++i) {
            const double a = r.f32()[i], b = g.f32()[i];
            if (!std::isfinite(b)) finite = false;
            max_abs = std::max(max_abs, std::fabs(a - b));
            ref_max_abs = std::max(ref_max_abs, std::fabs(a));
        }
    }
};

// The fidelity bound of a result in weight dtype dt whose reference reaches ref_max_abs: fp32 1e-4 x max(1, |ref|),
// bf16 weights 2e-2 x |ref|; and the scale it is relative to.
double bound_scale(DType dt, double ref_max_abs) { return dt == DType::F32 ? std::max(1.0, ref_max_abs) : ref_max_abs; }
double bound(DType dt, double ref_max_abs) { return (dt == DType::F32 ? 1e-4 : 2e-2) * bound_scale(dt, ref_max_abs); }

void report(const std::string& name, DType dt, const Diff& d, double ms_cuda, double ms_cpu) {
    const bool f32 = dt == DType::F32;
    const double scale = bound_scale(dt, d.ref_max_abs);
    const double tol = bound(dt, d.ref_max_abs);
    const double rel = scale > 0 ? d.max_abs / scale : d.max_abs;
    const bool pass = d.finite && d.max_abs <= tol;
    if (f32) {
        g_worst_fp32_abs = std::max(g_worst_fp32_abs, d.max_abs);
        g_worst_fp32_rel = std::max(g_worst_fp32_rel, rel);
    } else {
        g_worst_bf16_rel = std::max(g_worst_bf16_rel, rel);
    }
    (pass ? g_passed : g_failed)++;
    std::printf("{\"case\": \"%s\", \"dtype\": \"%s\", \"max_abs\": %.4e, \"ref_max_abs\": %.4e, \"rel\": %.4e, \"tol\": %.4e, "
                "\"pass\": %s, \"ms_cuda\": %.2f, \"ms_cpu\": %.2f}\n",
                name.c_str(), f32 ? "f32" : "bf16", d.max_abs, d.ref_max_abs, rel, tol, pass ? "true" : "false", ms_cuda,
                ms_cpu);
    std::fflush(stdout);
}

// Runs fn once with every device op timed on its own (backend.h: OpScope) and prints one JSON row
// {"case", "dtype", "note", "ms_total", "ms_in_ops", "ops": [{"op", "calls", "ms", "share", "tflops"}...]}.
template <class Fn>
void print_profile(const std::string& name, const char* dtype, const char* what, Fn&& fn) {
    backend::set_op_profile(true);
    sync();
    const double s0 = now_ms();
    fn();
    sync();
    const double total = now_ms() - s0;
    backend::set_op_profile(false);
    const std::vector<backend::OpProfileRow> rows = backend::op_profile();
    double sum = 0;
    std::string js;
    for (const backend::OpProfileRow& r : rows) {
        sum += r.ms;
        char b[256];
        std::snprintf(b, sizeof b, "%s{\"op\": \"%s\", \"calls\": %lld, \"ms\": %.3f, \"share\": %.4f, \"tflops\": %.2f}",
                      js.empty() ? "" : ", ", r.name.c_str(), (long long)r.calls, r.ms, r.ms / total,
                      r.ms > 0 ? r.flop / 1e12 / (r.ms / 1e3) : 0.0);
        js += b;
    }
    std::printf("{\"case\": \"%s\", \"dtype\": \"%s\", \"note\": \"%s, every op synchronised before and after (slower "
                "than unprofiled)\", \"ms_total\": %.2f, \"ms_in_ops\": %.2f, \"ops\": [%s]}\n",
                name.c_str(), dtype, what, total, sum, js.c_str());
    std::fflush(stdout);
}

Tensor randn(runtime::TorchGenerator& g, const Shape& s, float scale = 1.f) {
    Tensor t = g.randn(s);
    if (scale != 1.f)
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= scale;
    return t;
}

// [F, C, h, w] -> [2, C, F, h, w] (engine: repeat_batch(to_bcfhw(x), 2))
Tensor cfg_batch(const Tensor& xf) {
    const Tensor v = runtime::frames_first_to_video(xf, 1);
    return ops::concat({v, v}, 0);
}

struct Inputs {
    Tensor x_t, noise, X, ctx, cond2;
    int64_t t = 0;
    runtime::DdimScheduler sch;
};

Inputs make_inputs(const t2v::St2vConfig& c, int64_t hw, int F, int Fc, uint64_t seed) {
    Inputs in;
    runtime::TorchGenerator g(seed);
    const int64_t D = c.unet.context_dim, T = c.text_tokens + (c.unet.apm ? c.image_tokens : 0);
    in.x_t = randn(g, {F, c.unet.in_channels, hw, hw});                  // frames first, as the engine holds it
    in.noise = randn(g, {F, c.unet.in_channels, hw, hw});
    in.ctx = randn(g, {2, T, D});                                        // [uncond, cond] text (+ APM) tokens
    Tensor cond = randn(g, {Fc, 3, hw * 8, hw * 8}, 0.5f);               // E_cond input, about [-1, 1]
    in.cond2 = ops::concat({cond, cond}, 0);                             // both CFG halves (engine: repeat_batch)
    in.X = cfg_batch(in.x_t);                                            // [2, 4, F, h, w]
    in.sch.set_timesteps(50);
    in.t = in.sch.timesteps()[25];
    return in;
}

// The stage-3 enhancer's denoiser (enhancer::DeviceVid2VidUNet) against the CPU Vid2VidUNet on a random enhancer of
// the golden's tiny layout (dim 32, widths x1 x2 x2, attention at the first two levels, head 32, the first temporal
// transformer 2 heads, context 1024): batch 2 with a timestep and a context per sample (the CFG halves' shapes; the
// pipeline calls it with one), F frames (--frames), latents 10 x 16 (H even at both Downsamples, W divisible by 4).
void check_enhancer(uint64_t seed) {
    const io::WeightStore W = enhancer::random_vid2vid_weights(32, {1, 2, 2}, 2, 32, 2, 1024, seed, DType::F32);
    const enhancer::Vid2VidUNet cpu(W);
    const int64_t B = 2, F = g_frames, H = 10, Wd = 16;
    runtime::TorchGenerator g(seed + 1);
    const Tensor x = randn(g, {B, 4, F, H, Wd}), y = randn(g, {B, 77, 1024});
    const std::vector<float> t = {599.f, 420.f};
    double a = now_ms();
    const Tensor v = cpu.forward(x, t, y);
    const double ms_cpu = now_ms() - a;
    std::fprintf(stderr, "enhancer: cpu reference (%s, %lldx%lld latents, %lld frames): %.0f ms\n", cpu.config().str().c_str(),
                 (long long)H, (long long)Wd, (long long)F, ms_cpu);
    const DeviceTensor dx = DeviceTensor::from_host(x), dy = DeviceTensor::from_host(y);
    const Tensor x1 = x.slice(0, 1, 2).contiguous(), y1 = y.slice(0, 1, 2).contiguous();  // the second sample alone
    const Tensor v1 = cpu.forward(x1, {t[1]}, y1);
    for (DType dt : g_check_dtypes) {
        const enhancer::DeviceVid2VidUNet dev(cpu, dt);
        DeviceTensor dv;
        const double ms = timed(g_reps, [&] { dv = dev.forward(dx, t, dy); });
        Diff d;
        d.add(v, dv.to_host());
        report("enhancer/forward", dt, d, ms, ms_cpu);
        // the pipeline's way: one sample, one timestep, host in / host out
        Diff d1;
        d1.add(v1, dev.forward_host(x1, {t[1]}, y1));
        report("enhancer/forward_host_b1", dt, d1, 0, 0);
        if (dt != DType::F32) continue;
        // the feed-forwards in token slices (ST2V_CUDA_FF_CHUNK_BYTES: ~100 tokens of the 8C-wide projection at a
        // time here, instead of 256 MB): the same result
        setenv("ST2V_CUDA_FF_CHUNK_BYTES", "100000", 1);
        Diff dc;
        dc.add(v, dev.forward(dx, t, dy).to_host());
        unsetenv("ST2V_CUDA_FF_CHUNK_BYTES");
        report("enhancer/forward_ff_slices", dt, dc, 0, 0);
    }
}

// Stage 3 end to end (enhancer::EnhanceStream) with the denoiser on the device (EnhancerModels::device_unet) against
// the CPU pipeline, on a tiny random enhancer and VAE: 6 frames of 8x8 fitted to 16x12, chunks of 4 with overlap 2
// (two chunks, randomized blending), 2 solver steps: 8 device forwards inside the official sampler loop. f32 weights.
void check_enhance_pipeline(uint64_t seed) {
    const io::WeightStore uw = enhancer::random_vid2vid_weights(32, {1, 2}, 1, 32, 1, 64, seed, DType::F32);
    const io::WeightStore vw = vae::make_random_vae({32, 64}, 1, seed + 1);
    const enhancer::Vid2VidUNet unet(uw);
    const vae::AutoencoderKL vae(vw, "vae.", 32);
    runtime::TorchGenerator g(seed + 2);
    const Tensor y = randn(g, {1, 5, 64}, 0.5f), yn = randn(g, {1, 5, 64}, 0.5f);
    Tensor frames = randn(g, {6, 3, 8, 8}, 0.5f);
    enhancer::EnhanceOptions o;
    o.width = 16;
    o.height = 12;
    o.steps = 2;
    o.chunk = 4;
    o.overlap = 2;
    o.seed = seed;
    auto run = [&](const enhancer::DeviceVid2VidUNet* dev) {
        std::vector<Tensor> out;
        enhancer::EnhanceStream st({&unet, &vae, dev}, y, yn, o, [&](const Tensor& f, int64_t) { out.push_back(f.contiguous()); });
        st.push(frames);
        st.finish();
        return ops::concat(out, 0);
    };
    double a = now_ms();
    const Tensor ref = run(nullptr);
    const double ms_cpu = now_ms() - a;
    // f32 weights only: what `enhance` runs on cuda. With bf16 weights the error is the bf16 bound per forward
    // (enhancer/forward above) but grows through CFG 7.5 and the sampler: 7.3e-2 of the output scale here (measured
    // 2026-11-28), above the 2e-2 bf16 bound, so the enhancer on cuda keeps f32 weights.
    const enhancer::DeviceVid2VidUNet dev(unet, DType::F32);
    a = now_ms();
    const Tensor got = run(&dev);
    Diff d;
    d.add(ref, got);
    if (dev.forwards() != 8) {  // 2 steps x 2 chunks x (cond, uncond): else the pipeline did not use the device
        std::fprintf(stderr, "enhancer/pipeline: %lld device forwards, expected 8\n", (long long)dev.forwards());
        d.finite = false;
    }
    report("enhancer/pipeline", DType::F32, d, now_ms() - a, ms_cpu);
    // and with the VAE on the device too (EnhancerModels::device_vae): 6 frames encoded, 6 decoded there
    const vae::DeviceAutoencoderKL dvae(vae);
    a = now_ms();
    std::vector<Tensor> out;
    enhancer::EnhanceStream st({&unet, &vae, &dev, &dvae}, y, yn, o, [&](const Tensor& f, int64_t) { out.push_back(f.contiguous()); });
    st.push(frames);
    st.finish();
    Diff dv;
    dv.add(ref, ops::concat(out, 0));
    if (dvae.calls() != 12) {
        std::fprintf(stderr, "enhancer/pipeline_device_vae: %lld device VAE calls, expected 12\n", (long long)dvae.calls());
        dv.finite = false;
    }
    report("enhancer/pipeline_device_vae", DType::F32, dv, now_ms() - a, ms_cpu);
}

// The VAE on the device (vae::DeviceAutoencoderKL) against the CPU AutoencoderKL, random weights with a 512-wide last
// level (the mid-block's single attention head is as wide as SD 2.1's, past the fused attention kernel's 256: the
// GEMM attention path) and 32 channels at full resolution: decode of 2 latents [4, 8, 8] on the device in one batch
// and through decode_host (one sample at a time, the pipelines' call), encode (quant_conv moments and the posterior)
// of 2 images [3, 16, 16]. f32 weights (the device VAE always widens to f32).
void check_vae(uint64_t seed) {
    const io::WeightStore vw = vae::make_random_vae({32, 512}, 1, seed);
    const vae::AutoencoderKL cpu(vw, "vae.", 32);
    runtime::TorchGenerator g(seed + 1);
    const Tensor z = randn(g, {2, 4, 8, 8}), x = randn(g, {2, 3, 16, 16}, 0.5f);
    double a = now_ms();
    const Tensor img = cpu.decode(z);
    const vae::Posterior post = cpu.encode(x);
    const double ms_cpu = now_ms() - a;
    const vae::DeviceAutoencoderKL dev(cpu);
    DeviceTensor dimg;
    const double ms = timed(g_reps, [&] { dimg = dev.decode(DeviceTensor::from_host(z)); });
    Diff d;
    d.add(img, dimg.to_host());
    report("vae/decode_b2", DType::F32, d, ms, ms_cpu);
    Diff dh;
    dh.add(img, dev.decode_host(z));
    report("vae/decode_host", DType::F32, dh, 0, 0);
    const vae::Posterior dp = dev.encode_host(x);
    Diff de;
    de.add(post.moments, dp.moments);
    de.add(post.std, dp.std);
    report("vae/encode_host", DType::F32, de, 0, 0);
}

// One config: CPU reference once (fp32), then the device in f32 and bf16.
void check_config(const char* name, const t2v::St2vConfig& c, int64_t hw, uint64_t seed) {
    const int F = g_frames, Fc = std::max(1, g_frames / 2);
    const float guidance = 7.5f, eta = 1.f;
    const io::WeightStore W = t2v::make_random_weights(c, seed, DType::F32);
    const Inputs in = make_inputs(c, hw, F, Fc, seed + 1);

    // ---- CPU reference: engine::Model::eps_extension + sample_extension_chunk's step ----
    const t2v::CamNet cam(W, "unet.");
    const t2v::UNet3D unet(W, c.base_prefix);
    double a = now_ms();
    const t2v::CamResiduals r = cam.forward(in.X, static_cast<float>(in.t), in.ctx, in.cond2, Fc);
    const double ms_cpu_cam = now_ms() - a;
    a = now_ms();
    const Tensor eps2 = unet.forward(in.X, static_cast<float>(in.t), in.ctx, &r);  // [2, 4, F, h, w]
    const double ms_cpu_unet = now_ms() - a;
    a = now_ms();
    const Tensor eps = runtime::video_to_frames_first(runtime::cfg_combine_batch(eps2, guidance));  // [F, 4, h, w]
    const Tensor x_prev = in.sch.step(eps, in.t, in.x_t, eta, &in.noise);
    const double ms_cpu_step = ms_cpu_cam + ms_cpu_unet + (now_ms() - a);
    std::fprintf(stderr, "%s: cpu reference (%lldx%lld latents, %d frames, %d cond frames): CAM %.0f ms, UNet %.0f ms\n", name,
                 (long long)hw, (long long)hw, F, Fc, ms_cpu_cam, ms_cpu_unet);

    const DeviceTensor dX = DeviceTensor::from_host(in.X), dctx = DeviceTensor::from_host(in.ctx),
                       dcond = DeviceTensor::from_host(in.cond2), dx = DeviceTensor::from_host(in.x_t),
                       dnoise = DeviceTensor::from_host(in.noise);
    for (DType dt : g_check_dtypes) {
        const t2v::DeviceCamNet dcam(W, "unet.", dt);
        const t2v::DeviceUNet3D dunet(W, c.base_prefix, dt);
        const std::string pre = std::string(name) + "/";
        // One device step gives all three outputs: the CAM residuals and the UNet eps it computed on the way.
        t2v::DeviceCamResiduals dr;
        DeviceTensor deps, dxp;
        double mc = 0, mu = 0;
        const double ms = timed(g_reps, [&] {
            mc = mu = 0;
            dxp = t2v::device_stage2_step(dunet, dcam, in.sch, dx, in.t, dctx, dcond, guidance, eta, &dnoise, &mc, &mu, &dr,
                                          &deps);
        });
        Diff d;
        if (dr.down.size() != r.down.size()) {
            std::fprintf(stderr, "%s: %zu CAM residuals on cuda, %zu on cpu\n", name, dr.down.size(), r.down.size());
            d.finite = false;
        } else {
            for (size_t i = 0; i < r.down.size(); ++i) d.add(r.down[i], dr.down[i].to_host());
            d.add(r.mid, dr.mid.to_host());
        }
        report(pre + "cam_residuals", dt, d, mc, ms_cpu_cam);
        Diff de;
        de.add(eps2, deps.to_host());
        report(pre + "unet_eps", dt, de, mc + mu, ms_cpu_cam + ms_cpu_unet);
        Diff ds;
        ds.add(x_prev, dxp.to_host());
        report(pre + "stage2_step", dt, ds, ms, ms_cpu_step);
        // The same step with the stem run per sample (t2v::detail::set_shared_stem(false)): against the CPU reference,
        // and against the shared stem's step above (the CFG pair shares its latents, so Encoder::stem ran once). On the
        // emulated backend its GEMMs sum in the same order whatever their shape, so the two steps must be the same bits;
        // on a GPU cuBLASLt may choose another algorithm for the per-sample stem's twice-as-tall GEMMs (another
        // summation order: seen on an H200, 2026-11-28), so there they must agree within the dtype's fidelity bound.
        {
            double mcs = 0;
            const double a0 = now_ms();
            DeviceTensor dxs;
            {
                const t2v::detail::SwitchScope scope(t2v::detail::set_shared_stem, false);
                dxs = t2v::device_stage2_step(dunet, dcam, in.sch, dx, in.t, dctx, dcond, guidance, eta, &dnoise, &mcs);
            }
            const double ms_s = now_ms() - a0;
            const Tensor hs = dxs.to_host(), hp = dxp.to_host();
            Diff du;
            du.add(x_prev, hs);
            const bool same_bits = hs.nbytes() == hp.nbytes() && std::memcmp(hs.raw(), hp.raw(), hs.nbytes()) == 0;
            Diff dv;
            dv.add(hp, hs);
            const bool agree = g_emulated ? same_bits : dv.finite && dv.max_abs <= bound(dt, dv.ref_max_abs);
            std::fprintf(stderr, "%s (%s): the step with the stem per sample vs the shared stem's: %s, max_abs %.3e\n", name,
                         dt == DType::F32 ? "f32" : "bf16", same_bits ? "same bits" : "different bits", dv.max_abs);
            if (!agree) {
                std::fprintf(stderr, "%s: the step with the stem per sample differs from the shared stem's beyond %s\n", name,
                             g_emulated ? "the bits (emulated backend)" : "the fidelity bound");
                du.finite = false;
            }
            report(pre + "stage2_step_stem_per_sample", dt, du, ms_s, ms_cpu_step);
        }
        // E_cond once per chunk (t2v::DeviceECondCache, as engine::Model uses it): the step with the cached features
        // against the same CPU reference; a second get() of the same frames is a hit (the same device tensor, no
        // upload, no encoder), changed frames a miss.
        {
            t2v::DeviceECondCache cache;
            const DeviceTensor* e1 = &cache.get(dcam, in.cond2);
            const DeviceTensor* e2 = &cache.get(dcam, in.cond2);
            bool ok = cache.misses() == 1 && cache.hits() == 1 && e1 == e2;
            double mcc = 0;
            const double a0 = now_ms();
            const DeviceTensor dxc = t2v::device_stage2_step(dunet, dcam, in.sch, dx, in.t, dctx, DeviceTensor(), guidance,
                                                             eta, &dnoise, &mcc, nullptr, nullptr, nullptr, e2);
            const double ms_c = now_ms() - a0;
            Tensor changed = in.cond2.clone();
            changed.f32()[0] += 0.5f;
            cache.get(dcam, changed);
            ok = ok && cache.misses() == 2 && cache.hits() == 1;
            Diff dc;
            dc.add(x_prev, dxc.to_host());
            if (!ok) {
                std::fprintf(stderr, "%s: DeviceECondCache: %lld hits, %lld misses, same tensor %d (want 1, 2, 1)\n",
                             name, (long long)cache.hits(), (long long)cache.misses(), e1 == e2 ? 1 : 0);
                dc.finite = false;
            }
            report(pre + "stage2_step_econd_cached", dt, dc, ms_c, ms_cpu_step);
        }
    }
}

double gib(double bytes) { return bytes / double(1ull << 30); }

// Bench weights (timing only): every weight of the config with make_random_weights' per-tensor mean and spread
// (alpha U(0.5, 1); matrices / convs spread 1/sqrt(fan_in); norm scales 1 +- 0.1; biases 0.05) but uniform values of
// that variance from a counter-based hash, filled in parallel and stored in bf16: the full size has 2.1 G values
// and make_random_weights draws them one by one (about 30 ns each here: over a minute).
io::WeightStore bench_weights(const t2v::St2vConfig& c, uint64_t seed) {
    const std::vector<io::Expected> ex = t2v::expected_weights(c);
    std::vector<Tensor> ts(ex.size());
    for (size_t i = 0; i < ex.size(); ++i) ts[i] = Tensor::empty(ex[i].shape, DType::BF16);
    auto ends_with = [](const std::string& s, const char* suf) {
        const size_t n = std::strlen(suf);
        return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
    };
    st2v::parallel_for(static_cast<int64_t>(ex.size()), [&](int64_t a, int64_t b, int) {
        for (int64_t i = a; i < b; ++i) {
            const io::Expected& e = ex[static_cast<size_t>(i)];
            const int64_t n = e.shape.numel();
            float mean = 0.f, sd = 0.05f, lo = -1.f, hi = 1.f;
            bool uniform01 = false;
            if (ends_with(e.name, ".alpha")) {
                uniform01 = true, lo = 0.5f, hi = 1.f;
            } else if (e.shape.ndim() >= 2) {
                sd = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n / e.shape[0])));
            } else if (ends_with(e.name, ".weight")) {
                mean = 1.f, sd = 0.1f;
            }
            uint16_t* d = static_cast<uint16_t*>(ts[static_cast<size_t>(i)].raw());
            uint64_t st = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ull + 1;
            for (int64_t k = 0; k < n; ++k) {
                st += 0x9E3779B97F4A7C15ull;  // splitmix64
                uint64_t z = st;
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                z ^= z >> 31;
                const float u = static_cast<float>(z >> 40) * (1.f / 16777216.f);  // [0, 1)
                const float v = uniform01 ? lo + (hi - lo) * u : mean + sd * 1.7320508f * (2.f * u - 1.f);
                d[k] = f32_to_bf16(v);
            }
        }
    });
    io::WeightStore w;
    for (size_t i = 0; i < ex.size(); ++i) w.add(ex[i].name, ts[i]);
    return w;
}

// The bench shape on the full-size config: ms per stage-2 step in f32 and bf16, peak device memory of bf16.
// tiny = true: the same code on the tiny config at --latent / --frames (a check of this code under emulation).
void bench(int reps, bool tiny) {
    const t2v::St2vConfig c = tiny ? t2v::St2vConfig::tiny() : t2v::St2vConfig::full();
    const int F = tiny ? g_frames : 16, Fc = tiny ? std::max(1, g_frames / 2) : 8;
    const int64_t hw = tiny ? g_latent : 32;
    double a = now_ms();
    // bf16 host weights (half the host memory); the f32 model widens them on upload: the same timing work.
    const io::WeightStore W = bench_weights(c, 2024);
    std::fprintf(stderr, "bench: %s random weights in %.1f s\n", tiny ? "tiny" : "full-size", (now_ms() - a) / 1000);
    const Inputs in = make_inputs(c, hw, F, Fc, 2025);
    const double flops = t2v::step_flops(c, 2, F, Fc, hw, hw, in.ctx.size(1));
    for (DType dt : g_bench_dtypes) {
        const char* dn = dt == DType::F32 ? "f32" : "bf16";
        try {
            backend::reset_device_bytes_peak();
            const size_t live0 = backend::device_bytes_live();
            const t2v::DeviceCamNet dcam(W, "unet.", dt);
            const t2v::DeviceUNet3D dunet(W, c.base_prefix, dt);
            const DeviceTensor dctx = DeviceTensor::from_host(in.ctx), dcond = DeviceTensor::from_host(in.cond2),
                               dx = DeviceTensor::from_host(in.x_t), dnoise = DeviceTensor::from_host(in.noise);
            sync();
            st2v_device_info info{};
            backend::check(backend::cuda().device_info(&info), "device_info");
            const double used_after_upload = static_cast<double>(info.total_mem - info.free_mem);
            auto med = [](std::vector<double> v) {
                std::sort(v.begin(), v.end());
                return v[v.size() / 2];
            };
            struct Run {
                std::vector<double> t, tc, tu;
                DeviceTensor out;
            };
            auto run = [&](Run& r) {
                for (int i = 0; i < reps + 1; ++i) {
                    double mc = 0, mu = 0;
                    sync();
                    const double s = now_ms();
                    r.out = t2v::device_stage2_step(dunet, dcam, in.sch, dx, in.t, dctx, dcond, 7.5f, 1.f, &dnoise, &mc, &mu);
                    sync();
                    if (i == 0) continue;  // warm-up
                    r.t.push_back(now_ms() - s);
                    r.tc.push_back(mc);
                    r.tu.push_back(mu);
                }
            };
            Run plain, cached;
            run(plain);  // every temporary freed for real (stream sync + cudaFree per buffer)
            const double peak = static_cast<double>(backend::device_bytes_peak() - live0);
            backend::set_device_buffer_cache(true);  // opt-in buffer cache (backend.h)
            run(cached);
            const double cache_bytes = static_cast<double>(backend::device_bytes_cached());
            const Tensor o = plain.out.to_host(), oc = cached.out.to_host();
            backend::set_device_buffer_cache(false);
            bool finite = true, same = o.shape() == oc.shape();
            for (int64_t i = 0; i < o.numel(); ++i) {
                finite = finite && std::isfinite(o.f32()[i]);
                same = same && o.f32()[i] == oc.f32()[i];
            }
            if (g_profile)  // one more step with every op timed on its own (backend.h: OpScope)
                print_profile(std::string("bench/stage2_profile") + (tiny ? "_tiny" : ""), dn, "one step", [&] {
                    (void)t2v::device_stage2_step(dunet, dcam, in.sch, dx, in.t, dctx, dcond, 7.5f, 1.f, &dnoise);
                });
            const double ms = med(plain.t), msc = med(cached.t);
            std::printf("{\"case\": \"bench/stage2_step%s\", \"dtype\": \"%s\", \"shape\": \"%s, B=2 (CFG), F=%d, Fc=%d, "
                        "%lldx%lld latents, %lld ctx tokens\", \"ms_median\": %.2f, \"ms_min\": %.2f, \"ms_cam\": %.2f, "
                        "\"ms_unet\": %.2f, \"ms_median_buffer_cache\": %.2f, \"ms_cam_buffer_cache\": %.2f, "
                        "\"ms_unet_buffer_cache\": %.2f, \"buffer_cache_gib\": %.3f, \"same_output_with_cache\": %s, "
                        "\"reps\": %d, \"tflop\": %.2f, \"tflops\": %.1f, \"tflops_buffer_cache\": %.1f, \"weight_gib\": %.3f, "
                        "\"peak_gib\": %.3f, \"peak_counter\": \"live DeviceBuffer bytes (weights + activations; "
                        "excl. cuBLASLt workspace)\", \"device_used_gib_after_upload\": %.3f, \"output_finite\": %s}\n",
                        tiny ? "_tiny" : "", dn, tiny ? "tiny" : "full", F, Fc, (long long)hw, (long long)hw,
                        (long long)in.ctx.size(1), ms, *std::min_element(plain.t.begin(), plain.t.end()), med(plain.tc), med(plain.tu), msc,
                        med(cached.tc), med(cached.tu), gib(cache_bytes), same ? "true" : "false", reps, flops / 1e12,
                        flops / 1e12 / (ms / 1e3), flops / 1e12 / (msc / 1e3),
                        gib(static_cast<double>(dcam.weight_bytes() + dunet.weight_bytes())), gib(peak),
                        gib(used_after_upload), finite ? "true" : "false");
            std::fflush(stdout);
        } catch (const Error& e) {
            backend::set_device_buffer_cache(false);
            std::printf("{\"case\": \"bench/stage2_step%s\", \"dtype\": \"%s\", \"error\": \"%s\", \"message\": \"%s\"}\n",
                        tiny ? "_tiny" : "", dn, code_name(e.code()), json_escape(e.what()).c_str());
            std::fflush(stdout);
        }
    }
}

// --bench-enh: one stage-3 solver step's denoiser work on the device, as EnhanceStream runs it per chunk: the
// enhancer's v-model for the prompt and the negative prompt (two batch-1 forwards) and their CFG combination, on the
// real MS-Vid2Vid-XL layout (dim 320, widths x1 x2 x4 x4, attention at three levels, head 64, the first temporal
// transformer 8 heads; 1.41 B parameters; random weights) at a 24-frame chunk of 90 x 160 latents (1280 x 720), f32
// and bf16 weights (`enhance` runs f32), median of --reps after a warm-up, with the peak device memory. --bench-enh-tiny:
// the same code on the tiny layout at 10 x 16 latents and --frames (a check of the tool; also under emulation).
void bench_enhancer(int reps, bool tiny) {
    double a = now_ms();
    const io::WeightStore W = tiny ? enhancer::random_vid2vid_weights(32, {1, 2, 2}, 2, 32, 2, 1024, 2026, DType::F32)
                                   : enhancer::random_vid2vid_weights(320, {1, 2, 4, 4}, 3, 64, 8, 1024, 2026, DType::BF16);
    const enhancer::Vid2VidUNet cpu(W);
    std::fprintf(stderr, "bench-enh: %s random enhancer (%s, %zu tensors) in %.1f s\n", tiny ? "tiny" : "full-size",
                 cpu.config().str().c_str(), cpu.bound_tensors(), (now_ms() - a) / 1000);
    const int64_t F = tiny ? g_frames : 24, H = tiny ? 10 : 90, Wd = tiny ? 16 : 160;
    runtime::TorchGenerator g(2027);
    const DeviceTensor dx = DeviceTensor::from_host(randn(g, {1, 4, F, H, Wd})),
                       dy = DeviceTensor::from_host(randn(g, {1, 77, 1024})), dyn = DeviceTensor::from_host(randn(g, {1, 77, 1024}));
    for (DType dt : g_bench_dtypes) {
        const char* dn = dt == DType::F32 ? "f32" : "bf16";
        try {
            backend::reset_device_bytes_peak();
            const size_t live0 = backend::device_bytes_live();
            const enhancer::DeviceVid2VidUNet dev(cpu, dt);
            const size_t weights = backend::device_bytes_live() - live0;
            // median / min of reps solver steps after a warm-up; the last step's output in *out
            auto time_steps = [&](DeviceTensor* out) {
                std::vector<double> t;
                for (int i = 0; i < reps + 1; ++i) {
                    sync();
                    const double s0 = now_ms();
                    const DeviceTensor vc = dev.forward(dx, {599.f}, dy), vu = dev.forward(dx, {599.f}, dyn);
                    *out = co::cfg_combine(vu, vc, 7.5f);
                    sync();
                    if (i > 0) t.push_back(now_ms() - s0);  // the first is the warm-up
                }
                std::sort(t.begin(), t.end());
                return t;
            };
            DeviceTensor out;
            const std::vector<double> t = time_steps(&out);
            const double peak = static_cast<double>(backend::device_bytes_peak() - live0);
            if (g_profile)  // the same solver step's denoiser work once more, every op timed on its own
                print_profile(std::string("bench/enh_profile") + (tiny ? "_tiny" : ""), dn, "one solver step (2 forwards + CFG)",
                              [&] { (void)co::cfg_combine(dev.forward(dx, {599.f}, dyn), dev.forward(dx, {599.f}, dy), 7.5f); });
            const Tensor o = out.to_host();
            bool finite = true;
            for (int64_t i = 0; i < o.numel(); ++i) finite = finite && std::isfinite(o.f32()[i]);
            std::printf("{\"case\": \"bench/enh_step%s\", \"dtype\": \"%s\", \"shape\": \"%s, 2 forwards (CFG) of "
                        "[1, 4, %lld, %lld, %lld]\", \"ms_median\": %.2f, \"ms_min\": %.2f, \"reps\": %d, \"weight_gib\": %.3f, "
                        "\"peak_gib\": %.3f, \"peak_counter\": \"live DeviceBuffer bytes (weights + activations; excl. cuBLASLt "
                        "workspace)\", \"output_finite\": %s}\n",
                        tiny ? "_tiny" : "", dn, cpu.config().str().c_str(), (long long)F, (long long)H, (long long)Wd,
                        t[t.size() / 2], t.front(), reps, gib(static_cast<double>(weights)), gib(peak),
                        finite ? "true" : "false");
            std::fflush(stdout);
            if (g_attn_bf16_ab && dt == DType::BF16) {
                // the same step with the attention GEMMs on bf16 operands (the library reads the switch at every call),
                // and how far its output is from the default's, relative to the default's scale
                DeviceTensor out16;
                std::vector<double> t16;
                {
                    const cuda_checks::EnvScope lowp("ST2V_CUDA_ATTN_BF16", "1");
                    t16 = time_steps(&out16);
                }
                Diff d;
                d.add(o, out16.to_host());
                std::printf("{\"case\": \"bench/enh_step_attn_bf16%s\", \"dtype\": \"bf16\", \"ms_median\": %.2f, "
                            "\"ms_min\": %.2f, \"reps\": %d, \"vs_default_max_abs\": %.4e, \"default_max_abs\": %.4e, "
                            "\"vs_default_rel\": %.4e, \"output_finite\": %s}\n",
                            tiny ? "_tiny" : "", t16[t16.size() / 2], t16.front(), reps, d.max_abs, d.ref_max_abs,
                            d.ref_max_abs > 0 ? d.max_abs / d.ref_max_abs : d.max_abs, d.finite ? "true" : "false");
                std::fflush(stdout);
            }
        } catch (const Error& e) {
            std::printf("{\"case\": \"bench/enh_step%s\", \"dtype\": \"%s\", \"error\": \"%s\", \"message\": \"%s\"}\n",
                        tiny ? "_tiny" : "", dn, code_name(e.code()), json_escape(e.what()).c_str());
            std::fflush(stdout);
        }
    }
}

// "f32" or "bf16": *out = that weight dtype alone; anything else leaves it and is false.
bool parse_dtype(const char* v, std::vector<DType>* out) {
    if (std::strcmp(v, "f32") != 0 && std::strcmp(v, "bf16") != 0) return false;
    *out = {std::strcmp(v, "f32") ? DType::BF16 : DType::F32};
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, do_bench = false, bench_tiny = false, bench_enh = false, bench_enh_tiny = false;
    std::string only;  // --config tiny|mid: that config only
    int reps = -1;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick")) quick = true;
        else if (!std::strcmp(argv[i], "--bench")) do_bench = true;
        else if (!std::strcmp(argv[i], "--bench-tiny")) bench_tiny = true;
        else if (!std::strcmp(argv[i], "--bench-enh")) bench_enh = true;
        else if (!std::strcmp(argv[i], "--bench-enh-tiny")) bench_enh_tiny = true;
        else if (!std::strcmp(argv[i], "--profile")) g_profile = true;
        else if (!std::strcmp(argv[i], "--bench-dtype") && i + 1 < argc && parse_dtype(argv[i + 1], &g_bench_dtypes)) ++i;
        else if (!std::strcmp(argv[i], "--dtype") && i + 1 < argc && parse_dtype(argv[i + 1], &g_check_dtypes)) ++i;
        else if (!std::strcmp(argv[i], "--attn-bf16-ab")) g_attn_bf16_ab = true;
        else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--frames") && i + 1 < argc) g_frames = std::max(2, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--latent") && i + 1 < argc) g_latent = std::max(2, std::atoi(argv[++i]));
        else if (!std::strcmp(argv[i], "--config") && i + 1 < argc) only = argv[++i];
        else {
            std::fprintf(stderr, "usage: cuda_model_check [--quick] [--bench] [--bench-tiny] [--bench-enh] [--bench-enh-tiny] [--profile] [--bench-dtype f32|bf16] [--dtype f32|bf16] [--attn-bf16-ab] [--reps N] [--frames F] [--latent N] [--config tiny|mid|enhancer]\n");
            return 1;
        }
    }
    const backend::CudaStatus st = backend::cuda_status();
    if (!st.available) {
        std::printf("{\"summary\": true, \"available\": false, \"error\": \"ERR_NO_CUDA\", \"message\": \"%s\"}\n",
                    json_escape(st.message).c_str());
        return 2;
    }
    const bool emulated = std::strncmp(st.info.build, "emulated", 8) == 0;
    g_emulated = emulated;
    std::printf("{\"device\": \"%s\", \"build\": \"%s\", \"emulated\": %s}\n", json_escape(st.info.name).c_str(),
                json_escape(st.info.build).c_str(), emulated ? "true" : "false");
    std::fflush(stdout);
    g_reps = reps > 0 ? reps : 1;
    try {
        if (only.empty() || only == "tiny") check_config("tiny", t2v::St2vConfig::tiny(), g_latent, 11);
        if ((!quick && only.empty()) || only == "mid") check_config("mid", t2v::St2vConfig::mid(), 2 * g_latent, 12);
        if (only.empty() || only == "enhancer") {
            check_enhancer(13);
            check_enhance_pipeline(14);
            check_vae(15);
        }
    } catch (const Error& e) {
        std::printf("{\"case\": \"error\", \"error\": \"%s\", \"message\": \"%s\"}\n", code_name(e.code()),
                    json_escape(e.what()).c_str());
        ++g_failed;
    }
    if (do_bench) {
        if (emulated) std::fprintf(stderr, "--bench skipped: the backend is the CPU emulation (no timing meaning)\n");
        else bench(reps > 0 ? reps : 5, false);
    }
    if (bench_tiny) bench(reps > 0 ? reps : 1, true);
    if (bench_enh) {
        if (emulated) std::fprintf(stderr, "--bench-enh skipped: the backend is the CPU emulation (no timing meaning)\n");
        else bench_enhancer(reps > 0 ? reps : 3, false);
    }
    if (bench_enh_tiny) bench_enhancer(reps > 0 ? reps : 1, true);
    std::printf("{\"summary\": true, \"available\": true, \"passed\": %d, \"failed\": %d, \"worst_fp32_max_abs\": %.4e, "
                "\"worst_fp32_rel\": %.4e, \"worst_bf16_rel\": %.4e}\n",
                g_passed, g_failed, g_worst_fp32_abs, g_worst_fp32_rel, g_worst_bf16_rel);
    return g_failed == 0 ? 0 : 1;
}
