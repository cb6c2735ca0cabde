// CLIP byte-level BPE tokenizer, in the two conventions the pipelines use:
//  - 'hf'       transformers CLIPTokenizer (text-to-video-ms-1.7b), without ftfy: BasicTokenizer cleaning (control
//               chars removed, whitespace normalised, CJK chars spaced, NFC, lower case), literal special-token text
//               becomes the special ids, pad = '<|endoftext|>' (49407).
//  - 'openclip' open_clip SimpleTokenizer (the enhancer): ftfy-style fixes (the subset documented at fixText), html
//               unescape twice, whitespace collapse, lower case; pad = 0.
// Both: [start] + bpe ids + [end], truncated to the context length keeping the end token.
// Vocabulary and merges come from the model folder: HF vocab.json + merges.txt, or open_clip's
// bpe_simple_vocab_16e6.txt.gz (read with node:zlib).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { St2vError } from '../errors.js';

export type ClipConvention = 'hf' | 'openclip';

const START = '<|startoftext|>';
const END = '<|endoftext|>';
// open_clip 2.24 names its special tokens <start_of_text> / <end_of_text> (same ids 49406 / 49407).
const OC_START = '<start_of_text>';
const OC_END = '<end_of_text>';
const PAT = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;
const OC_PAT = /<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

/** GPT-2 byte -> printable unicode char table. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i] as number)));
  BYTE_ORDER = bs.map((b) => table[b] as string);
  return table;
}
/** The table's values in the order open_clip lists them (printable bytes first): the first 256 vocab entries. */
let BYTE_ORDER: string[] = [];
const BYTE_ENC = bytesToUnicode();

const HTML_NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };
/** html.unescape for numeric references and the common named ones. */
function htmlUnescape(s: string): string {
  return s.replace(/&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z]+);/g, (m, body: string) => {
    if (body[0] === '#') {
      const cp = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : m;
    }
    return HTML_NAMED[body] ?? m;
  });
}

const CP1252: Record<number, number> = {
  0x20ac: 0x80, 0x201a: 0x82, 0x0192: 0x83, 0x201e: 0x84, 0x2026: 0x85, 0x2020: 0x86, 0x2021: 0x87, 0x02c6: 0x88,
  0x2030: 0x89, 0x0160: 0x8a, 0x2039: 0x8b, 0x0152: 0x8c, 0x017d: 0x8e, 0x2018: 0x91, 0x2019: 0x92, 0x201c: 0x93,
  0x201d: 0x94, 0x2022: 0x95, 0x2013: 0x96, 0x2014: 0x97, 0x02dc: 0x98, 0x2122: 0x99, 0x0161: 0x9a, 0x203a: 0x9b,
  0x0153: 0x9c, 0x017e: 0x9e, 0x0178: 0x9f,
};

/**
 * The subset of ftfy.fix_text (6.x defaults) that changes CLIP prompts: mojibake (UTF-8 read as sloppy
 * windows-1252) re-decoded when the whole text round-trips, HTML entities unescaped (to a fixed point; not when
 * the text contains '<'), terminal escapes and control characters removed,
 * CRLF -> LF, Latin ligatures and full-width characters (NFKC on those), curly quotes straightened, NFC.
 */
