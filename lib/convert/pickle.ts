/**
 * A safe Python unpickler (protocols 0-5, the opcodes torch.save emits and the ones a state dict of plain
 * Python values can hold). Nothing is ever executed: a GLOBAL/STACK_GLOBAL resolves only against an
 * allow-list of pure data constructors given by the caller; any other global is refused at once with
 * St2vError ERR_UNSAFE naming it (before any REDUCE could call it). Malformed input -> ERR_FORMAT.
 *
 * Python values map to: None -> null, bool -> boolean, int -> number (bigint beyond 2^53), float -> number,
 * str -> string, bytes -> Uint8Array, list -> PyList (Array), tuple -> PyTuple, dict -> PyDict (Map),
 * set/frozenset -> Set. Results of allowed globals are whatever the caller's factory returns.
 */
import { St2vError } from '../errors.js';

/** A Python tuple (kept apart from lists so callers can tell them apart). */
export class PyTuple extends Array<unknown> {
  /** map/filter/slice of a tuple give plain arrays. */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
  static of2(items: unknown[]): PyTuple {
    const t = new PyTuple();
    for (const x of items) t.push(x);
    return t;
  }
}
/** A Python dict (insertion-ordered; keys are primitives). */
export class PyDict extends Map<unknown, unknown> {}

/** A global allowed by the caller: `call` is applied on REDUCE / NEWOBJ, `build` (optional) on BUILD. */
export interface AllowedGlobal {
  name: string;
  call(args: unknown[]): unknown;
  /** Caller data carried with the global (e.g. the dtype of a torch storage type). */
  tag?: unknown;
}

/** Byte input with synchronous reads (a Buffer, or a buffered file window). */
export interface ByteSource {
  /** Returns exactly n bytes or throws ERR_FORMAT (truncated). */
  read(n: number): Uint8Array;
  readByte(): number;
  /** Reads up to and excluding '\n', consuming it. */
  readLine(): Uint8Array;
  position(): number;
}

export class BufferSource implements ByteSource {
  private pos: number;
  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly what = 'pickle',
  ) {
    this.pos = start;
  }
  read(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.buf.length) throw truncated(this.what);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  readByte(): number {
    if (this.pos >= this.buf.length) throw truncated(this.what);
    return this.buf[this.pos++]!;
  }
  readLine(): Uint8Array {
    const i = this.buf.indexOf(10, this.pos);
    if (i < 0) throw truncated(this.what);
    const out = this.buf.subarray(this.pos, i);
    this.pos = i + 1;
    return out;
  }
  position(): number {
    return this.pos;
  }
}

function truncated(what: string): St2vError {
  return new St2vError(`${what}: unexpected end of data (truncated file?)`, 'ERR_FORMAT');
}

const MARK = Symbol('mark');
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface UnpickleOptions {
  /** Allowed globals by "module.name" (e.g. "collections.OrderedDict"). */
  globals: Map<string, AllowedGlobal>;
  /** Called for persistent ids (torch storages); refused when absent. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Name used in error messages (file and member). */
  what: string;
}

