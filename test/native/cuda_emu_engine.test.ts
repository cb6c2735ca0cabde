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

maybe('BAD CALL - emulated CUDA: an unknown backend is a typed error before any device work', async (t) => {
  const err = await t.throwsAsync(Engine.load(null, { backend: 'gpu' as unknown as 'cuda' }));
  t.true(err instanceof St2vError || err instanceof RangeError || err instanceof TypeError);
});

