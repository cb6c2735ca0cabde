import test from 'ava';
import { loadNative } from '../../lib/native/binding.js';
import { ERROR_CODES, St2vError, callNativeSync } from '../../lib/errors.js';

const native = loadNative();

test('systemInfo reports the CPU backend and the chosen ISA', (t) => {
  const info = native.systemInfo();
  t.is(info.backend, 'cpu');
  t.true(['portable', 'avx2', 'avx512'].includes(info.isa));
  t.true(info.threads >= 1);
  // CUDA status is reported, never thrown: unavailable (no library or no device) must say why; on a GPU machine
  // with the CUDA library built it may be available.
  t.is(typeof info.cuda.available, 'boolean');
  if (!info.cuda.available) t.true(info.cuda.message.length > 0, 'an unavailable CUDA backend says why');
});

test('native error codes equal the TypeScript ErrorCode list', (t) => {
  t.deepEqual(native.errorCodes(), [...ERROR_CODES]);
});

test('BAD CALL - setCpuProfile without a boolean is a typed error; the profile stays usable', (t) => {
  for (const bad of [[], ['yes'], [1]] as unknown[][]) {
    const err = t.throws(() => callNativeSync(() => (native.setCpuProfile as (...a: unknown[]) => void)(...bad)));
    t.true(err instanceof St2vError, JSON.stringify(bad));
    t.is((err as St2vError).code, 'ERR_INVALID_ARG');
  }
  t.true(Array.isArray(native.cpuProfile()));
});

test('BAD CALL - setThreads with a bad count is a typed error', (t) => {
  const err = t.throws(() => callNativeSync(() => native.setThreads(-3)));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_INVALID_ARG');
});
