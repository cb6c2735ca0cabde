// runOp through the addon: small cases against plain JS references (every ISA this CPU has), and bad
// shapes / dtypes / params for every op name rejecting with St2vError (never a crash).
import test from 'ava';
import { St2vError, callNative } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';
import type { NativeTensor } from '../../lib/native/binding.js';

const native = loadNative();
const ISAS = (['portable', 'avx2', 'avx512'] as const).filter((i) => {
  const before = native.systemInfo().isa;
  const ok = native.setIsa(i);
  native.setIsa(before);
  return ok;
});

let seed = 12345;
function rand(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    a[i] = (seed / 2 ** 32) * 2 - 1;
  }
  return a;
}
function f32(data: Float32Array, shape: number[]): NativeTensor {
  return { data, shape, dtype: 'f32' };
}
// f16 bits with exponents in a safe range, and their exact values.
function randF16(n: number): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(n);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const sign = seed & 1, exp = 11 + ((seed >>> 1) % 5), mant = (seed >>> 8) & 0x3ff;
    bits[i] = (sign << 15) | (exp << 10) | mant;
    values[i] = (sign ? -1 : 1) * 2 ** (exp - 15) * (1 + mant / 1024);
  }
  return { bits, values };
}
function relErr(got: Float32Array | ArrayLike<number>, ref: number[]): number {
  let scale = 1, err = 0;
  for (const r of ref) scale = Math.max(scale, Math.abs(r));
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(Number(got[i]) - ref[i]!));
  return err / scale;
}
async function withIsa<T>(isa: 'portable' | 'avx2' | 'avx512', fn: () => Promise<T>): Promise<T> {
  const before = native.systemInfo().isa;
  native.setIsa(isa);
  try {
    return await fn();
  } finally {
    native.setIsa(before);
  }
}

test('runOp linear (f32 and f16 weights, bias, silu) matches a JS reference on every ISA', async (t) => {
  const rows = 5, inF = 37, outF = 19;
  const x = rand(rows * inF), b = rand(outF);
  const w16 = randF16(outF * inF);
  const w32 = rand(outF * inF);
  for (const isa of ISAS) {
    for (const [wt, wv] of [
      [{ data: w32, shape: [outF, inF], dtype: 'f32' } as NativeTensor, w32],
      [{ data: w16.bits, shape: [outF, inF], dtype: 'f16' } as NativeTensor, w16.values],
    ] as const) {
      const y = await withIsa(isa, () => callNative(() => native.runOp('linear', [f32(x, [rows, inF]), wt, f32(b, [outF])], { act: 'silu' })));
      t.deepEqual(y.shape, [rows, outF]);
      const ref: number[] = [];
      for (let r = 0; r < rows; r++)
        for (let o = 0; o < outF; o++) {
          let acc = b[o]!;
          for (let k = 0; k < inF; k++) acc += x[r * inF + k]! * wv[o * inF + k]!;
          ref.push(acc / (1 + Math.exp(-acc)));
        }
      t.true(relErr(y.data as Float32Array, ref) <= 1e-5, `${isa} ${wt.dtype}`);
    }
  }
});

test('runOp gemm with transposed B, alpha, accumulate and row bias matches a JS reference', async (t) => {
  const M = 7, N = 33, K = 13;
  const a = rand(M * K), bT = rand(N * K), c0 = rand(M * N), br = rand(M);
  for (const isa of ISAS) {
    const y = await withIsa(isa, () =>
      callNative(() =>
        native.runOp('gemm', [f32(a, [M, K]), f32(bT, [N, K]), null, f32(br, [M]), f32(c0, [M, N])], {
          transB: true,
          alpha: 0.5,
          accumulate: true,
        }),
      ),
    );
    const ref: number[] = [];
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += a[m * K + k]! * bT[n * K + k]!;
        ref.push(0.5 * acc + c0[m * N + n]! + br[m]!);
      }
    t.true(relErr(y.data as Float32Array, ref) <= 1e-5, isa);
  }
});

function convRef(x: Float32Array, w: Float32Array, b: Float32Array, N: number, C: number, H: number, W: number,
  O: number, k: number, stride: number, pad: number): { ref: number[]; Ho: number; Wo: number } {
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1, Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  const ref: number[] = [];
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++) {
          let acc = b[o]!;
          for (let c = 0; c < C; c++)
            for (let i = 0; i < k; i++)
              for (let j = 0; j < k; j++) {
                const ih = oh * stride - pad + i, iw = ow * stride - pad + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x[((n * C + c) * H + ih) * W + iw]! * w[((o * C + c) * k + i) * k + j]!;
              }
          ref.push(acc);
        }
  return { ref, Ho, Wo };
}

