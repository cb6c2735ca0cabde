// Randomised bad input for every runOp name (seeded, so a failure replays): valid calls with one thing mutated
// (a dim, a dtype, an input dropped or added, a param set to a wrong value) and wholly random calls. Every call
// must either resolve to a well-formed tensor or reject with a St2vError carrying a known code: never a crash, a
// plain TypeError or a hang. Afterwards the ops still compute correctly.
import test from 'ava';
import { ERROR_CODES, St2vError, callNative } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';
import type { NativeTensor } from '../../lib/native/binding.js';

const native = loadNative();

// mulberry32: small, seeded, good enough to pick cases.
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SEED = Number(process.env.ST2V_FUZZ_SEED ?? 20261127);
const CALLS = Number(process.env.ST2V_FUZZ_CALLS ?? 3000);
const rand = rng(SEED);
const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)]!;
const chance = (p: number): boolean => rand() < p;

const f32 = (shape: number[]): NativeTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rand() * 2 - 1;
  return { data: d, shape, dtype: 'f32' };
};

// One valid call per op (the shapes of ops.test.ts), the seeds of the mutations.
type Call = [string, unknown[], Record<string, unknown>];
const TEMPLATES: Array<() => Call> = [
  () => ['linear', [f32([2, 3]), f32([4, 3]), f32([4])], { act: 'silu' }],
  () => ['conv2d', [f32([2, 4, 5, 5]), f32([3, 4, 3, 3]), f32([3])], { stride: 2 }],
  () => ['conv2d', [f32([1, 4, 4, 4]), f32([3, 4, 1, 1])], {}],
  () => ['conv_temporal', [f32([4, 4, 2, 2]), f32([4, 4, 3, 1, 1]), f32([4])], { frames: 2 }],
  () => ['conv1d_same', [f32([1, 2, 4]), f32([3, 2, 3])], {}],
  () => ['group_norm', [f32([2, 4, 3, 3]), f32([4]), f32([4])], { groups: 2, frames: 2, silu: true }],
  () => ['layer_norm', [f32([2, 4]), f32([4]), f32([4])], { eps: 1e-6 }],
  () => ['attention', [f32([2, 3, 8]), f32([2, 5, 8]), f32([2, 5, 8])], { heads: 2 }],
  () => ['silu', [f32([3, 2])], {}],
  () => ['gelu', [f32([5])], {}],
  () => ['geglu', [f32([2, 4])], {}],
  () => ['add', [f32([2, 4, 3]), f32([3])], {}],
  () => ['add_', [f32([2, 3]), f32([2, 3])], {}],
  () => ['mul', [f32([2, 3]), f32([2, 3])], {}],
  () => ['axpby', [f32([4]), f32([4])], { a: 2, b: -1 }],
  () => ['scale', [f32([4])], { s: 0.5 }],
  () => ['concat', [f32([2, 3]), f32([2, 1])], { dim: 1 }],
  () => ['upsample_nearest2x', [f32([1, 2, 3, 3])], {}],
  () => ['timestep_embedding', [f32([3])], { dim: 6 }],
  () => ['gemm', [f32([3, 2]), f32([4, 3]), null, f32([2]), f32([2, 4])], { transA: true, transB: true, accumulate: true }],
];
const OPS = [...new Set(TEMPLATES.map((t) => t()[0]))];

const BAD_DIMS: unknown[] = [-1, 1.5, NaN, Infinity, 2 ** 31, 2 ** 40, 2 ** 53, '3', null];
const PARAM_KEYS = ['heads', 'frames', 'groups', 'eps', 'silu', 'dim', 'stride', 'padding', 'padTop', 'padRight', 's', 'a',
  'b', 'act', 'accumulate', 'transA', 'transB', 'alpha', 'scale', 'flipSinToCos', 'downscaleFreqShift', 'maxPeriod'];
const PARAM_VALUES: unknown[] = [0, 1, 2, 3, 4, -1, -7, 0.5, 1e9, 2 ** 31, 2 ** 20, NaN, Infinity, -Infinity, 'x', 'silu',
  'gelu', true, false, null, undefined, {}, [], 1e-300];

