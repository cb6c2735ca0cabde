/** piscina worker: frame post-processing off the JS thread. Buffers come in and go out transferred. */
import { move } from 'piscina';
import { encodePng } from './png.js';
import { floatToUint8, resizeAndPad } from './resize.js';

export interface FramesTask {
  /** RGB uint8 (frames, height, width, 3), or [-1, 1] floats of the same layout. */
  data: Uint8Array | Float32Array;
  frames: number;
  width: number;
  height: number;
  /** Fit inside and black-pad to this size; null keeps the size. */
  resize: { width: number; height: number } | null;
}

export interface PngTask extends FramesTask {
  level: number;
}

function prepare(t: FramesTask): { data: Uint8Array; width: number; height: number } {
  let data = t.data instanceof Float32Array ? floatToUint8(t.data) : t.data;
  if (data.length !== t.frames * t.width * t.height * 3) {
    throw new RangeError(`Expected ${t.frames * t.width * t.height * 3} elements for data but received ${data.length}`);
  }
  let { width, height } = t;
  if (t.resize && (t.resize.width !== width || t.resize.height !== height)) {
    data = resizeAndPad(data, t.frames, width, height, t.resize.width, t.resize.height);
    width = t.resize.width;
    height = t.resize.height;
  }
  return { data, width, height };
}

/** float -> uint8 and resize/pad; returns the RGB uint8 frames (transferred). */
export function frames(t: FramesTask): unknown {
  const r = prepare(t);
  return move(r.data);
}

/** Same, then one PNG file per frame. */
export function png(t: PngTask): Uint8Array[] {
  const r = prepare(t);
  const size = r.width * r.height * 3;
  const out: Uint8Array[] = [];
  for (let f = 0; f < t.frames; f++) out.push(encodePng(r.data.subarray(f * size, (f + 1) * size), r.width, r.height, t.level));
  return out;
}
