// `st2v eval <video>`: SCuts, OFS, MAWE and CLIP score of one video, computed by the engine.
import type { Command } from 'commander';
import { Option } from 'commander';
import cliProgress from 'cli-progress';
import { METRIC_NAMES, SCENECUT_VERSIONS, evaluateVideo } from '../../eval/index.js';
import type { EvalProgress, EvalResult, MetricName, ScenecutVersion } from '../../eval/index.js';

interface EvalCliOptions {
  prompt?: string;
  metrics?: string;
  scutsVersion: ScenecutVersion;
  downscale: boolean;
  maweVariant: 'code' | 'paper';
  maweC: string;
  flowSize: string;
  raft?: string;
  raftUpdates?: string;
  clipModel?: string;
  model?: string;
  clipTokenizer?: string;
  perFrame?: boolean;
  json?: boolean;
  progress: boolean;
}

function parseMetrics(s: string): MetricName[] {
  const list = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0);
  if (list.length === 0) throw new RangeError('--metrics: give at least one of ' + METRIC_NAMES.join(', '));
  for (const m of list) {
    if (!(METRIC_NAMES as readonly string[]).includes(m)) {
      throw new RangeError(`--metrics: unknown metric '${m}' (known: ${METRIC_NAMES.join(', ')})`);
    }
  }
  return [...new Set(list)] as MetricName[];
}

/**
 * --metrics as given; without it scuts, ofs and mawe, plus clip when the CLIP score can be measured (a prompt and
 * a CLIP model). A prompt without a model then gets a note on stderr instead of a silently missing score.
 */
function defaultMetrics(o: EvalCliOptions): MetricName[] {
  if (o.metrics !== undefined) return parseMetrics(o.metrics);
  const metrics: MetricName[] = ['scuts', 'ofs', 'mawe'];
  if (o.prompt === undefined) return metrics;
  if ((o.clipModel ?? o.model) !== undefined) return [...metrics, 'clip'];
  process.stderr.write('note: no CLIP score: it needs a CLIP model (--clip-model <dir>, OpenCLIP ViT-H-14 converted with `st2v convert`)\n');
  return metrics;
}

function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

function printHuman(r: EvalResult): void {
  const out: string[] = [`${r.video}: ${r.width}x${r.height}, ${r.frames} frames${Number.isFinite(r.fps) ? ` @ ${fmt(r.fps, 3)} fps` : ''}`];
  if (r.scuts) {
    const s = r.scuts;
    out.push(
      `SCuts (PySceneDetect ${s.version} AdaptiveDetector, ${s.processingSize.width}x${s.processingSize.height}): ` +
        `${s.count}${s.count ? ` at frames ${s.cuts.join(', ')}` : ''}`,
    );
  }
  if (r.ofs !== undefined) out.push(`OFS (mean |flow|, ${r.flowEstimator === 'raft' ? 'RAFT' : 'classical'} flow): ${fmt(r.ofs, 4)}`);
  if (r.mawe) {
    const m = r.mawe;
    out.push(`warp error: ${fmt(m.warpError, 4)}`);
    out.push(`MAWE (${m.variant === 'code' ? `official mawe.py formula, c = ${m.c}` : 'paper text: W / OFS(squared)'}): ${fmt(m.mawe)}`);
  }
  if (r.clip) out.push(`CLIP score (100 x cos, mean of ${r.clip.frames} frames, raw): ${fmt(r.clip.score, 4)}`);
  process.stdout.write(out.join('\n') + '\n');
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('measure a video: SCuts (PySceneDetect AdaptiveDetector, exact), OFS, warp error, MAWE and CLIP score')
    .argument('<video>', 'video file (anything ffmpeg decodes)')
    .option('--prompt <text>', 'the prompt (for the CLIP score)')
    .option(
      '--metrics <list>',
      `comma-separated: ${METRIC_NAMES.join(',')} (default: scuts,ofs,mawe, plus clip when --prompt and a CLIP model are given)`,
    )
    .addOption(new Option('--scuts-version <v>', 'PySceneDetect rules to follow').choices([...SCENECUT_VERSIONS]).default('0.6.2'))
    .option('--no-downscale', "disable SceneManager's auto-downscale for SCuts")
    .addOption(new Option('--mawe-variant <v>', 'official code (mean of per-pair ratios, c) or paper text (W / OFS)').choices(['code', 'paper']).default('code'))
    .option('--mawe-c <c>', 'MAWE constant of the official code', '9.5')
    .option('--flow-size <n>', 'side of the square frames the flow metrics use (0 = native size)', '720')
    .option('--raft <weights>', "RAFT weights (safetensors, torchvision raft_large names) for the flow metrics instead of the classical estimator")
    .option('--raft-updates <n>', 'RAFT flow updates', '12')
    .option('--clip-model <dir>', 'OpenCLIP towers for --metrics clip: a folder from `st2v convert` of open_clip weights (ViT-H-14)')
    .option('--model <dir>', 'same as --clip-model')
    .option('--clip-tokenizer <path>', "open_clip's bpe_simple_vocab_16e6.txt.gz (default: looked for in the CLIP model folder)")
    .option('--per-frame', 'include per-frame / per-pair values (with --json)')
    .option('--json', 'print the result as JSON')
    .option('--no-progress', 'no progress bar')
    .action(async (video: string, o: EvalCliOptions) => {
      const metrics = defaultMetrics(o);
      const maweC = Number(o.maweC);
      if (!Number.isFinite(maweC) || maweC <= 0) throw new RangeError('--mawe-c must be a positive number');
      const flowSize = Number(o.flowSize);
      if (!Number.isInteger(flowSize) || flowSize < 0) throw new RangeError('--flow-size must be a non-negative integer');
      const tty = Boolean(process.stderr.isTTY) && o.progress;
      const bars = tty
        ? new cliProgress.MultiBar(
            { format: ' {stage} |{bar}| {value}/{total}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
      const perStage = new Map<string, cliProgress.SingleBar>();
      const onProgress = (p: EvalProgress) => {
        if (!bars) return;
        let b = perStage.get(p.stage);
        if (!b) {
          b = bars.create(p.total ?? 0, 0, { stage: p.stage === 'scuts' ? 'SCuts ' : p.stage === 'clip' ? 'CLIP  ' : 'flow  ' });
          perStage.set(p.stage, b);
        }
        if (p.total === undefined) b.setTotal(p.done);
        b.update(p.done);
      };
      const ac = new AbortController();
      const onSig = () => ac.abort();
      process.once('SIGINT', onSig);
      try {
        const r = await evaluateVideo(video, {
          metrics,
          ...(o.prompt !== undefined ? { prompt: o.prompt } : {}),
          scutsVersion: o.scutsVersion,
          downscale: o.downscale,
          maweVariant: o.maweVariant,
          maweC,
          flowSize,
          ...(o.raft !== undefined ? { raftWeights: o.raft, raftUpdates: Number(o.raftUpdates ?? 12) } : {}),
          ...((o.clipModel ?? o.model) !== undefined ? { clipModel: (o.clipModel ?? o.model)! } : {}),
          ...(o.clipTokenizer !== undefined ? { clipTokenizer: o.clipTokenizer } : {}),
          perFrame: Boolean(o.perFrame),
          onProgress,
          signal: ac.signal,
        });
        bars?.stop();
        if (o.json) {
          process.stdout.write(JSON.stringify(r, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n');
        } else {
          printHuman(r);
        }
      } finally {
        bars?.stop();
        process.removeListener('SIGINT', onSig);
      }
    });
}
