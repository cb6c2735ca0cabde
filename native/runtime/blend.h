// Randomized blending (stage 3, architecture.md §7): merge per-chunk x0 predictions of a video into the
// whole-video x0, one fused pass (each output element written once; index math in blend_math.h).
//
// Layout: channels-first video, [B, Ch, L, H, W] (as the enhancer holds it), chunks [B, Ch, C, H, W].
// Chunk k starts at frame k·(C − O); seam split indices r_k ∈ [0, O] (the official draws r ∈ {0..O−1} with
// Python's random.randint(0, O−1), see PyRandom / draw_blend_offsets), r_0 = 0.
//
// Streaming (BlendStream): the merge itself streams exactly: chunks arrive left to right; once chunk k+1 and
// its split index are known, every frame before start_{k+1} + r_{k+1} is final and is emitted, so only the
// previous chunk is held (memory: one chunk, whatever the video length); the emitted frames are identical
// to the whole-video kernel (tested).
// Trade-off for a windowed enhancer: the blend runs on x0 inside every solver step, so a window of chunks
// that runs the whole 30-step solve by itself equals the whole-video algorithm only when it covers the video
// (the edge chunks of a window would need their neighbours' x0 of the same step, and the official draws the
// split indices of a step in global seam order). Shorter windows bound memory by the window, at the price
// that seams between windows are not re-randomised per step (they are blended on the window results).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "runtime/rng.h"

namespace st2v::runtime {

struct ChunkPlan {
    int64_t chunk = 24, overlap = 8;
    int64_t n_chunks = 0;  // (L − O) // (C − O)
    int64_t length = 0;    // trimmed length n_chunks·(C − O) + O
    int64_t start(int64_t k) const { return k * (chunk - overlap); }
};

// model_func.py:151 trimming. Throws ERR_INVALID_ARG when C <= O, O < 0 or L < C.
ChunkPlan plan_chunks(int64_t length, int64_t chunk = 24, int64_t overlap = 8);

// Split indices of one solver step: n_chunks − 1 draws random.randint(0, O−1), seams left to right.
std::vector<int64_t> draw_blend_offsets(PyRandom& rng, const ChunkPlan& plan);

// Raw kernel. chunks[k] -> contiguous [B, Ch, C, H, W] f32; out -> contiguous [B, Ch, L, H, W], L = plan.length;
// seam_r has n_chunks − 1 entries (r of chunks 1..n−1). Runs on the current thread pool.
void randomized_blend(const float* const* chunks, const int64_t* seam_r, const ChunkPlan& plan, int64_t B,
                      int64_t Ch, int64_t HW, float* out);

// Tensor form: chunk_x0 is either n tensors [B, Ch, C, H, W] or one stacked [n, B, Ch, C, H, W].
Tensor randomized_blend(const std::vector<Tensor>& chunk_x0, const std::vector<int64_t>& seam_r, int64_t chunk = 24,
                        int64_t overlap = 8);
Tensor randomized_blend(const Tensor& stacked, const std::vector<int64_t>& seam_r, int64_t chunk = 24,
                        int64_t overlap = 8);

// Streaming write of one chunk straight into the whole-video output: chunk k (contiguous [B, Ch, C, H, W])
// writes the frames it owns, [start_k + r_k, start_{k+1} + r_{k+1}) (to start_k + C for the last chunk).
// r_k is chunk k's split index (ignored for k = 0), r_next the next seam's (ignored for the last chunk).
// Calling it for k = 0..n−1 gives exactly randomized_blend() while holding one chunk at a time.
void blend_write_chunk(const float* chunk_x0, int64_t k, int64_t r_k, int64_t r_next, const ChunkPlan& plan, int64_t B,
                       int64_t Ch, int64_t HW, float* out);

// Element-wise reference (blend_math::source_index per element, no threading) used by tests.
void randomized_blend_reference(const float* const* chunks, const int64_t* seam_r, const ChunkPlan& plan, int64_t B,
                                int64_t Ch, int64_t HW, float* out);

// Streaming merge: push chunks left to right with their split index; each push returns the frames that
// became final, as [B, Ch, n, H, W] (n may be 0 for the first chunk); finish() returns the rest.
class BlendStream {
  public:
    BlendStream(int64_t chunk = 24, int64_t overlap = 8);
    // r is ignored for the first chunk. Returns frames [emitted_, start_k + r) of the merged video.
    Tensor push(const Tensor& chunk_x0, int64_t r);
    Tensor finish();
    int64_t emitted() const { return emitted_; }

  private:
    int64_t C_, O_, k_ = 0, emitted_ = 0;
    Tensor prev_;  // previous chunk [B, Ch, C, H, W]
    int64_t prev_start_ = 0;
};

}  // namespace st2v::runtime
