// `npm run bench -- tuning`: option handling and the reading of a sweep's figures (the sweep itself takes ~15 s
// and is run by hand / by scripts/cpu-tune.sh).
import test from 'ava';
import { run, variantsOf } from '../../lib/bench/tuning.js';

test('tuning bench rejects unknown options with a RangeError naming the option', async (t) => {
  await t.throwsAsync(run(['--nope']), { instanceOf: RangeError, message: /unknown option '--nope'/ });
  await t.throwsAsync(run(['--threads', '0']), { instanceOf: RangeError });
});

test('variantsOf lists every variant of a sweep result, best median ratio first, with its quartiles', (t) => {
  const v = variantsOf({
    r6_kc256_mc144_nc3072_ratio: 0.7, r6_kc256_mc144_nc3072_q1: 0.65, r6_kc256_mc144_nc3072_q3: 0.74,
    r6_kc256_mc144_nc3072_gflops: 220.04,
    r14_kc256_mc70_nc3072_ratio: 0.84, r14_kc256_mc70_nc3072_q1: 0.8, r14_kc256_mc70_nc3072_q3: 0.85,
    r14_kc256_mc70_nc3072_gflops: 281.3,
  });
  t.deepEqual(v.map((x) => x.variant), ['r14_kc256_mc70_nc3072', 'r6_kc256_mc144_nc3072']);
  t.deepEqual(v[0], { variant: 'r14_kc256_mc70_nc3072', ratio: 0.84, q1: 0.8, q3: 0.85, gflops: 281.3 });
  t.deepEqual(variantsOf(undefined), []);
});
