/**
 * Conversion inputs: one weights file (.safetensors, torch .ckpt/.pt/.pth/.bin, a *.index.json of shards), a
 * diffusers folder (unet/, text_encoder/, vae/, image_encoder/ with *.safetensors or *.bin, tokenizer/ copied),
 * or a plain folder of weights files. Every tensor is a lazy reference whose bytes stream on demand.
 */
import fs from 'node:fs';
import path from 'node:path';
import { St2vError } from '../errors.js';
import { readSafetensorsHeader } from './native.js';
import { DTYPE_SIZE, type TorchDType, TorchCheckpoint, stateDict } from './torch.js';

export interface SourceTensor {
  name: string;
  dtype: TorchDType;
  shape: number[];
  /** Elements in row-major order, stored dtype, in chunks of whole elements. */
  chunks(): AsyncGenerator<Uint8Array>;
}

export interface SourceGroup {
  /** Where it came from (file or folder), for messages and model.json. */
  label: string;
  /** The files read for it. */
  files: string[];
  /** Naming suggested by the folder layout ('' = detect from the keys). */
  namingHint: string;
  /** A diffusers subfolder name (unet, text_encoder, vae, ...), if any. */
  subfolder?: string;
  tensors: SourceTensor[];
  close(): void;
}

export interface SourceSet {
  groups: SourceGroup[];
  /** Extra files to copy into the model folder: [from, relative destination]. */
  copies: [string, string][];
  /** Every input file read (for hashing). */
  files: string[];
  close(): void;
}

const CHUNK = 4 << 20;

/** Re-chunks a byte stream into pieces holding whole elements. */
export async function* wholeElements(src: AsyncIterable<Uint8Array>, esz: number): AsyncGenerator<Uint8Array> {
  let carry: Uint8Array | undefined;
  for await (const c of src) {
    let buf = c;
    if (carry) {
      buf = new Uint8Array(carry.length + c.length);
      buf.set(carry);
      buf.set(c, carry.length);
      carry = undefined;
    }
    const whole = buf.length - (buf.length % esz);
    if (whole < buf.length) carry = buf.slice(whole);
    if (whole > 0) yield buf.subarray(0, whole);
  }
  if (carry) throw new St2vError('stream ended inside an element', 'ERR_FORMAT');
}

async function openSafetensors(file: string): Promise<SourceTensor[]> {
  const h = await readSafetensorsHeader(file);
  return h.entries.map((e) => ({
    name: e.name,
    dtype: e.dtype,
    shape: e.shape,
    async *chunks() {
      if (e.end === e.begin) return;
      const s = fs.createReadStream(file, { start: h.dataStart + e.begin, end: h.dataStart + e.end - 1, highWaterMark: CHUNK });
      let got = 0;
      for await (const c of wholeElements(s as AsyncIterable<Buffer>, DTYPE_SIZE[e.dtype])) {
        got += c.length;
        yield c;
      }
      if (got !== e.end - e.begin) throw new St2vError(`${file}: tensor '${e.name}': unexpected end of file`, 'ERR_FORMAT');
    },
  }));
}

async function openTorch(file: string): Promise<{ tensors: SourceTensor[]; ck: TorchCheckpoint }> {
  const ck = await TorchCheckpoint.open(file, { chunkBytes: CHUNK });
  const tensors = stateDict(ck.root).map(([name, t]) => ({
    name,
    dtype: t.dtype,
    shape: t.shape,
    chunks: () => ck.chunks(t),
  }));
  return { tensors, ck };
}

const isSafetensors = (f: string) => f.endsWith('.safetensors');
const isIndex = (f: string) => f.endsWith('.index.json');
const isTorch = (f: string) => /\.(ckpt|pt|pth|bin)$/.test(f);

/** Opens one weights file or one index of shards as a group. */
async function openGroup(files: string[], label: string, namingHint: string, subfolder?: string): Promise<SourceGroup> {
  const tensors: SourceTensor[] = [];
  const cks: TorchCheckpoint[] = [];
  const close = () => cks.forEach((c) => c.close());
  try {
    for (const f of files) {
      if (isSafetensors(f)) tensors.push(...(await openSafetensors(f)));
      else {
        const { tensors: t, ck } = await openTorch(f);
        cks.push(ck);
        tensors.push(...t);
      }
    }
  } catch (err) {
    close();
    throw err;
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) {
      close();
      throw new St2vError(`${label}: tensor '${t.name}' appears in more than one file`, 'ERR_FORMAT');
    }
    seen.add(t.name);
  }
  return { label, files, namingHint, ...(subfolder ? { subfolder } : {}), tensors, close };
}

function shardsOf(index: string): string[] {
  let j: { weight_map?: Record<string, string> };
  try {
    j = JSON.parse(fs.readFileSync(index, 'utf8')) as typeof j;
  } catch (err) {
    throw new St2vError(`${index}: not a readable index (${(err as Error).message})`, 'ERR_FORMAT', { cause: err });
  }
  if (!j.weight_map || typeof j.weight_map !== 'object') throw new St2vError(`${index}: no weight_map`, 'ERR_FORMAT');
  const dir = path.dirname(index);
  const files = [...new Set(Object.values(j.weight_map))];
  for (const f of files)
    if (typeof f !== 'string' || path.isAbsolute(f) || f.includes('..'))
      throw new St2vError(`${index}: unsafe shard path ${String(f)}`, 'ERR_FORMAT');
  return files.sort().map((f) => path.join(dir, f));
}

