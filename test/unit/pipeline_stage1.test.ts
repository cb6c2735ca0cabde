// Stage 1 (architecture.md §1.1) runs the plain ModelScope UNet3D when the model folder carries one under
// base/unet.safetensors (what `st2v convert <text-to-video-ms-1.7b> -o <model>/base` writes); without it the
// extension UNet stands in (CAM off, zero-image APM tokens). A base UNet with APM / merger weights is refused.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine } from '../../lib/engine.js';
import { St2vError } from '../../lib/errors.js';
import { loadNative, type NativeModule } from '../../lib/native/binding.js';

let native: NativeModule | undefined;
try {
  native = loadNative();
} catch {
  native = undefined;
}
const haveNative = typeof native?.writeRandomModel === 'function' && typeof native?.createEngine === 'function';
if (!haveNative) test('native addon with writeRandomModel/createEngine present', (t) => { t.log('SKIP: addon not built'); t.pass(); });
const nt = haveNative ? test.serial : test.skip;

async function firstChunk(dir: string, negativePrompt = ''): Promise<{ data: Uint8Array; components: string[] }> {
  const engine = await Engine.load(dir, { threads: 2 });
  try {
    const gen = engine.generate({ prompt: 'a red ball', negativePrompt, frames: 1, steps: 1, seed: 3 });
    let data: Uint8Array | undefined;
    for await (const c of gen) data ??= c.data;
    return { data: data!, components: engine.model.components };
  } finally {
    await engine.dispose();
  }
}

nt('stage 1 uses base/unet.safetensors when the folder has it', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-stage1-'));
  try {
    const plain = path.join(tmp, 'plain');
    const withBase = path.join(tmp, 'with-base');
    // Same extension model (same seed); the second folder also has a plain stage-1 UNet3D.
    await native!.writeRandomModel!(plain, { preset: 'tiny', seed: 5, dtype: 'f32' });
    await native!.writeRandomModel!(withBase, { preset: 'tiny', seed: 5, dtype: 'f32', base: true });
    t.is(
      fs.readFileSync(path.join(plain, 'model.safetensors')).compare(fs.readFileSync(path.join(withBase, 'model.safetensors'))),
      0,
      'the extension weights are identical',
    );
    const a = await firstChunk(plain);
    const b = await firstChunk(withBase);
    t.false(a.components.includes('base'));
    t.true(b.components.includes('base'));
    t.is(a.data.length, b.data.length);
    // The first chunk comes from a different network, so its frames differ; everything else is the same.
    t.notDeepEqual(Buffer.from(a.data), Buffer.from(b.data));
    // The official stage 1 gets no negative prompt (its uncond is ""): with the separate base model the negative
    // prompt leaves the first chunk unchanged; the extension-UNet stand-in uses it.
    const bn = await firstChunk(withBase, 'blurry, low quality');
    t.deepEqual(Buffer.from(bn.data), Buffer.from(b.data));
    const an = await firstChunk(plain, 'blurry, low quality');
    t.notDeepEqual(Buffer.from(an.data), Buffer.from(a.data));

    // A "base" that is really the extension UNet (APM + CAM mergers) is refused at load.
    fs.copyFileSync(path.join(plain, 'model.safetensors'), path.join(withBase, 'base', 'unet.safetensors'));
    const err = await t.throwsAsync(Engine.load(withBase, { threads: 2 }), { instanceOf: St2vError });
    t.is(err?.code, 'ERR_UNSUPPORTED');
    t.regex(err?.message ?? '', /plain ModelScope UNet3D/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
