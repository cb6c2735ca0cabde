#!/usr/bin/env python3
"""Reference data for the CLIP score (dev tooling only; never a runtime dependency).

Writes native/tests/data/clip_score/*.npy + manifest.json from the tiny OpenCLIP model of the shared golden
folder (golden/clip/openclip_tiny.safetensors, open_clip 2.24.0 names) with an independent NumPy float64
implementation of open_clip 2.24.0's inference path:

  encode_text : token_embedding + positional_embedding -> all text resblocks (pre-LN, causal
                nn.MultiheadAttention, exact GELU) -> ln_final -> features at argmax(token id) -> @ text_projection
  encode_image: image_transform(224, is_train=False) on a PIL image = torchvision Resize(224, BICUBIC) on the
                shortest side (Pillow's own resize, the real library) + CenterCrop(224) + ToTensor + Normalize(CLIP
                mean/std) in float32 as torchvision does, then conv1 patches + class token + positional_embedding
                -> ln_pre -> resblocks -> ln_post -> token 0 @ proj
  score       : 100 * cos(text, image) per frame (raw, no clamping)

Usage: python3 -m venv /work/venv-clip && /work/venv-clip/bin/pip install numpy safetensors Pillow
       ST2V_SHARED=/work/shared /work/venv-clip/bin/python tools/make_clip_score_golden.py
"""
import json
import math
import os
import sys

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('ST2V_SHARED', os.path.join(ROOT, '..', 'shared'))
OUT = os.path.join(ROOT, 'native', 'tests', 'data', 'clip_score')
PROMPTS = [0, 2, 40]  # rows of golden/clip/tokens/openclip_ids.npy (40: truncated, end token at position 76)
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def resblock(x, W, p, heads, causal):
    """open_clip ResidualAttentionBlock on x [L, width] (batch of one)."""
    L, C = x.shape
    D = C // heads
    h = layer_norm(x, W[p + 'ln_1.weight'], W[p + 'ln_1.bias'])
    qkv = h @ W[p + 'attn.in_proj_weight'].T + W[p + 'attn.in_proj_bias']
    q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
    o = np.zeros_like(x)
    for hd in range(heads):
        s = slice(hd * D, (hd + 1) * D)
        a = (q[:, s] / math.sqrt(D)) @ k[:, s].T
        if causal:
            a = a + np.triu(np.full((L, L), -np.inf), 1)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o[:, s] = a @ v[:, s]
    x = x + o @ W[p + 'attn.out_proj.weight'].T + W[p + 'attn.out_proj.bias']
    h = layer_norm(x, W[p + 'ln_2.weight'], W[p + 'ln_2.bias'])
    h = gelu(h @ W[p + 'mlp.c_fc.weight'].T + W[p + 'mlp.c_fc.bias'])
    return x + h @ W[p + 'mlp.c_proj.weight'].T + W[p + 'mlp.c_proj.bias']


def count(W, prefix):
    n = 0
    while f'{prefix}{n}.ln_1.weight' in W:
        n += 1
    return n


def encode_text(W, ids, heads):
    x = W['token_embedding.weight'][ids] + W['positional_embedding'][: len(ids)]
    for l in range(count(W, 'transformer.resblocks.')):
        x = resblock(x, W, f'transformer.resblocks.{l}.', heads, True)
    x = layer_norm(x, W['ln_final.weight'], W['ln_final.bias'])
    return x[int(np.argmax(ids))] @ W['text_projection']


def resize_crop(frame, size=224):
    """torchvision Resize(size, BICUBIC) + CenterCrop(size) on a PIL image (uint8 HWC out)."""
    h, w = frame.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
    img = Image.fromarray(frame, 'RGB')
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC)
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def preprocess(frame, size=224):
    x = resize_crop(frame, size).astype(np.float32).transpose(2, 0, 1) / np.float32(255)  # ToTensor
    return (x - MEAN[:, None, None]) / STD[:, None, None]  # Normalize (float32, as torchvision)


def encode_image(W, pix, heads):
    C = W['visual.conv1.weight'].shape[0]
    P = W['visual.conv1.weight'].shape[2]
    G = pix.shape[1] // P
    x = pix.astype(np.float64).reshape(3, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, 3 * P * P)
    x = x @ W['visual.conv1.weight'].reshape(C, -1).T
    x = np.concatenate([W['visual.class_embedding'][None], x], 0) + W['visual.positional_embedding']
    x = layer_norm(x, W['visual.ln_pre.weight'], W['visual.ln_pre.bias'])
    for l in range(count(W, 'visual.transformer.resblocks.')):
        x = resblock(x, W, f'visual.transformer.resblocks.{l}.', heads, False)
    x = layer_norm(x, W['visual.ln_post.weight'], W['visual.ln_post.bias'])
    return x[0] @ W['visual.proj']


