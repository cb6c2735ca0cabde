// PyTorch checkpoint reader (no Python) against ../shared/fixtures/torch-pickle, plus the safe unpickler.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { St2vError } from '../../lib/errors.js';
import { BufferSource, unpickle } from '../../lib/convert/pickle.js';
import { TorchCheckpoint, numelOf, stateDict } from '../../lib/convert/torch.js';
import { decodeValues, f32BitsToBF16, f32BitsToF16, f16ToF32, bf16ToF32, convertChunk } from '../../lib/convert/dtype.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = process.env.ST2V_SHARED ?? path.join(root, '..', 'shared');
const fixtures = path.join(shared, 'fixtures', 'torch-pickle');
const haveFixtures = fs.existsSync(path.join(fixtures, 'expected.json'));
const ftest = haveFixtures ? test : test.skip;
if (!haveFixtures) console.log(`torch-pickle fixtures not found under ${fixtures} (set ST2V_SHARED): fixture tests skipped`);

const DT: Record<string, string> = { float32: 'f32', float16: 'f16', bfloat16: 'bf16', float64: 'f64', int64: 'i64', bool: 'bool' };

interface Expected { dtype: string; shape: number[]; values: (number | boolean)[] }

async function checkFile(t: import('ava').ExecutionContext, file: string) {
  const expected = JSON.parse(fs.readFileSync(path.join(fixtures, 'expected.json'), 'utf8')) as Record<string, Expected>;
  const ck = await TorchCheckpoint.open(path.join(fixtures, file));
  try {
    const sd = stateDict(ck.root);
    t.deepEqual(sd.map(([k]) => k), Object.keys(expected), `${file}: keys in order`);
    for (const [name, tensor] of sd) {
      const e = expected[name]!;
      t.is(tensor.dtype, DT[e.dtype], `${file}: ${name} dtype`);
      t.deepEqual(tensor.shape, e.shape, `${file}: ${name} shape`);
      const values = decodeValues(await ck.read(tensor), tensor.dtype);
      t.is(values.length, numelOf(e.shape));
      // Exact: every stored value is representable in a JS double.
      t.deepEqual(values, e.values.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v)), `${file}: ${name} values`);
    }
    return { ck, sd };
  } finally {
    ck.close();
  }
}

ftest('zip-format state dict: every tensor read exactly (views, offsets, shared storage, 0-d, empty)', async (t) => {
  const { ck, sd } = await checkFile(t, 'state_dict_zip.pt');
  t.is(ck.format, 'zip');
  const m = new Map(sd);
  // The three proj.* tensors share one storage.
  t.is(m.get('model.proj.weight_t')!.storage, m.get('model.proj.slice')!.storage);
  t.is(m.get('model.proj.full')!.storage, m.get('model.proj.slice')!.storage);
  t.deepEqual(m.get('model.proj.weight_t')!.stride, [1, 8]);
  t.is(m.get('model.proj.slice')!.offset, 17);
});

ftest('legacy (non-zip) torch.save: the same state dict read exactly', async (t) => {
  const { ck } = await checkFile(t, 'state_dict_legacy.pt');
  t.is(ck.format, 'legacy');
});

ftest('Lightning checkpoint: state_dict found inside the larger dict', async (t) => {
  const { ck } = await checkFile(t, 'lightning.ckpt');
  const r = ck.root as Map<string, unknown>;
  t.is(r.get('global_step'), 1200);
});

ftest('EXPECTED FAILURE - malicious: evil_global.pt is refused (ERR_UNSAFE naming the global) and nothing runs', async (t) => {
  const marker = '/tmp/st2v_pwned';
  const before = fs.existsSync(marker) ? fs.statSync(marker).mtimeMs : -1;
  const err = await t.throwsAsync(TorchCheckpoint.open(path.join(fixtures, 'evil_global.pt')));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_UNSAFE');
  t.regex(err!.message, /posix\.system/);
  t.regex(err!.message, /evil_global\.pt/);
  const after = fs.existsSync(marker) ? fs.statSync(marker).mtimeMs : -1;
  t.is(after, before, 'the marker file was not created or touched');
});

ftest('EXPECTED FAILURE - truncated.pt gives a clean ERR_FORMAT', async (t) => {
  const err = await t.throwsAsync(TorchCheckpoint.open(path.join(fixtures, 'truncated.pt')));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_FORMAT');
  t.regex(err!.message, /truncated\.pt/);
});

ftest('EXPECTED FAILURE - corrupt.pt gives a clean ERR_FORMAT', async (t) => {
  const err = await t.throwsAsync(TorchCheckpoint.open(path.join(fixtures, 'corrupt.pt')));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_FORMAT');
  t.regex(err!.message, /corrupt\.pt/);
});

