# Dev tool (not run by CI): reference for torchvision F.resize(uint8, antialias=False) as mawe.py uses it
# (bilinear, align_corners=False), made with Debian python3-torchvision 0.14:
#   /usr/bin/python3 native/eval/testdata/make_resize_ref.py native/eval/testdata
# Layout of resize_ref.bin: for each case (sw, sh, dw, dh as int32 LE), src HWC uint8, dst HWC uint8.
import struct, sys
import torch
import torchvision.transforms.functional as F
g = torch.Generator().manual_seed(3)
cases = [(40, 30, 72, 56), (50, 40, 20, 16), (33, 17, 45, 45), (64, 48, 64, 40)]
with open(sys.argv[1] + '/resize_ref.bin', 'wb') as f:
    for sw, sh, dw, dh in cases:
        src = torch.randint(0, 256, (3, sh, sw), generator=g, dtype=torch.uint8)
        dst = F.resize(src, [dh, dw], antialias=False)
        f.write(struct.pack('<4i', sw, sh, dw, dh))
        f.write(src.permute(1, 2, 0).contiguous().numpy().tobytes())
        f.write(dst.permute(1, 2, 0).contiguous().numpy().tobytes())
