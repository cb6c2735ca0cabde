// `npm run bench -- step`: option handling, the reading of the PyTorch peer's output, and (through the addon, on
// the tiny preset) the warm-up / repetition contract of benchStep. The mid-size run itself takes minutes and is
// run by hand (bench/results/step-*.json).
import test from 'ava';
import { childrenCpuSeconds, abSummary, parseAnchorOutput, parseStepArgs, profileTable, type ProfileRow } from '../../lib/bench/step.js';
import { St2vError, callNative } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';

test('step bench options: defaults, unknown options and an anchor on another config are RangeErrors', (t) => {
  const a = parseStepArgs([]);
  t.is(a.reps, 3);
  t.is(a.warmup, 1);
  t.false(a.anchor);
  t.deepEqual(a.dtypes, ['f32', 'f16']);
  t.is(parseStepArgs(['--anchor', '--anchor-python', '/usr/bin/python3']).anchorPython, '/usr/bin/python3');
  t.throws(() => parseStepArgs(['--nope']), { instanceOf: RangeError, message: /unknown option '--nope'/ });
  t.throws(() => parseStepArgs(['--reps', '0']), { instanceOf: RangeError, message: /--reps/ });
  t.throws(() => parseStepArgs(['--threads', '0']), { instanceOf: RangeError, message: /--threads/ });
  t.throws(() => parseStepArgs(['--anchor', '--preset', 'tiny']), { instanceOf: RangeError, message: /--anchor/ });
  t.throws(() => parseStepArgs(['--anchor', '--latent', '16']), { instanceOf: RangeError, message: /--anchor/ });
});

test("parseAnchorOutput keeps the peer's env line and measurement lines, and ignores everything else", (t) => {
  const out = [
    '{"event": "env", "torch": "1.13.0a0", "device": "cpu", "sdpa": false, "tiny": false}',
    '{"case": "st2v_step_16f_32x32_cfg2_mid", "mode": "fp32", "params": 366067828, "ms_median": 42450.5, "ms_min": 41230.1}',
    '',
    'case | mode | median ms | min ms | peak GiB | compile s',
    '{not json',
    '{"event": "sdpa_check", "max_abs": 0.0}',
  ].join('\n');
  const r = parseAnchorOutput(out);
  t.is(r.env?.torch, '1.13.0a0');
  t.is(r.rows.length, 1);
  t.is(r.rows[0]?.mode, 'fp32');
  t.is(r.rows[0]?.ms_median, 42450.5);
});

interface StepOut {
  seconds: number;
  secondsMin: number;
  stepSeconds: number[];
  warmupSeconds: number[];
  secondsCachedECond: number;
  cachedStepSeconds: number[];
  gflops: number;
  flops: number;
}
const native = loadNative() as unknown as { benchStep(o: Record<string, unknown>): Promise<StepOut> };

test("childrenCpuSeconds reads cutime + cstime from /proc/self/stat, past a name with spaces and parens", (t) => {
  // fields 14-17 are utime stime cutime cstime (in USER_HZ ticks); the name (field 2) may hold ') ('
  const stat = '4242 (node (a) b) S 1 4242 4242 0 -1 4194304 100 200 0 0 7 3 250 125 20 0 11 0 1234 5678 90';
  t.is(childrenCpuSeconds(stat), 3.75);
  t.is(childrenCpuSeconds('garbage'), undefined);
  if (process.platform === 'linux') {
    const v = childrenCpuSeconds();
    t.true(v !== undefined && v >= 0);
  }
});

test('benchStep runs warm-up + reps steps and reports the median of the timed ones', async (t) => {
  const r = await callNative(() => native.benchStep({ dtype: 'f32', preset: 'tiny', frames: 4, condFrames: 2, latent: 4, warmup: 1, reps: 3 }));
  t.is(r.warmupSeconds.length, 1);
  t.is(r.stepSeconds.length, 3);
  const sorted = [...r.stepSeconds].sort((x, y) => x - y);
  t.is(r.seconds, sorted[1]);
  t.is(r.secondsMin, sorted[0]);
  t.true(r.flops > 0);
  t.true(Math.abs(r.gflops - r.flops / r.seconds / 1e9) <= 1e-9 * r.gflops);
  // one later-step-of-a-chunk step (E_cond from the cache) after each timed step, and their median
  t.is(r.cachedStepSeconds.length, 3);
  t.is(r.secondsCachedECond, [...r.cachedStepSeconds].sort((x, y) => x - y)[1]);
});