/** The weights files of one model folder (a diffusers subfolder): safetensors preferred, non-variant preferred. */
function pickModelFiles(dir: string): string[] | undefined {
  const names = fs.readdirSync(dir).sort();
  for (const ext of ['.safetensors', '.bin']) {
    const idx = names.filter((n) => n.endsWith(`${ext}.index.json`));
    const plainIdx = idx.filter((n) => !/\.(fp16|bf16|fp32)\./.test(n));
    if (idx.length > 0) return shardsOf(path.join(dir, (plainIdx[0] ?? idx[0])!));
    const files = names.filter((n) => n.endsWith(ext));
    if (files.length === 0) continue;
    const plain = files.filter((n) => !/\.(fp16|bf16|fp32)\./.test(n));
    return (plain.length > 0 ? plain : files).map((n) => path.join(dir, n));
  }
  const other = names.filter((n) => /\.(ckpt|pt|pth)$/.test(n));
  return other.length > 0 ? other.map((n) => path.join(dir, n)) : undefined;
}

const DIFFUSERS_SUBFOLDERS: Record<string, string> = {
  unet: 'diffusers_unet', text_encoder: 'hf_clip_text', vae: 'diffusers_vae', image_encoder: '',
};

/** CLIP tokenizer files (HF vocab.json + merges.txt) a model folder needs; copied into its tokenizer/ folder. */
export const TOKENIZER_FILES = ['vocab.json', 'merges.txt'] as const;

/**
 * The tokenizer files of a plain folder: `vocab.json` + `merges.txt` in the folder itself or in its `tokenizer/`
 * subfolder (plus special_tokens_map.json / tokenizer_config.json when present), as [from, 'tokenizer/<name>'].
 * Empty when the folder has neither pair.
 */
export function tokenizerCopies(dir: string): [string, string][] {
  for (const d of [path.join(dir, 'tokenizer'), dir]) {
    if (!TOKENIZER_FILES.every((n) => fs.existsSync(path.join(d, n)) && fs.statSync(path.join(d, n)).isFile())) continue;
    const extra = ['special_tokens_map.json', 'tokenizer_config.json'].filter((n) => fs.existsSync(path.join(d, n)));
    return [...TOKENIZER_FILES, ...extra].map((n) => [path.join(d, n), path.join('tokenizer', n)] as [string, string]);
  }
  return [];
}

export async function openSources(input: string): Promise<SourceSet> {
  let st: fs.Stats;
  try {
    st = fs.statSync(input);
  } catch (err) {
    throw new St2vError(`${input}: no such file or folder`, 'ERR_NOT_FOUND', { cause: err });
  }
  const groups: SourceGroup[] = [];
  const copies: [string, string][] = [];
  const set: SourceSet = {
    groups,
    copies,
    files: [],
    close: () => groups.forEach((g) => g.close()),
  };
  try {
    if (st.isFile()) {
      if (isIndex(input)) groups.push(await openGroup(shardsOf(input), input, ''));
      else if (isSafetensors(input) || isTorch(input)) groups.push(await openGroup([input], input, ''));
      else throw new St2vError(`${input}: not a weights file (.safetensors, .ckpt, .pt, .pth, .bin, *.index.json)`, 'ERR_UNSUPPORTED');
    } else if (st.isDirectory()) {
      const subs = Object.keys(DIFFUSERS_SUBFOLDERS).filter((s) => fs.existsSync(path.join(input, s)) && fs.statSync(path.join(input, s)).isDirectory());
      if (subs.length > 0) {
        for (const s of subs) {
          const dir = path.join(input, s);
          const files = pickModelFiles(dir);
          if (!files) continue;
          groups.push(await openGroup(files, dir, DIFFUSERS_SUBFOLDERS[s]!, s));
          const cfg = path.join(dir, 'config.json');
          if (fs.existsSync(cfg)) copies.push([cfg, path.join('source-configs', `${s}.json`)]);
        }
        const tok = path.join(input, 'tokenizer');
        if (fs.existsSync(tok) && fs.statSync(tok).isDirectory())
          for (const n of fs.readdirSync(tok).sort())
            if (fs.statSync(path.join(tok, n)).isFile()) copies.push([path.join(tok, n), path.join('tokenizer', n)]);
        const mi = path.join(input, 'model_index.json');
        if (fs.existsSync(mi)) copies.push([mi, path.join('source-configs', 'model_index.json')]);
      } else {
        const names = fs.readdirSync(input).sort();
        copies.push(...tokenizerCopies(input));
        const sharded = new Set<string>();
        for (const n of names.filter(isIndex)) {
          const shards = shardsOf(path.join(input, n));
          shards.forEach((s) => sharded.add(s));
          groups.push(await openGroup(shards, path.join(input, n), ''));
        }
        for (const n of names) {
          const f = path.join(input, n);
          if (sharded.has(f) || isIndex(n) || !(isSafetensors(n) || isTorch(n)) || !fs.statSync(f).isFile()) continue;
          groups.push(await openGroup([f], f, ''));
        }
      }
      if (groups.length === 0) throw new St2vError(`${input}: no weights files found in the folder`, 'ERR_NOT_FOUND');
    } else {
      throw new St2vError(`${input}: not a file or folder`, 'ERR_INVALID_ARG');
    }
  } catch (err) {
    set.close();
    throw err;
  }
  set.files = [...new Set(groups.flatMap((g) => g.files))];
  return set;
}
