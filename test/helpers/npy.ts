// Minimal .npy reader for the tests (NumPy format 1.0/2.0, little-endian f4 / f8 / i8 / i4 / u1, C order).
import fs from 'node:fs';

export interface Npy {
  data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
  shape: number[];
}

export function readNpy(file: string): Npy {
  const buf = fs.readFileSync(file);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.subarray(hstart, hstart + hlen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const body = buf.subarray(hstart + hlen);
  const ab = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  if (descr === '<f4') return { data: new Float32Array(ab), shape };
  if (descr === '<f8') return { data: new Float64Array(ab), shape };
  if (descr === '<i8') return { data: new BigInt64Array(ab), shape };
  if (descr === '<i4') return { data: new Int32Array(ab), shape };
  if (descr === '|u1') return { data: new Uint8Array(ab), shape };
  throw new Error(`${file}: unsupported dtype ${descr}`);
}
