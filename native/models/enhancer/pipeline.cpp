#include "models/enhancer/pipeline.h"

#include <algorithm>
#include <cmath>

#include "models/enhancer/device_vid2vid.h"
#include "models/vae/device_vae.h"
#include "ops/ops.h"
#include "runtime/blend.h"

namespace st2v::enhancer {

// ------------------------------------------------------------------------------------- pre-processing
namespace {

// Pillow's bicubic filter (Resample.c: a = −0.5, support 2).
double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

struct Coeffs {
    std::vector<int64_t> xmin, xsize;
    std::vector<double> k;  // ksize per output pixel
    int64_t ksize = 0;
};

// Pillow's precompute_coeffs over the whole input box [0, in).
Coeffs precompute_coeffs(int64_t in, int64_t out) {
    Coeffs c;
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
    c.xmin.resize(static_cast<size_t>(out));
    c.xsize.resize(static_cast<size_t>(out));
    c.k.assign(static_cast<size_t>(out * c.ksize), 0.0);
    const double ss = 1.0 / filterscale;
    for (int64_t xx = 0; xx < out; ++xx) {
        const double center = (static_cast<double>(xx) + 0.5) * scale;
        int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // C cast: truncation toward zero
        if (xmin < 0) xmin = 0;
        int64_t xmax = static_cast<int64_t>(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double* k = &c.k[static_cast<size_t>(xx * c.ksize)];
        double ww = 0.0;
        for (int64_t x = 0; x < xmax; ++x) {
            const double w = bicubic_filter((static_cast<double>(x + xmin) - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int64_t x = 0; x < xmax; ++x)
            if (ww != 0.0) k[x] /= ww;
        c.xmin[static_cast<size_t>(xx)] = xmin;
        c.xsize[static_cast<size_t>(xx)] = xmax;
    }
    return c;
}

}  // namespace

Tensor pil_resize_bicubic(const Tensor& x, int64_t out_h, int64_t out_w) {
    check_ndim(x, 4, "pil_resize_bicubic", "x");
    check_dtype(x, DType::F32, "pil_resize_bicubic", "x");
    ST2V_CHECK_ARG(out_h >= 1 && out_w >= 1, "resize: output size %lldx%lld must be positive", (long long)out_w,
                   (long long)out_h);
    const Tensor xc = x.contiguous();
    const int64_t N = xc.size(0), C = xc.size(1), H = xc.size(2), W = xc.size(3);
    // horizontal pass (when the width changes), then vertical (when the height changes), as ImagingResample
    Tensor h = xc;
    if (out_w != W) {
        const Coeffs cw = precompute_coeffs(W, out_w);
        Tensor t = Tensor::empty({N, C, H, out_w});
        for (int64_t r = 0; r < N * C * H; ++r) {
            const float* src = h.f32() + r * W;
            float* dst = t.f32() + r * out_w;
            for (int64_t xx = 0; xx < out_w; ++xx) {
                const double* k = &cw.k[static_cast<size_t>(xx * cw.ksize)];
                const float* s = src + cw.xmin[static_cast<size_t>(xx)];
                double acc = 0.0;
                for (int64_t i = 0; i < cw.xsize[static_cast<size_t>(xx)]; ++i) acc += k[i] * s[i];
                dst[xx] = static_cast<float>(acc);
            }
        }
        h = t;
    }
    if (out_h != H) {
        const int64_t Wc = h.size(3);
        const Coeffs ch = precompute_coeffs(H, out_h);
        Tensor t = Tensor::empty({N, C, out_h, Wc});
        for (int64_t p = 0; p < N * C; ++p) {
            const float* src = h.f32() + p * H * Wc;
            float* dst = t.f32() + p * out_h * Wc;
            for (int64_t yy = 0; yy < out_h; ++yy) {
                const double* k = &ch.k[static_cast<size_t>(yy * ch.ksize)];
                const int64_t y0 = ch.xmin[static_cast<size_t>(yy)], n = ch.xsize[static_cast<size_t>(yy)];
                for (int64_t xx = 0; xx < Wc; ++xx) {
                    double acc = 0.0;
                    for (int64_t i = 0; i < n; ++i) acc += k[i] * src[(y0 + i) * Wc + xx];
                    dst[yy * Wc + xx] = static_cast<float>(acc);
                }
            }
        }
        h = t;
    }
    return h.clone();
}

Tensor preprocess_frames(const Tensor& frames, int64_t width, int64_t height) {
    check_ndim(frames, 4, "enhance", "frames");
    check_dtype(frames, DType::F32, "enhance", "frames");
    ST2V_CHECK_ARG(frames.size(1) == 3, "enhance: frames must be [N, 3, H, W], got %s", frames.shape().str().c_str());
    ST2V_CHECK_ARG(width >= 1 && height >= 1, "enhance: output size must be positive");
    const int64_t N = frames.size(0), h = frames.size(2), w = frames.size(3);
    ST2V_CHECK_ARG(h >= 1 && w >= 1, "enhance: empty frames");
    // resize_to_fit (W, H): if H / h > W / w: (W, int(h·W/w)) else (int(w·H/h), H)
    int64_t rw, rh;
    if (static_cast<double>(height) / static_cast<double>(h) > static_cast<double>(width) / static_cast<double>(w)) {
        rw = width;
        rh = static_cast<int64_t>(static_cast<double>(h * width) / static_cast<double>(w));
    } else {
        rw = static_cast<int64_t>(static_cast<double>(w * height) / static_cast<double>(h));
        rh = height;
    }
    rw = std::max<int64_t>(1, std::min(rw, width));
    rh = std::max<int64_t>(1, std::min(rh, height));
    Tensor r = pil_resize_bicubic(frames, rh, rw);
    // Pillow clips to the 8-bit range: clamp to [−1, 1]
    for (int64_t i = 0, n = r.numel(); i < n; ++i) r.f32()[i] = std::min(1.0f, std::max(-1.0f, r.f32()[i]));
    if (rw == width && rh == height) return r;
    // pad_to_fit: black (−1) margins, centred; an odd remainder goes right/bottom
    Tensor out = Tensor::full({N, 3, height, width}, -1.0f);
    const int64_t top = (height - rh) / 2, left = (width - rw) / 2;
    for (int64_t p = 0; p < N * 3; ++p)
        for (int64_t y = 0; y < rh; ++y)
            std::copy(r.f32() + (p * rh + y) * rw, r.f32() + (p * rh + y + 1) * rw,
                      out.f32() + (p * height + top + y) * width + left);
    return out;
}

Tensor encode_prompt(const enc::ClipTextModel& text, const std::vector<int32_t>& ids) {
    ST2V_CHECK_ARG(!ids.empty() && ids.size() <= 77, "enhance: prompt ids must have 1..77 entries, got %zu", ids.size());
    Tensor t = Tensor::empty({1, static_cast<int64_t>(ids.size())}, DType::I64);
    for (size_t i = 0; i < ids.size(); ++i) t.data<int64_t>()[i] = ids[i];
    return text.forward(t);
}

void check_enhance_geometry(const EnhancerModels& m, int64_t width, int64_t height) {
    ST2V_CHECK_ARG(m.unet && m.vae, "enhance: models not loaded");
    const int64_t f = m.vae->factor();
    ST2V_CHECK_ARG(width > 0 && height > 0 && width % f == 0 && height % f == 0,
                   "enhance: width %lld and height %lld must be multiples of the VAE factor %lld", (long long)width,
                   (long long)height, (long long)f);
    int64_t h = height / f, w = width / f;
    const size_t levels = m.unet->config().level_channels.size();
    for (size_t l = 0; l + 1 < levels; ++l) {
        ST2V_CHECK_ARG(h % 2 == 0 && w % 2 == 0,
                       "enhance: %lldx%lld frames give a %lldx%lld latent that the enhancer's Downsample (2, 1) padding / "
                       "cropped Upsample cannot bring back (latent height must stay even and width divisible by 2^%zu)",
                       (long long)width, (long long)height, (long long)(width / f), (long long)(height / f), levels - 1);
        h = h / 2 + 1;
        w = w / 2;
    }
}

// --------------------------------------------------------------------------------------------- stream
EnhanceStream::EnhanceStream(const EnhancerModels& m, Tensor y, Tensor y_neg, const EnhanceOptions& o, FramesSink sink,
                             EnhanceProgressFn progress, const std::atomic<bool>* cancel, EnhanceNoise noise)
    : m_(m), y_(std::move(y)), yn_(std::move(y_neg)), o_(o), sink_(std::move(sink)), progress_(std::move(progress)),
      cancel_(cancel), noise_(std::move(noise)), gen_(o.seed), rng_(static_cast<int64_t>(o.seed & 0x7fffffffffffffffull)) {
    ST2V_CHECK_ARG(o.steps >= 1 && o.steps <= 1000, "enhance: steps must be in [1, 1000], got %d", o.steps);
    ST2V_CHECK_ARG(o.t_start >= 1 && o.t_start < sch_.size(), "enhance: t_start must be in [1, %d), got %d", sch_.size(),
                   o.t_start);
    ST2V_CHECK_ARG(o.chunk > o.overlap && o.overlap >= 1, "enhance: need chunk > overlap >= 1 (got %lld / %lld)",
                   (long long)o.chunk, (long long)o.overlap);
    ST2V_CHECK_ARG(o.window >= 0, "enhance: window must be >= 0 chunks");
    ST2V_CHECK_ARG(o.window == 0 || o.window * (o.chunk - o.overlap) >= o.overlap,
                   "enhance: a window of %d chunks is shorter than the overlap it must hand to the next window", o.window);
    ST2V_CHECK_ARG(o.vae_tile >= 0, "enhance: vae_tile must be >= 0");
    ST2V_CHECK_ARG(y_.defined() && yn_.defined() && y_.ndim() == 3 && yn_.ndim() == 3 && y_.size(0) == 1 && yn_.size(0) == 1,
                   "enhance: text contexts must be [1, T, D]");
    ST2V_CHECK_ARG(y_.size(2) == m.unet->config().context_dim && yn_.size(2) == m.unet->config().context_dim,
                   "enhance: text width %lld / %lld, the enhancer expects %lld", (long long)y_.size(2), (long long)yn_.size(2),
                   (long long)m.unet->config().context_dim);
    check_enhance_geometry(m_, o.width, o.height);
}

void EnhanceStream::check_cancel() const {
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) ST2V_THROW(Code::kCancelled, "enhance: cancelled");
}

void EnhanceStream::report(const char* stage, int step, int steps, int chunk, int chunks) {
    if (!progress_) return;
    EnhanceProgress p;
    p.stage = stage;
    p.window = window_idx_;
    p.step = step;
    p.steps = steps;
    p.chunk = chunk;
    p.chunks = chunks;
    p.frames_done = emitted_;
    progress_(p);
}

void EnhanceStream::push(const Tensor& frames) {
    ST2V_CHECK_ARG(!finished_, "enhance: push after finish");
    check_ndim(frames, 4, "enhance", "frames");
    check_dtype(frames, DType::F32, "enhance", "frames");
    ST2V_CHECK_ARG(frames.size(1) == 3 && frames.size(2) >= 1 && frames.size(3) >= 1,
                   "enhance: frames must be [N, 3, H, W], got %s", frames.shape().str().c_str());
    if (!pending_.empty() || !enc_.empty())
        ST2V_CHECK_ARG(pending_.empty() || (pending_[0].size(2) == frames.size(2) && pending_[0].size(3) == frames.size(3)),
                       "enhance: every pushed frame must have the same size");
    for (int64_t i = 0; i < frames.size(0); ++i) pending_.push_back(frames.slice(0, i, i + 1).clone());
    pushed_ += frames.size(0);
    if (o_.window > 0) {
        const int64_t win = o_.window * (o_.chunk - o_.overlap) + o_.overlap;
        while (static_cast<int64_t>(enc_.size() + pending_.size()) >= win) {
            check_cancel();
            run_window(win, false);
        }
    }
}

int64_t EnhanceStream::finish() {
    ST2V_CHECK_ARG(!finished_, "enhance: finish called twice");
    finished_ = true;
    const int64_t avail = static_cast<int64_t>(enc_.size() + pending_.size());
    if (window_idx_ == 0)
        ST2V_CHECK_ARG(avail >= o_.chunk, "enhance: %lld frames is fewer than one chunk (%lld)", (long long)avail,
                       (long long)o_.chunk);
    check_cancel();
    if (avail >= o_.chunk) {
        const runtime::ChunkPlan plan = runtime::plan_chunks(avail, o_.chunk, o_.overlap);
        run_window(plan.length, true);
    } else if (tail_.defined()) {
        emit(tail_, 0, tail_.size(2));  // no chunk starts after the last window: its overlap frames are final
        tail_ = Tensor();
    }
    pending_.clear();
    enc_.clear();
    return emitted_;
}

Tensor EnhanceStream::encode_window(int64_t n_frames) {
    const int64_t have = static_cast<int64_t>(enc_.size());
    ST2V_CHECK(have + static_cast<int64_t>(pending_.size()) >= n_frames, Code::kInternal, "enhance: window underrun");
    std::vector<Tensor> lat;
    lat.reserve(static_cast<size_t>(n_frames));
    for (const Tensor& e : enc_) lat.push_back(e);
    const float scale = m_.vae->config().scaling_factor;
    for (int64_t i = 0; i < n_frames - have; ++i) {
        check_cancel();
        Tensor px = preprocess_frames(pending_[static_cast<size_t>(i)], o_.width, o_.height);
        const bool tiled = o_.vae_tile > 0 && (o_.height / m_.vae->factor() > o_.vae_tile || o_.width / m_.vae->factor() > o_.vae_tile);
        vae::TileOptions to;
        to.latent_tile = o_.vae_tile;
        vae::Posterior post = m_.device_vae ? m_.device_vae->encode_host(px)
                              : tiled      ? m_.vae->encode_tiled(px, to)
                                           : m_.vae->encode(px);
        Tensor n = noise_.vae_sample ? noise_.vae_sample(window_idx_, consumed_ + have + i, post.mean.shape())
                                     : gen_.randn(post.mean.shape());
        Tensor z = ops::scale(vae::AutoencoderKL::sample(post, n), scale);
        lat.push_back(z);
        report("encode", 0, o_.steps, 0, 0);
    }
    pending_.erase(pending_.begin(), pending_.begin() + (n_frames - have));
    const int64_t lc = lat[0].size(1), h = lat[0].size(2), w = lat[0].size(3);
    std::vector<Tensor> v;
    v.reserve(lat.size());
    for (const Tensor& z : lat) v.push_back(z.reshape({1, lc, 1, h, w}));
    Tensor video = ops::concat(v, 2);  // [1, 4, n, h, w]
    // the next window starts O frames before this one ends: keep their latents (encoded once)
    enc_.assign(lat.end() - o_.overlap, lat.end());
    return video;
}

void EnhanceStream::emit(const Tensor& latents, int64_t from, int64_t to) {
    if (to <= from) return;
    const float inv = 1.0f / m_.vae->config().scaling_factor;
    const int64_t f = m_.vae->factor();
    const bool tiled = o_.vae_tile > 0 && (latents.size(3) > o_.vae_tile || latents.size(4) > o_.vae_tile);
    vae::TileOptions to_;
    to_.latent_tile = o_.vae_tile;
    Tensor out = Tensor::empty({to - from, 3, latents.size(3) * f, latents.size(4) * f});
    const int64_t per = out.numel() / (to - from);
    for (int64_t i = from; i < to; ++i) {
        check_cancel();
        Tensor z = ops::scale(latents.select(2, i).contiguous(), inv);  // [1, 4, h, w]
        Tensor img = m_.device_vae ? m_.device_vae->decode_host(z) : tiled ? m_.vae->decode_tiled(z, to_) : m_.vae->decode(z);
        std::copy(img.f32(), img.f32() + per, out.f32() + (i - from) * per);
    }
    const int64_t first = emitted_;
    emitted_ += to - from;
    if (sink_) sink_(out, first);
    report("decode", 0, o_.steps, 0, 0);
}

void EnhanceStream::run_window(int64_t n_frames, bool last) {
    const runtime::ChunkPlan plan = runtime::plan_chunks(n_frames, o_.chunk, o_.overlap);
    ST2V_CHECK(plan.length == n_frames, Code::kInternal, "enhance: window of %lld frames is not tiled", (long long)n_frames);
    const int chunks = static_cast<int>(plan.n_chunks);
    const int64_t start_frame = consumed_;

    Tensor x0 = encode_window(n_frames);
    Tensor eps = noise_.sdedit ? noise_.sdedit(window_idx_, x0.shape()) : gen_.randn(x0.shape());
    Tensor xT = sch_.diffuse(x0, eps, o_.t_start);
    x0 = Tensor();
    eps = Tensor();

    runtime::EnhancerGuidance g;
    g.guide_scale = o_.guide_scale;
    g.guide_rescale = o_.guide_rescale;
    g.chunk = o_.chunk;
    g.overlap = o_.overlap;
    const std::vector<float> sigmas = sch_.solver_sigmas(o_.steps, o_.t_start, 0);
    int cur_step = 0, cur_chunk = 0;
    runtime::VModelFn v_model = [&](const Tensor& xc, int64_t t, bool cond) {
        if (cond) check_cancel();
        const std::vector<float> ts = {static_cast<float>(t)};
        Tensor v = m_.device_unet ? m_.device_unet->forward_host(xc, ts, cond ? y_ : yn_)
                                  : m_.unet->forward(xc, ts, cond ? y_ : yn_);
        if (!cond) report("denoise", cur_step + 1, o_.steps, ++cur_chunk, chunks);
        return v;
    };
    runtime::X0Fn model_fn = [&](const Tensor& x_in, float sigma, int step) {
        cur_step = step;
        cur_chunk = 0;
        return runtime::enhancer_model_fn(x_in, sigma, sch_, v_model, rng_, g);
    };
    runtime::NoiseFn solver_noise = [&](int step, const Shape& shape) {
        return noise_.solver ? noise_.solver(window_idx_, step, shape) : gen_.randn(shape);
    };
    Tensor z = runtime::sde_dpmpp_2m_sample(xT, sigmas, model_fn, solver_noise, 1.0f);
    xT = Tensor();

    // merge with the previous window's overlap and emit what is final
    const int64_t O = o_.overlap;
    const int64_t end = last ? n_frames : n_frames - O;
    if (tail_.defined()) {
        const int64_t r = rng_.randint(0, O - 1);
        emit(tail_, 0, r);
        tail_ = Tensor();
        emit(z, r, end);
    } else {
        emit(z, 0, end);
    }
    if (!last) tail_ = z.slice(2, n_frames - O, n_frames).clone();
    consumed_ = start_frame + n_frames - O;
    ++window_idx_;
}

Tensor enhance_video(const EnhancerModels& m, const Tensor& frames, const Tensor& y, const Tensor& y_neg,
                     const EnhanceOptions& o, EnhanceProgressFn progress, const std::atomic<bool>* cancel,
                     EnhanceNoise noise) {
    check_ndim(frames, 4, "enhance", "frames");
    const runtime::ChunkPlan plan = runtime::plan_chunks(frames.size(0), o.chunk, o.overlap);
    EnhanceOptions oo = o;
    oo.window = 0;
    Tensor out;
    EnhanceStream s(
        m, y, y_neg, oo,
        [&](const Tensor& f, int64_t first) {
            if (!out.defined()) out = Tensor::empty({plan.length, f.size(1), f.size(2), f.size(3)});
            const int64_t per = f.numel() / f.size(0);
            std::copy(f.f32(), f.f32() + f.numel(), out.f32() + first * per);
        },
        std::move(progress), cancel, std::move(noise));
    s.push(frames);
    const int64_t n = s.finish();
    ST2V_CHECK(n == plan.length, Code::kInternal, "enhance: %lld frames out, expected %lld", (long long)n,
               (long long)plan.length);
    return out;
}

}  // namespace st2v::enhancer
