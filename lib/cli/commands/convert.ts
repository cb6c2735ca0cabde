// Placeholder registration for `st2v convert`; replaced by the module that implements the command.
import type { Command } from 'commander';
import { St2vError } from '../../errors.js';

export function register(program: Command): void {
  program
    .command('convert')
    .description('(not available in this build yet)')
    .allowUnknownOption(true)
    .action(() => {
      throw new St2vError('st2v convert is not available in this build yet', 'ERR_UNSUPPORTED');
    });
}
