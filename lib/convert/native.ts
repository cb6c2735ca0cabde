/** Typed access to the weights part of the native addon (native/napi/weights_binding.cpp). */
import { callNative, callNativeSync } from '../errors.js';
import { loadNative } from '../native/binding.js';

export interface MappedTensor {
  source: string;
  target: string;
  component: string;
  shape: number[];
  op: 'copy' | 'reshape' | 'rows';
  rowBegin: number;
  rowEnd: number;
}

export interface NameMapResult {
  naming: string;
  mapped: MappedTensor[];
  dropped: string[];
  unmapped: string[];
}

export interface SafetensorsHeaderEntry {
  name: string;
  dtype: 'f32' | 'f16' | 'bf16' | 'f64' | 'i64' | 'i32' | 'i16' | 'i8' | 'u8' | 'bool';
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  dataStart: number;
  fileSize: number;
  metadata: Record<string, string>;
  entries: SafetensorsHeaderEntry[];
}

interface WeightsNative {
  nameMapInfo(): { namings: string[]; components: string[] };
  detectNaming(keys: string[]): string;
  mapNames(naming: string, keys: [string, number[]][]): NameMapResult;
  readSafetensorsHeader(path: string): Promise<SafetensorsHeader>;
  castBuffer(src: Uint8Array, from: string, to: string): Promise<Uint8Array>;
}

const native = (): WeightsNative => loadNative() as unknown as WeightsNative;

export const nameMapInfo = () => native().nameMapInfo();
export const detectNaming = (keys: string[]): string => callNativeSync(() => native().detectNaming(keys));
/** Maps source keys to canonical names (naming '' = detect). The one name table lives in native/io/name_map.cpp. */
export const mapNames = (naming: string, keys: [string, number[]][]): NameMapResult =>
  callNativeSync(() => native().mapNames(naming, keys));
/** Reads and validates a safetensors header (ERR_FORMAT naming the file and tensor on any inconsistency). */
export const readSafetensorsHeader = (path: string): Promise<SafetensorsHeader> =>
  callNative(() => native().readSafetensorsHeader(path));
/** Converts whole elements between f32/f16/bf16/f64 off the JS thread (round to nearest even; core/half.h). */
export const castBuffer = (src: Uint8Array, from: string, to: string): Promise<Uint8Array> =>
  callNative(() => native().castBuffer(src, from, to));
