/**
 * A streaming writer of `torch.save` zip checkpoints (protocol-2 pickle + stored zip entries, zip64 when an entry
 * or offset passes 4 GiB), as torch >= 1.6 writes them. Used to make test / bench checkpoints of any size without
 * Python and without holding them in memory: each storage's bytes come from a generator.
 *
 *   await writeTorchCheckpoint(file, [{name, dtype, shape, data: () => chunks}], {lightning: true})
 */
import fs from 'node:fs';
import zlib from 'node:zlib';
import { DTYPE_SIZE, type TorchDType, numelOf } from './torch.js';

export interface TorchWriteTensor {
  name: string;
  dtype: TorchDType;
  shape: number[];
  /** The contiguous bytes (whole tensor), in any number of chunks. */
  data: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
}

const STORAGE_NAME: Record<TorchDType, string> = {
  f32: 'FloatStorage', f16: 'HalfStorage', bf16: 'BFloat16Storage', f64: 'DoubleStorage', i64: 'LongStorage',
  i32: 'IntStorage', i16: 'ShortStorage', i8: 'CharStorage', u8: 'ByteStorage', bool: 'BoolStorage',
};

class PickleOut {
  parts: number[] = [];
  byte(...b: number[]) {
    this.parts.push(...b);
  }
  u32(n: number) {
    this.byte(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.byte(0x58);
    this.u32(b.length);
    this.byte(...b);
  }
  int(n: number) {
    if (n >= 0 && n < 256) this.byte(0x4b, n);
    else if (n >= 0 && n < 65536) this.byte(0x4d, n & 0xff, n >> 8);
    else if (n >= -(2 ** 31) && n < 2 ** 31) {
      this.byte(0x4a);
      this.u32(n >>> 0);
    } else {
      // LONG1, little-endian two's complement
      let v = BigInt(n);
      const bytes: number[] = [];
      for (let i = 0; i < 8; ++i) {
        bytes.push(Number(v & 0xffn));
        v >>= 8n;
      }
      this.byte(0x8a, 8, ...bytes);
    }
  }
  global(mod: string, name: string) {
    this.byte(0x63, ...Buffer.from(`${mod}\n${name}\n`, 'latin1'));
  }
  tuple(items: (() => void)[]) {
    this.byte(0x28);
    items.forEach((f) => f());
    this.byte(0x74);
  }
}

function buildPickle(tensors: TorchWriteTensor[], lightning: boolean): Buffer {
  const p = new PickleOut();
  p.byte(0x80, 2);
  if (lightning) {
    p.byte(0x7d, 0x28); // EMPTY_DICT, MARK
    p.str('epoch');
    p.int(1);
    p.str('global_step');
    p.int(100);
    p.str('state_dict');
  }
  p.global('collections', 'OrderedDict');
  p.byte(0x29, 0x52); // () REDUCE
  p.byte(0x28); // MARK
  tensors.forEach((t, i) => {
    const n = numelOf(t.shape);
    p.str(t.name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.byte(0x28); // args MARK
    p.tuple([() => p.str('storage'), () => p.global('torch', STORAGE_NAME[t.dtype]), () => p.str(String(i)), () => p.str('cpu'), () => p.int(n)]);
    p.byte(0x51); // BINPERSID
    p.int(0);
    const stride: number[] = [];
    let s = 1;
    for (let d = t.shape.length - 1; d >= 0; --d) {
      stride[d] = s;
      s *= t.shape[d]!;
    }
    p.tuple(t.shape.map((d) => () => p.int(d)));
    p.tuple(stride.map((d) => () => p.int(d)));
    p.byte(0x89); // False
    p.global('collections', 'OrderedDict');
    p.byte(0x29, 0x52);
    p.byte(0x74, 0x52); // TUPLE, REDUCE
  });
  p.byte(0x75); // SETITEMS
  if (lightning) p.byte(0x75); // SETITEMS of the outer dict
  p.byte(0x2e);
  return Buffer.from(p.parts);
}

interface CentralEntry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

export interface TorchWriteOptions {
  /** Wrap the state dict as a Lightning checkpoint {epoch, global_step, state_dict}. */
  lightning?: boolean;
  /** Archive folder name (default 'archive'). */
  archiveName?: string;
}

/** Writes the checkpoint; returns its size in bytes. */
export async function writeTorchCheckpoint(file: string, tensors: TorchWriteTensor[], opts: TorchWriteOptions = {}): Promise<number> {
  const arch = opts.archiveName ?? 'archive';
  const fd = fs.openSync(file, 'w');
  let pos = 0;
  const central: CentralEntry[] = [];
  const write = (b: Uint8Array, at = pos) =>
    new Promise<void>((resolve, reject) => fs.write(fd, b, 0, b.length, at, (err) => (err ? reject(err) : resolve())));

  const LOCAL_LEN = 30;
  const ZIP64_EXTRA = 20; // id, len, usize, csize
  const entry = async (name: string, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number) => {
    const nb = Buffer.from(name, 'utf8');
    const offset = pos;
    const local = Buffer.alloc(LOCAL_LEN + nb.length + ZIP64_EXTRA);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4); // version needed (zip64)
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0, 10); // time/date
    local.writeUInt32LE(0, 14); // crc: patched below
    local.writeUInt32LE(0xffffffff, 18);
    local.writeUInt32LE(0xffffffff, 22);
    local.writeUInt16LE(nb.length, 26);
    local.writeUInt16LE(ZIP64_EXTRA, 28);
    nb.copy(local, LOCAL_LEN);
    local.writeUInt16LE(0x0001, LOCAL_LEN + nb.length);
    local.writeUInt16LE(16, LOCAL_LEN + nb.length + 2);
    local.writeBigUInt64LE(BigInt(size), LOCAL_LEN + nb.length + 4);
    local.writeBigUInt64LE(BigInt(size), LOCAL_LEN + nb.length + 12);
    await write(local);
    pos += local.length;
    let crc = 0;
    let got = 0;
    for await (const c of chunks) {
      crc = zlib.crc32(c, crc);
      await write(c);
      pos += c.length;
      got += c.length;
    }
    if (got !== size) throw new Error(`writeTorchCheckpoint: ${name}: ${got} bytes written, ${size} declared`);
    const cb = Buffer.alloc(4);
    cb.writeUInt32LE(crc >>> 0);
    await write(cb, offset + 14);
    central.push({ name: nb, crc: crc >>> 0, size, offset });
  };

