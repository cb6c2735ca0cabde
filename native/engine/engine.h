// st2v::engine::Engine — the object behind the JS `NativeEngine`: owns a compute pool, an activation
// arena, the loaded model and the generation loop. Plain C++ (no N-API); native/napi/engine_binding.cpp
// wraps it.
//
// Threading: load() and generate() run on a libuv worker thread (AsyncWorker); the compute runs on the
// engine's own ThreadPool. One operation at a time: a second concurrent call fails with ERR_BUSY
// (the TypeScript Engine queues calls, so users normally never see it). cancel() may be called from
// any thread; the generation loop checks it between denoising steps and between chunks and then
// throws ERR_CANCELLED. Memory: the arena holds the activations of one chunk; nothing grows with
// the number of chunks (only the previous chunk's frames and the anchor embedding are kept).
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "ops/ops.h"
#include "runtime/schedules.h"

namespace st2v::engine {

struct LoadOptions {
    std::string dtype = "auto";  // weights kept as stored ("auto"), or converted to f32/f16/bf16
    bool strict = true;
    // "cpu", or "cuda": the stage-1 and stage-2 denoisers (UNet3D, CAM) run on the CUDA backend (weights resident
    // on the GPU in `cuda_dtype`), and so does the VAE decode (f32); text/image encoders and samplers stay on the CPU. ERR_NO_CUDA without
    // a usable GPU / CUDA library.
    std::string backend = "cpu";
    std::string cuda_dtype = "f32";  // "f32" (parity with the CPU) or "bf16"
};

struct ModelInfo {
    std::string name;           // "default-tiny" or the folder name
    std::string description;
    bool has_base = false;      // a stage-1 model (plain UNet3D) is available
    bool has_extension = false; // CAM + APM extension model
    bool untrained = false;     // the embedded default: random weights
    bool stage1_model = false;  // stage 1 runs a separate ModelScope UNet3D (base/unet.safetensors), not the extension UNet
    int latent_channels = 4;
    int height = 0, width = 0;  // pixel size of generated frames
    int chunk_frames = 16, cond_frames = 8;
    size_t weight_bytes = 0;
    std::vector<std::string> components;
};

struct GenerateOptions {
    std::vector<int32_t> prompt_ids;    // tokenised prompt (77 ids); empty = tokenise `prompt` with the model's tokenizer
    std::vector<int32_t> negative_ids;
    std::vector<int32_t> empty_ids;     // ids of "" (the separate stage-1 model's uncond); empty = the model's tokenizer
    std::string prompt, negative;
    int frames = 24;                    // exactly this many frames are delivered (16 + 8 (n - 1) made, last cut)
    uint64_t seed = 33;
    int steps = 50;                     // stage-2 DDIM steps
    float guidance = 7.5f;              // stage-2 CFG
    float eta = 1.0f;
    int base_steps = 50;                // stage-1 DPM-Solver++ steps
    float base_guidance = 9.0f;
};

struct Chunk {
    std::vector<uint8_t> rgb;  // frames x H x W x 3
    int index = 0;             // first frame index in the video
    int frames = 0, height = 0, width = 0;
    double ms_unet = 0, ms_cam = 0, ms_text = 0, ms_image = 0, ms_decode = 0, ms_total = 0;
};

struct Progress {
    const char* stage = "";  // "text", "stage1", "extend", "decode"
    int chunk = 0, chunks = 0, step = 0, steps = 0;
};

struct Summary {
    int frames = 0, chunks = 0;
    double ms_total = 0, ms_text = 0, ms_image = 0, ms_unet = 0, ms_cam = 0, ms_decode = 0;  // summed over chunks
    size_t peak_arena_bytes = 0;
    double ms_stage1 = 0;                             // stage-1 denoiser time (chunk 0; also counted in ms_unet)
    std::vector<int32_t> prompt_ids, negative_ids;  // the ids the text encoder saw (given, or the model's tokenizer)
};

class Model;  // defined in model.h (the loaded networks)

// One stage-2 extension chunk (architecture.md §1.2): DDIM (leading spacing, `eta` with its variance noise) with
// classifier-free guidance in the batch order [uncond, cond] over Model::eps_extension (CAM + UNet + APM).
//   x_T    [F, 4, h, w] (frames folded into the batch, as the official draws it per frame)
//   ctx    [2, 77 + 16, D] text + image tokens, [uncond, cond];  cond2 [2 * Fc, 3, H, W] CAM frames in [-1, 1]
//   noise  step i's variance noise [F, 4, h, w] (a torch generator in the official order, or recorded)
//   before_step(i, t) runs before each model call (progress, cancellation); on_step sees x after each step.
// Returns the final latent [F, 4, h, w]. The engine's generate() and `st2v verify` (group "ddim") both run this.
struct ExtensionSampling {
    int steps = 50;
    float eta = 1.0f;
    float guidance = 7.5f;
};
Tensor sample_extension_chunk(Model& m, const Tensor& x_T, const Tensor& ctx, const Tensor& cond2,
                              const ExtensionSampling& s, const runtime::NoiseFn& noise,
                              const std::function<void(int step, int64_t t)>& before_step = {},
                              const runtime::StepCallback& on_step = {}, double* ms_cam = nullptr,
                              double* ms_unet = nullptr);

class Engine {
  public:
    explicit Engine(int threads);
    ~Engine();

    ModelInfo load(const std::string& model_dir, const LoadOptions& opts);  // "" = embedded default
    Summary generate(const GenerateOptions& opts, const std::function<void(Chunk&&)>& on_chunk,
                     const std::function<void(const Progress&)>& on_progress);
    void cancel() { cancel_.store(true); }
    void release();  // frees the model and cached activation memory

    // Guards one operation at a time (ERR_BUSY for a second one).
    class BusyGuard {
      public:
        explicit BusyGuard(Engine& e);
        ~BusyGuard();
      private:
        Engine& e_;
    };

    size_t arena_peak() const { return arena_.peak_bytes(); }
    size_t arena_cached() const { return arena_.bytes_cached(); }

  private:
    ThreadPool pool_;
    Arena arena_;
    std::atomic<bool> cancel_{false};
    std::atomic<bool> busy_{false};
    std::mutex op_mu_;
    std::unique_ptr<Model> model_;
};

}  // namespace st2v::engine