test('--ab: N rounds of a step with an engine switch on and one with it off, paired by round in the summary', async (t) => {
  t.is(parseStepArgs([]).abSwitch, '');
  const a = parseStepArgs(['--ab', 'stem', '--ab-rounds', '5']);
  t.is(a.abSwitch, 'stem');
  t.is(a.abRounds, 5);
  t.is(parseStepArgs(['--ab', 'context']).abRounds, 8);
  t.throws(() => parseStepArgs(['--ab', 'nope']), { instanceOf: RangeError, message: /--ab: unknown switch 'nope'/ });
  t.throws(() => parseStepArgs(['--ab', 'stem', '--ab-rounds', '101']), { instanceOf: RangeError, message: /--ab-rounds/ });
  for (const sw of ['context', 'stem']) {
    const r = (await callNative(() =>
      native.benchStep({ dtype: 'f32', preset: 'tiny', frames: 4, condFrames: 2, latent: 4, warmup: 0, reps: 1, abSwitch: sw, abRounds: 3 }),
    )) as unknown as StepOut & { ab: { switch: string; onSeconds: number[]; offSeconds: number[] } };
    t.is(r.ab.switch, sw);
    t.is(r.ab.onSeconds.length, 3);
    t.is(r.ab.offSeconds.length, 3);
    for (const s of [...r.ab.onSeconds, ...r.ab.offSeconds]) t.true(s > 0);
  }
  const plain = await callNative(() => native.benchStep({ preset: 'tiny', frames: 2, condFrames: 1, latent: 2 }));
  t.false('ab' in plain);
  // each round's off / on time; median and quartiles over the rounds
  const ab = abSummary({ switch: 'context', onSeconds: [1, 2, 4, 1], offSeconds: [2, 2, 2, 1.5] });
  t.deepEqual(ab.ratios, [2, 1, 0.5, 1.5]);
  t.is(ab.switch, 'context');
  t.is(ab.rounds, 4);
  t.is(ab.ratio_median, 1.5);
  t.is(ab.ratio_q1, 1);
  t.is(ab.ratio_q3, 1.5);
  t.is(ab.on_median_s, 2);
  t.is(ab.off_median_s, 2);
});

test('benchStep rejects bad repetition counts with a typed error', async (t) => {
  for (const bad of [{ reps: 0 }, { reps: 1.5 }, { warmup: -1 }, { reps: 101 }, { abSwitch: 'stem', abRounds: 1.5 }, { abSwitch: 'stem', abRounds: -1 }, { abSwitch: 'nope' }]) {
    const err = await t.throwsAsync(callNative(() => native.benchStep({ preset: 'tiny', frames: 2, condFrames: 1, latent: 2, ...bad })));
    t.true(err instanceof St2vError, JSON.stringify(bad));
    t.is((err as St2vError).code, 'ERR_INVALID_ARG', JSON.stringify(bad));
  }
});

// serial: the profile is process-wide, and the other tests' steps would land in it
test.serial('--profile: benchStep adds one profiled step whose op rows fit inside it; the table adds the rest', async (t) => {
  t.true(parseStepArgs(['--profile']).profile);
  t.false(parseStepArgs([]).profile);
  const r = (await callNative(() =>
    native.benchStep({ dtype: 'f32', preset: 'tiny', frames: 4, condFrames: 2, latent: 8, warmup: 0, reps: 1, profile: true }),
  )) as unknown as StepOut & { profile: ProfileRow[]; profileStepSeconds: number };
  t.true(r.profileStepSeconds > 0);
  const names = r.profile.map((p) => p.name);
  // latent 8: spatial self-attention over 64 pixels, temporal over 4 frames
  for (const want of ['linear', 'attention self, L > 32', 'attention cross', 'attention self, L <= 32', 'layer_norm', 'linear + geglu'])
    t.true(names.includes(want), want);
  t.true(names.some((n) => n.startsWith('conv2d')));
  t.true(names.includes('conv temporal (3,1,1)'));
  const inside = r.profile.reduce((s, p) => s + p.seconds, 0);
  t.true(inside <= r.profileStepSeconds * (1 + 1e-9));
  // the op rows' FLOPs: the analytic step count covers the same convolutions, linear layers and attention products
  const flop = r.profile.reduce((s, p) => s + p.flop, 0);
  t.true(flop > 0.5 * r.flops && flop < 1.5 * r.flops, `${flop} vs ${r.flops}`);
  const rows = profileTable({ ...r, peakGflops: 100 });
  t.is(rows.length, r.profile.length + 1);
  t.is(rows.at(-1)?.op, 'outside ops');
  const lin = rows.find((x) => x.op === 'linear');
  const p = r.profile.find((x) => x.name === 'linear');
  t.truthy(lin && p);
  t.is(lin?.['GFLOP/s'], Number((p!.flop / p!.seconds / 1e9).toFixed(1)));
  // then a later step of the same chunk, profiled apart: E_cond (convolutions only) comes from the cache, the rest
  // of the step is the same work
  const later = r as unknown as { profileLater: ProfileRow[]; profileLaterStepSeconds: number };
  t.true(later.profileLaterStepSeconds > 0);
  t.true(later.profileLater.reduce((s, q) => s + q.seconds, 0) <= later.profileLaterStepSeconds * (1 + 1e-9));
  const flopOf = (rows: ProfileRow[], pick: (name: string) => boolean) =>
    rows.filter((q) => pick(q.name)).reduce((s, q) => s + q.flop, 0);
  for (const kind of ['linear', 'linear + geglu', 'attention cross', 'conv temporal (3,1,1)'])
    t.is(flopOf(later.profileLater, (n) => n === kind), flopOf(r.profile, (n) => n === kind), kind);
  const conv = (n: string) => n.startsWith('conv2d');
  t.true(flopOf(later.profileLater, conv) > 0);
  t.true(flopOf(later.profileLater, conv) < flopOf(r.profile, conv));
  // without profile: no rows
  const plain = (await callNative(() =>
    native.benchStep({ dtype: 'f32', preset: 'tiny', frames: 2, condFrames: 1, latent: 2, warmup: 0, reps: 1 }),
  )) as unknown as Record<string, unknown>;
  t.false('profile' in plain);
  t.false('profileLater' in plain);
});