def frames(seed, n, h, w):
    """Smooth gradients + a checkerboard + noise: exercises the bicubic overshoot clipping."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((n, h, w, 3), np.uint8)
    for f in range(n):
        base = np.stack([xx / w * 255, yy / h * 255, (xx + yy + 10 * f) % 64 * 4], -1)
        chk = (((xx // 5 + yy // 7 + f) % 2) * 90 - 45)[..., None]
        out[f] = np.clip(base + chk + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    return out


def self_check(W, clip):
    """The NumPy towers against open_clip's own outputs in the shared golden folder (image tower on the APM
    golden's preprocessed pixels; text tower cut at the penultimate block, the enhancer golden)."""
    pre = np.load(os.path.join(clip, 'apm_image', 'preprocessed.npy'))
    pooled = np.load(os.path.join(clip, 'apm_image', 'pooled.npy'))
    err_i = max(np.abs(encode_image(W, pre[i], 4) - pooled[i]).max() for i in range(len(pre)))
    ids = np.load(os.path.join(clip, 'enh_text', 'ids.npy'))
    z = np.load(os.path.join(clip, 'enh_text', 'z.npy'))
    err_t = 0.0
    for b in range(2):
        x = W['token_embedding.weight'][ids[b]] + W['positional_embedding'][: ids.shape[1]]
        for l in range(count(W, 'transformer.resblocks.') - 1):
            x = resblock(x, W, f'transformer.resblocks.{l}.', 4, True)
        err_t = max(err_t, np.abs(layer_norm(x, W['ln_final.weight'], W['ln_final.bias']) - z[b]).max())
    print(f'self-check vs open_clip goldens: image tower max abs {err_i:.2e}, text (penultimate) {err_t:.2e}')
    assert err_i < 1e-5 and err_t < 1e-5, 'the NumPy reference disagrees with open_clip'
    return float(err_i), float(err_t)


def main():
    clip = os.path.join(SHARED, 'golden', 'clip')
    if not os.path.exists(os.path.join(clip, 'openclip_tiny.safetensors')):
        sys.exit(f'{clip}/openclip_tiny.safetensors not found (set ST2V_SHARED)')
    W = {k: v.astype(np.float64) for k, v in load_file(os.path.join(clip, 'openclip_tiny.safetensors')).items()}
    cfg = json.load(open(os.path.join(clip, 'manifest.json')))['tiny_openclip_config']
    check = self_check(W, clip)
    text_heads = cfg['text_cfg']['heads']
    vision_heads = cfg['vision_cfg']['width'] // cfg['vision_cfg']['head_width']
    size = cfg['vision_cfg']['image_size']
    ids = np.load(os.path.join(clip, 'tokens', 'openclip_ids.npy'))[PROMPTS].astype(np.int64)
    prompts = [json.load(open(os.path.join(clip, 'tokens', 'prompts.json')))[i] for i in PROMPTS]

    fa = frames(1, 2, 48, 64)  # upscaled: 64x48 -> 298x224, crop left 37
    fb = frames(2, 1, 240, 250)  # downscaled: 250x240 -> 233x224, crop left round(4.5) = 4 (half to even)
    crop_b = resize_crop(fb[0], size)
    pix = [preprocess(f, size) for f in list(fa) + list(fb)]
    text = np.stack([encode_text(W, r, text_heads) for r in ids])
    image = np.stack([encode_image(W, p, vision_heads) for p in pix])
    tn = text / np.linalg.norm(text, axis=1, keepdims=True)
    im = image / np.linalg.norm(image, axis=1, keepdims=True)
    scores = 100.0 * tn @ im.T  # [prompt, frame]

    os.makedirs(OUT, exist_ok=True)
    files = {
        'text_ids.npy': (ids, f'open_clip token ids of golden prompts {PROMPTS}: {prompts}'),
        'frames_a.npy': (fa, 'rgb24 frames [2, 48, 64, 3] (upscaled by the transform)'),
        'frames_b.npy': (fb, 'rgb24 frame [1, 240, 250, 3] (downscaled; center crop offset 4.5 -> 4)'),
        'crop_b.npy': (crop_b, 'frames_b[0] after Resize(224, BICUBIC) (Pillow) + CenterCrop(224), uint8 [224, 224, 3]'),
        'text_features.npy': (text.astype(np.float32), 'encode_text(text_ids) [3, embed], not normalised'),
        'image_features.npy': (image.astype(np.float32), 'encode_image(preprocess(frames_a[0], frames_a[1], frames_b[0])) [3, embed]'),
        'scores.npy': (scores, '100 * cos(text_features[p], image_features[f]) [prompt, frame], float64, raw'),
    }
    manifest = {
        'generator': 'tools/make_clip_score_golden.py (NumPy float64 reference of open_clip 2.24.0 inference)',
        'weights': 'golden/clip/openclip_tiny.safetensors',
        'versions': {'numpy': np.__version__, 'Pillow': PIL.__version__},
        'text_heads': text_heads,
        'vision_heads': vision_heads,
        'image_size': size,
        'self_check_max_abs_vs_open_clip': {'image_pooled': check[0], 'text_penultimate': check[1]},
        'files': {},
    }
    for name, (arr, desc) in files.items():
        np.save(os.path.join(OUT, name), arr)
        manifest['files'][name] = {'shape': list(arr.shape), 'dtype': str(arr.dtype), 'description': desc}
    with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    print('scores', scores)


if __name__ == '__main__':
    main()
