// RAFT optical flow with torchvision's structure (models/optical_flow/raft.py: raft_large = the official
// mawe.py choice, weights C_T_SKHT_V2), run from converted weights (safetensors, torchvision state_dict
// names, f32/f16/bf16). The layer widths are read from the weight shapes, so any RAFT built from the same
// blocks loads (raft_large, or a tiny random model for tests). Residual-block feature encoder with
// InstanceNorm (no norm parameters) or BatchNorm (eval statistics), 4-level correlation pyramid with radius
// 4, motion encoder + two separable ConvGRUs ((1,5) then (5,1)), flow head, convex 8x upsampling by the
// mask predictor. Input: two rgb24 frames (H, W multiples of 8, >= 128 so that the coarsest correlation
// level is wider than one pixel); output flow frame0 -> frame1, 2 x H x W (dx, dy), the last of the
// `updates` iterates (torchvision default 12).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/weights.h"

namespace st2v::eval {

class RaftModel {
  public:
    // Binds the weights (names as torchvision's RAFT state_dict, an optional "raft." prefix is removed);
    // missing or misshapen weights -> ERR_WEIGHTS_MISSING / ERR_SHAPE_MISMATCH naming the key.
    static std::shared_ptr<RaftModel> from_weights(const io::WeightStore& ws);
    static std::shared_ptr<RaftModel> load(const std::string& path);  // .safetensors file or folder

    void flow(const uint8_t* rgb0, const uint8_t* rgb1, int width, int height, float* out, int updates = 12) const;

    struct Conv {
        int cout = 0, cin = 0, kh = 1, kw = 1, stride = 1, ph = 0, pw = 0;
        std::vector<float> w, b;  // w [cout, cin*kh*kw]
        Tensor wt, bt;            // the same as tensors, for ops::conv2d
    };
    struct Norm {
        bool batch = false;  // false: InstanceNorm2d(affine=False)
        std::vector<float> scale, shift;  // BatchNorm folded: y = x * scale + shift
    };
    struct ConvNorm {
        Conv conv;
        Norm norm;
    };
    struct Block {
        ConvNorm c1, c2;
        bool has_down = false;
        ConvNorm down;
    };
    struct Encoder {
        ConvNorm stem;
        Block blocks[6];
        Conv out;
    };
    struct Gru {
        Conv z, r, q;
    };

  private:
    Encoder fnet_, cnet_;
    Conv corr1_, corr2_, flow1_, flow2_, menc_;
    Gru gru1_, gru2_;
    Conv head1_, head2_, mask1_, mask2_;
    int hidden_ = 0, levels_ = 4, radius_ = 4;
};

}  // namespace st2v::eval
