#include "models/clip/clip_score.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/threadpool.h"
#include "models/clip/weights_util.h"
#include "ops/ops.h"

namespace st2v::enc {

// ---- Pillow's 8-bit bicubic resample (libImaging/Resample.c), written from its documented behaviour ----------
namespace {
constexpr int kPrecisionBits = 32 - 8 - 2;

double pil_bicubic(double x) {  // a = -0.5, support 2
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

struct Coeffs {
    int ksize = 0;
    std::vector<int> bounds;  // per output: xmin, count
    std::vector<int32_t> k;   // per output: ksize fixed-point weights
};

// Coefficients for resizing in_size -> out_size over the whole input (box 0..in_size).
Coeffs pil_coeffs(int in_size, int out_size) {
    Coeffs c;
    const double scale = static_cast<double>(static_cast<float>(in_size) - 0.f) / out_size;
    const double filterscale = std::max(scale, 1.0);
    const double support = 2.0 * filterscale;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.bounds.resize(static_cast<size_t>(out_size) * 2);
    c.k.assign(static_cast<size_t>(out_size) * c.ksize, 0);
    std::vector<double> w(static_cast<size_t>(c.ksize));
    const double inv = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = (xx + 0.5) * scale;
        int xmin = static_cast<int>(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = static_cast<int>(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; ++x) {
            w[static_cast<size_t>(x)] = pil_bicubic((x + xmin - center + 0.5) * inv);
            ww += w[static_cast<size_t>(x)];
        }
        if (ww != 0.0)
            for (int x = 0; x < xmax; ++x) w[static_cast<size_t>(x)] /= ww;
        for (int x = 0; x < xmax; ++x) {
            const double v = w[static_cast<size_t>(x)] * (1 << kPrecisionBits);
            c.k[static_cast<size_t>(xx) * c.ksize + x] = static_cast<int32_t>(v < 0 ? -0.5 + v : 0.5 + v);
        }
        c.bounds[static_cast<size_t>(xx) * 2] = xmin;
        c.bounds[static_cast<size_t>(xx) * 2 + 1] = xmax;
    }
    return c;
}

inline uint8_t clip8(int32_t v) {
    const int32_t s = v >> kPrecisionBits;  // arithmetic shift (floor), as Pillow's lookup index
    return static_cast<uint8_t>(s < 0 ? 0 : s > 255 ? 255 : s);
}
}  // namespace

std::vector<uint8_t> pil_resize_bicubic_rgb24(const uint8_t* rgb, int w, int h, int ow, int oh) {
    ST2V_CHECK_ARG(w >= 1 && h >= 1 && ow >= 1 && oh >= 1, "pil_resize: sizes must be positive (%dx%d -> %dx%d)", w, h,
                   ow, oh);
    if (ow == w && oh == h) return std::vector<uint8_t>(rgb, rgb + static_cast<size_t>(w) * h * 3);
    const Coeffs cv = pil_coeffs(h, oh);
    // Rows of the input the vertical pass reads.
    const int y_first = cv.bounds[0];
    const int y_last = cv.bounds[static_cast<size_t>(oh) * 2 - 2] + cv.bounds[static_cast<size_t>(oh) * 2 - 1];
    const uint8_t* src = rgb;
    int sw = w, row0 = 0;  // rows of `src` are input rows row0 + i
    std::vector<uint8_t> tmp;
    if (ow != w) {
        const Coeffs ch = pil_coeffs(w, ow);
        const int rows = y_last - y_first;
        tmp.resize(static_cast<size_t>(rows) * ow * 3);
        for (int y = 0; y < rows; ++y) {
            const uint8_t* in = rgb + static_cast<size_t>(y + y_first) * w * 3;
            uint8_t* out = tmp.data() + static_cast<size_t>(y) * ow * 3;
            for (int xx = 0; xx < ow; ++xx) {
                const int xmin = ch.bounds[static_cast<size_t>(xx) * 2], n = ch.bounds[static_cast<size_t>(xx) * 2 + 1];
                const int32_t* k = ch.k.data() + static_cast<size_t>(xx) * ch.ksize;
                int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < n; ++x) {
                    const uint8_t* p = in + static_cast<size_t>(x + xmin) * 3;
                    s0 += p[0] * k[x];
                    s1 += p[1] * k[x];
                    s2 += p[2] * k[x];
                }
                out[xx * 3] = clip8(s0);
                out[xx * 3 + 1] = clip8(s1);
                out[xx * 3 + 2] = clip8(s2);
            }
        }
        src = tmp.data();
        sw = ow;
        row0 = y_first;
    }
    if (oh == h) {
        if (src == rgb) return std::vector<uint8_t>(rgb, rgb + static_cast<size_t>(w) * h * 3);
        return tmp;  // rows == h here (the vertical coefficients of an unchanged height cover every row)
    }
    std::vector<uint8_t> out(static_cast<size_t>(ow) * oh * 3);
    for (int yy = 0; yy < oh; ++yy) {
        const int ymin = cv.bounds[static_cast<size_t>(yy) * 2] - row0, n = cv.bounds[static_cast<size_t>(yy) * 2 + 1];
        const int32_t* k = cv.k.data() + static_cast<size_t>(yy) * cv.ksize;
        uint8_t* o = out.data() + static_cast<size_t>(yy) * ow * 3;
        for (int xx = 0; xx < ow * 3; ++xx) {
            int32_t s = 1 << (kPrecisionBits - 1);
            for (int y = 0; y < n; ++y) s += src[static_cast<size_t>(y + ymin) * sw * 3 + xx] * k[y];
            o[xx] = clip8(s);
        }
    }
    return out;
}

std::vector<uint8_t> openclip_resize_crop_rgb24(const uint8_t* rgb, int w, int h, int size) {
    ST2V_CHECK_ARG(w >= 1 && h >= 1 && size >= 1, "openclip_preprocess: bad sizes %dx%d -> %d", w, h, size);
    // torchvision Resize(size) (shortest edge): new_short = size, new_long = int(size * long / short).
    const int shorter = std::min(w, h), longer = std::max(w, h);
    const int new_long = static_cast<int>(static_cast<double>(static_cast<int64_t>(size) * longer) / shorter);
    const int rw = w <= h ? size : new_long, rh = w <= h ? new_long : size;
    std::vector<uint8_t> r = pil_resize_bicubic_rgb24(rgb, w, h, rw, rh);
    // CenterCrop(size): top = int(round((H - size) / 2.0)) with Python's round (half to even).
    auto offset = [](int total, int crop) {
        const double v = (total - crop) / 2.0;
        const double f = std::floor(v);
        if (v - f != 0.5) return static_cast<int>(std::lround(v));
        return static_cast<int>(std::fmod(f, 2.0) == 0.0 ? f : f + 1.0);
    };
    const int top = offset(rh, size), left = offset(rw, size);
    std::vector<uint8_t> out(static_cast<size_t>(size) * size * 3);
    for (int y = 0; y < size; ++y)
        std::memcpy(out.data() + static_cast<size_t>(y) * size * 3,
                    r.data() + (static_cast<size_t>(y + top) * rw + left) * 3, static_cast<size_t>(size) * 3);
    return out;
}

void openclip_preprocess_rgb24(const uint8_t* rgb, int w, int h, int size, float* out) {
    const std::vector<uint8_t> c = openclip_resize_crop_rgb24(rgb, w, h, size);
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    const size_t plane = static_cast<size_t>(size) * size;
    for (int ch = 0; ch < 3; ++ch)
        for (size_t i = 0; i < plane; ++i)
            out[ch * plane + i] = (static_cast<float>(c[i * 3 + ch]) / 255.f - mean[ch]) / stdv[ch];  // ToTensor, Normalize
}

// ---- model --------------------------------------------------------------------------------------------------
namespace {
const io::WeightStore& require_towers(const io::WeightStore& w) {
    ST2V_CHECK(w.has("image_encoder.model.visual.conv1.weight"), Code::kWeightsMissing,
               "CLIP score: the OpenCLIP image tower (image_encoder.model.visual.*) is missing");
    ST2V_CHECK(w.has("text_encoder.text_model.embeddings.token_embedding.weight"), Code::kWeightsMissing,
               "CLIP score: the OpenCLIP text tower (text_encoder.text_model.*) is missing");
    ST2V_CHECK(w.has("text_last_block.layer_norm1.weight"), Code::kWeightsMissing,
               "CLIP score: the last OpenCLIP text block (text_last_block.*) is missing: convert the open_clip weights "
               "(open_clip_pytorch_model.bin / open_clip_model.safetensors) with st2v convert; streaming_t2v.ckpt does "
               "not contain it");
    ST2V_CHECK(w.has("image_encoder.model.text_projection"), Code::kWeightsMissing,
               "CLIP score: image_encoder.model.text_projection is missing");
    return w;
}
}  // namespace

OpenClipScoreModel::OpenClipScoreModel(const io::WeightStore& w)
    : text_(require_towers(w), "text_encoder.text_model.", 0, "text_last_block."), image_(w) {
    const Tensor& tp = w.get("image_encoder.model.text_projection");
    check_ndim(tp, 2, "clip_score", "text_projection");
    ST2V_CHECK(tp.size(0) == text_.width(), Code::kShapeMismatch, "clip_score: text_projection %s vs text width %lld",
               tp.shape().str().c_str(), (long long)text_.width());
    text_projection_T_ = tp.to(DType::F32).transpose(0, 1).contiguous();
    embed_ = tp.size(1);
    const Tensor& proj = w.get("image_encoder.model.visual.proj");
    ST2V_CHECK(proj.ndim() == 2 && proj.size(1) == embed_, Code::kShapeMismatch,
               "clip_score: visual.proj %s vs text_projection %s (embedding sizes differ)", proj.shape().str().c_str(),
               tp.shape().str().c_str());
    context_ = w.get("text_encoder.text_model.embeddings.position_embedding.weight").size(0);
}

std::shared_ptr<OpenClipScoreModel> OpenClipScoreModel::load(const std::string& path) {
    ST2V_CHECK(std::filesystem::exists(path), Code::kNotFound, "CLIP model not found: %s", path.c_str());
    return std::make_shared<OpenClipScoreModel>(load_canonical(path));
}

Tensor OpenClipScoreModel::encode_text(const Tensor& ids_in) const {
    check_ndim(ids_in, 2, "clip_score", "ids");
    ST2V_CHECK(ids_in.dtype() == DType::I64 || ids_in.dtype() == DType::I32, Code::kDtype, "clip_score: ids must be i64/i32");
    Tensor ids = ids_in.contiguous();
    const int64_t B = ids.size(0), L = ids.size(1);
    Tensor h = text_.forward(ids);  // [B, L, width] after ln_final
    const int64_t W = text_.width();
    Tensor pooled = Tensor::empty(Shape({B, W}));
    for (int64_t b = 0; b < B; ++b) {
        int64_t best = 0, arg = 0;
        for (int64_t i = 0; i < L; ++i) {  // torch.argmax: the first maximum
            const int64_t id = ids.dtype() == DType::I64 ? ids.data<int64_t>()[b * L + i] : ids.data<int32_t>()[b * L + i];
            if (i == 0 || id > best) best = id, arg = i;
        }
        std::memcpy(pooled.f32() + b * W, h.f32() + (b * L + arg) * W, static_cast<size_t>(W) * sizeof(float));
    }
    return ops::linear(pooled, text_projection_T_, Tensor());
}

Tensor OpenClipScoreModel::encode_image(const Tensor& pixels) const { return image_.forward_preprocessed(pixels); }

Tensor OpenClipScoreModel::encode_frames_rgb24(const uint8_t* frames, int n, int w, int h) const {
    ST2V_CHECK_ARG(n >= 1 && w >= 1 && h >= 1, "clip_score: %d frames of %dx%d", n, w, h);
    const int S = static_cast<int>(image_size());
    Tensor pre = Tensor::empty(Shape({n, 3, S, S}));
    const size_t fb = static_cast<size_t>(w) * h * 3, pb = static_cast<size_t>(3) * S * S;
    float* dst = pre.f32();
    parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t f = b; f < e; ++f) openclip_preprocess_rgb24(frames + f * fb, w, h, S, dst + f * pb);
    });
    return encode_image(pre);
}

