import test from 'ava';
import { loadNative } from '../../lib/native/binding.js';
import { ERROR_CODES, St2vError, callNativeSync } from '../../lib/errors.js';

const native = loadNative();

test('systemInfo reports the CPU backend and the chosen ISA', (t) => {
  const info = native.systemInfo();
  t.is(info.backend, 'cpu');
  t.true(['portable', 'avx2', 'avx512'].includes(info.isa));
  t.true(info.threads >= 1);
  t.false(info.cuda.available);
});

test('native error codes equal the TypeScript ErrorCode list', (t) => {
  t.deepEqual(native.errorCodes(), [...ERROR_CODES]);
});

test('BAD CALL - setThreads with a bad count is a typed error', (t) => {
  const err = t.throws(() => callNativeSync(() => native.setThreads(-3)));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_INVALID_ARG');
});
