/**
 * The safetensors format (Hugging Face, https://github.com/huggingface/safetensors), read and written
 * byte for byte as the reference implementation (`safetensors/src/tensor.rs`) does:
 *
 *     [8 bytes: N, little-endian u64][N bytes: UTF-8 JSON header, space-padded to a multiple of 8][data]
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
 * the data section) and may hold "__metadata__": {string: string}. The writer orders tensors by
 * descending dtype (the reference `Dtype` enum order), then by name, packs them contiguously, and
 * writes "__metadata__" first. The reader trusts nothing: header size limit (checked before any
 * decoding), strict JSON shape, offsets that tile the data section exactly (in range, no overlap, no
 * gap), and byte lengths that match dtype x shape. Browser-safe: no Node APIs.
 */

import { DiffuseError } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';

/** A safetensors file is malformed or cannot be represented; `reason` is a stable code. */
export class SafetensorsError extends DiffuseError {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('SAFETENSORS_INVALID', `safetensors: ${message}`);
    this.reason = reason;
  }
}

/** Element types of the format, in the reference implementation's order (ascending alignment). */
export const SAFETENSORS_DTYPES = [
  'BOOL',
  'U8',
  'I8',
  'F8_E5M2',
  'F8_E4M3',
  'I16',
  'U16',
  'F16',
  'BF16',
  'I32',
  'U32',
  'F32',
  'F64',
  'I64',
  'U64',
] as const;
export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};

/** The reference reader's limit on the header size (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor: dtype, shape and its little-endian bytes (row-major, C order). */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/** A parsed file: tensors (views into the input bytes) in file order, and the metadata map. */
export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function elementCount(shape: readonly number[], name: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new SafetensorsError(
        'invalid_shape',
        `tensor '${name}' has an invalid dimension ${JSON.stringify(d)}`,
      );
    }
    n *= d;
    if (!Number.isSafeInteger(n))
      throw new SafetensorsError('overflow', `tensor '${name}' has too many elements`);
  }
  return n;
}

/**
 * Serialises raw tensors (and optional string metadata) into safetensors bytes, exactly as the
 * reference `safetensors::serialize` lays them out.
 *
 * @example
 * const bytes = serializeSafetensors(
 *   { w: { dtype: 'F32', shape: [2], data: new Uint8Array(Float32Array.of(1, 2).buffer) } },
 *   { format: 'pt' },
 * );
 */