test('runOp conv2d 3x3 (stride 1 and 2) and 1x1 match a JS reference on every ISA', async (t) => {
  const N = 2, C = 5, H = 9, W = 7, O = 6;
  const x = rand(N * C * H * W), b = rand(O);
  for (const [k, stride] of [[3, 1], [3, 2], [1, 1]] as const) {
    const w = rand(O * C * k * k);
    const { ref, Ho, Wo } = convRef(x, w, b, N, C, H, W, O, k, stride, k === 3 ? 1 : 0);
    for (const isa of ISAS) {
      const y = await withIsa(isa, () =>
        callNative(() => native.runOp('conv2d', [f32(x, [N, C, H, W]), f32(w, [O, C, k, k]), f32(b, [O])], { stride })),
      );
      t.deepEqual(y.shape, [N, O, Ho, Wo]);
      t.true(relErr(y.data as Float32Array, ref) <= 1e-5, `${isa} k=${k} s=${stride}`);
    }
  }
});

test('runOp conv_temporal zero-pads in time within each sample', async (t) => {
  const B = 2, F = 3, C = 4, O = 3, S = 5;
  const x = rand(B * F * C * S), w = rand(O * C * 3), b = rand(O);
  const y = await callNative(() => native.runOp('conv_temporal', [f32(x, [B * F, C, 1, S]), f32(w, [O, C, 3, 1, 1]), f32(b, [O])], { frames: F }));
  const ref: number[] = [];
  for (let bb = 0; bb < B; bb++)
    for (let f = 0; f < F; f++)
      for (let o = 0; o < O; o++)
        for (let s = 0; s < S; s++) {
          let acc = b[o]!;
          for (let tt = 0; tt < 3; tt++) {
            const src = f + tt - 1;
            if (src < 0 || src >= F) continue;
            for (let c = 0; c < C; c++) acc += w[(o * C + c) * 3 + tt]! * x[((bb * F + src) * C + c) * S + s]!;
          }
          ref.push(acc);
        }
  t.deepEqual(y.shape, [B * F, O, 1, S]);
  t.true(relErr(y.data as Float32Array, ref) <= 1e-5);
});

// One or more bad calls per op name; each must reject with a St2vError of the listed code.
const T = (shape: number[], dtype: 'f32' | 'i32' = 'f32'): NativeTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return dtype === 'f32' ? { data: new Float32Array(n), shape, dtype } : { data: new Int32Array(n), shape, dtype };
};
const BAD: Array<[string, Array<NativeTensor | null>, Record<string, unknown>, string]> = [
  ['linear', [T([2, 3]), T([4, 5])], {}, 'ERR_SHAPE_MISMATCH'],
  ['linear', [T([2, 3]), T([4, 3], 'i32')], {}, 'ERR_DTYPE'],
  ['linear', [T([2, 3]), T([4, 3])], { act: 'relu' }, 'ERR_INVALID_ARG'],
  ['conv2d', [T([1, 4, 5, 5]), T([2, 3, 3, 3])], {}, 'ERR_SHAPE_MISMATCH'],
  ['conv2d', [T([1, 4, 5, 5], 'i32'), T([2, 4, 3, 3])], {}, 'ERR_DTYPE'],
  ['conv2d', [T([1, 4, 5, 5]), T([2, 4, 3, 3])], { stride: 0 }, 'ERR_INVALID_ARG'],
  ['conv_temporal', [T([4, 2, 3, 3]), T([2, 2, 3, 1, 1])], { frames: 3 }, 'ERR_INVALID_ARG'],
  ['conv_temporal', [T([3, 2, 3, 3]), T([2, 5, 3, 1, 1])], { frames: 3 }, 'ERR_SHAPE_MISMATCH'],
  ['conv1d_same', [T([1, 2, 8]), T([3, 2, 2])], {}, 'ERR_INVALID_ARG'],
  ['conv1d_same', [T([1, 2, 8]), T([3, 4, 3])], {}, 'ERR_SHAPE_MISMATCH'],
  ['group_norm', [T([2, 6, 4, 4]), T([6]), T([6])], { groups: 4 }, 'ERR_INVALID_ARG'],
  ['group_norm', [T([2, 6, 4, 4]), T([5]), T([6])], { groups: 3 }, 'ERR_SHAPE_MISMATCH'],
  ['group_norm', [T([2, 6, 4, 4], 'i32'), T([6]), T([6])], { groups: 3 }, 'ERR_DTYPE'],
  ['layer_norm', [T([2, 6]), T([5]), T([5])], {}, 'ERR_SHAPE_MISMATCH'],
  ['layer_norm', [T([2, 6], 'i32')], {}, 'ERR_DTYPE'],
  ['attention', [T([1, 4, 8]), T([1, 5, 6]), T([1, 5, 8])], { heads: 2 }, 'ERR_SHAPE_MISMATCH'],
  ['attention', [T([1, 4, 8]), T([1, 5, 8]), T([1, 5, 8])], { heads: 0 }, 'ERR_INVALID_ARG'],
  ['silu', [T([3], 'i32')], {}, 'ERR_DTYPE'],
  ['gelu', [T([3], 'i32')], {}, 'ERR_DTYPE'],
  ['geglu', [T([2, 3])], {}, 'ERR_SHAPE_MISMATCH'],
  ['add', [T([2, 3]), T([4])], {}, 'ERR_SHAPE_MISMATCH'],
  ['add_', [T([2, 3]), T([2, 4])], {}, 'ERR_SHAPE_MISMATCH'],
  ['mul', [T([2, 3]), T([2, 3], 'i32')], {}, 'ERR_DTYPE'],
  ['axpby', [T([2, 3]), T([3, 2])], {}, 'ERR_SHAPE_MISMATCH'],
  ['scale', [T([2], 'i32')], { s: 2 }, 'ERR_DTYPE'],
  ['scale', [T([2])], { s: 'x' }, 'ERR_INVALID_ARG'],
  ['concat', [T([2, 3]), T([3, 3])], { dim: 1 }, 'ERR_SHAPE_MISMATCH'],
  ['concat', [], {}, 'ERR_INVALID_ARG'],
  ['upsample_nearest2x', [T([2, 3])], {}, 'ERR_SHAPE_MISMATCH'],
  ['timestep_embedding', [T([2, 2])], { dim: 8 }, 'ERR_SHAPE_MISMATCH'],
  ['timestep_embedding', [T([2])], { dim: 0 }, 'ERR_INVALID_ARG'],
  ['gemm', [T([2, 3]), T([4, 5])], {}, 'ERR_SHAPE_MISMATCH'],
  ['gemm', [T([2, 3]), T([3, 5], 'i32')], {}, 'ERR_DTYPE'],
  ['gemm', [T([2, 3]), T([3, 5])], { accumulate: true }, 'ERR_INVALID_ARG'],
  ['no_such_op', [], {}, 'ERR_INVALID_ARG'],
  ['linear', [T([2, 3])], {}, 'ERR_INVALID_ARG'],
];