export function fixText(s: string): string {
  // Mojibake: every char maps to one byte in sloppy-1252 and the bytes are valid UTF-8 with a multi-byte sequence.
  if (/[\u0080-\u00ff]/.test(s)) {
    const bytes: number[] = [];
    let ok = true;
    for (const ch of s) {
      const cp = ch.codePointAt(0)!;
      if (cp < 0x100) bytes.push(cp);
      else if (CP1252[cp] !== undefined) bytes.push(CP1252[cp]);
      else {
        ok = false;
        break;
      }
    }
    if (ok) {
      try {
        const dec = new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
        if (dec !== s) s = dec;
      } catch {
        /* not mojibake */
      }
    }
  }
  // ftfy unescape_html='auto' (skipped when the text contains '<'); ftfy repeats its fixes until nothing changes.
  if (!s.includes('<')) for (let prev = ''; prev !== s; ) [prev, s] = [s, htmlUnescape(s)];
  s = s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  s = s.replace(/\r\n?/g, '\n');
  s = s.replace(/[\x00-\x08\x0b\x0e-\x1f\x7f]/g, '');
  s = s.replace(/[\ufb00-\ufb06\uff01-\uff5e]/g, (c) => c.normalize('NFKC'));
  s = s.replace(/[\u2018\u2019\u201a\u201b]/g, "'").replace(/[\u201c\u201d\u201e\u201f]/g, '"');
  return s.normalize('NFC');
}

function whitespaceClean(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function isControl(cp: number): boolean {
  // BasicTokenizer._is_control: category C* except \t \n \r.
  if (cp === 9 || cp === 10 || cp === 13) return false;
  return /\p{C}/u.test(String.fromCodePoint(cp));
}
function isWhitespace(cp: number): boolean {
  if (cp === 32 || cp === 9 || cp === 10 || cp === 13) return true;
  return /\p{Zs}/u.test(String.fromCodePoint(cp));
}
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}
/** transformers BasicTokenizer(do_lower_case, strip_accents=False, do_split_on_punc=False).tokenize joined by ' '. */
function hfBasicClean(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(cp)) continue;
    out += isWhitespace(cp) ? ' ' : ch;
  }
  let spaced = '';
  for (const ch of out) spaced += isCjk(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
  const norm = spaced.normalize('NFC');
  return norm
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0)
    .map((t) => t.toLowerCase())
    .join(' ');
}

export class ClipTokenizer {
  readonly convention: ClipConvention;
  readonly contextLength: number;
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;
  private readonly encoder: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();
  /** HF only: clean as CLIPTokenizer does when ftfy is NOT installed (BasicTokenizer); default false (ftfy path). */
  hfNoFtfy = false;

  private constructor(convention: ClipConvention, encoder: Map<string, number>, merges: string[], contextLength: number) {
    this.convention = convention;
    this.encoder = encoder;
    this.ranks = new Map(merges.map((m, i) => [m, i]));
    this.contextLength = contextLength;
    const s = encoder.get(START) ?? encoder.get(OC_START), e = encoder.get(END) ?? encoder.get(OC_END);
    if (s === undefined || e === undefined) throw new St2vError('tokenizer: vocabulary lacks the CLIP special tokens', 'ERR_FORMAT');
    this.startId = s;
    this.endId = e;
    this.padId = convention === 'hf' ? e : 0;
  }

  /** HF folder (vocab.json + merges.txt). */
  static fromHfFiles(vocabJson: string, mergesTxt: string, contextLength = 77): ClipTokenizer {
    const vocab = JSON.parse(fs.readFileSync(vocabJson, 'utf8')) as Record<string, number>;
    const merges = fs.readFileSync(mergesTxt, 'utf8').split('\n').filter((l, i) => !(i === 0 && l.startsWith('#version')) && l.trim().length > 0);
    return new ClipTokenizer('hf', new Map(Object.entries(vocab)), merges, contextLength);
  }

  /** open_clip's bpe_simple_vocab_16e6.txt.gz (merges lines 1..48894; vocab built as open_clip does). */
  static fromOpenClipBpe(gzPath: string, contextLength = 77): ClipTokenizer {
    const lines = zlib.gunzipSync(fs.readFileSync(gzPath)).toString('utf8').split('\n');
    const merges = lines.slice(1, 49152 - 256 - 2 + 1);
    const vocab: string[] = BYTE_ORDER.slice();
    for (const v of BYTE_ORDER) vocab.push(v + '</w>');
    for (const m of merges) vocab.push(m.split(' ').join(''));
    vocab.push(OC_START, OC_END);
    return new ClipTokenizer('openclip', new Map(vocab.map((v, i) => [v, i])), merges, contextLength);
  }