/** Unpickles one pickle from `src` (stops after STOP; the source stays positioned after it). */
export function unpickle(src: ByteSource, opts: UnpickleOptions): unknown {
  const what = opts.what;
  const fail = (msg: string): never => {
    throw new St2vError(`${what}: malformed pickle: ${msg} (at byte ${src.position()})`, 'ERR_FORMAT');
  };
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!);
  };
  const u32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0, true);
  const i32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(0, true);
  const u64 = (b: Uint8Array): number => {
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length too large');
    return Number(v);
  };
  const str = (b: Uint8Array): string => {
    try {
      return utf8.decode(b);
    } catch {
      return fail('invalid UTF-8 in a string');
    }
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; --i) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const resolveGlobal = (module: string, name: string): AllowedGlobal => {
    const full = `${module}.${name}`;
    const g = opts.globals.get(full);
    if (!g) {
      throw new St2vError(
        `${what}: refused to load: the pickle references the global '${full}', which is not on the allow-list ` +
          `of a weights checkpoint (nothing was executed)`,
        'ERR_UNSAFE',
      );
    }
    return g;
  };
  const isGlobal = (x: unknown): x is AllowedGlobal =>
    typeof x === 'object' && x !== null && (x as { __global?: boolean }).__global === true;
  const wrapGlobal = (g: AllowedGlobal): AllowedGlobal & { __global: true } => ({ ...g, __global: true });
  const call = (fn: unknown, args: unknown): unknown => {
    if (!isGlobal(fn)) fail('REDUCE/NEWOBJ on a value that is not an allowed global');
    if (!Array.isArray(args)) fail('REDUCE arguments are not a tuple');
    return (fn as AllowedGlobal).call(args as unknown[]);
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (kv.length % 2 !== 0) fail('odd number of items for SETITEMS');
    if (!(d instanceof Map)) fail('SETITEM(S) on a value that is not a dict');
    for (let i = 0; i < kv.length; i += 2) {
      const k = kv[i];
      if (typeof k === 'object' && k !== null && !(k instanceof PyTuple)) fail('unhashable dict key');
      (d as Map<unknown, unknown>).set(k, kv[i + 1]);
    }
  };
  const appendItems = (l: unknown, items: unknown[]) => {
    if (Array.isArray(l) && !(l instanceof PyTuple)) (l as unknown[]).push(...items);
    else if (l instanceof Set) for (const x of items) l.add(x);
    else fail('APPEND(S) on a value that is not a list');
  };
  const floatLine = (b: Uint8Array) => {
    const s = latin1.decode(b).trim();
    const v = Number(s);
    if (s === '' || (Number.isNaN(v) && s.toLowerCase() !== 'nan')) fail(`bad float literal '${s}'`);
    return v;
  };
  const intLine = (b: Uint8Array): unknown => {
    let s = latin1.decode(b).trim();
    if (s === '00') return false;
    if (s === '01') return true;
    if (s.endsWith('L')) s = s.slice(0, -1);
    if (!/^[-+]?\d+$/.test(s)) fail(`bad int literal '${s}'`);
    const v = BigInt(s);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const stringLine = (b: Uint8Array): Uint8Array => {
    // repr() of a str in protocol 0: quoted, with Python escapes. Only simple cases are needed here.
    const s = latin1.decode(b);
    if (s.length < 2 || (s[0] !== "'" && s[0] !== '"') || s[s.length - 1] !== s[0]) fail('bad STRING literal');
    const body = s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) => {
      if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
      return ({ n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
    });
    return Uint8Array.from(body, (c) => c.charCodeAt(0) & 0xff);
  };

  for (;;) {
    const op = src.readByte();
    switch (op) {
      case 0x80: // PROTO
        if (src.readByte() > 5) fail('unsupported protocol');
        break;
      case 0x95: // FRAME
        src.read(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4b: // BININT1
        stack.push(src.readByte());
        break;
      case 0x4d: {
        // BININT2
        const b = src.read(2);
        stack.push(b[0]! | (b[1]! << 8));
        break;
      }
      case 0x4a: // BININT
        stack.push(i32(src.read(4)));
        break;
      case 0x8a: // LONG1
        stack.push(longFrom(src.read(src.readByte())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32(src.read(4));
        if (n < 0) fail('negative LONG4 length');
        stack.push(longFrom(src.read(n)));
        break;
      }
      case 0x49: // INT
        stack.push(intLine(src.readLine()));
        break;
      case 0x4c: // LONG
        stack.push(intLine(src.readLine()));
        break;
      case 0x47: // BINFLOAT
        stack.push(new DataView(src.read(8).slice().buffer).getFloat64(0, false));
        break;
      case 0x46: // FLOAT
        stack.push(floatLine(src.readLine()));
        break;
      case 0x58: // BINUNICODE
        stack.push(str(src.read(u32(src.read(4)))));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(src.read(src.readByte())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(src.read(u64(src.read(8)))));
        break;
      case 0x56: // UNICODE (raw-unicode-escape line)
        stack.push(latin1.decode(src.readLine()).replace(/\\u([0-9a-fA-F]{4})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x54: {
        // BINSTRING (py2 str -> bytes)
        const n = i32(src.read(4));
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1.decode(src.read(n)));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(src.read(src.readByte())));
        break;
      case 0x53: // STRING
        stack.push(latin1.decode(stringLine(src.readLine())));
        break;
      case 0x42: // BINBYTES
        stack.push(src.read(u32(src.read(4))).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(src.read(src.readByte()).slice());
        break;
      case 0x8e: // BINBYTES8
        stack.push(src.read(u64(src.read(8))).slice());
        break;
      case 0x96: // BYTEARRAY8
        stack.push(src.read(u64(src.read(8))).slice());
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple());
        break;
      case 0x85: // TUPLE1
        stack.push(PyTuple.of2([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(PyTuple.of2([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(PyTuple.of2([a, b, c]));
        break;
      }
      case 0x74: // TUPLE
        stack.push(PyTuple.of2(popMark()));
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS on a value that is not a set');
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x71: // BINPUT
        memo.set(src.readByte(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(src.read(4)), top());
        break;
      case 0x70: // PUT
        memo.set(Number(intLine(src.readLine())), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const k = op === 0x68 ? src.readByte() : op === 0x6a ? u32(src.read(4)) : Number(intLine(src.readLine()));
        if (!memo.has(k)) fail(`memo key ${k} not defined`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = latin1.decode(src.readLine());
        const name = latin1.decode(src.readLine());
        stack.push(wrapGlobal(resolveGlobal(module, name)));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(wrapGlobal(resolveGlobal(module as string, name as string)));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = pop();
        const b = (obj as { __build?: (s: unknown) => unknown } | null)?.__build;
        if (typeof b === 'function') stack.push(b.call(obj, state));
        else if (obj instanceof Map && (state === null || state instanceof Map)) stack.push(obj);
        else fail('BUILD on an object that does not accept state');
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) fail('persistent id without a loader');
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID
        const pid = latin1.decode(src.readLine());
        if (!opts.persistentLoad) fail('persistent id without a loader');
        stack.push(opts.persistentLoad!(pid));
        break;
      }
      case 0x69: // INST: module\nname\n, then args from the mark
      case 0x6f: // OBJ
        fail('INST/OBJ opcodes (old-style class instances) are not supported');
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        fail('extension registry opcodes are not supported');
        break;
      case 0x97: // NEXT_BUFFER
      case 0x98: // READONLY_BUFFER
        fail('out-of-band buffers are not supported');
        break;
      default:
        fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
