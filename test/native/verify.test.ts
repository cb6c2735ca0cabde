// `st2v verify` on the official golden dump (golden/st2v: every step case <= 1e-4), on a dump with one
// reference perturbed (that case fails, the command exits 1), and on a folder that is not a dump.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { St2vError } from '../../lib/errors.js';
import { formatTable, register, verifyReference } from '../../lib/cli/commands/verify.js';
import { captureOutput } from '../helpers/capture.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = path.resolve(root, process.env.ST2V_SHARED ?? '../shared');
const dump = path.join(shared, 'golden', 'st2v');
const haveDump = fs.existsSync(path.join(dump, 'manifest.json'));

const STEP_CASES = ['img_tokens', 'img_tokens_unc', 'ctx', 'e_cond', 'cam_down_00', 'cam_down_01', 'cam_down_02', 'cam_down_03',
  'cam_down_04', 'cam_down_05', 'cam_mid', 'eps_nocam', 'eps', 'eps_cfg'];

async function runCli(args: string[]): Promise<{ out: string; exitCode: number }> {
  const program = new Command().exitOverride();
  register(program);
  const saved = process.exitCode;
  process.exitCode = 0;
  const { stdout } = await captureOutput(() => program.parseAsync(['node', 'st2v', 'verify', ...args]));
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = saved;
  return { out: stdout, exitCode };
}

test('verify: every step case of the golden dump matches the official code to 1e-4', async (t) => {
  if (!haveDump) {
    t.log(`SKIP: ${dump} not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const { out, exitCode } = await runCli([dump, '--json']);
  t.is(exitCode, 0);
  const r = JSON.parse(out) as Awaited<ReturnType<typeof verifyReference>>;
  t.true(r.pass);
  for (const name of STEP_CASES) {
    const c = r.cases.find((x) => x.name === name);
    t.truthy(c, `case ${name} present`);
    if (!c) continue;
    t.true(c.pass, `${name}: maxRel ${c.maxRel}`);
    t.true(c.maxRel <= 1e-4, name);
  }
  t.deepEqual(r.cases.find((x) => x.name === 'eps')?.shape, [2, 4, 16, 8, 8]);
  // issue 5: the official 4-step DDIM (CAM + APM, CFG 7.5, eta 1) through the engine's extension sampler, from the
  // recorded noise and from seed 33 alone. Single steps at 1e-4; the free-running trajectories at their documented
  // 1e-3 (fp32 rounding compounds over the steps, see native/engine/verify_ddim.cpp).
  for (const name of ['ddim_timesteps', 'ddim_seed_x_T']) t.is(r.cases.find((x) => x.name === name)?.maxAbs, 0, name);
  for (let i = 0; i < 4; i++) {
    const c = r.cases.find((x) => x.name === `ddim_single_step${i}`);
    t.true(c !== undefined && c.pass && c.relTol === 1e-4 && c.maxRel <= 1e-4, `ddim_single_step${i}: ${c?.maxRel}`);
  }
  for (const tag of ['recorded', 'seed']) {
    const c = r.cases.find((x) => x.name === `ddim_${tag}_latents_final`);
    t.true(c !== undefined && c.pass && c.maxRel <= 1e-3, `ddim_${tag}_latents_final: ${c?.maxAbs}`);
    if (c) t.log(`ddim_${tag}_latents_final max abs ${c.maxAbs.toExponential(2)} (max |ref| ${c.maxRef.toFixed(1)})`);
  }
  t.regex(formatTable(r), /passed/);
});

test('verify: a perturbed reference fails its case and the command exits 1', async (t) => {
  if (!haveDump) {
    t.log(`SKIP: ${dump} not found (set ST2V_SHARED)`);
    t.pass();
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st2v-verify-'));
  try {
    fs.symlinkSync(path.join(dump, 'weights.safetensors'), path.join(tmp, 'weights.safetensors'));
    fs.copyFileSync(path.join(dump, 'manifest.json'), path.join(tmp, 'manifest.json'));
    fs.mkdirSync(path.join(tmp, 'step'));
    for (const f of fs.readdirSync(path.join(dump, 'step'))) {
      fs.copyFileSync(path.join(dump, 'step', f), path.join(tmp, 'step', f));
    }
    // eps_cfg: add 0.01 to the last element (f32, little-endian, after the .npy header).
    const p = path.join(tmp, 'step', 'eps_cfg.npy');
    const b = fs.readFileSync(p);
    const at = b.length - 4;
    b.writeFloatLE(b.readFloatLE(at) + 0.01, at);
    fs.writeFileSync(p, b);
    const { out, exitCode } = await runCli([tmp]);
    t.is(exitCode, 1);
    t.regex(out, /eps_cfg\s.*FAIL/);
    t.regex(out, /eps_nocam\s.*ok/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('verify: a folder without manifest.json is ERR_NOT_FOUND', async (t) => {
  const e = await t.throwsAsync(verifyReference(path.join(os.tmpdir(), 'st2v-no-such-dump')));
  t.true(e instanceof St2vError);
  t.is((e as St2vError).code, 'ERR_NOT_FOUND');
  await t.throwsAsync(verifyReference(''), { instanceOf: TypeError });
});