  /** Loads from a model folder: vocab.json + merges.txt ('hf') or bpe_simple_vocab_16e6.txt.gz ('openclip'). */
  static fromFolder(dir: string, convention: ClipConvention, contextLength = 77): ClipTokenizer {
    if (convention === 'hf') {
      const v = path.join(dir, 'vocab.json'), m = path.join(dir, 'merges.txt');
      if (!fs.existsSync(v) || !fs.existsSync(m)) throw new St2vError(`tokenizer: ${dir} lacks vocab.json/merges.txt`, 'ERR_NOT_FOUND');
      return ClipTokenizer.fromHfFiles(v, m, contextLength);
    }
    const g = path.join(dir, 'bpe_simple_vocab_16e6.txt.gz');
    if (!fs.existsSync(g)) throw new St2vError(`tokenizer: ${dir} lacks bpe_simple_vocab_16e6.txt.gz`, 'ERR_NOT_FOUND');
    return ClipTokenizer.fromOpenClipBpe(g, contextLength);
  }

  private bpe(token: string): string[] {
    const hit = this.cache.get(token);
    if (hit) return hit;
    const chars = Array.from(token);
    let word = chars.slice(0, -1).concat(chars[chars.length - 1] + '</w>');
    while (word.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const a = word[best] as string, b = word[best + 1] as string;
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === a && word[i + 1] === b) {
          next.push(a + b);
          i += 2;
        } else {
          next.push(word[i] as string);
          i += 1;
        }
      }
      word = next;
    }
    this.cache.set(token, word);
    return word;
  }

  private encodeClean(text: string, out: number[]): void {
    const oc = this.convention === 'openclip';
    for (const m of text.matchAll(oc ? OC_PAT : PAT)) {
      const t = m[0];
      if (oc ? t === OC_START || t === OC_END : t === START || t === END) {
        out.push(t === START || t === OC_START ? this.startId : this.endId);
        continue;
      }
      let u = '';
      for (const b of Buffer.from(t, 'utf8')) u += BYTE_ENC[b];
      for (const piece of this.bpe(u)) {
        const id = this.encoder.get(piece);
        if (id === undefined) throw new St2vError(`tokenizer: BPE piece '${piece}' not in the vocabulary`, 'ERR_FORMAT');
        out.push(id);
      }
    }
  }

  /** BPE ids of a text without start/end tokens. */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError('tokenizer: text must be a string');
    const ids: number[] = [];
    if (this.convention === 'openclip') {
      const clean = whitespaceClean(htmlUnescape(htmlUnescape(fixText(text))).trim()).toLowerCase();
      this.encodeClean(clean, ids);
    } else {
      // Added special tokens are split out first, the pieces are cleaned (ftfy path of CLIPTokenizer, which the
      // recorded ids were made with: fix_text, whitespace collapse, lower case) and tokenized separately.
      for (const seg of text.split(/(<\|startoftext\|>|<\|endoftext\|>)/)) {
        if (seg === START) ids.push(this.startId);
        else if (seg === END) ids.push(this.endId);
        else if (seg.length > 0) this.encodeClean(this.hfNoFtfy ? hfBasicClean(seg) : whitespaceClean(fixText(seg)).toLowerCase(), ids);
      }
    }
    return ids;
  }

  /** [start] + ids + [end], truncated to contextLength keeping the end token, padded with the convention's pad id. */
  tokenize(text: string): Int32Array {
    const ids = [this.startId, ...this.encode(text), this.endId];
    if (ids.length > this.contextLength) {
      ids.length = this.contextLength;
      ids[this.contextLength - 1] = this.endId;
    }
    const out = new Int32Array(this.contextLength).fill(this.padId);
    out.set(ids);
    return out;
  }
}
