#include "runtime/blend.h"

#include <cstring>

#include "core/threadpool.h"
#include "runtime/blend_math.h"

namespace st2v::runtime {

ChunkPlan plan_chunks(int64_t length, int64_t chunk, int64_t overlap) {
    ST2V_CHECK_ARG(overlap >= 0, "blend: overlap must be >= 0, got %lld", static_cast<long long>(overlap));
    ST2V_CHECK_ARG(chunk > overlap, "blend: chunk (%lld) must be larger than overlap (%lld)",
                   static_cast<long long>(chunk), static_cast<long long>(overlap));
    ST2V_CHECK_ARG(length >= chunk, "blend: video length %lld is shorter than one chunk (%lld)",
                   static_cast<long long>(length), static_cast<long long>(chunk));
    ChunkPlan p;
    p.chunk = chunk;
    p.overlap = overlap;
    p.n_chunks = (length - overlap) / (chunk - overlap);
    p.length = p.n_chunks * (chunk - overlap) + overlap;
    return p;
}

std::vector<int64_t> draw_blend_offsets(PyRandom& rng, const ChunkPlan& plan) {
    ST2V_CHECK_ARG(plan.overlap >= 1, "blend: randomized split indices need overlap >= 1");
    std::vector<int64_t> r;
    for (int64_t k = 1; k < plan.n_chunks; ++k) r.push_back(rng.randint(0, plan.overlap - 1));
    return r;
}

namespace {

void check_r(const int64_t* seam_r, const ChunkPlan& plan, std::vector<int64_t>* r_full) {
    r_full->assign(static_cast<size_t>(plan.n_chunks), 0);
    for (int64_t k = 1; k < plan.n_chunks; ++k) {
        const int64_t r = seam_r[k - 1];
        ST2V_CHECK_ARG(r >= 0 && r <= plan.overlap, "blend: split index %lld of seam %lld outside [0, %lld]",
                       static_cast<long long>(r), static_cast<long long>(k - 1), static_cast<long long>(plan.overlap));
        (*r_full)[static_cast<size_t>(k)] = r;
    }
}

}  // namespace

void randomized_blend(const float* const* chunks, const int64_t* seam_r, const ChunkPlan& plan, int64_t B,
                      int64_t Ch, int64_t HW, float* out) {
    std::vector<int64_t> r;
    check_r(seam_r, plan, &r);
    const int64_t L = plan.length, C = plan.chunk, stride = plan.chunk - plan.overlap;
    // Runs of consecutive output frames with the same owner: contiguous in source and destination.
    struct Run { int64_t f0, n, k; };
    std::vector<Run> runs;
    for (int64_t f = 0; f < L; ++f) {
        const int64_t k = blend_math::owner_chunk(f, plan.n_chunks, C, plan.overlap, r.data());
        ST2V_CHECK(k >= 0, Code::kInternal, "blend: frame %lld has no owner", static_cast<long long>(f));
        if (!runs.empty() && runs.back().k == k) ++runs.back().n;
        else runs.push_back({f, 1, k});
    }
    const int64_t n_runs = static_cast<int64_t>(runs.size());
    const int64_t jobs = B * Ch * n_runs;
    parallel_for(jobs, [&](int64_t lo, int64_t hi, int) {
        for (int64_t j = lo; j < hi; ++j) {
            const int64_t bc = j / n_runs;
            const Run& run = runs[static_cast<size_t>(j % n_runs)];
            const float* src = chunks[run.k] + (bc * C + (run.f0 - run.k * stride)) * HW;
            float* dst = out + (bc * L + run.f0) * HW;
            std::memcpy(dst, src, static_cast<size_t>(run.n * HW) * sizeof(float));
        }
    });
}

void blend_write_chunk(const float* chunk_x0, int64_t k, int64_t r_k, int64_t r_next, const ChunkPlan& plan, int64_t B,
                       int64_t Ch, int64_t HW, float* out) {
    ST2V_CHECK_ARG(k >= 0 && k < plan.n_chunks, "blend: chunk index %lld outside [0, %lld)", static_cast<long long>(k),
                   static_cast<long long>(plan.n_chunks));
    const int64_t C = plan.chunk, stride = plan.chunk - plan.overlap, L = plan.length;
    const int64_t rk = k == 0 ? 0 : r_k;
    const bool last = k == plan.n_chunks - 1;
    ST2V_CHECK_ARG(rk >= 0 && rk <= plan.overlap, "blend: split index %lld outside [0, %lld]", static_cast<long long>(rk),
                   static_cast<long long>(plan.overlap));
    ST2V_CHECK_ARG(last || (r_next >= 0 && r_next <= plan.overlap), "blend: next split index %lld outside [0, %lld]",
                   static_cast<long long>(r_next), static_cast<long long>(plan.overlap));
    const int64_t f0 = k * stride + rk;
    const int64_t f1 = last ? k * stride + C : (k + 1) * stride + r_next;
    const int64_t local0 = f0 - k * stride, n = f1 - f0;
    parallel_for(B * Ch, [&](int64_t lo, int64_t hi, int) {
        for (int64_t bc = lo; bc < hi; ++bc)
            std::memcpy(out + (bc * L + f0) * HW, chunk_x0 + (bc * C + local0) * HW, static_cast<size_t>(n * HW) * sizeof(float));
    });
}

void randomized_blend_reference(const float* const* chunks, const int64_t* seam_r, const ChunkPlan& plan, int64_t B,
                                int64_t Ch, int64_t HW, float* out) {
    std::vector<int64_t> r;
    check_r(seam_r, plan, &r);
    const int64_t total = B * Ch * plan.length * HW;
    for (int64_t i = 0; i < total; ++i) {
        int64_t k = -1;
        const int64_t s = blend_math::source_index(i, B, Ch, plan.length, HW, plan.n_chunks, plan.chunk, plan.overlap,
                                                   r.data(), &k);
        ST2V_CHECK(k >= 0, Code::kInternal, "blend: element %lld has no owner", static_cast<long long>(i));
        out[i] = chunks[k][s];
    }
}

Tensor randomized_blend(const std::vector<Tensor>& chunk_x0, const std::vector<int64_t>& seam_r, int64_t chunk,
                        int64_t overlap) {
    ST2V_CHECK_ARG(!chunk_x0.empty(), "blend: no chunks");
    const Tensor& c0 = chunk_x0[0];
    check_ndim(c0, 5, "randomized_blend", "chunk");
    check_dtype(c0, DType::F32, "randomized_blend", "chunk");
    ST2V_CHECK(c0.size(2) == chunk, Code::kShapeMismatch, "blend: chunk tensors have %lld frames, chunk size is %lld",
               static_cast<long long>(c0.size(2)), static_cast<long long>(chunk));
    const int64_t n = static_cast<int64_t>(chunk_x0.size());
    const int64_t L = n * (chunk - overlap) + overlap;
    const ChunkPlan plan = plan_chunks(L, chunk, overlap);
    ST2V_CHECK(plan.n_chunks == n, Code::kInternal, "blend: plan mismatch");
    ST2V_CHECK_ARG(static_cast<int64_t>(seam_r.size()) == n - 1, "blend: %lld chunks need %lld split indices, got %zu",
                   static_cast<long long>(n), static_cast<long long>(n - 1), seam_r.size());
    std::vector<Tensor> keep;
    std::vector<const float*> ptrs;
    for (const Tensor& t : chunk_x0) {
        ST2V_CHECK(t.shape() == c0.shape(), Code::kShapeMismatch, "blend: chunk shapes differ (%s vs %s)",
                   t.shape().str().c_str(), c0.shape().str().c_str());
        check_dtype(t, DType::F32, "randomized_blend", "chunk");
        keep.push_back(t.contiguous());
        ptrs.push_back(keep.back().f32());
    }
    const int64_t B = c0.size(0), Ch = c0.size(1), H = c0.size(3), W = c0.size(4);
    Tensor out = Tensor::empty(Shape{B, Ch, L, H, W});
    randomized_blend(ptrs.data(), seam_r.data(), plan, B, Ch, H * W, out.f32());
    return out;
}

Tensor randomized_blend(const Tensor& stacked, const std::vector<int64_t>& seam_r, int64_t chunk, int64_t overlap) {
    check_ndim(stacked, 6, "randomized_blend", "stacked chunks");
    std::vector<Tensor> v;
    for (int64_t k = 0; k < stacked.size(0); ++k) v.push_back(stacked.select(0, k));
    return randomized_blend(v, seam_r, chunk, overlap);
}

// ------------------------------------------------------------------------------------------ BlendStream
BlendStream::BlendStream(int64_t chunk, int64_t overlap) : C_(chunk), O_(overlap) {
    ST2V_CHECK_ARG(overlap >= 0 && chunk > overlap, "BlendStream: need chunk > overlap >= 0");
}

Tensor BlendStream::push(const Tensor& chunk_x0, int64_t r) {
    check_ndim(chunk_x0, 5, "BlendStream::push", "chunk");
    check_dtype(chunk_x0, DType::F32, "BlendStream::push", "chunk");
    ST2V_CHECK(chunk_x0.size(2) == C_, Code::kShapeMismatch, "BlendStream: chunk has %lld frames, expected %lld",
               static_cast<long long>(chunk_x0.size(2)), static_cast<long long>(C_));
    const int64_t start = k_ * (C_ - O_);
    Tensor emit;
    if (k_ == 0) {
        emit = Tensor::empty(Shape{chunk_x0.size(0), chunk_x0.size(1), 0, chunk_x0.size(3), chunk_x0.size(4)});
    } else {
        ST2V_CHECK(chunk_x0.shape() == prev_.shape(), Code::kShapeMismatch, "BlendStream: chunk shape %s, expected %s",
                   chunk_x0.shape().str().c_str(), prev_.shape().str().c_str());
        ST2V_CHECK_ARG(r >= 0 && r <= O_, "BlendStream: split index %lld outside [0, %lld]", static_cast<long long>(r),
                       static_cast<long long>(O_));
        // Frames [emitted_, start + r) are final: they come from the previous chunk.
        emit = prev_.slice(2, emitted_ - prev_start_, start + r - prev_start_).clone();
        emitted_ = start + r;
    }
    // The new chunk owns [emitted_, start + C) from now on; keep it (from local frame emitted_ − start).
    prev_ = chunk_x0.contiguous();
    prev_start_ = start;
    ++k_;
    return emit;
}

Tensor BlendStream::finish() {
    ST2V_CHECK_ARG(prev_.defined(), "BlendStream: no chunk pushed");
    Tensor emit = prev_.slice(2, emitted_ - prev_start_, C_).clone();
    emitted_ = prev_start_ + C_;
    prev_ = Tensor();
    return emit;
}

}  // namespace st2v::runtime
