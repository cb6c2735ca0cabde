#!/usr/bin/env python3
"""Dev tool (issue 5): how far is the official fp32 4-step stage-2 DDIM of golden/st2v/ddim from exact math?

Runs the same trajectory (UNet3D + CAM + APM, CFG 7.5, DDIM eta 1, recorded x_T and variance noise, the dump's
context and CAM frames) with scripts/torch_anchor.py's functional re-implementation of the official modules on the
golden tiny weights, in float32 and in float64, and prints the max-abs distance of each to the golden
latents_per_step. Needs torch (Debian's python3-torch 1.13 made the goldens): /usr/bin/python3 tools/ddim_fp64_reference.py
Optionally compares an .npy of our own final latent (e.g. written by a debug run) with the fp64 result.

Measured 2026-11-27 (torch 1.13 CPU): final step fp32 vs golden 1.98e-4, fp64 vs golden 1.73e-4, fp32 vs fp64
1.94e-4; our AVX2 build vs fp64 1.39e-4, our portable build vs fp64 1.58e-4. The official fp32 result itself is
1.7e-4 from exact math, so a 1e-4 bound on the free-running trajectory is below the reference's own rounding.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import torch_anchor as ta  # noqa: E402

SHARED = os.environ.get("ST2V_SHARED", os.path.join(HERE, "..", "..", "shared"))
G = os.path.join(SHARED, "golden", "st2v")


def load_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", k
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"])
    return out


def run(weights, dtype):
    ta.W.clear()
    for k, v in weights.items():
        ta.W[k] = torch.from_numpy(v.copy()).to(dtype)
    ld = lambda f: torch.from_numpy(np.load(os.path.join(G, f))).to(dtype)
    ctx, cf = ld("step/ctx.npy"), ld("step/cond_frames.npy")[0]
    cond = torch.cat([cf, cf])
    x, zs = ld("ddim/x_T.npy"), ld("ddim/var_noises.npy")
    ts = [int(t) for t in np.load(os.path.join(G, "ddim/timesteps.npy"))]
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    acp = torch.cumprod(1.0 - betas, dim=0).to(torch.float64)
    out = []
    with torch.no_grad():
        for i, t in enumerate(ts):
            X = torch.cat([x] * 2)
            skips, mid = ta.cam(X, t, ctx, cond)
            eu, ec = ta.unet(X, t, ctx, skips, mid).chunk(2)
            e = eu + 7.5 * (ec - eu)
            a = acp[t].item()
            tp = t - 1000 // len(ts)
            ap = acp[tp].item() if tp >= 0 else acp[0].item()
            x0 = (x - (1 - a) ** 0.5 * e) / a ** 0.5
            sd = ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5
            z = zs[i].permute(1, 0, 2, 3)[None]  # recorded [F, 4, h, w] -> [1, 4, F, h, w]
            x = ap ** 0.5 * x0 + (1 - ap - sd * sd) ** 0.5 * e + sd * z
            out.append(x.to(torch.float64).numpy())
    return out


def main():
    if not os.path.exists(os.path.join(G, "ddim", "x_T.npy")):
        sys.exit(f"golden/st2v/ddim not found under {SHARED} (set ST2V_SHARED)")
    ta.CFG.update(block_out_channels=[64, 128], down_block_types=["CrossAttnDownBlock3D", "DownBlock3D"],
                  up_block_types=["UpBlock3D", "CrossAttnUpBlock3D"])
    ta.HD = 32  # the tiny golden config: attention_head_dim 32
    w = load_safetensors(os.path.join(G, "weights.safetensors"))
    ref = np.load(os.path.join(G, "ddim/latents_per_step.npy"))
    r32, r64 = run(w, torch.float32), run(w, torch.float64)
    for i in range(len(r32)):
        print(f"step {i}: fp32 vs golden {np.abs(r32[i] - ref[i]).max():.3g}  fp64 vs golden "
              f"{np.abs(r64[i] - ref[i]).max():.3g}  fp32 vs fp64 {np.abs(r32[i] - r64[i]).max():.3g}")
    for f in sys.argv[1:]:
        print(f"{f} vs fp64: {np.abs(np.load(f).astype(np.float64) - r64[-1]).max():.3g}")


if __name__ == "__main__":
    main()
