// Runtime bindings (PyTorch-compatible generator, Python random, sampler schedules, randomized blending)
// against $ST2V_SHARED/golden/{randn,samplers,st2v}; bad arguments reject with St2vError.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { St2vError, callNative, callNativeSync } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';
import type { NativeTensor } from '../../lib/native/binding.js';
import { readNpy } from '../helpers/npy.js';

interface RuntimeNative {
  torchRandom(seed: number | bigint, draws: Array<{ op: 'randn' | 'rand'; shape: number[] }>, path?: 'avx2' | 'default'): Promise<NativeTensor[]>;
  pyRandint(seed: number, a: number, b: number, count: number): number[];
  samplerSchedule(kind: 'ddim' | 'dpmpp' | 'enhancer', steps: number): { timesteps: number[]; sigmas: number[] };
  randomizedBlend(chunks: NativeTensor, seamOffsets: number[], chunk?: number, overlap?: number): Promise<NativeTensor>;
}
const native = loadNative() as unknown as RuntimeNative;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const golden = path.resolve(root, process.env.ST2V_SHARED ?? '../shared', 'golden');

function bitsDiffer(a: Float32Array, b: Float32Array): number {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (x[i] !== y[i]) n++;
  return n;
}
const have = (sub: string): boolean => fs.existsSync(path.join(golden, sub));

test('torchRandom reproduces torch randn/rand sequences bit for bit (avx2 and default kernels)', async (t) => {
  if (!have('randn')) {
    t.log(`SKIP: ${golden}/randn not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const names = ['0_randn_1x4x16x32x32', '1_randn_16x4x32x32', '2_randn_7', '3_randn_3x5', '4_rand_10'];
  for (const [p, dir] of [['avx2', 'seq'], ['default', 'seq_default']] as const) {
    for (const seed of [0, 33, 12345]) {
      const draws = names.map((n) => {
        const [, op = '', dims = ''] = n.split('_');
        return { op: op as 'randn' | 'rand', shape: dims.split('x').map(Number) };
      });
      const got = await native.torchRandom(seed, draws, p);
      t.is(got.length, names.length);
      names.forEach((n, i) => {
        const ref = readNpy(path.join(golden, 'randn', dir, `seed${seed}_${n}.npy`));
        const g = got[i];
        if (!g) return void t.fail(`missing draw ${i}`);
        t.deepEqual(g.shape, ref.shape);
        t.is(bitsDiffer(g.data as Float32Array, ref.data as Float32Array), 0, `${dir} seed ${seed} ${n}`);
      });
    }
  }
  // a bigint seed is the same generator
  const [a] = await native.torchRandom(42n, [{ op: 'randn', shape: [5] }]);
  const [b] = await native.torchRandom(42, [{ op: 'randn', shape: [5] }]);
  t.deepEqual(Array.from((a?.data ?? []) as Float32Array), Array.from((b?.data ?? [0]) as Float32Array));
});

test('pyRandint draws the official split indices; randomizedBlend merges exactly as the official loop', async (t) => {
  if (!have('st2v/blend')) {
    t.log(`SKIP: ${golden}/st2v/blend not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const offs = readNpy(path.join(golden, 'st2v/blend/blend_offsets.npy'));
  const want = Array.from(offs.data as ArrayLike<number | bigint>, (v) => Number(v));
  t.deepEqual(native.pyRandint(1234, 0, 7, 6), want);
  const preds = readNpy(path.join(golden, 'st2v/blend/chunk_preds.npy')); // [3, 3, 1, 4, 24, 4, 6]
  const out = readNpy(path.join(golden, 'st2v/blend/blend_x0_out.npy')); // [3, 1, 4, 56, 4, 6]
  const per = preds.data.length / 3, perOut = out.data.length / 3;
  for (let s = 0; s < 3; s++) {
    const chunks: NativeTensor = { data: (preds.data as Float32Array).slice(s * per, (s + 1) * per), shape: preds.shape.slice(1), dtype: 'f32' };
    const got = await native.randomizedBlend(chunks, want.slice(2 * s, 2 * s + 2), 24, 8);
    t.deepEqual(got.shape, out.shape.slice(1));
    t.is(bitsDiffer(got.data as Float32Array, (out.data as Float32Array).slice(s * perOut, (s + 1) * perOut)), 0, `step ${s}`);
  }
});

test('samplerSchedule: DDIM leading, DPM++ linspace sigmas, enhancer trailing VE sigmas', (t) => {
  const ddim = native.samplerSchedule('ddim', 50);
  t.is(ddim.timesteps.length, 50);
  t.deepEqual([ddim.timesteps[0], ddim.timesteps[1], ddim.timesteps[49]], [981, 961, 1]);
  if (!have('samplers') || !have('st2v/blend')) {
    t.log(`SKIP (golden part): ${golden} not found (set ST2V_SHARED)`);
    return;
  }
  const close = (got: number[], ref: Float32Array, tol: number, what: string): void => {
    t.is(got.length, ref.length, what);
    let worst = 0;
    got.forEach((v, i) => {
      const r = ref[i] ?? NaN;
      const e = Math.abs(v - r) / Math.max(1, Math.abs(r));
      worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
    });
    t.true(worst <= tol, `${what}: max rel err ${worst}`);
  };
  const dpm = native.samplerSchedule('dpmpp', 20);
  const ts = readNpy(path.join(golden, 'samplers/dpmpp_20/timesteps.npy'));
  t.deepEqual(dpm.timesteps, Array.from(ts.data as ArrayLike<number | bigint>, (v) => Number(v)));
  close(dpm.sigmas, readNpy(path.join(golden, 'samplers/dpmpp_20/sigmas.npy')).data as Float32Array, 1e-6, 'dpm++ sigmas');
  const enh = native.samplerSchedule('enhancer', 30);
  close(enh.sigmas, readNpy(path.join(golden, 'st2v/blend/v_solver_sigmas.npy')).data as Float32Array, 1e-5, 'enhancer sigmas');
  t.is(enh.timesteps[0], 599);
});

test('bad arguments reject with St2vError (never a crash)', async (t) => {
  const bad: Array<() => unknown> = [
    () => native.pyRandint(1, 5, 2, 3),
    () => native.pyRandint(-1, 0, 2, 3),
    () => native.samplerSchedule('euler' as 'ddim', 10),
    () => native.samplerSchedule('ddim', 0),
    () => native.torchRandom(1, [{ op: 'randn', shape: [-1] }]),
    () => native.torchRandom(1, [{ op: 'randn', shape: [2] }], 'sse' as 'avx2'),
  ];
  for (const fn of bad) {
    const err = t.throws(() => callNativeSync(fn));
    t.true(err instanceof St2vError && err.code === 'ERR_INVALID_ARG', String(err));
  }
  const chunks: NativeTensor = { data: new Float32Array(2 * 1 * 1 * 12 * 1 * 1), shape: [2, 1, 1, 12, 1, 1], dtype: 'f32' };
  const e1 = await t.throwsAsync(callNative(() => native.randomizedBlend(chunks, [9], 12, 4)));
  t.true(e1 instanceof St2vError && e1.code === 'ERR_INVALID_ARG', String(e1));
  const e2 = await t.throwsAsync(callNative(() => native.randomizedBlend(chunks, [1, 2], 12, 4)));
  t.true(e2 instanceof St2vError && e2.code === 'ERR_INVALID_ARG', String(e2));
  const e3 = await t.throwsAsync(callNative(() => native.randomizedBlend(chunks, [1], 10, 4)));
  t.true(e3 instanceof St2vError && e3.code === 'ERR_SHAPE_MISMATCH', String(e3));
});
