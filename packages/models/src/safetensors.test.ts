import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  loadTensors,
  parseSafetensors,
  type RawTensor,
  SafetensorsError,
  saveTensors,
  serializeSafetensors,
} from './index.js';

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));

/** 8-byte little-endian length + header text padded with spaces to a multiple of 8. */
function expectedFile(headerJson: string, data: number[]): Uint8Array {
  const h = ascii(headerJson);
  const pad = (8 - (h.length % 8)) % 8;
  const n = h.length + pad;
  return Uint8Array.from([
    n & 0xff,
    (n >> 8) & 0xff,
    0,
    0,
    0,
    0,
    0,
    0,
    ...h,
    ...Array(pad).fill(0x20),
    ...data,
  ]);
}

function file(header: unknown, data: number[] | Uint8Array = []): Uint8Array {
  return expectedFile(typeof header === 'string' ? header : JSON.stringify(header), [...data]);
}

function rejects(bytes: Uint8Array, reason: string, message?: RegExp) {
  let err: unknown;
  try {
    parseSafetensors(bytes);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as SafetensorsError).reason).toBe(reason);
  if (message) expect((err as Error).message).toMatch(message);
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('safetensors writer matches the format byte by byte', () => {
  it('one F32 tensor: the reference implementation test vector', () => {
    // safetensors/src/tensor.rs `test_serialization`: attn.0, F32 [1, 2, 3] = 0..5
    const out = serializeSafetensors({
      'attn.0': { dtype: 'F32', shape: [1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) },
    });
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(64); // already aligned: no padding
    expect(out).toEqual(
      Uint8Array.from([
        64,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ...ascii(header),
        0,
        0,
        0,
        0,
        0,
        0,
        128,
        63,
        0,
        0,
        0,
        64,
        0,
        0,
        64,
        64,
        0,
        0,
        128,
        64,
        0,
        0,
        160,
        64,
      ]),
    );
  });

  it('pads the header with spaces to 8 bytes (reference `test_serialization_forced_alignement`)', () => {
    const out = serializeSafetensors({
      attn0: { dtype: 'F32', shape: [1, 1, 2, 3], data: f32(0, 1, 2, 3, 4, 5) },
    });
    const header = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
    expect(header.length).toBe(65);
    expect(out[0]).toBe(72);
    expect(Array.from(out.subarray(8 + 65, 8 + 72))).toEqual(Array(7).fill(32));
    expect(out).toEqual(expectedFile(header, [...f32(0, 1, 2, 3, 4, 5)]));
  });

  it('empty file and metadata-only file (reference `test_empty`)', () => {
    expect(serializeSafetensors({})).toEqual(
      Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]),
    );
    expect(serializeSafetensors({}, { framework: 'pt' })).toEqual(
      Uint8Array.from([
        40,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ...ascii('{"__metadata__":{"framework":"pt"}}'),
        32,
        32,
        32,
        32,
        32,
      ]),
    );
  });

  it('orders by descending dtype then name, packs contiguously, metadata first', () => {
    const tensors: Record<string, RawTensor> = {
      mask: { dtype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1) },
      b: { dtype: 'F32', shape: [2], data: f32(1, 2) },
      count: { dtype: 'I32', shape: [], data: new Uint8Array(Int32Array.of(7).buffer) },
      a: { dtype: 'F32', shape: [1], data: f32(3) },
      '10': { dtype: 'F32', shape: [1], data: f32(4) },
    };
    const out = serializeSafetensors(tensors, { z: '1', a: 'x"y' });
    const header =
      '{"__metadata__":{"a":"x\\"y","z":"1"},' +
      '"10":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
      '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},' +
      '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
      '"count":{"dtype":"I32","shape":[],"data_offsets":[16,20]},' +
      '"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[20,23]}}';
    expect(out).toEqual(
      expectedFile(header, [...f32(4), ...f32(3), ...f32(1, 2), 7, 0, 0, 0, 1, 0, 1]),
    );
  });
});