test('EXPECTED FAILURE - truncated legacy file and a non-checkpoint give ERR_FORMAT; a missing file ERR_NOT_FOUND', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-pickle-'));
  try {
    if (haveFixtures) {
      const legacy = fs.readFileSync(path.join(fixtures, 'state_dict_legacy.pt'));
      for (const cut of [10, 600, 1500, legacy.length - 7]) {
        fs.writeFileSync(path.join(dir, 'cut.pt'), legacy.subarray(0, cut));
        const err = await t.throwsAsync(TorchCheckpoint.open(path.join(dir, 'cut.pt')));
        t.is((err as St2vError).code, 'ERR_FORMAT', `cut at ${cut}: ${err?.message}`);
      }
    }
    fs.writeFileSync(path.join(dir, 'text.pt'), 'hello world');
    const e2 = await t.throwsAsync(TorchCheckpoint.open(path.join(dir, 'text.pt')));
    t.is((e2 as St2vError).code, 'ERR_FORMAT');
    const e3 = await t.throwsAsync(TorchCheckpoint.open(path.join(dir, 'missing.pt')));
    t.is((e3 as St2vError).code, 'ERR_NOT_FOUND');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('unpickler: any non-allowed global is refused before it could run (GLOBAL and STACK_GLOBAL)', (t) => {
  const g = Buffer.from('\x80\x02cbuiltins\neval\nq\x00X\x04\x00\x00\x001+1q\x01\x85R.', 'latin1');
  const e1 = t.throws(() => unpickle(new BufferSource(g), { globals: new Map(), what: 'x' }));
  t.is((e1 as St2vError).code, 'ERR_UNSAFE');
  t.regex(e1!.message, /builtins\.eval/);
  // protocol 4 STACK_GLOBAL
  const sg = Buffer.from('\x80\x04\x8c\x02os\x8c\x06system\x93.', 'latin1');
  const e2 = t.throws(() => unpickle(new BufferSource(sg), { globals: new Map(), what: 'x' }));
  t.is((e2 as St2vError).code, 'ERR_UNSAFE');
  t.regex(e2!.message, /os\.system/);
});

test('unpickler: primitives, containers, memo, protocol 4 frames', (t) => {
  // pickle.dumps({'a': [1, -2, 3.5, 'x', b'yz', None, True, (1, 2), 2**70]}, protocol=4) built by hand.
  const parts: number[] = [];
  const push = (...b: (number | string)[]) => {
    for (const x of b) if (typeof x === 'string') for (const c of x) parts.push(c.charCodeAt(0));
    else parts.push(x);
  };
  push(0x80, 4, 0x7d, 0x94, 0x8c, 1, 'a', 0x94, 0x5d, 0x94, 0x28);
  push(0x4b, 1, 0x4a, 0xfe, 0xff, 0xff, 0xff, 0x47, 0x40, 0x0c, 0, 0, 0, 0, 0, 0);
  push(0x8c, 1, 'x', 0x43, 2, 'yz', 0x4e, 0x88, 0x4b, 1, 0x4b, 2, 0x86);
  push(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0x40); // 2**70
  push(0x65, 0x73, 0x2e);
  const v = unpickle(new BufferSource(Uint8Array.from(parts)), { globals: new Map(), what: 'x' }) as Map<string, unknown[]>;
  const a = v.get('a')!;
  t.is(a[0], 1);
  t.is(a[1], -2);
  t.is(a[2], 3.5);
  t.is(a[3], 'x');
  t.deepEqual(Array.from(a[4] as Uint8Array), [121, 122]);
  t.is(a[5], null);
  t.is(a[6], true);
  t.deepEqual([...(a[7] as unknown[])], [1, 2]);
  t.is(a[8], 2n ** 70n);
  // Garbage opcodes are a format error, not a crash.
  const bad = t.throws(() => unpickle(new BufferSource(Uint8Array.from([0x80, 2, 0xff])), { globals: new Map(), what: 'x' }));
  t.is((bad as St2vError).code, 'ERR_FORMAT');
});

test('a self-referencing pickle (list containing itself) unpickles and is walked without looping', (t) => {
  const p = Uint8Array.from([0x80, 2, 0x5d, 0x71, 0, 0x68, 0, 0x61, 0x2e]); // [] put0 get0 APPEND STOP
  const v = unpickle(new BufferSource(p), { globals: new Map(), what: 'x' }) as unknown[];
  t.is(v[0], v);
  t.deepEqual(stateDict(v), []);
});

test('dtype conversion: f32 -> f16 / bf16 round to nearest even, specials kept', (t) => {
  const bits = (f: number) => new Uint32Array(Float32Array.of(f).buffer)[0]!;
  t.is(f32BitsToF16(bits(1)), 0x3c00);
  t.is(f32BitsToF16(bits(-2)), 0xc000);
  t.is(f32BitsToF16(bits(65504)), 0x7bff);
  t.is(f32BitsToF16(bits(65520)), 0x7c00); // rounds to inf
  t.is(f32BitsToF16(bits(2 ** -24)), 0x0001); // smallest subnormal
  t.is(f32BitsToF16(bits(2 ** -25)), 0x0000); // tie -> even (0)
  t.is(f32BitsToF16(bits(1 + 2 ** -11)), 0x3c00); // tie -> even
  t.is(f32BitsToF16(bits(1 + 3 * 2 ** -11)), 0x3c02); // tie -> even (up)
  t.true(Number.isNaN(f16ToF32(f32BitsToF16(bits(NaN)))));
  t.is(f32BitsToBF16(bits(1)), 0x3f80);
  t.is(bf16ToF32(f32BitsToBF16(bits(1 + 2 ** -8))), 1); // tie -> even
  t.is(bf16ToF32(f32BitsToBF16(bits(1 + 3 * 2 ** -8))), 1 + 2 ** -6);
  t.true(Number.isNaN(bf16ToF32(f32BitsToBF16(bits(NaN)))));
  // Round trip of every finite f16 through f32.
  let bad = 0;
  for (let h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) === 0x7c00) continue;
    if (f32BitsToF16(bits(f16ToF32(h))) !== h) bad++;
  }
  t.is(bad, 0);
  const c = convertChunk(new Uint8Array(Float32Array.of(0.5, -3).buffer), 'f32', 'bf16');
  t.deepEqual(Array.from(new Uint16Array(c.buffer, c.byteOffset, 2)), [0x3f00, 0xc040]);
});