// A tensor-ish value: mostly a well-formed tensor of a random small shape, sometimes malformed.
function randomTensor(): unknown {
  const rank = Math.floor(rand() * 7);
  const shape: unknown[] = [];
  for (let i = 0; i < rank; i++) shape.push(chance(0.05) ? pick(BAD_DIMS) : pick([0, 1, 1, 2, 2, 3, 4, 5, 7, 8]));
  return tensorOf(shape);
}
function tensorOf(shape: unknown[]): unknown {
  const valid = shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0);
  let n = valid ? (shape as number[]).reduce((a, b) => a * b, 1) : Math.floor(rand() * 8);
  if (n > 4096) n = 7;
  if (chance(0.08)) n += pick([-1, 1]);
  n = Math.max(0, n);
  const kind = rand();
  if (kind < 0.7) return { data: new Float32Array(n).map(() => rand() - 0.5), shape, dtype: chance(0.95) ? 'f32' : pick(['f16', 'f64', 'nope', 7]) };
  if (kind < 0.8) return { data: new Uint16Array(n).fill(0x3c00), shape, dtype: pick(['f16', 'bf16', 'u8', undefined]) };
  if (kind < 0.85) return { data: new Int32Array(n), shape, dtype: pick(['i32', 'f32', undefined]) };
  if (kind < 0.9) return { data: new Float64Array(n), shape, dtype: pick(['f64', undefined]) };
  if (kind < 0.95) return { data: new Uint8Array(n), shape, dtype: pick(['u8', 'bool', 'f16']) };
  return pick([42, 'tensor', {}, { data: [1, 2], shape: [2] }, { data: new Float32Array(2), shape: '2' },
    { data: new Float32Array(2) }, { shape: [2] }, [new Float32Array(2)]]);
}
function randomParams(): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) p[pick(PARAM_KEYS)] = pick(PARAM_VALUES);
  return p;
}

// One valid call with one thing changed.
function mutate([name, inputs, params]: Call): Call {
  const ins = [...inputs];
  const ps = { ...params };
  const m = Math.floor(rand() * 7);
  if (m === 0 && ins.length) {  // one dim of one input
    const i = Math.floor(rand() * ins.length);
    const t = ins[i] as NativeTensor | null;
    if (t) {
      const shape: unknown[] = [...t.shape];
      if (shape.length && chance(0.8)) shape[Math.floor(rand() * shape.length)] = chance(0.7) ? pick([0, 1, 2, 3, 5, 6, 9]) : pick(BAD_DIMS);
      else shape.push(pick([1, 2, 3]));
      ins[i] = tensorOf(shape);
    }
  } else if (m === 1 && ins.length) {  // dtype of one input
    const i = Math.floor(rand() * ins.length);
    const t = ins[i] as NativeTensor | null;
    if (t) {
      const n = t.data.length;
      ins[i] = pick([
        { data: new Uint16Array(n).fill(0x3c00), shape: t.shape, dtype: 'f16' },
        { data: new Uint16Array(n).fill(0x3f80), shape: t.shape, dtype: 'bf16' },
        { data: new Int32Array(n), shape: t.shape, dtype: 'i32' },
        { data: new Float64Array(n), shape: t.shape, dtype: 'f64' },
        { data: t.data, shape: t.shape, dtype: 'bf16' },
      ]);
    }
  } else if (m === 2 && ins.length) {  // drop an input or put a hole in it
    const i = Math.floor(rand() * ins.length);
    if (chance(0.5)) ins.splice(i, 1);
    else ins[i] = pick([null, undefined]);
  } else if (m === 3) {  // an extra input
    ins.push(randomTensor());
  } else if (m === 4) {  // a param set to a wrong value
    ps[pick(PARAM_KEYS)] = pick(PARAM_VALUES);
  } else if (m === 5 && ins.length) {  // an input replaced by a random one
    ins[Math.floor(rand() * ins.length)] = randomTensor();
  }  // m === 6: the valid call as is
  return [name, ins, ps];
}

