// The StreamingT2V stage-2 networks on the CUDA backend: DeviceUNet3D (base_model., APM mixing, CAM mergers),
// DeviceCamNet (unet., incl. E_cond) and one device stage-2 step (CAM + UNet for [uncond, cond], CFG, DDIM).
//
// The CPU classes in blocks.{h,cpp} / unet3d.{h,cpp} are the specification. Binding is theirs: every device
// module is built by binding its CPU counterpart (t2v::Binder, UNetConfig::detect, the same key names and shape
// checks) and uploading the bound weights once. The networks' forward (stem, down / mid / up paths, CAM mergers, the
// CAM branch, E_cond) is written once for both backends (unet_graph.h); the blocks below mirror the CPU ones op for
// op (same order, same eps, same layouts, same APM math) so the two files can be read side by side; only
// backend::cuda_ops calls run on the device path (host work is limited to scalars, and the shared stem's comparison
// of the CFG pair's latents on a host copy).
//
// Weight dtypes: F32 (for parity with the CPU backend) or BF16 / F16 resident (Linear, conv, temporal conv and
// the APM Conv1d weights 2-byte; norm weights and every bias f32). Activations are f32 throughout; a GEMM with
// 2-byte weights rounds its activation operand to the weight dtype (fp32 accumulate), see cuda_ops::linear.
//
// Plain C++ (no CUDA headers): compiled into st2v_core in every build. Without a usable CUDA backend the
// constructors throw ERR_NO_CUDA (before touching the weights).
#pragma once
#include <string>
#include <vector>

#include "backend/cuda_ops.h"
#include "io/weights.h"
#include "models/t2v/unet3d.h"
#include "runtime/schedules.h"