  try {
    const pkl = buildPickle(tensors, Boolean(opts.lightning));
    await entry(`${arch}/data.pkl`, [pkl], pkl.length);
    for (let i = 0; i < tensors.length; ++i) {
      const t = tensors[i]!;
      await entry(`${arch}/data/${i}`, t.data(), numelOf(t.shape) * DTYPE_SIZE[t.dtype]);
    }
    await entry(`${arch}/version`, [Buffer.from('3\n')], 2);
    // Central directory (always with zip64 extra: sizes + offset).
    const cdStart = pos;
    for (const e of central) {
      const c = Buffer.alloc(46 + e.name.length + 28);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE(45, 4);
      c.writeUInt16LE(45, 6);
      c.writeUInt16LE(0, 8);
      c.writeUInt16LE(0, 10);
      c.writeUInt32LE(0, 12);
      c.writeUInt32LE(e.crc, 16);
      c.writeUInt32LE(0xffffffff, 20);
      c.writeUInt32LE(0xffffffff, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt16LE(28, 30); // extra length
      c.writeUInt16LE(0, 32);
      c.writeUInt16LE(0, 34);
      c.writeUInt16LE(0, 36);
      c.writeUInt32LE(0, 38);
      c.writeUInt32LE(0xffffffff, 42);
      e.name.copy(c, 46);
      const x = 46 + e.name.length;
      c.writeUInt16LE(0x0001, x);
      c.writeUInt16LE(24, x + 2);
      c.writeBigUInt64LE(BigInt(e.size), x + 4);
      c.writeBigUInt64LE(BigInt(e.size), x + 12);
      c.writeBigUInt64LE(BigInt(e.offset), x + 20);
      await write(c);
      pos += c.length;
    }
    const cdSize = pos - cdStart;
    // zip64 end of central directory record + locator, then the classic end record.
    const z64 = Buffer.alloc(56);
    z64.writeUInt32LE(0x06064b50, 0);
    z64.writeBigUInt64LE(44n, 4);
    z64.writeUInt16LE(45, 12);
    z64.writeUInt16LE(45, 14);
    z64.writeUInt32LE(0, 16);
    z64.writeUInt32LE(0, 20);
    z64.writeBigUInt64LE(BigInt(central.length), 24);
    z64.writeBigUInt64LE(BigInt(central.length), 32);
    z64.writeBigUInt64LE(BigInt(cdSize), 40);
    z64.writeBigUInt64LE(BigInt(cdStart), 48);
    const z64At = pos;
    await write(z64);
    pos += z64.length;
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeUInt32LE(0, 4);
    loc.writeBigUInt64LE(BigInt(z64At), 8);
    loc.writeUInt32LE(1, 16);
    await write(loc);
    pos += loc.length;
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(0xffff, 8);
    end.writeUInt16LE(0xffff, 10);
    end.writeUInt32LE(0xffffffff, 12);
    end.writeUInt32LE(0xffffffff, 16);
    end.writeUInt16LE(0, 20);
    await write(end);
    pos += end.length;
  } finally {
    fs.closeSync(fd);
  }
  return pos;
}
