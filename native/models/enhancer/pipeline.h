// Stage 3 end to end: the MS-Vid2Vid-XL enhancer as StreamingT2V runs it (architecture.md §1.3, §7;
// enhancer.md §4, §5), whole-video or windowed (streaming).
//
// Per video:
//   1. pre-processing of every frame (official: PIL resize_to_fit(1280×720) then black pad_to_fit):
//      resize keeping the aspect ratio to fit (width, height) with Pillow's bicubic filter (a = −0.5,
//      support widened by the scale when shrinking, coefficients normalised per output pixel, horizontal pass
//      then vertical), then centred black padding (value −1 in [−1, 1]) to width × height. 256×256 → 720×720
//      → 1280×720 (280 px left/right) for the defaults. Differences from the official, documented: we resize
//      float frames (no uint8 rounding, output clamped to [−1, 1]) and skip the two lossy mp4 round trips; an
//      odd padding remainder goes to the right/bottom (the official would come out one pixel short).
//   2. frame trimming: only the chunks of plan_chunks(L, chunk, overlap) are enhanced: L' = n(C−O)+O frames
//      (model_func.py:151); the frames after L' are dropped (never encoded), as the official does.
//   3. latents: per frame z = scale · (mean + std · n_f), n_f ~ N(0, I) [1, 4, h, w] drawn per frame in frame
//      order (LDM DiagonalGaussian.sample), video [1, 4, L', h, w]; x_T = α_t0·z + σ_t0·ε (t0 = 599),
//      ε ~ N(0, I) [1, 4, L', h, w] drawn after all frames.
//   4. sde_dpmpp_2m_sample over the VE sigmas (30 trailing steps from t0) with enhancer_model_fn (chunks,
//      CFG 7.5, guide-rescale 0.2, v → x0, randomized blending with PyRandom split indices) and z_i ~ N(0, I)
//      [1, 4, L', h, w] per step.
//   5. decode per frame z / scale (tiled when the latent frame is larger than one tile) → [L', 3, H, W].
// All N(0, I) draws come from one TorchGenerator(seed) in the order above, the split indices from
// PyRandom(seed) (the official seeds both from cfg.seed); every draw can be replaced (EnhanceNoise) for tests.
//
// Windowed mode (EnhanceOptions::window = W chunks > 0): frames are pushed as they arrive (e.g. per stage-2
// chunk); as soon as W chunks' frames (W(C−O)+O) are present the window runs the whole solve (steps 3–5)
// on them alone and its frames are emitted; the next window starts O frames before the end of this one
// (consecutive windows share one chunk overlap) and the two window results are merged in latent space at a
// split r ~ randint(0, O−1) drawn from the same PyRandom (frames [s, s+r) of the overlap from the left window,
// the rest from the right), then decoded and emitted. Memory is bounded by one window (raw frames, latents,
// solver state and the O-frame tail of the previous result), not by the video length.
// Exactness: with W ≥ the number of chunks of the video, the whole video is one window and the computation —
// every draw in order — is the whole-video algorithm (enhance_video is exactly this with W = 0 = unbounded).
// Trade-off for W < chunks (blend.h has the analysis): inside a window everything is as the official; across
// windows the seam is randomised once on the final latents instead of per solver step, each window's
// temporal context ends at its border, and its noise draws differ from the whole-video ones.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip/clip.h"
#include "models/enhancer/vid2vid_unet.h"
#include "models/vae/vae.h"
#include "runtime/enhancer_sampling.h"

