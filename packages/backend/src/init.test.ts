import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, DiffuseError, initBackend, useSimdKernels } from './index.js';
import { simdKernels } from './simd/index.js';

describe('initBackend in Node', () => {
  it('auto picks wasm with SIMD', async () => {
    const info = await initBackend('auto');
    expect(info.name).toBe('wasm');
    expect(info.environment).toBe('node');
    expect(info.simd).toBe(true);
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(info.float32).toBe(true);
    expect(info.simdKernels).toBe(true); // Diffuse's own SIMD module bound to the wasm heap
    expect(tf.getBackend()).toBe('wasm');
  });

  it('useSimdKernels(false) turns the SIMD kernels off until initBackend binds them again', async () => {
    await initBackend('wasm');
    expect(simdKernels(tf.backend())).not.toBeNull();
    useSimdKernels(false);
    expect(simdKernels(tf.backend())).toBeNull();
    const info = await initBackend('wasm');
    expect(info.simdKernels).toBe(true);
    expect(simdKernels(tf.backend())).not.toBeNull();
  });

  it('cpu can be chosen explicitly', async () => {
    const info = await initBackend('cpu');
    expect(info).toMatchObject({ name: 'cpu', requested: 'cpu', simd: false, simdKernels: false });
    expect(tf.getBackend()).toBe('cpu');
  });

  it.each(['webgl', 'webgpu'] as const)(
    '%s says which backend and why it is unavailable',
    async (kind) => {
      const err = await initBackend(kind).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect(err).toBeInstanceOf(DiffuseError);
      expect((err as BackendUnavailableError).backend).toBe(kind);
      expect((err as Error).message).toMatch(new RegExp(`'${kind}'.*needs a browser`));
    },
  );

  it('rejects an unknown backend name', async () => {
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    await expect(initBackend('tpu' as any)).rejects.toThrow(/unknown backend/);
  });

  it('registers gradients, so training works with tfjs-core alone', async () => {
    await initBackend('wasm');
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)));
    const out = g(tf.tensor1d([1, 2, 3]));
    expect(Array.from(await out.data())).toEqual([2, 4, 6]);
  });
});
