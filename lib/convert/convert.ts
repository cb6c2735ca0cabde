/**
 * `st2v convert`: any supported checkpoint -> a model folder of one safetensors file per component with canonical
 * names (native/io/name_map.cpp), plus model.json (components, shape-detected configs, source sha256s).
 *
 * Streaming throughout: each source tensor is read from its archive only while it is written out, in chunks of
 * whole elements, converted chunk by chunk; memory is bounded by one chunk (or by one tensor for strided views).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { St2vError } from '../errors.js';
import { detectConfig, type Shapes } from './configs.js';
import { FLOAT_DTYPES } from './dtype.js';
import { type MappedTensor, castBuffer, detectNaming, mapNames, nameMapInfo } from './native.js';
import { SafetensorsWriter, type TensorDecl } from './safetensors.js';
import { type SourceGroup, type SourceTensor, openSources, tokenizerCopies } from './sources.js';
import { DTYPE_SIZE, type TorchDType, numelOf } from './torch.js';

export type OutputDType = 'f16' | 'bf16' | 'f32';

export interface ConvertProgress {
  phase: 'hash' | 'write';
  /** Component being written, or the file being hashed. */
  item: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface ConvertOptions {
  input: string;
  output: string;
  /** dtype of floating-point weights in the output (default f16). Integer/bool buffers keep theirs. */
  dtype?: OutputDType;
  /** Compute sha256 of every source file for model.json (default true). */
  hash?: boolean;
  /**
   * A folder holding the CLIP tokenizer (vocab.json + merges.txt, directly or under tokenizer/) to copy into the
   * model folder's tokenizer/ (default: none; a diffusers folder's tokenizer/ and a plain input folder's
   * vocab.json + merges.txt are copied anyway). Real models are tokenized with these files.
   */
  tokenizer?: string;
  /** Replace existing component files in the output folder (default false: refuse). */
  overwrite?: boolean;
  onProgress?: (p: ConvertProgress) => void;
  /** One-line warnings (unmapped keys, duplicates). */
  onWarning?: (msg: string) => void;
  signal?: AbortSignal;
}

export interface ComponentSummary {
  file: string;
  tensors: number;
  bytes: number;
  config: Record<string, unknown>;
}

export interface ConvertResult {
  output: string;
  dtype: OutputDType;
  components: Record<string, ComponentSummary>;
  sources: { path: string; bytes: number; sha256?: string; naming: string[] }[];
  warnings: string[];
}

interface Planned {
  map: MappedTensor;
  src: SourceTensor;
  dtype: TorchDType;
}

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new St2vError('conversion cancelled', 'ERR_CANCELLED');
}

/** The bytes of one mapped tensor in the output dtype, streamed. */
async function* mappedChunks(p: Planned): AsyncGenerator<Uint8Array> {
  const esz = DTYPE_SIZE[p.src.dtype];
  let skip = 0;
  let take = numelOf(p.src.shape) * esz;
  if (p.map.op === 'rows') {
    const rowBytes = (numelOf(p.src.shape) / Math.max(1, p.src.shape[0] ?? 1)) * esz;
    skip = p.map.rowBegin * rowBytes;
    take = (p.map.rowEnd - p.map.rowBegin) * rowBytes;
  }
  for await (const c0 of p.src.chunks()) {
    let c = c0;
    if (skip > 0) {
      const k = Math.min(skip, c.length);
      c = c.subarray(k);
      skip -= k;
    }
    if (c.length > take) c = c.subarray(0, take);
    take -= c.length;
    if (c.length > 0) yield p.dtype === p.src.dtype ? c : await castBuffer(c, p.src.dtype, p.dtype);
    if (take === 0) break;
  }
  if (take !== 0) throw new St2vError(`tensor '${p.map.source}': source ended early`, 'ERR_FORMAT');
}

async function sha256File(file: string, onBytes: (n: number) => void, signal?: AbortSignal): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const c of fs.createReadStream(file, { highWaterMark: 8 << 20 }) as AsyncIterable<Buffer>) {
    checkAbort(signal);
    h.update(c);
    onBytes(c.length);
  }
  return h.digest('hex');
}