export function serializeSafetensors(
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const entries = [...(tensors instanceof Map ? tensors.entries() : Object.entries(tensors))];
  const keyed = entries.map(([name, t]) => {
    if (name === '__metadata__')
      throw new SafetensorsError('reserved_name', "'__metadata__' cannot name a tensor");
    if (!SAFETENSORS_DTYPES.includes(t.dtype))
      throw new SafetensorsError(
        'invalid_dtype',
        `tensor '${name}' has unknown dtype '${t.dtype}'`,
      );
    const nbytes = elementCount(t.shape, name) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== nbytes) {
      throw new SafetensorsError(
        'size_mismatch',
        `tensor '${name}': ${t.dtype} [${t.shape.join(', ')}] needs ${nbytes} bytes, got ${t.data.byteLength}`,
      );
    }
    return { name, t, nameBytes: utf8.encode(name), rank: SAFETENSORS_DTYPES.indexOf(t.dtype) };
  });
  // Descending dtype (alignment), then ascending name (byte order, like Rust's String Ord).
  keyed.sort((a, b) => b.rank - a.rank || compareBytes(a.nameBytes, b.nameBytes));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    const meta: Record<string, string> = {};
    for (const key of Object.keys(metadata).sort()) {
      const v = metadata[key];
      if (typeof v !== 'string')
        throw new SafetensorsError('invalid_metadata', `metadata '${key}' must be a string`);
      meta[key] = v;
    }
    header.__metadata__ = meta;
  }
  let offset = 0;
  for (const { name, t } of keyed) {
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  // Object keys that look like array indices would be reordered by JS; write the JSON by hand.
  const parts: string[] = [];
  if (header.__metadata__ !== undefined)
    parts.push(`"__metadata__":${JSON.stringify(header.__metadata__)}`);
  for (const { name } of keyed)
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(header[name])}`);
  const json = utf8.encode(`{${parts.join(',')}}`);
  const padded = json.length + ((8 - (json.length % 8)) % 8);
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  let pos = 8 + padded;
  for (const { t } of keyed) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Options of `parseSafetensors`. */
export interface ParseOptions {
  /** Largest header accepted, in bytes (default 100 MB, the reference limit). */
  maxHeaderBytes?: number;
}

/**
 * Parses and validates safetensors bytes. Tensor data are views into `bytes` (no copy). Throws a
 * `SafetensorsError` for a truncated file, an oversized or non-UTF-8/non-JSON header, an unknown
 * dtype, a shape whose byte size differs from its offsets, or offsets that do not tile the data
 * section exactly (out of range, overlapping, or leaving gaps). Nothing is allocated in proportion
 * to the declared header length before it has been checked against the limit and the file size.
 *
 * @example
 * const { tensors, metadata } = parseSafetensors(bytes);
 * const w = tensors.get('w'); // { dtype: 'F32', shape: [2], data: Uint8Array(8) }
 */
export function parseSafetensors(bytes: Uint8Array, options: ParseOptions = {}): SafetensorsFile {
  const limit = options.maxHeaderBytes ?? MAX_HEADER_BYTES;
  if (bytes.byteLength < 8) {
    throw new SafetensorsError(
      'truncated',
      `file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`,
    );
  }
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(limit)) {
    throw new SafetensorsError(
      'header_too_large',
      `header length ${n64} exceeds the limit of ${limit} bytes`,
    );
  }
  const n = Number(n64);
  if (8 + n > bytes.byteLength) {
    throw new SafetensorsError(
      'truncated',
      `header length ${n} runs past the end of the ${bytes.byteLength}-byte file`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('invalid_header', 'header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(
      'invalid_header',
      `header is not valid JSON (${(e as Error).message})`,
    );
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError('invalid_header', 'header must be a JSON object');
  }
  const metadata: Record<string, string> = {};
  const infos: {
    name: string;
    dtype: SafetensorsDtype;
    shape: number[];
    begin: number;
    end: number;
  }[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new SafetensorsError('invalid_metadata', '__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string')
          throw new SafetensorsError('invalid_metadata', `__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new SafetensorsError('invalid_header', `entry '${name}' must be an object`);
    }
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== 'string' || !SAFETENSORS_DTYPES.includes(dtype as SafetensorsDtype)) {
      throw new SafetensorsError(
        'invalid_dtype',
        `tensor '${name}' has unknown dtype ${JSON.stringify(dtype)}`,
      );
    }
    if (!Array.isArray(shape))
      throw new SafetensorsError('invalid_shape', `tensor '${name}' has no shape array`);
    const count = elementCount(shape as number[], name);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
    ) {
      throw new SafetensorsError(
        'invalid_offsets',
        `tensor '${name}' needs data_offsets [begin, end] of non-negative integers`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin)
      throw new SafetensorsError(
        'invalid_offsets',
        `tensor '${name}' ends (${end}) before it begins (${begin})`,
      );
    const nbytes = count * DTYPE_SIZE[dtype as SafetensorsDtype];
    if (!Number.isSafeInteger(nbytes))
      throw new SafetensorsError('overflow', `tensor '${name}' is too large`);
    if (end - begin !== nbytes) {
      throw new SafetensorsError(
        'size_mismatch',
        `tensor '${name}': ${dtype} [${(shape as number[]).join(', ')}] needs ${nbytes} bytes but its offsets span ${end - begin}`,
      );
    }
    infos.push({
      name,
      dtype: dtype as SafetensorsDtype,
      shape: [...(shape as number[])],
      begin,
      end,
    });
  }
  // The offsets must tile [0, data length) exactly: sorted, each starting where the last ended.
  infos.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = bytes.byteLength - 8 - n;
  let expected = 0;
  for (const info of infos) {
    if (info.begin < expected) {
      throw new SafetensorsError(
        'overlap',
        `tensor '${info.name}' [${info.begin}, ${info.end}) overlaps the previous tensor (which ends at ${expected})`,
      );
    }
    if (info.begin > expected) {
      throw new SafetensorsError(
        'invalid_offsets',
        `tensor '${info.name}' begins at ${info.begin}, leaving a gap after ${expected}`,
      );
    }
    if (info.end > dataLength) {
      throw new SafetensorsError(
        'out_of_range',
        `tensor '${info.name}' ends at ${info.end}, past the ${dataLength}-byte data section (truncated file?)`,
      );
    }
    expected = info.end;
  }
  if (expected !== dataLength) {
    throw new SafetensorsError(
      'invalid_offsets',
      `tensors cover ${expected} bytes but the data section holds ${dataLength}`,
    );
  }
  const tensors = new Map<string, RawTensor>();
  const base = 8 + n;
  for (const info of infos) {
    tensors.set(info.name, {
      dtype: info.dtype,
      shape: info.shape,
      data: bytes.subarray(base + info.begin, base + info.end),
    });
  }
  return { tensors, metadata };
}

// ------------------------------------------------------------------ tfjs tensors

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function copyAligned(data: Uint8Array): ArrayBuffer {
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}

/**
 * A raw safetensors tensor as a tfjs tensor: F32 as is; F64, F16, BF16 and the small integer types
 * converted to float32 or int32; I64/U64/U32 converted to int32 when every value fits (else an error).
 *
 * @example
 * const t = rawToTensor(parseSafetensors(bytes).tensors.get('w')!);
 */
