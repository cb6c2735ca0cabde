# Dev tool (not run by CI): regenerate with Debian python3-torchvision 0.14:
#   /usr/bin/python3 native/eval/testdata/make_raft_tiny.py native/eval/testdata
# Builds a tiny random model with torchvision's RAFT structure (raft_large layout, small widths),
# stores its weights (f16 safetensors, torchvision state_dict names), two 128x128 frames and the flow
# torchvision computes (12 updates, from the f16-rounded weights), as the native RAFT test fixture.
import json, struct, sys
import numpy as np
import torch
from torch.nn import BatchNorm2d, InstanceNorm2d
from torchvision.models.optical_flow.raft import (RAFT, FeatureEncoder, ResidualBlock, CorrBlock, MotionEncoder,
    RecurrentBlock, FlowHead, UpdateBlock, MaskPredictor)
out = sys.argv[1]
torch.manual_seed(0)
hidden = 24
fe = FeatureEncoder(block=ResidualBlock, layers=(16, 16, 24, 32, 32), norm_layer=InstanceNorm2d)
ce = FeatureEncoder(block=ResidualBlock, layers=(16, 16, 24, 32, 48), norm_layer=BatchNorm2d)
cb = CorrBlock(num_levels=4, radius=4)
me = MotionEncoder(in_channels_corr=cb.out_channels, corr_layers=(32, 24), flow_layers=(16, 8), out_channels=32)
rb = RecurrentBlock(input_size=me.out_channels + 48 - hidden, hidden_size=hidden, kernel_size=((1, 5), (5, 1)), padding=((0, 2), (2, 0)))
fh = FlowHead(in_channels=hidden, hidden_size=32)
ub = UpdateBlock(motion_encoder=me, recurrent_block=rb, flow_head=fh)
mp = MaskPredictor(in_channels=hidden, hidden_size=32, multiplier=0.25)
model = RAFT(feature_encoder=fe, context_encoder=ce, corr_block=cb, update_block=ub, mask_predictor=mp)
# Non-trivial BatchNorm statistics and affine parameters.
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.8, 1.2); m.bias.uniform_(-0.1, 0.1)
    for p in model.parameters():
        p.copy_(p.half().float())
    for n, b in model.named_buffers():
        if b.dtype == torch.float32: b.copy_(b.half().float())
model.eval()
# Two frames: a smooth random texture and the same shifted by (3, -2) px.
g = torch.Generator().manual_seed(1)
base = torch.nn.functional.interpolate(torch.rand(1, 3, 20, 20, generator=g), size=(136, 136), mode='bicubic', align_corners=False)
base = (base.clamp(0, 1) * 255).round().to(torch.uint8)
f0 = base[:, :, 4:132, 4:132].contiguous()
f1 = base[:, :, 6:134, 1:129].contiguous()
def prep(x):
    return (x.float() / 255 - 0.5) / 0.5
with torch.no_grad():
    flows = model(prep(f0), prep(f1), num_flow_updates=12)
flow = flows[-1][0].numpy().astype(np.float32)
first = flows[0][0].numpy().astype(np.float32)
sd = {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
header, blobs, off = {}, [], 0
for k in sorted(sd):
    a = sd[k].numpy().astype(np.float16)
    b = a.tobytes()
    header[k] = {'dtype': 'F16', 'shape': list(a.shape), 'data_offsets': [off, off + len(b)]}
    blobs.append(b); off += len(b)
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
with open(out + '/raft_tiny.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(h))); f.write(h); [f.write(b) for b in blobs]
with open(out + '/raft_tiny_io.bin', 'wb') as f:
    # frames: 2 x 128x128x3 uint8 (HWC), then flow after 1 and after 12 updates: 2 x 2x128x128 float32 LE.
    f.write(f0[0].permute(1, 2, 0).numpy().tobytes()); f.write(f1[0].permute(1, 2, 0).numpy().tobytes())
    f.write(first.tobytes()); f.write(flow.tobytes())
print('params', sum(v.numel() for v in sd.values()), 'median flow', np.median(flow[0]), np.median(flow[1]), 'maxabs', np.abs(flow).max())
