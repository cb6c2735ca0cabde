// `st2v enhance`: stage 3 (MS-Vid2Vid-XL with randomized blending, 1280x720). Registered so that `--help` lists
// it; it refuses to run until the native enhancer pipeline is exposed to JavaScript.
import type { Command } from 'commander';
import { St2vError } from '../../errors.js';

export function register(program: Command): void {
  program
    .command('enhance')
    .description('(not available in this build yet) stage 3: enhance a 256x256 video to 1280x720 with randomized blending')
    .argument('<video>', 'input video')
    .requiredOption('-o, --output <file>', 'output video')
    .option('--model <dir>', 'model folder holding the enhancer component')
    .action(() => {
      throw new St2vError('st2v enhance is not available in this build yet: the native enhancer pipeline has no JavaScript binding', 'ERR_UNSUPPORTED');
    });
}
