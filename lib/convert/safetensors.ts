/** Streaming safetensors writer (TypeScript side of `st2v convert`; the C++ reader validates what it writes). */
import fs from 'node:fs';
import { St2vError } from '../errors.js';
import { DTYPE_SIZE, type TorchDType, numelOf } from './torch.js';

export const SAFETENSORS_DTYPE: Record<TorchDType, string> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', f64: 'F64', i64: 'I64', i32: 'I32', i16: 'I16', i8: 'I8', u8: 'U8', bool: 'BOOL',
};

export interface TensorDecl {
  name: string;
  dtype: TorchDType;
  shape: number[];
}

/**
 * Declare every tensor up front (the header goes out first, padded so the data area is 8-byte aligned), then
 * `write()` the bytes of each tensor in declaration order, in pieces of any size. Only the piece being written is
 * held in memory.
 */
export class SafetensorsWriter {
  private fd: number;
  private pos: number;
  private sizes: number[];
  private cur = 0;
  private inCur = 0;
  readonly dataStart: number;
  readonly totalBytes: number;

  constructor(
    readonly path: string,
    readonly decls: TensorDecl[],
    metadata: Record<string, string> = {},
  ) {
    const header: Record<string, unknown> = {};
    if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
    let off = 0;
    const seen = new Set<string>();
    this.sizes = [];
    for (const d of decls) {
      if (seen.has(d.name) || d.name === '__metadata__') throw new RangeError(`safetensors writer: bad or duplicate tensor name '${d.name}'`);
      seen.add(d.name);
      const bytes = numelOf(d.shape) * DTYPE_SIZE[d.dtype];
      header[d.name] = { dtype: SAFETENSORS_DTYPE[d.dtype], shape: d.shape, data_offsets: [off, off + bytes] };
      this.sizes.push(bytes);
      off += bytes;
    }
    this.totalBytes = off;
    let json = JSON.stringify(header);
    while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
    const hb = Buffer.from(json, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hb.length));
    try {
      this.fd = fs.openSync(path, 'w');
      fs.writeSync(this.fd, len, 0, 8, 0);
      fs.writeSync(this.fd, hb, 0, hb.length, 8);
    } catch (err) {
      throw new St2vError(`${path}: cannot write (${(err as Error).message})`, 'ERR_IO', { cause: err });
    }
    this.pos = 8 + hb.length;
    this.dataStart = this.pos;
    this.skipEmpty();
  }

  private skipEmpty(): void {
    while (this.cur < this.sizes.length && this.inCur === this.sizes[this.cur]) {
      this.cur++;
      this.inCur = 0;
    }
  }

  /** Name of the tensor the next bytes belong to (undefined when all are written). */
  current(): string | undefined {
    return this.decls[this.cur]?.name;
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (this.cur >= this.sizes.length) throw new St2vError(`${this.path}: more data than declared`, 'ERR_INTERNAL');
      const n = Math.min(chunk.length - off, this.sizes[this.cur]! - this.inCur);
      const piece = chunk.subarray(off, off + n);
      await new Promise<void>((resolve, reject) =>
        fs.write(this.fd, piece, 0, piece.length, this.pos, (err, written) => {
          if (err || written !== piece.length)
            reject(new St2vError(`${this.path}: write failed while writing '${this.decls[this.cur]?.name}' (${err?.message ?? 'short write'})`, 'ERR_IO', { cause: err }));
          else resolve();
        }),
      );
      this.pos += n;
      this.inCur += n;
      off += n;
      this.skipEmpty();
    }
  }

  /** Checks that every declared byte was written and closes the file. */
  finish(): void {
    this.skipEmpty();
    const missing = this.cur < this.decls.length ? this.decls[this.cur]!.name : undefined;
    this.close();
    if (missing !== undefined) throw new St2vError(`${this.path}: tensor '${missing}' was not (fully) written`, 'ERR_INTERNAL');
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
