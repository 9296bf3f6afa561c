import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs build script, no types
import { assembleSimdKernels } from '../../scripts/assemble-simd.mjs';
import { initBackend } from '../index.js';
import { simdKernels } from './index.js';
import { SIMD_KERNELS_BASE64 } from './kernels.generated.js';

describe('SIMD kernels module', () => {
  it('kernels.generated.ts is kernels.wat assembled (run `pnpm build:simd` after editing the .wat)', async () => {
    const wat = readFileSync(new URL('./kernels.wat', import.meta.url), 'utf8');
    const bytes: Uint8Array = await assembleSimdKernels(wat);
    expect(Buffer.from(bytes).toString('base64')).toBe(SIMD_KERNELS_BASE64);
  });

  it('binds to the wasm backend in Node, once per backend; not to cpu', async () => {
    await initBackend('wasm');
    const k = simdKernels(tf.backend());
    expect(k).not.toBeNull();
    expect(simdKernels(tf.backend())).toBe(k);
    await initBackend('cpu');
    expect(simdKernels(tf.backend())).toBeNull();
  });

  it('mul works in place on the heap, including a tail of fewer than 4 values', async () => {
    await initBackend('wasm');
    const be = tf.backend() as unknown as { getMemoryOffset(id: object): number };
    const y = tf.tensor1d([1, 2, 3, 4, 5, 6, 7]);
    const w = tf.tensor1d([2, 2, 2, 2, 0.5, -1, 3]);
    simdKernels(tf.backend())!.mul(be.getMemoryOffset(y.dataId), be.getMemoryOffset(w.dataId), 7);
    expect(Array.from(await y.data())).toEqual([2, 4, 6, 8, 2.5, -6, 21]);
    tf.dispose([y, w]);
  });
});
