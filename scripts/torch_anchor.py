#!/usr/bin/env python3
"""The PyTorch peer for benchmarks: the StreamingT2V stage-2 denoising step (UNet3D + CAM + APM, CFG batch 2)
and an enhancer-sized UNet3D step, in plain PyTorch, with random weights for the official key set (shapes
from docs/streamingt2v-state-dict-keys.tsv; --width mid scales the UNet widths to 128/256/512/512). A
functional re-implementation of the official modules (it matched the official code to <=3.4e-5 on the tiny
golden config), with attention through F.scaled_dot_product_attention when torch has it. Run it on the same
machine, in the same session, as our own bench and report the ratio.

(Copied unchanged, except this note, from the project's shared tools/torch_anchor.py for scripts/gpu-check.sh,
which runs it on the GPU machine beside our own check; it reads ../docs/streamingt2v-state-dict-keys.tsv.)

Usage: python3 torch_anchor.py [--width full|mid] [--device auto|cpu|cuda] [--threads N]
                               [--modes fp32,tf32,bf16,compile] [--enh] [--reps N] [--tiny]
  GPU:  python3 torch_anchor.py --modes fp32,tf32,bf16,compile --enh
  CPU:  python3 torch_anchor.py --width mid --device cpu --threads 2 --modes fp32 --reps 3
Prints one JSON line per measurement ({"case","mode","ms_median","ms_min",...}) and a summary table.
Measured: H200, torch 2.11, full width: 115 ms bf16 eager, 60 ms compiled; Zen 4 2 cores, torch 1.13, mid
width fp32: 30.9 s per step.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
TSV = os.path.join(HERE, "..", "docs", "streamingt2v-state-dict-keys.tsv")
HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
W = {}
CFG = dict(block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
           down_block_types=["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"],
           up_block_types=["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3)
HD = 64
USE_SDPA = True
silu = F.silu


def emit(**kw):
    print(json.dumps(kw), flush=True)


# --width mid: the same key set with every UNet width scaled 320/640/1280 -> 128/256/512 (357 M params with CAM)
MID = {320: 128, 640: 256, 960: 384, 1280: 512, 1920: 768, 2560: 1024, 5120: 2048, 10240: 4096}


def make_weights(dev, dtype, width="full"):
    """Random weights, on the device, for every key of the official state dict (full size, or scaled)."""
    g = torch.Generator(device=dev).manual_seed(0)
    W.clear()
    n = 0
    for line in open(TSV):
        k, shape, _ = line.rstrip("\n").split("\t")
        if k == "key":
            continue
        if not (k.startswith("base_model.") or k.startswith("unet.") or k.startswith("resampler.")):
            continue
        s = [] if shape in ("", "scalar") else [int(v) for v in shape.split("x")]
        if width == "mid":
            s = [MID.get(v, v) for v in s]
        t = torch.empty(s, dtype=torch.float32, device=dev)
        if k.endswith("alpha"):
            t.uniform_(0.5, 1.0, generator=g)
        elif len(s) >= 2:
            fan_in = int(math.prod(s[1:]))
            t.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)
        elif k.endswith(".weight") and ("norm" in k or "conv_ln" in k):
            t.normal_(1.0, 0.1, generator=g)
        else:
            t.normal_(0.0, 0.05, generator=g)
        W[k] = t.to(dev, dtype)
        n += t.numel()
    return n


def lin(x, p, bias=True):
    return F.linear(x, W[p + ".weight"], W.get(p + ".bias") if bias else None)


def conv(x, p, stride=1, pad=1):
    return F.conv2d(x, W[p + ".weight"], W[p + ".bias"], stride=stride, padding=pad)


def gn(x, p, eps, groups=32):
    return F.group_norm(x, groups, W[p + ".weight"], W[p + ".bias"], eps)


def ln(x, p, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), W[p + ".weight"], W[p + ".bias"], eps)


def attn(xq, xkv, p, heads):
    q, k, v = lin(xq, p + ".to_q", False), lin(xkv, p + ".to_k", False), lin(xkv, p + ".to_v", False)
    n, lq, d = q.shape
    hd = d // heads
    q, k, v = (z.reshape(n, -1, heads, hd).transpose(1, 2) for z in (q, k, v))
    if USE_SDPA and HAS_SDPA:
        a = F.scaled_dot_product_attention(q, k, v)
    else:
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
    return lin(a.transpose(1, 2).reshape(n, lq, d), p + ".to_out.0")


def block(h, p, heads, ctx=None, apm=False):
    n = ln(h, p + ".norm1")
    h = h + attn(n, n, p + ".attn1", heads)
    n = ln(h, p + ".norm2")
    if ctx is None:
        kv = n
    elif apm:
        mixed = F.conv1d(ctx, W[p + ".attn2.conv.weight"], W[p + ".attn2.conv.bias"], padding=1)
        kv = ctx[:, :77] + silu(W[p + ".attn2.alpha"]) * ln(mixed, p + ".attn2.conv_ln")
    else:
        kv = ctx[:, :77]
    h = h + attn(n, kv, p + ".attn2", heads)
    n = ln(h, p + ".norm3")
    a, gate = lin(n, p + ".ff.net.0.proj").chunk(2, dim=-1)
    return h + lin(a * F.gelu(gate), p + ".ff.net.2")


def resnet(x, temb, p):
    h = conv(silu(gn(x, p + ".norm1", 1e-5)), p + ".conv1")
    h = h + lin(silu(temb), p + ".time_emb_proj")[:, :, None, None]
    h = conv(silu(gn(h, p + ".norm2", 1e-5)), p + ".conv2")
    if p + ".conv_shortcut.weight" in W:
        x = conv(x, p + ".conv_shortcut", pad=0)
    return x + h


def to5(x, f):
    bf, c, h, w = x.shape
    return x.reshape(bf // f, f, c, h, w).permute(0, 2, 1, 3, 4)


def to4(x):
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def temp_conv(x, f, p):
    h = to5(x, f)
    idt = h
    for i, j in ((1, 2), (2, 3), (3, 3), (4, 3)):
        h = silu(gn(h, f"{p}.conv{i}.0", 1e-5))
        h = F.conv3d(h, W[f"{p}.conv{i}.{j}.weight"], W[f"{p}.conv{i}.{j}.bias"], padding=(1, 0, 0))
    return to4(idt + h)


def spatial(x, p, ctx, apm):
    bf, c, h, w = x.shape
    y = gn(x, p + ".norm", 1e-6).permute(0, 2, 3, 1).reshape(bf, h * w, c)
    y = lin(y, p + ".proj_in")
    y = block(y, p + ".transformer_blocks.0", c // HD, ctx, apm)
    y = lin(y, p + ".proj_out").reshape(bf, h, w, c).permute(0, 3, 1, 2)
    return x + y


def temporal(x, f, p, heads):
    bf, c, h, w = x.shape
    b = bf // f
    y = gn(to5(x, f), p + ".norm", 1e-6)
    y = y.permute(0, 3, 4, 2, 1).reshape(b * h * w, f, c)
    y = lin(y, p + ".proj_in")
    y = block(y, p + ".transformer_blocks.0", heads)
    y = lin(y, p + ".proj_out")
    y = y.reshape(b, h, w, f, c).permute(0, 3, 4, 1, 2)
    return x + y.reshape(bf, c, h, w)


def temb_of(t, p, c0, n, dev, dtype):
    half = c0 // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=dev) / half)
    a = torch.full((1,), float(t), device=dev) * freqs
    e = torch.cat([torch.cos(a), torch.sin(a)])[None].to(dtype)
    e = lin(silu(lin(e, p + ".time_embedding.linear_1")), p + ".time_embedding.linear_2")
    return e.repeat_interleave(n, dim=0)


def encoder(x, temb, ctx, f, p, apm):
    skips = [x]
    h = x
    ch = CFG["block_out_channels"]
    for l, kind in enumerate(CFG["down_block_types"]):
        for i in range(CFG["layers_per_block"]):
            h = resnet(h, temb, f"{p}.down_blocks.{l}.resnets.{i}")
            h = temp_conv(h, f, f"{p}.down_blocks.{l}.temp_convs.{i}")
            if kind == "CrossAttnDownBlock3D":
                h = spatial(h, f"{p}.down_blocks.{l}.attentions.{i}", ctx, apm)
                h = temporal(h, f, f"{p}.down_blocks.{l}.temp_attentions.{i}", ch[l] // HD)
            skips.append(h)
        if l < len(ch) - 1:
            h = conv(h, f"{p}.down_blocks.{l}.downsamplers.0.conv", stride=2)
            skips.append(h)
    h = resnet(h, temb, f"{p}.mid_block.resnets.0")
    h = temp_conv(h, f, f"{p}.mid_block.temp_convs.0")
    h = spatial(h, f"{p}.mid_block.attentions.0", ctx, apm)
    h = temporal(h, f, f"{p}.mid_block.temp_attentions.0", ch[-1] // HD)
    h = resnet(h, temb, f"{p}.mid_block.resnets.1")
    h = temp_conv(h, f, f"{p}.mid_block.temp_convs.1")
    return skips, h


def merger(h, r, p, f_h, f_r):
    bf, c, hh, ww = h.shape
    b = bf // f_h
    q = gn(to5(h, f_h), p + ".temporal_transformer.norm", 1e-6)
    q = lin(q.permute(0, 3, 4, 2, 1).reshape(b * hh * ww, f_h, c), p + ".temporal_transformer.proj_in")
    kv = to5(r, f_r).permute(0, 3, 4, 2, 1).reshape(b * hh * ww, f_r, c)
    a = attn(q, kv, p + ".temporal_transformer.attention", c // 64)
    y = lin(a, p + ".temporal_transformer.proj_out").reshape(b, hh, ww, f_h, c).permute(0, 3, 4, 1, 2)
    return h + y.reshape(bf, c, hh, ww)


def e_cond(img):
    h = silu(conv(img, "unet.controlnet_cond_embedding.conv_in"))
    for i in range(6):
        h = silu(conv(h, f"unet.controlnet_cond_embedding.blocks.{i}", stride=2 if i % 2 == 1 else 1))
    return conv(h, "unet.controlnet_cond_embedding.conv_out")


def cam(x, t, ctx, frames, fc=8):
    b = x.shape[0]
    s = to4(x[:, :, :fc])
    temb = temb_of(t, "unet", CFG["block_out_channels"][0], b * fc, x.device, x.dtype)
    c77 = ctx[:, :77].repeat_interleave(fc, dim=0)
    h = conv(s, "unet.conv_in")
    h = temporal(h, fc, "unet.transformer_in", 8)
    h = h + e_cond(frames)
    return encoder(h, temb, c77, fc, "unet", apm=False)


def unet(x, t, ctx, cam_skips=None, cam_mid=None, fc=8, apm=True):
    b, _, f, _, _ = x.shape
    temb = temb_of(t, "base_model", CFG["block_out_channels"][0], b * f, x.device, x.dtype)
    if apm:
        c = torch.cat([ctx[:, :77].repeat_interleave(f, 0), ctx[:, 77:].repeat_interleave(f, 0)], 1)
    else:
        c = ctx[:, :77].repeat_interleave(f, 0)
    h = conv(to4(x), "base_model.conv_in")
    h = temporal(h, f, "base_model.transformer_in", 8)
    skips, h = encoder(h, temb, c, f, "base_model", apm=apm)
    if cam_skips is not None:
        skips = [merger(s, r, f"base_model.cross_attention_merger_down_blocks.{i}", f, fc)
                 for i, (s, r) in enumerate(zip(skips, cam_skips))]
        h = merger(h, cam_mid, "base_model.cross_attention_merger_mid_block", f, fc)
    ch = list(reversed(CFG["block_out_channels"]))
    for l, kind in enumerate(CFG["up_block_types"]):
        for i in range(CFG["layers_per_block"] + 1):
            s = skips.pop()
            h = torch.cat([h[..., :s.shape[-2], :s.shape[-1]], s], dim=1)  # enhancer-style row crop
            h = resnet(h, temb, f"base_model.up_blocks.{l}.resnets.{i}")
            h = temp_conv(h, f, f"base_model.up_blocks.{l}.temp_convs.{i}")
            if kind == "CrossAttnUpBlock3D":
                h = spatial(h, f"base_model.up_blocks.{l}.attentions.{i}", c, apm)
                h = temporal(h, f, f"base_model.up_blocks.{l}.temp_attentions.{i}", ch[l] // HD)
        if l < len(ch) - 1:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"base_model.up_blocks.{l}.upsamplers.0.conv")
    h = conv(silu(gn(h, "base_model.conv_norm_out", 1e-5)), "base_model.conv_out")
    return to5(h, f)


def resampler(clip):
    y = lin(silu(lin(clip[:, None].mean(1, keepdim=True), "resampler.context_embedding.0")), "resampler.context_embedding.2")
    return y.reshape(clip.shape[0], 16, -1)


def st2v_step(x, ctx, image):
    """One stage-2 denoising step with CFG: CAM on the CFG batch, UNet with CAM + APM, guidance."""
    X = torch.cat([x] * 2)
    skips, mid = cam(X, 981, ctx, image)
    eps = unet(X, 981, ctx, skips, mid)
    eu, ec = eps.chunk(2)
    return eu + 7.5 * (ec - eu)


def enh_step(x, ctx):
    """Enhancer-sized step: same UNet3D inventory, no CAM/APM, CFG batch 2 (v-pred math is negligible)."""
    out = unet(torch.cat([x] * 2), 599, ctx, apm=False)
    u, c = out.chunk(2)
    return u + 7.5 * (c - u)


def bench(fn, dev, warm=3, reps=10):
    warm = min(warm, reps)
    for _ in range(warm):
        fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(); b.record(); torch.cuda.synchronize()
            ts.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def main():
    global USE_SDPA
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--modes", default="fp32,tf32,bf16,compile")
    ap.add_argument("--enh", action="store_true", help="also the enhancer-sized step (90x160 latents, 24 frames)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--width", choices=("full", "mid"), default="full",
                    help="mid: block_out_channels 128/256/512/512 (357 M params), the CPU bench config")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    a = ap.parse_args()
    if a.width == "mid":
        CFG["block_out_channels"] = [128, 256, 512, 512]
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device)
    lat = 8 if a.tiny else 32  # --tiny: full-size weights, small frames (a quick CPU smoke test)
    px = lat * 8
    emit(event="env", torch=torch.__version__, device=torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
         sdpa=HAS_SDPA, tiny=a.tiny)
    results = []
    for mode in a.modes.split(","):
        dtype = torch.bfloat16 if mode in ("bf16", "compile") else torch.float32
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            torch.backends.cudnn.allow_tf32 = mode == "tf32"
        nparams = make_weights(dev, dtype, a.width)
        g = torch.Generator(device="cpu").manual_seed(1)
        x = torch.randn(1, 4, 16, lat, lat, generator=g).to(dev, dtype)
        cond = torch.randn(2 * 8, 3, px, px, generator=g).to(dev, dtype)
        text = torch.randn(2, 77, W["resampler.context_embedding.2.weight"].shape[0] // 16, generator=g).to(dev, dtype)
        clip = torch.randn(2, W["resampler.context_embedding.0.weight"].shape[1], generator=g).to(dev, dtype)
        with torch.no_grad():
            ctx = torch.cat([text, resampler(clip)], 1)
            fn = lambda: st2v_step(x, ctx, cond)
            t_compile = None
            if mode == "compile":
                t0 = time.time()
                cfn = torch.compile(st2v_step)
                cfn(x, ctx, cond)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t_compile = time.time() - t0
                fn = lambda: cfn(x, ctx, cond)
            if mode == "fp32" and dev.type == "cuda":  # SDPA vs reference attention: same numbers?
                USE_SDPA = False
                ref = fn().float()
                USE_SDPA = True
                got = fn().float()
                emit(event="sdpa_check", max_abs=float((got - ref).abs().max()), ref_max=float(ref.abs().max()))
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            med, mn = bench(fn, dev, reps=a.reps)
            peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
            r = dict(case=f"st2v_step_16f_{lat}x{lat}_cfg2_{a.width}", mode=mode, params=nparams, ms_median=round(med, 2),
                     ms_min=round(mn, 2), peak_gib=peak and round(peak, 2), compile_s=t_compile and round(t_compile, 1))
            emit(**r); results.append(r)
            if a.enh and mode != "compile":
                elat = (10, 16) if a.tiny else (90, 160)
                xe = torch.randn(1, 4, 24, *elat, generator=g).to(dev, dtype)
                ce = text[:, :77]
                med, mn = bench(lambda: enh_step(xe, ce), dev, warm=2, reps=max(1, a.reps // 2))
                peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else None
                r = dict(case="enh_step_24f_90x160_cfg2", mode=mode, ms_median=round(med, 2), ms_min=round(mn, 2),
                         peak_gib=peak and round(peak, 2))
                emit(**r); results.append(r)
        W.clear()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    print("\ncase | mode | median ms | min ms | peak GiB | compile s")
    for r in results:
        print(f"{r['case']} | {r['mode']} | {r['ms_median']} | {r['ms_min']} | {r['peak_gib']} | {r.get('compile_s')}")


if __name__ == "__main__":
    main()
