/**
 * Element conversions for conversion output (little-endian byte buffers in, byte buffers out).
 * f32 -> f16 / bf16 round to nearest even (as torch's .half() / .bfloat16()); NaN stays NaN, overflow -> inf.
 */
import type { TorchDType } from './torch.js';

export const FLOAT_DTYPES = new Set<TorchDType>(['f32', 'f16', 'bf16', 'f64']);

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function bf16ToF32(b: number): number {
  u32buf[0] = b << 16;
  return f32buf[0]!;
}

/** f32 bits -> f16 bits, round to nearest even. */
export function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && r & 1)) r += 1;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r += 1; // may carry into the exponent (correct: to inf)
  return sign | r;
}

/** f32 bits -> bf16 bits, round to nearest even. */
export function f32BitsToBF16(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

function view<T>(b: Uint8Array, C: { new (buf: ArrayBufferLike, off: number, len: number): T; BYTES_PER_ELEMENT: number }): T {
  if (b.byteOffset % C.BYTES_PER_ELEMENT === 0) return new C(b.buffer, b.byteOffset, b.byteLength / C.BYTES_PER_ELEMENT);
  const c = b.slice();
  return new C(c.buffer, 0, c.byteLength / C.BYTES_PER_ELEMENT);
}

/** Values of a float buffer as f32 bits (Uint32Array). */
function toF32Bits(src: Uint8Array, from: TorchDType): Uint32Array {
  if (from === 'f32') return view(src, Uint32Array);
  if (from === 'f64') {
    const d = view(src, Float64Array);
    const f = Float32Array.from(d);
    return new Uint32Array(f.buffer);
  }
  const h = view(src, Uint16Array);
  const out = new Uint32Array(h.length);
  if (from === 'bf16') for (let i = 0; i < h.length; ++i) out[i] = h[i]! << 16;
  else {
    const f = new Float32Array(out.buffer);
    for (let i = 0; i < h.length; ++i) f[i] = f16ToF32(h[i]!);
  }
  return out;
}

/** Converts a chunk of whole elements between float dtypes (same dtype: returned as is). */
export function convertChunk(src: Uint8Array, from: TorchDType, to: TorchDType): Uint8Array {
  if (from === to) return src;
  if (!FLOAT_DTYPES.has(from) || !FLOAT_DTYPES.has(to)) throw new Error(`convertChunk: ${from} -> ${to} is not a float conversion`);
  const bits = toF32Bits(src, from);
  if (to === 'f32') return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
  if (to === 'f64') {
    const f = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
    return new Uint8Array(Float64Array.from(f).buffer);
  }
  const out = new Uint16Array(bits.length);
  if (to === 'bf16') for (let i = 0; i < bits.length; ++i) out[i] = f32BitsToBF16(bits[i]!);
  else for (let i = 0; i < bits.length; ++i) out[i] = f32BitsToF16(bits[i]!);
  return new Uint8Array(out.buffer);
}

/** Decodes a buffer to JS numbers (bigints for i64 beyond 2^53 become numbers, bool -> 0/1). */
export function decodeValues(src: Uint8Array, dtype: TorchDType): number[] {
  switch (dtype) {
    case 'f32': return Array.from(view(src, Float32Array));
    case 'f64': return Array.from(view(src, Float64Array));
    case 'f16': return Array.from(view(src, Uint16Array), f16ToF32);
    case 'bf16': return Array.from(view(src, Uint16Array), bf16ToF32);
    case 'i64': return Array.from(view(src, BigInt64Array), Number);
    case 'i32': return Array.from(view(src, Int32Array));
    case 'i16': return Array.from(view(src, Int16Array));
    case 'i8': return Array.from(view(src, Int8Array));
    case 'u8': return Array.from(src);
    case 'bool': return Array.from(src, (b) => (b ? 1 : 0));
  }
}