export async function convertModel(opts: ConvertOptions): Promise<ConvertResult> {
  const dtype: OutputDType = opts.dtype ?? 'f16';
  if (!['f16', 'bf16', 'f32'].includes(dtype)) throw new RangeError(`dtype must be f16, bf16 or f32 (got ${String(dtype)})`);
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    opts.onWarning?.(m);
  };
  let extraCopies: [string, string][] = [];
  if (opts.tokenizer !== undefined) {
    if (typeof opts.tokenizer !== 'string' || opts.tokenizer.length === 0) throw new TypeError('tokenizer must be a folder path');
    extraCopies = tokenizerCopies(opts.tokenizer);
    if (extraCopies.length === 0)
      throw new St2vError(
        `${path.join(opts.tokenizer, 'vocab.json')} / merges.txt not found (tokenizer: a folder holding the CLIP vocab.json and merges.txt)`,
        'ERR_NOT_FOUND',
      );
  }
  const sources = await openSources(opts.input);
  // An explicit tokenizer replaces one found in the input.
  if (extraCopies.length > 0) {
    for (let i = sources.copies.length - 1; i >= 0; i--) if (sources.copies[i]![1].startsWith(`tokenizer${path.sep}`)) sources.copies.splice(i, 1);
    sources.copies.push(...extraCopies);
  }
  try {
    // 1. Map every group's keys to canonical names (first source wins on duplicates).
    const byTarget = new Map<string, Planned>();
    const namingsOf = new Map<string, Set<string>>();
    for (const g of sources.groups) {
      const res = mapGroup(g, warn);
      for (const f of g.files) {
        if (!namingsOf.has(f)) namingsOf.set(f, new Set());
        namingsOf.get(f)!.add(res.naming);
      }
      const srcByName = new Map(g.tensors.map((t) => [t.name, t]));
      let dup = 0;
      for (const m of res.mapped) {
        if (byTarget.has(m.target)) {
          dup++;
          continue;
        }
        const src = srcByName.get(m.source)!;
        const out: TorchDType = FLOAT_DTYPES.has(src.dtype) ? dtype : src.dtype;
        byTarget.set(m.target, { map: m, src, dtype: out });
      }
      if (dup > 0) warn(`${g.label}: ${dup} tensor(s) already provided by an earlier source were skipped`);
    }
    if (byTarget.size === 0) throw new St2vError(`${opts.input}: no tensor maps to a known model component`, 'ERR_UNSUPPORTED');

    // 2. Output folder.
    fs.mkdirSync(opts.output, { recursive: true });
    const comps = new Map<string, Planned[]>();
    for (const p of byTarget.values()) {
      if (!comps.has(p.map.component)) comps.set(p.map.component, []);
      comps.get(p.map.component)!.push(p);
    }
    const order = nameMapInfo().components.filter((c) => comps.has(c));
    for (const c of order) {
      const f = path.join(opts.output, `${c}.safetensors`);
      if (fs.existsSync(f) && !opts.overwrite)
        throw new St2vError(`${f} already exists (use --overwrite to replace it)`, 'ERR_INVALID_ARG');
    }

    // 3. Hash the sources (streaming).
    const sourceInfo: ConvertResult['sources'] = [];
    const hash = opts.hash ?? true;
    const hashTotal = sources.files.reduce((a, f) => a + fs.statSync(f).size, 0);
    let hashed = 0;
    for (const f of sources.files) {
      const bytes = fs.statSync(f).size;
      const entry: ConvertResult['sources'][number] = { path: path.resolve(f), bytes, naming: [...(namingsOf.get(f) ?? [])] };
      if (hash) {
        entry.sha256 = await sha256File(
          f,
          (n) => {
            hashed += n;
            opts.onProgress?.({ phase: 'hash', item: path.basename(f), bytesDone: hashed, bytesTotal: hashTotal });
          },
          opts.signal,
        );
      }
      sourceInfo.push(entry);
    }

    // 4. Write each component.
    const total = [...byTarget.values()].reduce((a, p) => a + numelOf(p.map.shape) * DTYPE_SIZE[p.dtype], 0);
    let done = 0;
    const components: Record<string, ComponentSummary> = {};
    for (const c of order) {
      const list = comps.get(c)!.sort((a, b) => (a.map.target < b.map.target ? -1 : a.map.target > b.map.target ? 1 : 0));
      const decls: TensorDecl[] = list.map((p) => ({ name: p.map.target, dtype: p.dtype, shape: p.map.shape }));
      const file = path.join(opts.output, `${c}.safetensors`);
      const tmp = `${file}.partial`;
      const w = new SafetensorsWriter(tmp, decls, { format: 'pt', component: c, producer: 'st2v convert' });
      try {
        for (const p of list) {
          for await (const chunk of mappedChunks(p)) {
            checkAbort(opts.signal);
            await w.write(chunk);
            done += chunk.length;
            opts.onProgress?.({ phase: 'write', item: c, bytesDone: done, bytesTotal: total });
          }
        }
        w.finish();
      } catch (err) {
        w.close();
        fs.rmSync(tmp, { force: true });
        throw err;
      }
      fs.renameSync(tmp, file);
      const shapes: Shapes = new Map(list.map((p) => [p.map.target, p.map.shape]));
      components[c] = { file: `${c}.safetensors`, tensors: list.length, bytes: w.totalBytes, config: detectConfig(c, shapes) };
    }

    // 5. Side files and model.json.
    for (const [from, rel] of sources.copies) {
      const to = path.join(opts.output, rel);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.copyFileSync(from, to);
    }
    const result: ConvertResult = { output: path.resolve(opts.output), dtype, components, sources: sourceInfo, warnings };
    const modelJson = {
      format: 'st2v-model',
      version: 1,
      dtype,
      naming: 'canonical names = official streaming_t2v.ckpt state-dict names (see native/io/name_map.h)',
      components,
      hasBase: 'unet' in components,
      hasExtension: 'cam' in components && 'resampler' in components,
      sources: sourceInfo,
      files: sources.copies.map(([, rel]) => rel),
      tokenizer: sources.copies.some(([, rel]) => rel === path.join('tokenizer', 'vocab.json')) ? 'tokenizer/' : null,
      warnings,
      createdBy: 'st2v convert',
    };
    fs.writeFileSync(path.join(opts.output, 'model.json'), `${JSON.stringify(modelJson, null, 2)}\n`);
    return result;
  } finally {
    sources.close();
  }
}

function mapGroup(g: SourceGroup, warn: (m: string) => void) {
  const keys: [string, number[]][] = g.tensors.map((t) => [t.name, t.shape]);
  let naming = detectNaming(keys.map((k) => k[0]));
  if (!naming) naming = g.namingHint;
  if (!naming)
    throw new St2vError(
      `${g.label}: cannot tell which model these ${keys.length} weights belong to (first key '${keys[0]?.[0] ?? ''}')`,
      'ERR_UNSUPPORTED',
    );
  const res = mapNames(naming, keys);
  if (res.unmapped.length > 0)
    warn(`${g.label}: ${res.unmapped.length} tensor(s) not used (no canonical name): ${res.unmapped.slice(0, 5).join(', ')}${res.unmapped.length > 5 ? ', ...' : ''}`);
  return res;
}