std::vector<double> clip_scores(const Tensor& text_feat, const Tensor& image_feats) {
    Tensor t = text_feat.contiguous().to(DType::F32), im = image_feats.contiguous().to(DType::F32);
    check_ndim(im, 2, "clip_scores", "image_feats");
    const int64_t E = im.size(1);
    ST2V_CHECK(t.numel() == E, Code::kShapeMismatch, "clip_scores: text %s vs images %s", t.desc().c_str(),
               im.desc().c_str());
    double tn = 0;
    for (int64_t i = 0; i < E; ++i) tn += static_cast<double>(t.f32()[i]) * t.f32()[i];
    tn = std::sqrt(tn);
    std::vector<double> out(static_cast<size_t>(im.size(0)));
    for (int64_t r = 0; r < im.size(0); ++r) {
        const float* v = im.f32() + r * E;
        double dot = 0, n2 = 0;
        for (int64_t i = 0; i < E; ++i) {
            dot += static_cast<double>(v[i]) * t.f32()[i];
            n2 += static_cast<double>(v[i]) * v[i];
        }
        // F.normalize's eps (1e-12) on each norm.
        out[static_cast<size_t>(r)] = 100.0 * dot / (std::max(std::sqrt(n2), 1e-12) * std::max(tn, 1e-12));
    }
    return out;
}

}  // namespace st2v::enc
