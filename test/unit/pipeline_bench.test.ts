// `npm run bench -- pipeline` option handling (the bench itself is run by hand: minutes on 2 cores).
import test from 'ava';
import { run } from '../../lib/bench/pipeline.js';

test('pipeline bench rejects unknown options and bad values with RangeError naming the option', async (t) => {
  await t.throwsAsync(run(['--nope']), { instanceOf: RangeError, message: /unknown option '--nope'/ });
  await t.throwsAsync(run(['--models', 'big']), { instanceOf: RangeError, message: /--models: unknown model 'big'/ });
  await t.throwsAsync(run(['--frames', '16']), { instanceOf: RangeError, message: /--frames must be an integer in \[17, 1000\]/ });
  await t.throwsAsync(run(['--mid-steps', '0']), { instanceOf: RangeError, message: /--mid-steps/ });
});
