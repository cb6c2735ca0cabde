/**
 * PyTorch checkpoints without Python: `torch.save` files in the zip format (torch >= 1.6, incl. zip64 for
 * > 4 GB archives, read with yauzl) and the legacy format (a run of pickles followed by raw storages).
 *
 * Opening a checkpoint unpickles only its object tree (data.pkl / the legacy main pickle) with the safe
 * unpickler; tensors become {@link TorchTensor} references (dtype, shape, strides, storage offset, storage)
 * and their bytes are read from the archive only when asked for, as a stream ({@link TorchCheckpoint.chunks}),
 * so converting a 25 GB checkpoint needs memory for one chunk, not for the checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import yauzl from 'yauzl';
import { St2vError } from '../errors.js';
import { type AllowedGlobal, BufferSource, type ByteSource, PyDict, PyTuple, unpickle } from './pickle.js';

export type TorchDType = 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';

export const DTYPE_SIZE: Record<TorchDType, number> = {
  f32: 4, f16: 2, bf16: 2, f64: 8, i64: 8, i32: 4, i16: 2, i8: 1, u8: 1, bool: 1,
};

const STORAGE_TYPES: Record<string, TorchDType> = {
  FloatStorage: 'f32', HalfStorage: 'f16', BFloat16Storage: 'bf16', DoubleStorage: 'f64', LongStorage: 'i64',
  IntStorage: 'i32', ShortStorage: 'i16', CharStorage: 'i8', ByteStorage: 'u8', BoolStorage: 'bool',
};
const TORCH_DTYPES: Record<string, TorchDType> = {
  float32: 'f32', float: 'f32', float16: 'f16', half: 'f16', bfloat16: 'bf16', float64: 'f64', double: 'f64',
  int64: 'i64', long: 'i64', int32: 'i32', int: 'i32', int16: 'i16', short: 'i16', int8: 'i8', uint8: 'u8', bool: 'bool',
};

/** A storage: `key` names its bytes in the archive; `numel` counts elements of `dtype`. */
export interface TorchStorage {
  readonly kind: 'storage';
  key: string;
  dtype: TorchDType;
  numel: number;
  /** Legacy format only: absolute file offset of the data (set when the storages are indexed). */
  fileOffset?: number;
}

export interface TorchTensor {
  readonly kind: 'tensor';
  storage: TorchStorage;
  /** In elements. */
  offset: number;
  shape: number[];
  stride: number[];
  dtype: TorchDType;
  requiresGrad: boolean;
}