test('BAD CALL - every op rejects bad shapes, dtypes and params with a typed St2vError', async (t) => {
  for (const [name, inputs, params, code] of BAD) {
    const err = await t.throwsAsync(callNative(() => native.runOp(name, inputs as NativeTensor[], params)), undefined, name);
    t.true(err instanceof St2vError, `${name}: ${String(err)}`);
    t.is((err as St2vError).code, code, `${name}: ${err?.message}`);
  }
  // a tensor whose data does not match its shape, and a non-array inputs argument
  const e1 = await t.throwsAsync(callNative(() => native.runOp('silu', [{ data: new Float32Array(3), shape: [4] }])));
  t.is((e1 as St2vError).code, 'ERR_SHAPE_MISMATCH');
  const e2 = await t.throwsAsync(callNative(() => native.runOp('silu', 'x' as unknown as NativeTensor[])));
  t.is((e2 as St2vError).code, 'ERR_INVALID_ARG');
  // the process is still alive and the ops still work
  const y = await callNative(() => native.runOp('scale', [f32(new Float32Array([1, 2]), [2])], { s: 3 }));
  t.deepEqual(Array.from(y.data as Float32Array), [3, 6]);
});

test('every op name documented in ops.h is accepted by runOp', async (t) => {
  const x = f32(rand(2 * 4 * 4 * 4), [2, 4, 4, 4]);
  const ok: Array<[string, Array<NativeTensor | null>, Record<string, unknown>]> = [
    ['linear', [f32(rand(6), [2, 3]), f32(rand(12), [4, 3])], {}],
    ['conv2d', [x, f32(rand(3 * 4 * 9), [3, 4, 3, 3])], {}],
    ['conv_temporal', [x, f32(rand(4 * 4 * 3), [4, 4, 3, 1, 1])], { frames: 2 }],
    ['conv1d_same', [f32(rand(8), [1, 2, 4]), f32(rand(18), [3, 2, 3])], {}],
    ['group_norm', [x, f32(rand(4), [4]), f32(rand(4), [4])], { groups: 2, frames: 2, silu: true }],
    ['layer_norm', [f32(rand(8), [2, 4]), f32(rand(4), [4]), f32(rand(4), [4])], {}],
    ['attention', [f32(rand(16), [1, 2, 8]), f32(rand(24), [1, 3, 8]), f32(rand(24), [1, 3, 8])], { heads: 2 }],
    ['silu', [x], {}], ['gelu', [x], {}], ['geglu', [f32(rand(8), [2, 4])], {}],
    ['add', [x, f32(rand(4), [4])], {}], ['add_', [x, x], {}], ['mul', [x, x], {}], ['axpby', [x, x], { a: 2, b: 3 }],
    ['scale', [x], { s: 2 }], ['concat', [x, x], { dim: 1 }], ['upsample_nearest2x', [x], {}],
    ['timestep_embedding', [f32(new Float32Array([1, 500]), [2])], { dim: 8 }],
    ['gemm', [f32(rand(6), [2, 3]), f32(rand(12), [3, 4])], {}],
  ];
  for (const [name, inputs, params] of ok) {
    const y = await callNative(() => native.runOp(name, inputs as NativeTensor[], params));
    t.true(y.data.length > 0 && y.shape.length > 0, name);
  }
});
