// `st2v bench [suite] [args...]`: runs the bench runner (dist/bench/main.js) in a child Node process, so that its
// output, exit code and results files are exactly those of `npm run bench -- <suite>`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { St2vError } from '../../errors.js';
import { packageRoot } from '../../native/binding.js';

export function register(program: Command): void {
  program
    .command('bench')
    .description('run a benchmark suite (same as `npm run bench -- <suite>`); results also go to bench/results/')
    .argument('[suite]', 'suite name (ops, eval, pipeline, ...); none lists them')
    .argument('[args...]', 'arguments of the suite, e.g. --json')
    .option('--json', 'machine-readable output (passed to the suite)')
    .allowUnknownOption(true)
    .helpOption('-h, --help', 'show help (a suite prints its own with `st2v bench <suite> -- --help`)')
    .addHelpText('after', '\nExamples:\n  $ st2v bench                 list the suites\n  $ st2v bench ops\n  $ st2v bench pipeline --json')
    .action(async (suite: string | undefined, args: string[], o: { json?: boolean }) => {
      const runner = path.join(packageRoot, 'dist', 'bench', 'main.js');
      if (!fs.existsSync(runner)) {
        throw new St2vError(`the bench runner ${runner} is missing; build the TypeScript first (npm run build:ts)`, 'ERR_NOT_FOUND');
      }
      const argv = [runner, ...(suite ? [suite] : []), ...args, ...(o.json ? ['--json'] : [])];
      const child = spawn(process.execPath, argv, { stdio: 'inherit', cwd: packageRoot });
      const code = await new Promise<number>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
      });
      if (code !== 0) process.exitCode = code;
    });
}