export function isTensor(x: unknown): x is TorchTensor {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'tensor';
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** True when the tensor's elements are one dense row-major run of its storage. */
export function isContiguous(t: TorchTensor): boolean {
  let expect = 1;
  for (let i = t.shape.length - 1; i >= 0; --i) {
    if (t.shape[i] !== 1 && t.stride[i] !== expect) return false;
    expect *= t.shape[i]!;
  }
  return true;
}

function formatError(file: string, msg: string, cause?: unknown): St2vError {
  return new St2vError(`${file}: ${msg}`, 'ERR_FORMAT', cause === undefined ? undefined : { cause });
}

const asInt = (x: unknown, file: string, what: string): number => {
  if (typeof x === 'number' && Number.isSafeInteger(x)) return x;
  throw formatError(file, `${what} is not an integer`);
};
const asIntList = (x: unknown, file: string, what: string): number[] => {
  if (!Array.isArray(x)) throw formatError(file, `${what} is not a tuple`);
  return x.map((v, i) => asInt(v, file, `${what}[${i}]`));
};

/** The allow-list: exactly the globals a weights checkpoint needs; each one only builds data. */
function allowedGlobals(file: string): Map<string, AllowedGlobal> {
  const g = new Map<string, AllowedGlobal>();
  const add = (name: string, call: (args: unknown[]) => unknown) => g.set(name, { name, call });
  const rebuildTensor = (args: unknown[], v2: boolean): TorchTensor => {
    const [storage, offset, size, stride] = args;
    if (!(typeof storage === 'object' && storage !== null && (storage as TorchStorage).kind === 'storage'))
      throw formatError(file, '_rebuild_tensor: first argument is not a storage');
    const st = storage as TorchStorage;
    const shape = asIntList(size, file, 'tensor size');
    const strides = asIntList(stride, file, 'tensor stride');
    const off = asInt(offset, file, 'storage offset');
    if (shape.length !== strides.length) throw formatError(file, 'tensor size and stride differ in length');
    if (shape.some((d) => d < 0) || strides.some((s) => s < 0) || off < 0)
      throw formatError(file, 'negative tensor size, stride or offset');
    const n = numelOf(shape);
    if (n > 0) {
      let last = off;
      for (let i = 0; i < shape.length; ++i) last += (shape[i]! - 1) * strides[i]!;
      if (last >= st.numel)
        throw formatError(file, `tensor view (offset ${off}, size [${shape}], stride [${strides}]) exceeds its storage of ${st.numel} elements`);
    }
    return { kind: 'tensor', storage: st, offset: off, shape, stride: strides, dtype: st.dtype, requiresGrad: v2 ? args[4] === true : false };
  };
  add('torch._utils._rebuild_tensor_v2', (a) => rebuildTensor(a, true));
  add('torch._utils._rebuild_tensor', (a) => rebuildTensor(a, false));
  const rebuildParam = (a: unknown[]) => {
    if (!isTensor(a[0])) throw formatError(file, '_rebuild_parameter: argument is not a tensor');
    return a[0];
  };
  add('torch._utils._rebuild_parameter', rebuildParam);
  add('torch._utils._rebuild_parameter_with_state', rebuildParam);
  // Tensor subclasses (torch >= 2.x Parameter pickling): _rebuild_from_type_v2(func, type, args, state).
  add('torch._tensor._rebuild_from_type_v2', (a) => {
    const fn = a[0] as AllowedGlobal | undefined;
    const args = a[2];
    if (!fn || typeof fn.call !== 'function' || !Array.isArray(args)) throw formatError(file, 'bad _rebuild_from_type_v2');
    return fn.call(args as unknown[]);
  });
  add('torch.nn.parameter.Parameter', (a) => a[0]);
  add('torch.Tensor', (a) => a[0]);
  for (const [name, dtype] of Object.entries(STORAGE_TYPES))
    g.set(`torch.${name}`, {
      name: `torch.${name}`,
      tag: { storageDtype: dtype },
      call: () => {
        throw formatError(file, `torch.${name} may only appear as a storage type`);
      },
    });
  for (const [name, dtype] of Object.entries(TORCH_DTYPES)) add(`torch.${name}`, () => ({ torchDtype: dtype }));
  add('torch.Size', (a) => PyTuple.of2(Array.isArray(a[0]) ? (a[0] as unknown[]) : []));
  add('torch.device', (a) => String(a[0] ?? 'cpu'));
  add('collections.OrderedDict', (a) => {
    const d = new PyDict();
    if (Array.isArray(a[0])) for (const kv of a[0] as unknown[]) if (Array.isArray(kv)) d.set(kv[0], kv[1]);
    return d;
  });
  // Protocol 2 pickles bytes as _codecs.encode(str, 'latin1').
  add('_codecs.encode', (a) => {
    const s = a[0];
    const enc = String(a[1] ?? 'utf-8').toLowerCase();
    if (typeof s !== 'string') throw formatError(file, '_codecs.encode of a non-string');
    if (enc === 'latin1' || enc === 'latin-1' || enc === 'iso-8859-1') return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
    if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
    throw new St2vError(`${file}: _codecs.encode with encoding '${enc}' is not supported`, 'ERR_UNSUPPORTED');
  });
  add('builtins.set', (a) => new Set(Array.isArray(a[0]) ? (a[0] as unknown[]) : []));
  add('builtins.frozenset', (a) => new Set(Array.isArray(a[0]) ? (a[0] as unknown[]) : []));
  add('builtins.bytearray', (a) => (a[0] instanceof Uint8Array ? a[0] : new Uint8Array(0)));
  add('builtins.slice', (a) => ({ slice: [...a] }));
  add('__builtin__.set', (a) => new Set(Array.isArray(a[0]) ? (a[0] as unknown[]) : []));
  return g;
}

/** A storage type global (torch.FloatStorage ...) as resolved by the allow-list. */
function storageDtype(t: unknown, file: string): TorchDType {
  const tag = (t as AllowedGlobal | null)?.tag as { storageDtype?: TorchDType } | undefined;
  if (tag && typeof tag.storageDtype === 'string') return tag.storageDtype;
  const name = (t as AllowedGlobal | null)?.name;
  throw new St2vError(`${file}: unsupported storage type ${name ?? String(t)}`, 'ERR_UNSUPPORTED');
}

// ---------- byte sources ----------

/** A buffered, synchronous window over a file descriptor (for the legacy format's pickles). */
class FileSource implements ByteSource {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  private pos: number;
  constructor(private readonly fd: number, private readonly size: number, start: number, private readonly what: string) {
    this.pos = start;
  }
  private ensure(n: number): void {
    const rel = this.pos - this.bufStart;
    if (rel >= 0 && rel + n <= this.buf.length) return;
    if (this.pos + n > this.size) throw new St2vError(`${this.what}: unexpected end of file (truncated?)`, 'ERR_FORMAT');
    const want = Math.max(n, 1 << 20);
    const len = Math.min(want, this.size - this.pos);
    const b = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const r = fs.readSync(this.fd, b, got, len - got, this.pos + got);
      if (r <= 0) throw new St2vError(`${this.what}: read failed`, 'ERR_IO');
      got += r;
    }
    this.buf = b;
    this.bufStart = this.pos;
  }
  read(n: number): Uint8Array {
    this.ensure(n);
    const rel = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(rel, rel + n);
  }
  readByte(): number {
    return this.read(1)[0]!;
  }
  readLine(): Uint8Array {
    const parts: number[] = [];
    for (;;) {
      const c = this.readByte();
      if (c === 10) return Uint8Array.from(parts);
      parts.push(c);
      if (parts.length > 1 << 16) throw new St2vError(`${this.what}: line too long in pickle`, 'ERR_FORMAT');
    }
  }
  position(): number {
    return this.pos;
  }
}