function randomCall(): Call {
  const name = chance(0.97) ? pick(OPS) : pick(['no_such_op', '', 'LINEAR', 'linear ']);
  const ins: unknown[] = [];
  for (let i = Math.floor(rand() * 6); i > 0; i--) ins.push(chance(0.9) ? randomTensor() : null);
  return [name, ins, randomParams()];
}

const TYPED = [Float32Array, Float64Array, Uint16Array, Int32Array, Int16Array, Int8Array, Uint8Array, BigInt64Array];
function wellFormed(y: NativeTensor): boolean {
  if (!y || !Array.isArray(y.shape) || !TYPED.some((T) => y.data instanceof T)) return false;
  if (!y.shape.every((d) => Number.isInteger(d) && d >= 0)) return false;
  return y.shape.reduce((a, b) => a * b, 1) === y.data.length;
}

test(`BAD CALL - ${CALLS} random and mutated runOp calls (seed ${SEED}) resolve or reject with a typed St2vError`, async (t) => {
  const codes = new Set<string>(ERROR_CODES);
  const ok = new Map<string, number>(), rejected = new Map<string, number>();
  const seen = new Set<string>();
  for (let i = 0; i < CALLS; i++) {
    const call = chance(0.6) ? mutate(pick(TEMPLATES)()) : randomCall();
    const [name, inputs, params] = call;
    const desc = () => `call ${i}: ${name}(${JSON.stringify(inputs.map((x) => (x && typeof x === 'object' && 'shape' in x ? { shape: (x as NativeTensor).shape, dtype: (x as NativeTensor).dtype, n: (x as NativeTensor).data?.length } : x)))}, ${JSON.stringify(params)})`;
    let y: NativeTensor | undefined;
    try {
      y = await callNative(() => native.runOp(name, inputs as NativeTensor[], params));
    } catch (e) {
      if (!(e instanceof St2vError) || !codes.has(e.code)) {
        t.fail(`${desc()} threw ${e instanceof St2vError ? `code ${e.code}` : String(e)}`);
        return;
      }
      rejected.set(name, (rejected.get(name) ?? 0) + 1);
      seen.add(e.code);
      continue;
    }
    if (!wellFormed(y)) {
      t.fail(`${desc()} resolved to a malformed tensor`);
      return;
    }
    ok.set(name, (ok.get(name) ?? 0) + 1);
  }
  // The fuzz reached every op both ways, and bad input met more than one kind of check.
  for (const name of OPS) {
    t.true((ok.get(name) ?? 0) > 0, `${name}: no call succeeded`);
    t.true((rejected.get(name) ?? 0) > 0, `${name}: no call was rejected`);
  }
  for (const code of ['ERR_INVALID_ARG', 'ERR_SHAPE_MISMATCH', 'ERR_DTYPE']) t.true(seen.has(code), `no ${code} seen`);
  t.log(`succeeded ${[...ok.values()].reduce((a, b) => a + b, 0)}, rejected ${[...rejected.values()].reduce((a, b) => a + b, 0)}; codes ${[...seen].join(', ')}`);

  // The ops still compute correctly afterwards: y = x W^T + b against a plain JS loop.
  const x = f32([3, 5]), w = f32([4, 5]), b = f32([4]);
  const y = await callNative(() => native.runOp('linear', [x, w, b], {}));
  let err = 0;
  for (let i = 0; i < 3; i++)
    for (let o = 0; o < 4; o++) {
      let acc = b.data[o] as number;
      for (let k = 0; k < 5; k++) acc += (x.data[i * 5 + k] as number) * (w.data[o * 5 + k] as number);
      err = Math.max(err, Math.abs((y.data[i * 4 + o] as number) - acc));
    }
  t.deepEqual(y.shape, [3, 4]);
  t.true(err <= 1e-5, `linear after the fuzz: max error ${err}`);
});
