// `npm run bench -- pipeline` option handling (the bench itself is run by hand: minutes on 2 cores).
import test from 'ava';
import { run } from '../../lib/bench/pipeline.js';
import { St2vError } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';

test('pipeline bench rejects unknown options and bad values with RangeError naming the option', async (t) => {
  await t.throwsAsync(run(['--nope']), { instanceOf: RangeError, message: /unknown option '--nope'/ });
  await t.throwsAsync(run(['--models', 'big']), { instanceOf: RangeError, message: /--models: unknown model 'big'/ });
  await t.throwsAsync(run(['--frames', '16']), { instanceOf: RangeError, message: /--frames must be an integer in \[17, 1000\]/ });
  await t.throwsAsync(run(['--mid-steps', '0']), { instanceOf: RangeError, message: /--mid-steps/ });
  await t.throwsAsync(run(['--backend', 'tpu']), { instanceOf: RangeError, message: /--backend must be cpu or cuda, got 'tpu'/ });
});

// Skipped on a machine with a usable CUDA backend (there is nothing to refuse).
(loadNative().cudaStatus().available ? test.skip : test)(
  'pipeline bench --backend cuda without a usable GPU rejects with ERR_NO_CUDA before any model work',
  async (t) => {
    const err = await t.throwsAsync(run(['--backend', 'cuda', '--models', 'default', '--json']));
    t.true(err instanceof St2vError);
    t.is((err as InstanceType<typeof St2vError>).code, 'ERR_NO_CUDA');
  },
);
