// `st2v convert <file or folder> -o <model-dir> [--dtype f16|bf16|f32]`
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { type ConvertProgress, type OutputDType, convertModel } from '../../convert/convert.js';

const HELP_AFTER = `
Inputs (naming detected from the tensor names; configs detected from tensor shapes only):
  streaming_t2v.ckpt               official StreamingT2V Lightning checkpoint (base_model., unet., resampler.,
                                   image_encoder.model., text_encoder.text_model., vae.)
  text-to-video-ms-1.7b/           diffusers folder: unet/, text_encoder/, vae/ (*.safetensors or *.bin);
                                   tokenizer/ and config.json files are copied
  non_ema_0035000.pth              MS-Vid2Vid-XL enhancer UNet
  open_clip_pytorch_model.bin      OpenCLIP ViT-H-14 (image encoder + 23-layer text encoder, and the 24th text
                                   block as text_last_block: for the CLIP score of st2v eval)
  v2-1_512-ema-pruned.ckpt, *.ckpt LDM / SD VAE (first_stage_model.*)
  a folder of such files           each file converted; earlier files win on duplicate tensors

Checkpoints are read without Python: torch.save zip and legacy formats, with a safe unpickler that refuses any
code it does not know (ERR_UNSAFE). Tensors stream from the archive, so a 25 GB checkpoint needs little RAM.

Output: <model-dir>/<component>.safetensors for each of unet, cam, resampler, text_encoder, image_encoder, vae,
enhancer, text_last_block that the input provides, and model.json (components, configs, source sha256s).

Real models are tokenized with their CLIP tokenizer: <model-dir>/tokenizer/vocab.json + merges.txt (copied from a
diffusers folder's tokenizer/, from a plain input folder holding them, or from --tokenizer <dir>). Stage 1 runs the
ModelScope UNet3D when <model-dir>/base/unet.safetensors exists (convert text-to-video-ms-1.7b into <model-dir>/base).

Examples:
  $ st2v convert streaming_t2v.ckpt -o models/streamingt2v --tokenizer ./text-to-video-ms-1.7b/tokenizer
  $ st2v convert ./text-to-video-ms-1.7b -o models/streamingt2v/base
  $ st2v convert ./text-to-video-ms-1.7b -o models/ms17b --dtype bf16
  $ st2v convert open_clip_pytorch_model.bin -o models/streamingt2v --overwrite
`;

const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;

export function register(program: Command): void {
  program
    .command('convert')
    .description('convert PyTorch / diffusers / safetensors weights into an st2v model folder')
    .argument('<input>', 'a checkpoint file (.ckpt .pt .pth .bin .safetensors, *.index.json) or a folder')
    .requiredOption('-o, --output <model-dir>', 'folder to write the component files and model.json into')
    .addOption(new Option('--dtype <dtype>', 'dtype of floating-point weights in the output').choices(['f16', 'bf16', 'f32']).default('f16'))
    .option('--no-hash', 'skip the sha256 of the source files (faster; model.json has no hashes)')
    .option('--overwrite', 'replace component files that already exist in the output folder')
    .option('--tokenizer <dir>', 'folder holding the CLIP vocab.json + merges.txt to copy into <model-dir>/tokenizer/')
    .option('--quiet', 'no progress output')
    .addHelpText('after', HELP_AFTER)
    .action(async (input: string, o: { output: string; dtype: OutputDType; hash: boolean; overwrite?: boolean; quiet?: boolean; tokenizer?: string }) => {
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      const tty = Boolean(process.stderr.isTTY) && !o.quiet;
      let bar: cliProgress.SingleBar | undefined;
      let barPhase = '';
      let lastLine = '';
      let lastPct = -1;
      const onProgress = (p: ConvertProgress) => {
        if (o.quiet) return;
        const label = p.phase === 'hash' ? `sha256 ${p.item}` : `writing ${p.item}.safetensors`;
        if (tty) {
          if (!bar || barPhase !== p.phase) {
            bar?.stop();
            bar = new cliProgress.SingleBar(
              { format: '{label} |{bar}| {percentage}% {done}/{total}', stream: process.stderr, hideCursor: true },
              cliProgress.Presets.shades_classic,
            );
            bar.start(p.bytesTotal, 0, { label, done: mib(0), total: mib(p.bytesTotal) });
            barPhase = p.phase;
          }
          bar.update(p.bytesDone, { label, done: mib(p.bytesDone), total: mib(p.bytesTotal) });
        } else {
          const pct = p.bytesTotal > 0 ? Math.floor((100 * p.bytesDone) / p.bytesTotal / 10) * 10 : 100;
          if (label !== lastLine || pct !== lastPct) {
            process.stderr.write(`${label}: ${pct}% (${mib(p.bytesDone)} of ${mib(p.bytesTotal)})\n`);
            lastLine = label;
            lastPct = pct;
          }
        }
      };
      try {
        const r = await convertModel({
          input,
          output: o.output,
          dtype: o.dtype,
          hash: o.hash,
          overwrite: Boolean(o.overwrite),
          ...(o.tokenizer !== undefined ? { tokenizer: o.tokenizer } : {}),
          onProgress,
          onWarning: (m) => {
            bar?.stop();
            bar = undefined;
            process.stderr.write(`warning: ${m}\n`);
          },
          signal: ac.signal,
        });
        bar?.stop();
        if (!o.quiet) {
          for (const [name, c] of Object.entries(r.components))
            process.stdout.write(`${name.padEnd(14)} ${String(c.tensors).padStart(5)} tensors  ${mib(c.bytes).padStart(9)}  ${c.file}\n`);
          process.stdout.write(`wrote ${r.output}/model.json (${r.dtype})\n`);
        }
      } finally {
        bar?.stop();
        process.removeListener('SIGINT', onSigint);
      }
    });
}
