// Backend selection (native/backend, docs/cuda.md). On a machine without a usable GPU (every CI machine) the
// must-show is: backend 'cuda' fails with St2vError ERR_NO_CUDA naming what is missing, from the API and the CLI.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../lib/engine.js';
import { St2vError, callNativeSync } from '../../lib/errors.js';
import { loadNative } from '../../lib/native/binding.js';
import { resolveLoadOptions } from '../../lib/options.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const native = loadNative();
const cuda = native.cudaStatus();

test('cudaStatus and systemInfo agree and say why CUDA is unavailable', (t) => {
  const info = native.systemInfo();
  t.is(info.cuda.available, cuda.available);
  t.is(info.cuda.compiled, cuda.compiled);
  t.is(info.cuda.message, cuda.message);
  t.log(`cuda: ${cuda.message}`);
  if (cuda.available) {
    t.truthy(cuda.device?.name);
    t.true((cuda.device?.cublasLtVersion ?? 0) > 0);
  } else {
    t.regex(cuda.message, cuda.compiled ? /^built, no device: .+/ : /^not built/);
    t.is(cuda.device, undefined);
  }
});

test("resolveBackend: 'auto' and 'cpu' resolve to cpu", (t) => {
  t.is(native.resolveBackend('auto'), 'cpu');
  t.is(native.resolveBackend('cpu'), 'cpu');
});

test('BAD CALL - resolveBackend with an unknown name is ERR_INVALID_ARG', (t) => {
  const err = t.throws(() => callNativeSync(() => native.resolveBackend('gpu' as 'cpu')));
  t.is((err as St2vError).code, 'ERR_INVALID_ARG');
});

test('BAD CALL - backend option is validated in TypeScript', (t) => {
  t.is(resolveLoadOptions(undefined).backend, 'auto');
  t.is(resolveLoadOptions({ backend: 'cuda' }).backend, 'cuda');
  t.throws(() => resolveLoadOptions({ backend: 'gpu' }), { instanceOf: RangeError, message: /backend/ });
  t.throws(() => resolveLoadOptions({ backend: 1 }), { instanceOf: TypeError, message: /backend/ });
});

const noGpu = cuda.available ? test.skip : test;

noGpu("BAD CALL - backend 'cuda' without a usable GPU: resolveBackend throws ERR_NO_CUDA", (t) => {
  const err = t.throws(() => callNativeSync(() => native.resolveBackend('cuda')));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_NO_CUDA');
  t.regex((err as Error).message, /not available: .+/);
});

noGpu("BAD CALL - Engine.load({ backend: 'cuda' }) without a usable GPU rejects with ERR_NO_CUDA", async (t) => {
  const err = await t.throwsAsync(Engine.load(null, { backend: 'cuda' }));
  t.true(err instanceof St2vError);
  t.is((err as St2vError).code, 'ERR_NO_CUDA');
});

function cli(args: string[]) {
  return spawnSync(process.execPath, ['--import=tsx', path.join(root, 'lib', 'cli', 'main.ts'), ...args], {
    encoding: 'utf8',
    cwd: root,
    timeout: 60_000,
  });
}

noGpu("BAD CALL - `st2v info --backend cuda` and `st2v generate --backend cuda` fail with ERR_NO_CUDA", (t) => {
  const info = cli(['info', '--backend', 'cuda']);
  t.not(info.status, 0);
  t.regex(info.stderr, /ERR_NO_CUDA/);
  const gen = cli(['generate', 'a red ball', '-o', path.join(root, 'build', 'never-written'), '--format', 'png', '--backend', 'cuda']);
  t.not(gen.status, 0);
  t.regex(gen.stderr, /ERR_NO_CUDA/);
});

test('`st2v info` shows the CUDA status line', (t) => {
  const r = cli(['info']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^cuda +.+/m);
});
