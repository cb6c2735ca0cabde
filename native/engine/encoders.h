// Text and image encoders used by the generation loop: HF CLIPTextModel (stage-2 prompt tokens) and the
// OpenCLIP ViT visual tower (APM anchor embedding). Minimal engine-side implementations bound by the
// canonical names (text_encoder.text_model.*, image_encoder.model.visual.*). The golden-checked versions
// (exact kornia preprocessing etc.) live in models/clip when present.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"

namespace st2v::engine {

class TextEncoder {
  public:
    TextEncoder(const io::WeightStore& w, const std::string& prefix);  // "text_encoder.text_model."
    Tensor forward(const std::vector<int32_t>& ids) const;              // -> [1, L, D] last_hidden_state
    int64_t width() const { return D_; }
    int64_t vocab() const { return V_; }

  private:
    const io::WeightStore& w_;
    std::string p_;
    int64_t D_ = 0, V_ = 0;
    int layers_ = 0, heads_ = 1;
};

class ImageEncoder {
  public:
    ImageEncoder(const io::WeightStore& w, const std::string& prefix);  // "image_encoder.model.visual."
    // frame [1, 3, H, W] in [-1, 1] -> pooled embedding [1, E]
    Tensor forward(const Tensor& frame) const;

  private:
    const io::WeightStore& w_;
    std::string p_;
    int64_t W_ = 0, P_ = 14, G_ = 16;
    int layers_ = 0, heads_ = 1;
};

}  // namespace st2v::engine