describe('safetensors round trip', () => {
  it('parse(serialize(x)) gives back the same tensors, and re-serialising gives the same bytes', () => {
    const tensors = {
      w: { dtype: 'F32' as const, shape: [2, 3], data: f32(1.5, -2, 3e-8, 4, Number.NaN, -0) },
      h: { dtype: 'F16' as const, shape: [2], data: Uint8Array.of(0, 60, 0, 192) },
      i: { dtype: 'I64' as const, shape: [1], data: new Uint8Array(BigInt64Array.of(-5n).buffer) },
      'unicodé/名': { dtype: 'U8' as const, shape: [0], data: new Uint8Array(0) },
    };
    const bytes = serializeSafetensors(tensors, { config: '{"a":1}' });
    const parsed = parseSafetensors(bytes);
    expect(parsed.metadata).toEqual({ config: '{"a":1}' });
    for (const [name, t] of Object.entries(tensors)) {
      const got = parsed.tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data).toEqual(t.data);
    }
    expect(serializeSafetensors(parsed.tensors, parsed.metadata)).toEqual(bytes);
  });

  it('tfjs tensors: float32, int32, bool survive bit for bit; F16 / I64 convert', async () => {
    const w = tf.tensor2d([1.25, -3, 1e-30, 7], [2, 2]);
    const n = tf.tensor1d([1, -2, 2147483647], 'int32');
    const m = tf.tensor1d([1, 0, 1], 'bool');
    const bytes = await saveTensors({ w, n, m });
    const loaded = loadTensors(bytes).tensors;
    // assertNoLeaks counts tensors returned in arrays, not in Maps
    await assertNoLeaks(() => [...loadTensors(bytes).tensors.values()], 'load').then((ts) =>
      tf.dispose(ts),
    );
    expect(Array.from(loaded.get('w')!.dataSync())).toEqual(Array.from(w.dataSync()));
    expect(loaded.get('n')!.dtype).toBe('int32');
    expect(Array.from(loaded.get('n')!.dataSync())).toEqual([1, -2, 2147483647]);
    expect(loaded.get('m')!.dtype).toBe('bool');
    const again = await saveTensors(loaded);
    expect(again).toEqual(bytes);
    const conv = loadTensors(
      serializeSafetensors({
        h: { dtype: 'F16', shape: [3], data: Uint8Array.of(0, 60, 0, 192, 0, 124) }, // 1, -2, inf
        b: { dtype: 'BF16', shape: [1], data: Uint8Array.of(0x80, 0x3f) }, // 1.0
        i: { dtype: 'I64', shape: [1], data: new Uint8Array(BigInt64Array.of(-5n).buffer) },
      }),
    ).tensors;
    expect(Array.from(conv.get('h')!.dataSync())).toEqual([1, -2, Number.POSITIVE_INFINITY]);
    expect(Array.from(conv.get('b')!.dataSync())).toEqual([1]);
    expect(Array.from(conv.get('i')!.dataSync())).toEqual([-5]);
    tf.dispose([w, n, m, ...loaded.values(), ...conv.values()]);
  });
});

describe('safetensors rejects malformed files with a typed error and no large allocation', () => {
  const good = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('truncated files', () => {
    rejects(Uint8Array.of(1, 2, 3), 'truncated');
    const bytes = file(good, f32(1, 2));
    rejects(bytes.subarray(0, 12), 'truncated', /past the end/);
    rejects(bytes.subarray(0, bytes.length - 1), 'out_of_range', /truncated/);
  });

  it('a header length of gigabytes (or 2^64 - 1) is refused before anything is read', () => {
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 5_000_000_000n, true);
    rejects(huge, 'header_too_large', /5000000000/);
    new DataView(huge.buffer).setBigUint64(0, 0xffffffffffffffffn, true);
    rejects(huge, 'header_too_large');
    // Just above a caller's limit.
    expect(() => parseSafetensors(file(good, f32(1, 2)), { maxHeaderBytes: 16 })).toThrow(
      /exceeds the limit of 16/,
    );
  });

  it('bad header JSON, bad UTF-8, wrong JSON types', () => {
    rejects(file('{"a": {"dtype": "F32",'), 'invalid_header', /not valid JSON/);
    rejects(file('[1, 2]'), 'invalid_header', /JSON object/);
    const badUtf8 = file('{"a":1}       ');
    badUtf8[10] = 0xff;
    rejects(badUtf8, 'invalid_header', /UTF-8/);
    rejects(file({ a: 5 }), 'invalid_header');
    rejects(file({ __metadata__: { k: 1 } }), 'invalid_metadata');
    rejects(
      file({ a: { dtype: 'F33', shape: [2], data_offsets: [0, 8] } }, f32(1, 2)),
      'invalid_dtype',
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, f32(1, 2)),
      'invalid_shape',
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [2], data_offsets: [0] } }, f32(1, 2)),
      'invalid_offsets',
    );
  });

  it('offsets out of range, overlapping, with gaps, or not covering the data', () => {
    rejects(
      file({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, f32(1)),
      'out_of_range',
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, f32(1, 2)),
      'invalid_offsets',
      /before it begins/,
    );
    rejects(
      file(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        f32(1, 2, 3),
      ),
      'overlap',
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2)),
      'invalid_offsets',
      /gap/,
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1, 2)),
      'invalid_offsets',
      /cover 4 bytes/,
    );
    rejects(
      file({ a: { dtype: 'F32', shape: [1e15, 1e15], data_offsets: [0, 8] } }, f32(1, 2)),
      'overflow',
    );
  });

  it('dtype and shape inconsistent with the byte length', () => {
    rejects(
      file({ a: { dtype: 'F64', shape: [2], data_offsets: [0, 8] } }, f32(1, 2)),
      'size_mismatch',
      /needs 16 bytes/,
    );
    expect(() =>
      serializeSafetensors({ a: { dtype: 'F32', shape: [3], data: f32(1, 2) } }),
    ).toThrow(SafetensorsError);
  });
});
