import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  DiffuseError,
  initBackend,
  isFallbackAdapter,
  isSoftwareRenderer,
  useSimdKernels,
} from './index.js';
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

describe('software GPUs (skipped by auto in the browser)', () => {
  it('recognises software rasterisers by their renderer names', () => {
    // Chromium's WebGL on SwiftShader (headless, no GPU), Mesa's software drivers, Windows' WARP.
    for (const r of [
      'ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)',
      'Google SwiftShader',
      'llvmpipe (LLVM 15.0.6, 256 bits)',
      'softpipe',
      'ANGLE (Microsoft, Microsoft Basic Render Driver Direct3D11 vs_5_0 ps_5_0, D3D11)',
    ])
      expect(isSoftwareRenderer(r), r).toBe(true);
    for (const r of [
      'ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)',
      'Apple M2',
      'Mali-G78',
      'AMD Radeon Pro 5500M OpenGL Engine',
      'WebKit WebGL',
    ])
      expect(isSoftwareRenderer(r), r).toBe(false);
  });

  it('recognises WebGPU fallback adapters, in both places browsers put the flag', () => {
    expect(isFallbackAdapter({ info: { isFallbackAdapter: true } })).toBe(true);
    expect(isFallbackAdapter({ isFallbackAdapter: true, info: {} })).toBe(true);
    expect(isFallbackAdapter({ info: { isFallbackAdapter: false } })).toBe(false);
    expect(isFallbackAdapter({ info: { vendor: 'nvidia' } })).toBe(false);
    expect(isFallbackAdapter(null)).toBe(false);
  });
});
