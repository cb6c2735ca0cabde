/**
 * Frame post-processing kernels (run inside the piscina workers): float -> uint8, Pillow-exact bicubic resize of
 * RGB uint8 frames, and "fit then black-pad" as the official stage-3 pre-processing does
 * (256x256 -> PIL resize to fit (1280, 720) = 720x720 -> centred on a black 1280x720 canvas).
 */

/** Frames of [-1, 1] floats (n, h, w, 3) -> uint8 as the official `(x + 1) * 127.5`, rounded, clamped. */
export function floatToUint8(src: Float32Array, out = new Uint8Array(src.length)): Uint8Array {
  for (let i = 0; i < src.length; i++) {
    const v = Math.round((src[i]! + 1) * 127.5);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

function bicubic(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

interface Coeffs {
  ksize: number;
  /** [xmin, count] per output pixel. */
  bounds: Int32Array;
  /** Fixed-point weights (Pillow's normalize_coeffs_8bpc), ksize per output pixel. */
  k: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc (Resample.c) for the bicubic filter, support 2. */
function coeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = 2 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      ww += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x]! / ww : w[x]!;
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, k };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes one RGB uint8 frame (h, w, 3) like Pillow's `Image.resize((outW, outH), Image.BICUBIC)` on an RGB
 * image: horizontal pass into uint8, then vertical pass, fixed-point arithmetic — bit-identical to Pillow 9.
 */
export function resizeBicubicRgb(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  if (w === outW && h === outH) return src.slice();
  let cur = src;
  let cw = w;
  if (outW !== w) {
    const { ksize, bounds, k } = coeffs(w, outW);
    const tmp = new Uint8Array(h * outW * 3);
    const half = ONE / 2;
    for (let y = 0; y < h; y++) {
      const row = y * w * 3;
      const orow = y * outW * 3;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2]!;
        const n = bounds[xx * 2 + 1]!;
        const kb = xx * ksize;
        let s0 = half, s1 = half, s2 = half;
        for (let x = 0; x < n; x++) {
          const kv = k[kb + x]!;
          const p = row + (xmin + x) * 3;
          s0 += src[p]! * kv;
          s1 += src[p + 1]! * kv;
          s2 += src[p + 2]! * kv;
        }
        const o = orow + xx * 3;
        tmp[o] = clip8(s0);
        tmp[o + 1] = clip8(s1);
        tmp[o + 2] = clip8(s2);
      }
    }
    cur = tmp;
    cw = outW;
  }
  if (outH === h) return cur === src ? src.slice() : cur;
  const { ksize, bounds, k } = coeffs(h, outH);
  const out = new Uint8Array(outH * cw * 3);
  const half = ONE / 2;
  const stride = cw * 3;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]!;
    const n = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    const orow = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = half;
      for (let y = 0; y < n; y++) s += cur[(ymin + y) * stride + i]! * k[kb + y]!;
      out[orow + i] = clip8(s);
    }
  }
  return out;
}

/** Size of a w x h frame resized to fit inside (boxW, boxH), aspect kept (Pillow-style rounding). */
export function fitSize(w: number, h: number, boxW: number, boxH: number): { width: number; height: number } {
  const s = Math.min(boxW / w, boxH / h);
  return { width: Math.max(1, Math.round(w * s)), height: Math.max(1, Math.round(h * s)) };
}

/** Resizes each frame to fit (outW, outH) and centres it on a black canvas of exactly outW x outH. */
export function resizeAndPad(src: Uint8Array, frames: number, w: number, h: number, outW: number, outH: number): Uint8Array {
  const fit = fitSize(w, h, outW, outH);
  const left = Math.floor((outW - fit.width) / 2);
  const top = Math.floor((outH - fit.height) / 2);
  const out = new Uint8Array(frames * outW * outH * 3);
  const inFrame = w * h * 3;
  const outFrame = outW * outH * 3;
  for (let f = 0; f < frames; f++) {
    const r = resizeBicubicRgb(src.subarray(f * inFrame, (f + 1) * inFrame), w, h, fit.width, fit.height);
    for (let y = 0; y < fit.height; y++) {
      out.set(r.subarray(y * fit.width * 3, (y + 1) * fit.width * 3), f * outFrame + ((top + y) * outW + left) * 3);
    }
  }
  return out;
}