// ---------- zip helpers (yauzl) ----------

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false }, (err, zf) => {
      if (err || !zf) reject(formatError(file, `not a readable zip archive (${err?.message ?? 'unknown error'})`, err));
      else resolve(zf);
    });
  });
}

function listEntries(zf: yauzl.ZipFile, file: string): Promise<Map<string, yauzl.Entry>> {
  return new Promise((resolve, reject) => {
    const m = new Map<string, yauzl.Entry>();
    zf.on('entry', (e: yauzl.Entry) => {
      m.set(e.fileName, e);
      zf.readEntry();
    });
    zf.on('end', () => resolve(m));
    zf.on('error', (err: Error) => reject(formatError(file, `corrupt zip archive (${err.message})`, err)));
    zf.readEntry();
  });
}

function entryStream(zf: yauzl.ZipFile, e: yauzl.Entry, file: string, start?: number, end?: number): Promise<NodeJS.ReadableStream> {
  return new Promise((resolve, reject) => {
    const opts: yauzl.ZipFileOptions = start !== undefined && end !== undefined ? { start, end } as yauzl.ZipFileOptions : ({} as yauzl.ZipFileOptions);
    zf.openReadStream(e, opts, (err, s) => {
      if (err || !s) reject(formatError(file, `cannot read ${e.fileName} (${err?.message ?? 'unknown error'})`, err));
      else resolve(s);
    });
  });
}

async function readEntry(zf: yauzl.ZipFile, e: yauzl.Entry, file: string): Promise<Buffer> {
  const s = await entryStream(zf, e, file);
  const parts: Buffer[] = [];
  try {
    for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  } catch (err) {
    throw formatError(file, `cannot read ${e.fileName} (${(err as Error).message})`, err);
  }
  const b = Buffer.concat(parts);
  if (zlib.crc32(b) >>> 0 !== e.crc32 >>> 0) throw formatError(file, `${e.fileName} is corrupt (CRC-32 mismatch)`);
  return b;
}

// ---------- the checkpoint ----------

export interface OpenOptions {
  /** Streamed chunk size in bytes (default 4 MiB). */
  chunkBytes?: number;
}

export class TorchCheckpoint {
  /** The unpickled object tree (dicts are PyDict, tensors TorchTensor). */
  root: unknown = null;
  format: 'zip' | 'legacy' = 'zip';
  private zf: yauzl.ZipFile | undefined;
  private entries = new Map<string, yauzl.Entry>();
  private prefix = '';
  private fd: number | undefined;
  private legacyStorages = new Map<string, TorchStorage>();

  private constructor(readonly file: string, private readonly chunkBytes: number) {}

