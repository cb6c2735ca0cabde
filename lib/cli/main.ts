#!/usr/bin/env node
/**
 * The `st2v` command line: generate, info, bench, convert, verify, eval (and enhance). Each command lives in
 * lib/cli/commands/<name>.ts and exports `register(program)`. Errors print `st2v: <message> (<code>)` and exit 1;
 * a stack trace only for unexpected errors with ST2V_DEBUG=1.
 */
import { Command } from 'commander';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { St2vError } from '../errors.js';
import { packageRoot } from '../native/binding.js';
import { register as registerBench } from './commands/bench.js';
import { register as registerConvert } from './commands/convert.js';
import { register as registerEnhance } from './commands/enhance.js';
import { register as registerEval } from './commands/eval.js';
import { register as registerGenerate } from './commands/generate.js';
import { register as registerInfo } from './commands/info.js';
import { register as registerVerify } from './commands/verify.js';

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(`${packageRoot}/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function buildProgram(): Command {
  const program = new Command('st2v')
    .description('StreamingT2V long text-to-video generation (C++ engine: CPU; CUDA with --backend cuda)')
    .version(version(), '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .configureOutput({ outputError: (s, write) => write(s) });
  program.addHelpText(
    'after',
    `
Examples:
  $ st2v generate "a red ball" -o ball.mp4                 built-in tiny model (untrained weights)
  $ st2v generate "a cat surfing" -o cat.mp4 --model models/streamingt2v --frames 56
  $ st2v info --model models/streamingt2v
  $ st2v bench pipeline --json`,
  );
  registerGenerate(program);
  registerInfo(program);
  registerBench(program);
  registerConvert(program);
  registerVerify(program);
  registerEval(program);
  registerEnhance(program);
  return program;
}

/** Formats an error for the terminal: one line, no stack for St2vError / argument errors. */
export function formatError(err: unknown): string {
  if (err instanceof St2vError) return `st2v: ${err.message} (${err.code})`;
  if (err instanceof TypeError || err instanceof RangeError) return `st2v: ${err.message}`;
  const e = err as Error;
  const msg = `st2v: ${e?.message ?? String(err)}`;
  return process.env.ST2V_DEBUG === '1' && e?.stack ? `${msg}\n${e.stack}` : msg;
}

/** Runs the CLI on argv (without node and script); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    return 1;
  }
}

function invokedDirectly(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  try {
    return fs.realpathSync(arg) === fs.realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/** Runs the CLI as a command: main(argv), its code (or 1 after printing an error main let through) as the exit code. */
export async function runCommand(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = 1;
  }
}

if (invokedDirectly()) void runCommand(process.argv.slice(2));
