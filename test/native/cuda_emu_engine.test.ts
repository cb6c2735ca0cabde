// backend 'cuda' through the engine, on the CPU emulation of CUDA (native/cuda/emu, docs/cuda.md): Engine.load with
// { backend: 'cuda' } binds the built-in model's denoisers through DeviceUNet3D / DeviceCamNet and uploads their
// weights to the (emulated) device. A generation is far too slow under the emulation for a test (a 2-chunk, 1-step
// run takes ~12 minutes: `cuda_engine_check_emu`, figures in docs/cuda.md); this checks the load path and the
// typed errors. Skips when build-cpp has no emulated library (npm test builds it).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const lib = path.join(root, 'build-cpp', 'libstreamingt2v_cuda_emu.so');
const have = fs.existsSync(lib);
// before the addon's first CUDA call in this process (each ava test file runs in its own process)
if (have) process.env.ST2V_CUDA_LIB = lib;

const { Engine } = await import('../../lib/engine.js');
const { St2vError } = await import('../../lib/errors.js');
const { loadNative } = await import('../../lib/native/binding.js');
const { enhance } = await import('../../lib/enhance.js');

const maybe = have ? test : test.skip;

maybe('emulated CUDA: cudaStatus says emulated, Engine.load({ backend: "cuda" }) binds the denoisers on the device', async (t) => {
  const st = loadNative().cudaStatus();
  t.log(`cuda: ${st.message}`);
  t.true(st.available);
  t.regex(st.device?.name ?? '', /emulation/i);
  const e = await Engine.load(null, { backend: 'cuda' });
  try {
    t.is(e.model.name, 'default-tiny');
  } finally {
    await e.dispose();
  }
});

maybe('emulated CUDA: enhance({ backend: "cuda" }) runs the enhancer denoiser and VAE on the device, the CPU result within 1 in uint8', async (t) => {
  // the untrained built-in enhancer at its smallest: 4 frames of 32x32 (latent 4x4), one chunk, one solver step
  const frames = 4, w = 32, h = 32;
  const data = new Uint8Array(frames * w * h * 3);
  for (let i = 0; i < data.length; ++i) data[i] = (i * 37 + (i >> 5)) & 255;
  const opts = { model: null, untrained: true, prompt: 'a red ball', steps: 1, chunk: 4, overlap: 2, width: w, height: h } as const;
  const cpu = await enhance({ data, frames, width: w, height: h }, opts);
  const dev = await enhance({ data, frames, width: w, height: h }, { ...opts, backend: 'cuda' });
  t.is(cpu.backend, 'cpu');
  t.is(dev.backend, 'cuda');
  t.is(dev.frames, cpu.frames);
  let worst = 0;
  for (let i = 0; i < cpu.data!.length; ++i) worst = Math.max(worst, Math.abs(cpu.data![i]! - dev.data![i]!));
  t.log(`max |cpu - cuda| = ${worst} (uint8)`);
  t.true(worst <= 1);
});

maybe('BAD CALL - emulated CUDA: an unknown backend is a typed error before any device work', async (t) => {
  const err = await t.throwsAsync(Engine.load(null, { backend: 'gpu' as unknown as 'cuda' }));
  t.true(err instanceof St2vError || err instanceof RangeError || err instanceof TypeError);
});