  static async open(file: string, opts: OpenOptions = {}): Promise<TorchCheckpoint> {
    const ck = new TorchCheckpoint(file, opts.chunkBytes ?? 4 << 20);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'ERR_NOT_FOUND' : 'ERR_IO';
      throw new St2vError(`${file}: cannot open (${(err as Error).message})`, code, { cause: err });
    }
    const magic = Buffer.alloc(4);
    const n = fs.readSync(fd, magic, 0, 4, 0);
    const isZip = n === 4 && magic[0] === 0x50 && magic[1] === 0x4b && magic[2] === 0x03 && magic[3] === 0x04;
    try {
      if (isZip) {
        fs.closeSync(fd);
        await ck.openZip();
      } else if (n >= 2 && magic[0] === 0x80) {
        ck.fd = fd;
        ck.openLegacy();
      } else {
        fs.closeSync(fd);
        throw formatError(file, 'not a PyTorch checkpoint (neither a zip archive nor a pickle)');
      }
    } catch (err) {
      ck.close();
      throw err;
    }
    return ck;
  }

  close(): void {
    if (this.zf) this.zf.close();
    this.zf = undefined;
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private async openZip(): Promise<void> {
    this.format = 'zip';
    this.zf = await openZip(this.file);
    this.entries = await listEntries(this.zf, this.file);
    const pkl = [...this.entries.keys()].find((k) => k.endsWith('/data.pkl') && k.split('/').length === 2) ?? (this.entries.has('data.pkl') ? 'data.pkl' : undefined);
    if (!pkl) throw formatError(this.file, 'zip archive without data.pkl: not a torch.save file');
    this.prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
    const bo = this.entries.get(`${this.prefix}byteorder`);
    if (bo && bo.uncompressedSize < 16) {
      const order = (await readEntry(this.zf, bo, this.file)).toString('latin1').trim();
      if (order !== 'little') throw new St2vError(`${this.file}: ${order}-endian checkpoints are not supported`, 'ERR_UNSUPPORTED');
    }
    const bytes = await readEntry(this.zf, this.entries.get(pkl)!, this.file);
    const storages = new Map<string, TorchStorage>();
    this.root = unpickle(new BufferSource(bytes, 0, `${this.file}: ${pkl}`), {
      what: `${this.file} (${pkl})`,
      globals: allowedGlobals(this.file),
      persistentLoad: (pid) => {
        // ('storage', storage_type, key, location, numel)
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw formatError(this.file, 'unsupported persistent id');
        const key = String(pid[2]);
        const dtype = storageDtype(pid[1], this.file);
        const numel = asInt(pid[4], this.file, 'storage size');
        let st = storages.get(key);
        if (!st) {
          const entry = this.entries.get(`${this.prefix}data/${key}`);
          if (!entry) throw formatError(this.file, `storage ${key} is missing from the archive`);
          if (entry.uncompressedSize < numel * DTYPE_SIZE[dtype])
            throw formatError(this.file, `storage ${key} holds ${entry.uncompressedSize} bytes, ${numel * DTYPE_SIZE[dtype]} expected`);
          st = { kind: 'storage', key, dtype, numel };
          storages.set(key, st);
        }
        return st;
      },
    });
  }

  private openLegacy(): void {
    this.format = 'legacy';
    const fd = this.fd!;
    const size = fs.fstatSync(fd).size;
    const src = new FileSource(fd, size, 0, this.file);
    const plain = { what: `${this.file} (legacy header)`, globals: new Map<string, AllowedGlobal>() };
    const magic = unpickle(src, plain);
    if (String(magic) !== '119547037146038801333356')
      throw formatError(this.file, 'not a torch.save file (bad magic number)');
    const proto = unpickle(src, plain);
    if (proto !== 1001) throw new St2vError(`${this.file}: unsupported legacy protocol ${String(proto)}`, 'ERR_UNSUPPORTED');
    unpickle(src, plain); // sys_info
    const storages = this.legacyStorages;
    const views: { base: TorchStorage; offset: number; st: TorchStorage }[] = [];
    this.root = unpickle(src, {
      what: `${this.file} (legacy pickle)`,
      globals: allowedGlobals(this.file),
      persistentLoad: (pid) => {
        // ('storage', storage_type, root_key, location, numel, view_metadata)
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) throw formatError(this.file, 'unsupported persistent id');
        const dtype = storageDtype(pid[1], this.file);
        const key = String(pid[2]);
        const numel = asInt(pid[4], this.file, 'storage size');
        let base = storages.get(key);
        if (!base) {
          base = { kind: 'storage', key, dtype, numel };
          storages.set(key, base);
        }
        const view = pid[5];
        if (Array.isArray(view)) {
          const offset = asInt(view[1], this.file, 'view offset');
          const vsize = asInt(view[2], this.file, 'view size');
          const st: TorchStorage = { kind: 'storage', key, dtype, numel: vsize };
          views.push({ base, offset, st });
          return st;
        }
        return base;
      },
    });
    const keys = unpickle(src, { what: `${this.file} (legacy storage list)`, globals: new Map() });
    if (!Array.isArray(keys)) throw formatError(this.file, 'legacy storage key list is not a list');
    let pos = src.position();
    const hdr = Buffer.alloc(8);
    for (const k of keys) {
      const st = storages.get(String(k));
      if (!st) throw formatError(this.file, `legacy storage ${String(k)} is not referenced`);
      if (pos + 8 > size || fs.readSync(fd, hdr, 0, 8, pos) !== 8) throw formatError(this.file, 'unexpected end of file (truncated?)');
      const n = Number(hdr.readBigInt64LE(0));
      if (n !== st.numel) throw formatError(this.file, `legacy storage ${st.key}: ${n} elements stored, ${st.numel} expected`);
      st.fileOffset = pos + 8;
      pos += 8 + n * DTYPE_SIZE[st.dtype];
      if (pos > size) throw formatError(this.file, `legacy storage ${st.key} extends past the end of the file (truncated?)`);
    }
    for (const v of views) {
      if (v.base.fileOffset === undefined) throw formatError(this.file, `legacy storage ${v.base.key} has no data`);
      v.st.fileOffset = v.base.fileOffset + v.offset * DTYPE_SIZE[v.base.dtype];
    }
    for (const st of storages.values()) if (st.fileOffset === undefined) throw formatError(this.file, `legacy storage ${st.key} has no data`);
  }

  private dataStarts = new Map<yauzl.Entry, number>();
  /** Absolute offset of a stored entry's data (after its local header). */
  private entryDataStart(e: yauzl.Entry): number {
    const known = this.dataStarts.get(e);
    if (known !== undefined) return known;
    const h = Buffer.alloc(30);
    const fd = fs.openSync(this.file, 'r');
    try {
      if (fs.readSync(fd, h, 0, 30, e.relativeOffsetOfLocalHeader) !== 30 || h.readUInt32LE(0) !== 0x04034b50)
        throw formatError(this.file, `bad local header for ${e.fileName}`);
    } finally {
      fs.closeSync(fd);
    }
    const at = e.relativeOffsetOfLocalHeader + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (at + e.compressedSize > fs.statSync(this.file).size) throw formatError(this.file, `${e.fileName} extends past the end of the file (truncated?)`);
    this.dataStarts.set(e, at);
    return at;
  }

  /** Streams bytes [start, end) of a storage. */
  private async *storageBytes(st: TorchStorage, start: number, end: number): AsyncGenerator<Uint8Array> {
    if (end <= start) return;
    if (this.format === 'legacy') {
      const s = fs.createReadStream(this.file, { start: st.fileOffset! + start, end: st.fileOffset! + end - 1, highWaterMark: this.chunkBytes });
      let got = 0;
      try {
        for await (const c of s as AsyncIterable<Buffer>) {
          got += c.length;
          yield c;
        }
      } catch (err) {
        throw new St2vError(`${this.file}: read failed (${(err as Error).message})`, 'ERR_IO', { cause: err });
      }
      if (got !== end - start) throw formatError(this.file, `storage ${st.key}: unexpected end of file`);
      return;
    }
    const e = this.entries.get(`${this.prefix}data/${st.key}`)!;
    const whole = start === 0 && end === e.uncompressedSize;
    const compressed = e.compressionMethod !== 0;
    // Stored entries (what torch writes) are read straight from the file in large chunks; compressed ones
    // go through yauzl's inflating stream.
    const s = compressed
      ? await entryStream(this.zf!, e, this.file)
      : fs.createReadStream(this.file, { start: this.entryDataStart(e) + start, end: this.entryDataStart(e) + end - 1, highWaterMark: this.chunkBytes });
    let skip = compressed ? start : 0;
    let left = end - start;
    let crc = 0;
    try {
      for await (const c0 of s as AsyncIterable<Buffer>) {
        if (whole) crc = zlib.crc32(c0, crc);
        let c = c0;
        if (skip > 0) {
          const k = Math.min(skip, c.length);
          c = c.subarray(k);
          skip -= k;
        }
        if (c.length > left) c = c.subarray(0, left);
        if (c.length > 0) {
          left -= c.length;
          yield c;
        }
        if (left === 0 && !whole) break;
      }
    } catch (err) {
      throw formatError(this.file, `cannot read storage ${st.key} (${(err as Error).message})`, err);
    } finally {
      (s as unknown as { destroy?: () => void }).destroy?.();
    }
    if (left !== 0) throw formatError(this.file, `storage ${st.key}: unexpected end of data`);
    if (whole && crc >>> 0 !== e.crc32 >>> 0) throw formatError(this.file, `storage ${st.key} is corrupt (CRC-32 mismatch)`);
  }

  /**
   * The tensor's elements in row-major order, in its stored dtype, as a stream of chunks (each a whole
   * number of elements). Contiguous tensors stream straight from the archive; strided views read the span
   * they cover and gather it (bounded by that one tensor's storage span).
   */
  async *chunks(t: TorchTensor): AsyncGenerator<Uint8Array> {
    const esz = DTYPE_SIZE[t.dtype];
    const n = numelOf(t.shape);
    if (n === 0) return;
    if (isContiguous(t)) {
      let carry: Uint8Array | undefined;
      for await (const c of this.storageBytes(t.storage, t.offset * esz, (t.offset + n) * esz)) {
        let buf: Uint8Array = c;
        if (carry) {
          const m = new Uint8Array(carry.length + c.length);
          m.set(carry);
          m.set(c, carry.length);
          buf = m;
          carry = undefined;
        }
        const whole = buf.length - (buf.length % esz);
        if (whole < buf.length) carry = buf.slice(whole);
        if (whole > 0) yield buf.subarray(0, whole);
      }
      return;
    }
    let lo = t.offset;
    let hi = t.offset;
    for (let i = 0; i < t.shape.length; ++i) hi += (t.shape[i]! - 1) * t.stride[i]!;
    const span = Buffer.alloc((hi - lo + 1) * esz);
    let at = 0;
    for await (const c of this.storageBytes(t.storage, lo * esz, (hi + 1) * esz)) {
      span.set(c, at);
      at += c.length;
    }
    const out = new Uint8Array(n * esz);
    const idx = new Array<number>(t.shape.length).fill(0);
    for (let k = 0; k < n; ++k) {
      let e = 0;
      for (let d = 0; d < idx.length; ++d) e += idx[d]! * t.stride[d]!;
      const src = (t.offset + e - lo) * esz;
      out.set(span.subarray(src, src + esz), k * esz);
      for (let d = idx.length - 1; d >= 0; --d) {
        if (++idx[d]! < t.shape[d]!) break;
        idx[d] = 0;
      }
    }
    yield out;
  }

  /** The whole tensor (contiguous bytes in its stored dtype). For small tensors and tests. */
  async read(t: TorchTensor): Promise<Uint8Array> {
    const out = new Uint8Array(numelOf(t.shape) * DTYPE_SIZE[t.dtype]);
    let at = 0;
    for await (const c of this.chunks(t)) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * The state dict of a checkpoint: `state_dict` of a Lightning checkpoint (or `model` / `module` /
 * `state_dict_ema` when that is all there is), else the root itself; nested dicts are flattened with '.'.
 * Returns [name, tensor] pairs in file order.
 */
export function stateDict(root: unknown): [string, TorchTensor][] {
  let sd: unknown = root;
  if (sd instanceof Map) {
    for (const k of ['state_dict', 'model', 'module', 'model_state_dict']) {
      const v = sd.get(k);
      if (v instanceof Map && [...flattenTensors(v)].length > 0) {
        sd = v;
        break;
      }
    }
  }
  return [...flattenTensors(sd)];
}

/** Every tensor under a value (dicts and lists/tuples walked, names joined with '.'; cycles and depth > 64 skipped). */
export function* flattenTensors(v: unknown, prefix = '', seen = new Set<unknown>(), depth = 0): Generator<[string, TorchTensor]> {
  if (isTensor(v)) {
    yield [prefix, v];
    return;
  }
  if (depth > 64 || typeof v !== 'object' || v === null || seen.has(v)) return;
  seen.add(v);
  if (v instanceof Map) {
    for (const [k, x] of v) yield* flattenTensors(x, prefix ? `${prefix}.${String(k)}` : String(k), seen, depth + 1);
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; ++i) yield* flattenTensors(v[i], prefix ? `${prefix}.${i}` : String(i), seen, depth + 1);
  }
  seen.delete(v);
}

export { PyDict, PyTuple };
export const checkpointBasename = (f: string): string => path.basename(f);
