#!/usr/bin/env node
/**
 * `npm run bench -- <suite> [options]`: dispatches to lib/bench/<suite>.ts, whose module exports
 * `async function run(argv: string[]): Promise<void>` (argv = the arguments after the suite name).
 * Adding a suite is one line in SUITES.
 */
import { St2vError } from '../errors.js';

interface Suite {
  run(argv: string[]): Promise<void>;
}

const SUITES: Record<string, () => Promise<Suite>> = {
  ops: () => import('./ops.js'),
  eval: () => import('./eval.js'),
  step: () => import('./step.js'),
  pipeline: () => import('./pipeline.js'),
  enhance: () => import('./enhance.js'),
  vae: () => import('./vae.js'),
  tuning: () => import('./tuning.js'),
};

function usage(): string {
  return `usage: npm run bench -- <suite> [options]\nsuites: ${Object.keys(SUITES).join(', ')}`;
}

async function main(argv: string[]): Promise<void> {
  const name = argv[0];
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(usage());
    if (name === undefined) process.exitCode = 1;
    return;
  }
  const load = Object.hasOwn(SUITES, name) ? SUITES[name] : undefined;
  if (!load) throw new RangeError(`unknown bench suite '${name}' (available: ${Object.keys(SUITES).join(', ')})`);
  let suite: Suite;
  try {
    suite = await load();
  } catch (err) {
    throw new Error(`bench suite '${name}' failed to load (is it built? npm run build:ts): ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (typeof suite.run !== 'function') throw new TypeError(`bench suite '${name}' does not export run(argv)`);
  await suite.run(argv.slice(1));
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as Error;
  const code = err instanceof St2vError ? ` [${err.code}]` : '';
  console.error(`bench: ${e?.message ?? String(err)}${code}`);
  process.exitCode = 1;
});