export function rawToTensor(raw: RawTensor, name = 'tensor'): tf.Tensor {
  if (!LITTLE_ENDIAN)
    throw new SafetensorsError('big_endian', 'big-endian hosts are not supported');
  const { dtype, shape, data } = raw;
  const n = data.byteLength / DTYPE_SIZE[dtype];
  const buf = copyAligned(data);
  switch (dtype) {
    case 'F32':
      return tf.tensor(new Float32Array(buf), shape, 'float32');
    case 'F64':
      return tf.tensor(Float32Array.from(new Float64Array(buf)), shape, 'float32');
    case 'F16':
      return tf.tensor(Float32Array.from(new Uint16Array(buf), halfToFloat), shape, 'float32');
    case 'BF16': {
      const u32 = Uint32Array.from(new Uint16Array(buf), (h) => h << 16);
      return tf.tensor(new Float32Array(u32.buffer), shape, 'float32');
    }
    case 'I32':
      return tf.tensor(new Int32Array(buf), shape, 'int32');
    case 'I16':
      return tf.tensor(Int32Array.from(new Int16Array(buf)), shape, 'int32');
    case 'U16':
      return tf.tensor(Int32Array.from(new Uint16Array(buf)), shape, 'int32');
    case 'I8':
      return tf.tensor(Int32Array.from(new Int8Array(buf)), shape, 'int32');
    case 'U8':
      return tf.tensor(Int32Array.from(new Uint8Array(buf)), shape, 'int32');
    case 'BOOL':
      return tf.tensor(
        Uint8Array.from(new Uint8Array(buf), (b) => (b ? 1 : 0)),
        shape,
        'bool',
      );
    case 'U32':
    case 'I64':
    case 'U64': {
      const src =
        dtype === 'U32'
          ? new Uint32Array(buf)
          : dtype === 'I64'
            ? new BigInt64Array(buf)
            : new BigUint64Array(buf);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = Number(src[i]!);
        if (v < -(2 ** 31) || v >= 2 ** 31)
          throw new SafetensorsError(
            'out_of_range',
            `${dtype} tensor '${name}' holds ${v}, which does not fit int32`,
          );
        out[i] = v;
      }
      return tf.tensor(out, shape, 'int32');
    }
    default:
      throw new SafetensorsError(
        'unsupported_dtype',
        `tensor '${name}' has dtype ${dtype}, which tfjs cannot hold`,
      );
  }
}

/**
 * A tfjs tensor as raw safetensors data (float32 -> F32, int32 -> I32, bool -> BOOL). Reads the tensor
 * back asynchronously.
 *
 * @example
 * const raw = await tensorToRaw(tf.tensor1d([1, 2]));
 */
export async function tensorToRaw(t: tf.Tensor): Promise<RawTensor> {
  const values = await t.data();
  return rawFromValues(t.dtype, t.shape, values);
}

function rawFromValues(
  dtype: tf.DataType,
  shape: number[],
  values: tf.TypedArray | ArrayLike<number>,
): RawTensor {
  if (!LITTLE_ENDIAN)
    throw new SafetensorsError('big_endian', 'big-endian hosts are not supported');
  switch (dtype) {
    case 'float32': {
      const a = Float32Array.from(values as ArrayLike<number>);
      return { dtype: 'F32', shape: [...shape], data: new Uint8Array(a.buffer) };
    }
    case 'int32': {
      const a = Int32Array.from(values as ArrayLike<number>);
      return { dtype: 'I32', shape: [...shape], data: new Uint8Array(a.buffer) };
    }
    case 'bool':
      return {
        dtype: 'BOOL',
        shape: [...shape],
        data: Uint8Array.from(values as ArrayLike<number>, (v) => (v ? 1 : 0)),
      };
    default:
      throw new SafetensorsError('unsupported_dtype', `cannot store a ${dtype} tensor`);
  }
}

/**
 * Saves named tfjs tensors as safetensors bytes (with optional string metadata).
 *
 * @example
 * const bytes = await saveTensors({ w: tf.ones([2, 2]) }, { note: 'demo' });
 */
export async function saveTensors(
  tensors: Record<string, tf.Tensor> | Map<string, tf.Tensor>,
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const raw = new Map<string, RawTensor>();
  for (const [name, t] of tensors instanceof Map ? tensors : Object.entries(tensors))
    raw.set(name, await tensorToRaw(t));
  return serializeSafetensors(raw, metadata);
}

/**
 * Loads safetensors bytes as named tfjs tensors (the caller owns and disposes them).
 *
 * @example
 * const { tensors, metadata } = loadTensors(bytes);
 */
export function loadTensors(
  bytes: Uint8Array,
  options?: ParseOptions,
): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
  const file = parseSafetensors(bytes, options);
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, raw] of file.tensors) tensors.set(name, rawToTensor(raw, name));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata: file.metadata };
}
