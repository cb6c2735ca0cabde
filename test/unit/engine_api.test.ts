// The public Engine against a fake native engine (test/helpers/fake_engine.ts): validation, streaming order,
// cancellation, FIFO queueing, dispose, progress and event-loop responsiveness of the TypeScript layer.
import test from 'ava';
import path from 'node:path';
import { Engine, setNativeEngineFactoryForTesting, type FrameChunk } from '../../lib/engine.js';
import { St2vError } from '../../lib/errors.js';
import type { GenerateProgress } from '../../lib/progress.js';
import { createFakeEngine, pixel, type FakeOptions } from '../helpers/fake_engine.js';

async function fakeEngine(opts: FakeOptions = {}) {
  const fake = createFakeEngine(opts);
  setNativeEngineFactoryForTesting(() => fake.engine);
  try {
    return { engine: await Engine.load(), stats: fake.stats };
  } finally {
    setNativeEngineFactoryForTesting(undefined);
  }
}

async function collect(it: AsyncIterable<FrameChunk>): Promise<FrameChunk[]> {
  const out: FrameChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

function checkPixels(t: import('ava').ExecutionContext, chunks: FrameChunk[], seed: number): void {
  for (const c of chunks) {
    const per = c.width * c.height * 3;
    let bad = 0;
    for (let f = 0; f < c.frames; f++) for (let i = 0; i < per; i++) if (c.data[f * per + i] !== pixel(seed, c.index + f, i)) bad++;
    t.is(bad, 0, `chunk at ${c.index} holds another generation's pixels`);
  }
}

test('generate rejects bad options with TypeError/RangeError naming the option', async (t) => {
  const { engine } = await fakeEngine();
  const cases: Array<[unknown, typeof TypeError | typeof RangeError, RegExp]> = [
    [undefined, TypeError, /Expected an object for options but received undefined/],
    [{}, TypeError, /Expected a non-empty string for prompt but received undefined/],
    [{ prompt: '  ' }, RangeError, /for prompt but received "  "/],
    [{ prompt: 'x', frames: 0 }, RangeError, /Expected an integer between 1 and 100000 for frames but received 0/],
    [{ prompt: 'x', frames: 2.5 }, RangeError, /for frames but received 2.5/],
    [{ prompt: 'x', frames: '8' }, TypeError, /for frames but received "8"/],
    [{ prompt: 'x', seed: -1 }, RangeError, /for seed but received -1/],
    [{ prompt: 'x', steps: 0 }, RangeError, /for steps/],
    [{ prompt: 'x', guidanceScale: Number.NaN }, TypeError, /for guidanceScale but received NaN/],
    [{ prompt: 'x', guidanceScale: Infinity }, RangeError, /for guidanceScale but received Infinity/],
    [{ prompt: 'x', negativePrompt: 3 }, TypeError, /Expected a string for negativePrompt but received 3/],
    [{ prompt: 'x', signal: {} }, TypeError, /Expected an AbortSignal for signal but received an object/],
    [{ prompt: 'x', onProgress: 1 }, TypeError, /Expected a function for onProgress but received 1/],
    [{ prompt: 'x', frame: 3 }, RangeError, /for a key of options but received "frame"/],
  ];
  for (const [o, Ctor, re] of cases) {
    const err = t.throws(() => engine.generate(o as never), { instanceOf: Ctor });
    t.regex(err!.message, re);
  }
  await t.throwsAsync(Engine.load(5 as never), { instanceOf: TypeError, message: /for modelDir but received 5/ });
  await t.throwsAsync(Engine.load(undefined, { threads: -1 }), { instanceOf: RangeError, message: /for threads but received -1/ });
  await t.throwsAsync(Engine.load(undefined, { dtype: 'f8' as never }), { instanceOf: RangeError, message: /one of auto, f32, f16, bf16 for dtype/ });
  await engine.dispose();
});

test('chunks stream in order, before generation ends, with exactly the requested frames', async (t) => {
  const { engine } = await fakeEngine({ firstChunkFrames: 4, chunkFrames: 3, stepMs: 2 });
  const gen = engine.generate({ prompt: 'a red ball', frames: 11, steps: 2, seed: 5 });
  const seen: FrameChunk[] = [];
  let summaryDuringFirst: unknown = 'unset';
  for await (const c of gen) {
    if (seen.length === 0) summaryDuringFirst = gen.summary;
    seen.push(c);
  }
  t.is(summaryDuringFirst, undefined, 'the first chunk arrived while generation was still running');
  t.deepEqual(seen.map((c) => [c.index, c.frames]), [[0, 4], [4, 3], [7, 3], [10, 1]]);
  t.is(seen.reduce((a, c) => a + c.frames, 0), 11);
  for (const c of seen) t.is(c.data.length, c.frames * c.width * c.height * 3);
  checkPixels(t, seen, 5);
  t.is(gen.summary?.frames, 11);
  // Defaults come from the model: frames = first chunk length.
  const d = await collect(engine.generate({ prompt: 'x' }));
  t.is(d.reduce((a, c) => a + c.frames, 0), engine.model.firstChunkFrames);
  await engine.dispose();
});

test('progress reports steps with ETA and frames per second', async (t) => {
  const { engine } = await fakeEngine({ stepMs: 2 });
  const events: GenerateProgress[] = [];
  await collect(engine.generate({ prompt: 'x', frames: 7, steps: 3, onProgress: (p) => events.push(p) }));
  t.is(events.length, 2 * 3);
  t.deepEqual(events.map((e) => [e.chunk, e.step]), [[0, 1], [0, 2], [0, 3], [1, 1], [1, 2], [1, 3]]);
  t.true(events.every((e) => e.chunks === 2 && e.steps === 3 && e.frames === 7));
  t.is(events.at(-1)!.etaMs, 0);
  t.is(events.at(-1)!.framesDone, 4, 'the first chunk had been delivered when the last step of the second ran');
  t.true(events.at(-1)!.framesPerSecond > 0);
});

test('an abort mid-generation rejects with ERR_CANCELLED within one denoising step', async (t) => {
  const { engine, stats } = await fakeEngine({ stepMs: 10 });
  const ac = new AbortController();
  let steps = 0;
  const gen = engine.generate({
    prompt: 'x',
    frames: 40,
    steps: 5,
    signal: ac.signal,
    onProgress: () => {
      if (++steps === 7) ac.abort();
    },
  });
  const err = await t.throwsAsync(collect(gen), { instanceOf: St2vError });
  t.is((err as St2vError).code, 'ERR_CANCELLED');
  t.is(steps, 7, 'no step reported after the abort');
  t.true(stats.stepsAfterCancel[0]! <= 1, `native ran ${stats.stepsAfterCancel[0]} steps after cancel`);
  // The engine is usable afterwards.
  const ok = await collect(engine.generate({ prompt: 'y', frames: 5, steps: 1, seed: 9 }));
  checkPixels(t, ok, 9);
  await engine.dispose();
});

test('an already-aborted signal rejects without starting native work', async (t) => {
  const { engine, stats } = await fakeEngine();
  const ac = new AbortController();
  ac.abort(new Error('stop'));
  const err = await t.throwsAsync(collect(engine.generate({ prompt: 'x', signal: ac.signal })));
  t.is((err as St2vError).code, 'ERR_CANCELLED');
  t.is(stats.started, 0);
});

test('two concurrent generate calls on one engine queue (FIFO) and never mix frames', async (t) => {
  const { engine, stats } = await fakeEngine({ stepMs: 3 });
  const a = collect(engine.generate({ prompt: 'A', frames: 10, steps: 2, seed: 1 }));
  const b = collect(engine.generate({ prompt: 'B', frames: 7, steps: 2, seed: 2 }));
  const c = collect(engine.generate({ prompt: 'C', frames: 4, steps: 2, seed: 3 }));
  const [ra, rb, rc] = await Promise.all([a, b, c]);
  t.is(stats.maxConcurrent, 1);
  t.deepEqual(stats.order, ['A', 'B', 'C']);
  t.is(ra.reduce((s, x) => s + x.frames, 0), 10);
  t.is(rb.reduce((s, x) => s + x.frames, 0), 7);
  checkPixels(t, ra, 1);
  checkPixels(t, rb, 2);
  checkPixels(t, rc, 3);
  await engine.dispose();
});

test('aborting a queued generation removes it from the queue', async (t) => {
  const { engine, stats } = await fakeEngine({ stepMs: 3 });
  const ac = new AbortController();
  const a = collect(engine.generate({ prompt: 'A', frames: 8, steps: 2 }));
  const b = collect(engine.generate({ prompt: 'B', signal: ac.signal }));
  setTimeout(() => ac.abort(), 2);
  const err = await t.throwsAsync(b);
  t.is((err as St2vError).code, 'ERR_CANCELLED');
  await a;
  t.deepEqual(stats.order, ['A']);
});

test('breaking out of the loop cancels the rest and frees the engine for the next call', async (t) => {
  const { engine, stats } = await fakeEngine({ stepMs: 3 });
  for await (const c of engine.generate({ prompt: 'A', frames: 40, steps: 2 })) {
    t.is(c.index, 0);
    break;
  }
  t.is(stats.started, 1);
  t.true(stats.cancels >= 1);
  const r = await collect(engine.generate({ prompt: 'B', frames: 4, steps: 1, seed: 4 }));
  checkPixels(t, r, 4);
  await engine.dispose();
});

test('a throwing onProgress cancels and surfaces its error', async (t) => {
  const { engine } = await fakeEngine();
  const boom = new Error('boom');
  const err = await t.throwsAsync(
    collect(
      engine.generate({
        prompt: 'x',
        onProgress: () => {
          throw boom;
        },
      }),
    ),
  );
  t.is(err, boom);
});

test('dispose cancels running work, rejects queued and later calls with ERR_DISPOSED, and is idempotent', async (t) => {
  const { engine, stats } = await fakeEngine({ stepMs: 5 });
  const a = collect(engine.generate({ prompt: 'A', frames: 40, steps: 5 }));
  const b = collect(engine.generate({ prompt: 'B' }));
  await new Promise((r) => setTimeout(r, 12));
  const d1 = engine.dispose();
  const d2 = engine[Symbol.asyncDispose]();
  const ea = await t.throwsAsync(a);
  t.is((ea as St2vError).code, 'ERR_CANCELLED');
  const eb = await t.throwsAsync(b);
  t.is((eb as St2vError).code, 'ERR_DISPOSED');
  await d1;
  await d2;
  t.true(stats.disposed);
  const e = t.throws(() => engine.generate({ prompt: 'C' }), { instanceOf: St2vError });
  t.is((e as St2vError).code, 'ERR_DISPOSED');
  t.deepEqual(stats.order, ['A']);
});

test('a native load error becomes an St2vError with its code', async (t) => {
  const fake = createFakeEngine({ loadError: { code: 'ERR_NOT_FOUND', message: 'no model.json in /nope' } });
  setNativeEngineFactoryForTesting(() => fake.engine);
  try {
    const err = await t.throwsAsync(Engine.load('/nope'), { instanceOf: St2vError });
    t.is((err as St2vError).code, 'ERR_NOT_FOUND');
    t.regex(err!.message, /no model.json/);
    t.true(fake.stats.disposed, 'the half-created native engine was disposed');
  } finally {
    setNativeEngineFactoryForTesting(undefined);
  }
});

test('the event loop keeps ticking while chunks are generated and consumed', async (t) => {
  const { engine } = await fakeEngine({ stepMs: 4 });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const started = performance.now();
  await collect(engine.generate({ prompt: 'x', frames: 13, steps: 5 }));
  const ms = performance.now() - started;
  clearInterval(timer);
  // 4 chunks x 5 steps x 4 ms = 80 ms at least: a 5 ms timer must have fired several times.
  t.true(ms >= 60);
  t.true(ticks >= 4, `timer fired ${ticks} times in ${ms.toFixed(0)} ms`);
  await engine.dispose();
});

test.serial('load passes an absolute model folder and the default cache folder to the native engine', async (t) => {
  const fake = createFakeEngine();
  setNativeEngineFactoryForTesting(() => fake.engine);
  const prev = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = '/tmp/st2v-xdg';
  try {
    const a = await Engine.load();
    await a.dispose();
    const b = await Engine.load('models/x', { dtype: 'f32', cacheDir: 'rel-cache' });
    await b.dispose();
  } finally {
    if (prev === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = prev;
    setNativeEngineFactoryForTesting(undefined);
  }
  t.deepEqual(fake.stats.loads, [
    [null, { dtype: 'auto', cacheDir: '/tmp/st2v-xdg/streamingt2v', backend: 'cpu' }],
    [path.resolve('models/x'), { dtype: 'f32', cacheDir: path.resolve('rel-cache'), backend: 'cpu' }],
  ]);
});
