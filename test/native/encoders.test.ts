// Issue 6 through the addon: `verifyReference` (st2v verify) runs the registered "encoders" cases on
// golden/vae (3 namings), golden/clip (HF / OpenCLIP text, APM image tower) and the ddim video of golden/st2v.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyReference } from '../../lib/cli/commands/verify.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(root, process.env.ST2V_SHARED ?? '../shared');

const expected: Record<string, { count: number; some: string[] }> = {
  vae: { count: 45, some: ['vae/vae_diffusers/dec_of_z', 'vae/vae_ldm/post_sample', 'vae/vae_diffusers_legacy_attn/enc_h'] },
  clip: { count: 10, some: ['clip/hf_text/last_hidden_state_eager', 'clip/enh_text/z', 'clip/apm_image/pooled'] },
};

for (const [dump, want] of Object.entries(expected)) {
  test(`verify golden/${dump}: every encoder case <= 1e-4`, async (t) => {
    const dir = path.join(shared, 'golden', dump);
    if (!fs.existsSync(path.join(dir, 'manifest.json'))) {
      t.log(`SKIP: ${dir} not found (set ST2V_SHARED)`);
      t.pass();
      return;
    }
    const r = await verifyReference(dir);
    const mine = r.cases.filter((c) => c.name.startsWith(`${dump}/`));
    t.is(mine.length, want.count);
    for (const n of want.some) t.truthy(mine.find((c) => c.name === n), n);
    for (const c of mine) t.true(c.pass && c.maxRel <= 1e-4, `${c.name}: maxRel ${c.maxRel} ${c.note}`);
  });
}

test('verify golden/st2v: ddim video decoded from latents_final <= 1e-4', async (t) => {
  const dir = path.join(shared, 'golden', 'st2v');
  if (!fs.existsSync(path.join(dir, 'vae_tiny.safetensors'))) {
    t.log(`SKIP: ${dir} not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const r = await verifyReference(dir);
  const c = r.cases.find((x) => x.name === 'ddim_video');
  t.truthy(c);
  t.deepEqual(c?.shape, [16, 3, 64, 64]);
  t.true(c !== undefined && c.pass && c.maxRel <= 1e-4, `ddim_video maxRel ${c?.maxRel}`);
});