namespace st2v::t2v {

namespace device {
using backend::cuda_ops::DeviceTensor;

// Device copies of the blocks of blocks.h (same names, same members, weights as DeviceTensors).
struct Linear {
    DeviceTensor w, b;
    void upload(const t2v::Linear& l, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x, backend::cuda_ops::Act act = backend::cuda_ops::Act::kNone) const;
    int64_t out() const { return w.size(0); }
};
struct Conv2d {
    DeviceTensor w, b;
    ops::Conv2dParams p;
    void upload(const t2v::Conv2d& c, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x) const;
};
struct Norm {
    DeviceTensor w, b;
    void upload(const t2v::Norm& n);
};
struct Attention {
    Linear to_q, to_k, to_v, to_out;
    int heads = 1;
    bool apm = false;
    DeviceTensor conv_w, conv_b;
    Norm conv_ln;
    float silu_alpha = 0;
    int64_t apm_tokens = 0;  // conv_w.size(0): the text tokens kept
    void upload(const t2v::Attention& a, DType wdt);
    // ctx_frames > 1: ctx is per sample [B, Lk, Cctx] for x [B * ctx_frames, L, C] (the CPU's ctx repeated per frame
    // with repeat_interleave); the APM mix and the K / V projections run once per sample and K, V are repeated:
    // the same rows as the CPU's, without the per-frame copies of that work.
    DeviceTensor operator()(const DeviceTensor& x, const DeviceTensor& ctx, int ctx_frames = 1) const;
};
struct TransformerBlock {
    Norm norm1, norm2, norm3;
    Attention attn1, attn2;
    Linear ff_proj, ff_out;
    void upload(const t2v::TransformerBlock& b, DType wdt);
    DeviceTensor operator()(DeviceTensor h, const DeviceTensor& ctx, int ctx_frames = 1) const;
};
struct SpatialTransformer {
    Norm norm;
    Linear proj_in, proj_out;
    TransformerBlock block;
    void upload(const t2v::SpatialTransformer& s, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x, const DeviceTensor& ctx, int ctx_frames = 1) const;
};
struct TemporalTransformer {
    Norm norm;
    Linear proj_in, proj_out;
    TransformerBlock block;
    void upload(const t2v::TemporalTransformer& s, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x, int frames) const;
};
struct TemporalConv {
    Norm norm[4];
    DeviceTensor w[4], b[4];
    void upload(const t2v::TemporalConv& c, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x, int frames) const;
};
struct ResnetBlock {
    Norm norm1, norm2;
    Conv2d conv1, conv2, shortcut;
    Linear temb_proj;
    bool has_shortcut = false;
    void upload(const t2v::ResnetBlock& r, DType wdt);
    DeviceTensor operator()(const DeviceTensor& x, const DeviceTensor& temb_silu) const;
};

// [B, C, F, H, W] <-> [B*F, C, H, W] (the CPU's video <-> frames layouts)
DeviceTensor video_to_frames(const DeviceTensor& x);
DeviceTensor frames_to_video(const DeviceTensor& x, int64_t frames);
// [B*F, C, H, W] <-> tokens [B*H*W, F, C]
DeviceTensor frames_to_tokens(const DeviceTensor& x, int frames);
DeviceTensor tokens_to_frames(const DeviceTensor& t, int frames, int64_t H, int64_t W);

// unet3d.h's modules
struct Level {
    std::vector<ResnetBlock> resnets;
    std::vector<TemporalConv> temp_convs;
    std::vector<SpatialTransformer> attentions;
    std::vector<TemporalTransformer> temp_attentions;
    bool has_down = false;
    Conv2d down;
    void upload(const t2v::DownLevel& l, DType wdt);
};
struct Merger {
    Norm norm;
    Linear proj_in, proj_out;
    Attention attn;
    void upload(const t2v::Merger& m, DType wdt);
    DeviceTensor operator()(const DeviceTensor& h, const DeviceTensor& r, int frames, int cond_frames) const;
};
struct TimeEmbedding {
    Linear l1, l2;
    int dim = 320;
    void upload(const t2v::TimeEmbedding& t, DType wdt);
    DeviceTensor silu_emb(float t, int64_t batch, int frames) const;
};
struct Encoder {
    UNetConfig cfg;
    Conv2d conv_in;
    TemporalTransformer transformer_in;
    TimeEmbedding time;
    std::vector<Level> down;
    ResnetBlock mid_res[2];
    TemporalConv mid_tc[2];
    SpatialTransformer mid_attn;
    TemporalTransformer mid_tattn;
    void upload(const t2v::Encoder& e, DType wdt);
    // conv_in + transformer_in of x [B, C, F, h, w] -> [B*F, C0, h, w], once for all samples when they are the same
    // bytes (t2v::Encoder::stem's rule and switch; the samples are compared on a host copy)
    DeviceTensor stem(const DeviceTensor& x) const;
    // ctx per sample [B, T, D] (the CPU passes it repeated per frame; see Attention)
    std::vector<DeviceTensor> run_down(DeviceTensor h, const DeviceTensor& temb, const DeviceTensor& ctx, int frames) const;
    DeviceTensor run_mid(DeviceTensor h, const DeviceTensor& temb, const DeviceTensor& ctx, int frames) const;
};
}  // namespace device

struct DeviceCamResiduals {
    std::vector<device::DeviceTensor> down;  // one per skip, [B*Fc, C, H, W]
    device::DeviceTensor mid;
};

class DeviceUNet3D {
  public:
    // wdt: F32, BF16 or F16 (the resident dtype of the Linear / conv weights; norms and biases stay f32).
    DeviceUNet3D(const io::WeightStore& w, const std::string& prefix, DType wdt = DType::F32);
    const UNetConfig& config() const { return enc_.cfg; }
    DType weight_dtype() const { return wdt_; }
    // x [B, 4, F, h, w]; ctx [B, T, D]; cam = null for no CAM. -> [B, 4, F, h, w] (UNet3D::forward).
    device::DeviceTensor forward(const device::DeviceTensor& x, float t, const device::DeviceTensor& ctx,
                                 const DeviceCamResiduals* cam) const;
    const std::vector<std::string>& bound_keys() const { return keys_; }
    size_t weight_bytes() const { return weight_bytes_; }