namespace st2v::vae {
class DeviceAutoencoderKL;
}
namespace st2v::enhancer {
class DeviceVid2VidUNet;

struct EnhanceOptions {
    int64_t width = 1280, height = 720;  // output frame size (fit + pad target); must give a valid latent grid
    int steps = 30;
    int t_start = 599;                   // SDEdit noise level (total_noise_levels − 1)
    float guide_scale = 7.5f, guide_rescale = 0.2f;
    int64_t chunk = 24, overlap = 8;
    uint64_t seed = 0;                   // TorchGenerator(seed) for N(0, I) draws, PyRandom(seed) for split indices
    int window = 0;                      // chunks per window; 0 = the whole video at once
    int64_t vae_tile = 64;               // latent tile edge for the VAE (tiled only when a frame is larger; 0 = never)
};

// Replacement N(0, I) sources (tests). Unset members draw from the generator. `window` is the window index.
struct EnhanceNoise {
    std::function<Tensor(int window, int64_t frame, const Shape& shape)> vae_sample;  // per frame [1, 4, h, w]
    std::function<Tensor(int window, const Shape& shape)> sdedit;                     // [1, 4, Lw, h, w]
    std::function<Tensor(int window, int step, const Shape& shape)> solver;           // [1, 4, Lw, h, w]
};

struct EnhanceProgress {
    const char* stage = "";  // "encode", "denoise", "decode"
    int window = 0;          // window index (0 for the whole-video mode)
    int step = 0, steps = 0; // solver step (1-based once a step is done; 0 while encoding/decoding)
    int chunk = 0, chunks = 0;  // chunk of the current step (1-based after it is done) / chunks of the window
    int64_t frames_done = 0; // frames emitted so far
};
using EnhanceProgressFn = std::function<void(const EnhanceProgress&)>;
// Receives enhanced frames [n, 3, H, W] in about [−1, 1] (not clamped), in order, first = video index.
using FramesSink = std::function<void(const Tensor& frames, int64_t first)>;

struct EnhancerModels {
    const Vid2VidUNet* unet = nullptr;            // required (its config; the CPU denoiser)
    const vae::AutoencoderKL* vae = nullptr;
    const DeviceVid2VidUNet* device_unet = nullptr;  // set: the denoiser's forwards run on the CUDA backend instead
    const vae::DeviceAutoencoderKL* device_vae = nullptr;  // set: the frames' encode / decode run there (untiled)
};

// Text conditioning: OpenCLIP penultimate embedding (the canonical text encoder has the first L−1 blocks +
// final LayerNorm) of 77 ids → [1, 77, D]. Ids come from the TypeScript tokenizer (open_clip padding, 0).
Tensor encode_prompt(const enc::ClipTextModel& text, const std::vector<int32_t>& ids);

// Official pre-processing of frames [N, 3, h, w] in [−1, 1] to [N, 3, height, width] (see above).
Tensor preprocess_frames(const Tensor& frames, int64_t width, int64_t height);
// Pillow-style bicubic resize of [N, C, h, w] f32 to [N, C, out_h, out_w] (no clamping).
Tensor pil_resize_bicubic(const Tensor& x, int64_t out_h, int64_t out_w);

// Throws ERR_INVALID_ARG when width × height cannot go through the VAE and the enhancer UNet geometry.
void check_enhance_geometry(const EnhancerModels& m, int64_t width, int64_t height);

class EnhanceStream {
  public:
    // y / y_neg: [1, 77, D] text context of the prompt ("<prompt>, ") and the negative prompt.
    // cancel (optional) is polled between chunks, frames and windows: ERR_CANCELLED.
    EnhanceStream(const EnhancerModels& m, Tensor y, Tensor y_neg, const EnhanceOptions& o, FramesSink sink,
                  EnhanceProgressFn progress = {}, const std::atomic<bool>* cancel = nullptr, EnhanceNoise noise = {});
    // Frames [n, 3, h, w] in [−1, 1] (any size, the same for every push). Runs every window that is complete.
    void push(const Tensor& frames);
    // Runs the rest (the last, possibly shorter window; frames beyond the chunk tiling are dropped).
    // Returns the number of frames emitted in total. ERR_INVALID_ARG if fewer than `chunk` frames were pushed.
    int64_t finish();
    int64_t frames_pushed() const { return pushed_; }
    int64_t frames_emitted() const { return emitted_; }
    int windows_run() const { return window_idx_; }

  private:
    void run_window(int64_t n_frames, bool last);
    Tensor encode_window(int64_t n_frames);  // enc_ + newly encoded pending_ frames -> [1, 4, n, h, w]
    void emit(const Tensor& latents, int64_t from, int64_t to);  // decode latent frames [from, to) and sink them
    void check_cancel() const;
    void report(const char* stage, int step, int steps, int chunk, int chunks);

    EnhancerModels m_;
    Tensor y_, yn_;
    EnhanceOptions o_;
    FramesSink sink_;
    EnhanceProgressFn progress_;
    const std::atomic<bool>* cancel_;
    EnhanceNoise noise_;
    runtime::EnhancerSchedule sch_;
    runtime::TorchGenerator gen_;
    runtime::PyRandom rng_;
    std::vector<Tensor> pending_;   // raw frames [1, 3, h, w] pushed and not yet encoded
    std::vector<Tensor> enc_;       // encoded latents [1, 4, h, w] of the overlap shared with the next window
    Tensor tail_;                   // previous window's last O result latents [1, 4, O, h, w]
    int64_t pushed_ = 0, emitted_ = 0, consumed_ = 0;  // consumed_: video index of pending_[0]
    int window_idx_ = 0;
    bool finished_ = false;
};

// The whole-video algorithm: frames [F, 3, h, w] in [−1, 1] → enhanced [L', 3, H, W], L' = plan_chunks(F).length.
Tensor enhance_video(const EnhancerModels& m, const Tensor& frames, const Tensor& y, const Tensor& y_neg,
                     const EnhanceOptions& o, EnhanceProgressFn progress = {}, const std::atomic<bool>* cancel = nullptr,
                     EnhanceNoise noise = {});

}  // namespace st2v::enhancer