  private:
    device::Encoder enc_;
    std::vector<device::Level> up_;
    std::vector<device::Merger> mergers_;
    device::Merger merger_mid_;
    device::Norm norm_out_;
    device::Conv2d conv_out_;
    DType wdt_;
    std::vector<std::string> keys_;
    size_t weight_bytes_ = 0;
};

class DeviceCamNet {
  public:
    DeviceCamNet(const io::WeightStore& w, const std::string& prefix, DType wdt = DType::F32);
    const UNetConfig& config() const { return enc_.cfg; }
    device::DeviceTensor encode_cond(const device::DeviceTensor& frames) const;
    // CamNet::forward: x [B, 4, F, h, w] (first Fc frames used), ctx [B, >=77, D], cond [B*Fc, 3, Hp, Wp].
    // e_cond_in (optional): E_cond(cond) computed before (DeviceECondCache), used instead of computing it again;
    // cond may then be undefined.
    DeviceCamResiduals forward(const device::DeviceTensor& x, float t, const device::DeviceTensor& ctx,
                               const device::DeviceTensor& cond, int cond_frames,
                               const device::DeviceTensor* e_cond_in = nullptr) const;
    const std::vector<std::string>& bound_keys() const { return keys_; }
    size_t weight_bytes() const { return weight_bytes_; }

  private:
    device::Encoder enc_;
    device::Conv2d ce_in_, ce_out_;
    std::vector<device::Conv2d> ce_blocks_;
    std::vector<std::string> keys_;
    size_t weight_bytes_ = 0;
};

// ECondCache on the device: E_cond of the host conditioning frames, uploaded and computed when the frames differ
// byte for byte from the last call's, else the same device tensor (no upload, no encoder). Memory: one chunk's
// frames on the host and their features on the device.
class DeviceECondCache : public FramesKeyed<device::DeviceTensor> {
  public:
    const device::DeviceTensor& get(const DeviceCamNet& cam, const Tensor& cond) {
        return FramesKeyed<device::DeviceTensor>::get(
            cond, [&](const Tensor& c) { return cam.encode_cond(device::DeviceTensor::from_host(c)); });
    }
};

// engine::Model::eps_extension on the device: CAM on the conditioning frames, then the UNet with its residuals.
// X [B, 4, F, h, w] (B = 2: [uncond, cond]); ctx [B, 77 (+16 APM tokens), D]; cond [B*Fc, 3, Hp, Wp].
// ms_cam / ms_unet (optional) get the synchronised wall time of each part added; cam_out (optional) keeps the
// CAM residuals (for checks); e_cond (optional): E_cond(cond) computed before (DeviceECondCache), cond may then be
// undefined.
device::DeviceTensor device_eps_extension(const DeviceUNet3D& unet, const DeviceCamNet& cam, const device::DeviceTensor& X,
                                          float t, const device::DeviceTensor& ctx, const device::DeviceTensor& cond,
                                          double* ms_cam = nullptr, double* ms_unet = nullptr,
                                          DeviceCamResiduals* cam_out = nullptr,
                                          const device::DeviceTensor* e_cond = nullptr);

// One step of engine::sample_extension_chunk on the device: x [F, 4, h, w] (frames first, as the engine holds
// the sample) at timestep t of `sch` (set_timesteps done); ctx [2, L, D] = [uncond, cond]; cond2 [2*Fc, 3, Hp, Wp];
// X = [x, x] as [2, 4, F, h, w], eps = CAM + UNet, CFG with `guidance`, DDIM step with eta (noise [F, 4, h, w]
// required when eta > 0). Returns x_{t-1} [F, 4, h, w]. cam_out / eps_out (optional, for checks) keep the CAM
// residuals and the UNet output [2, 4, F, h, w] before CFG.
device::DeviceTensor device_stage2_step(const DeviceUNet3D& unet, const DeviceCamNet& cam,
                                        const runtime::DdimScheduler& sch, const device::DeviceTensor& x, int64_t t,
                                        const device::DeviceTensor& ctx, const device::DeviceTensor& cond2,
                                        float guidance, float eta, const device::DeviceTensor* noise,
                                        double* ms_cam = nullptr, double* ms_unet = nullptr,
                                        DeviceCamResiduals* cam_out = nullptr, device::DeviceTensor* eps_out = nullptr,
                                        const device::DeviceTensor* e_cond = nullptr);

}  // namespace st2v::t2v
