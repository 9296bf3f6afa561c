import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it, vi } from 'vitest';
import { BackendUnavailableError, initBackend } from './index.js';
import { loadBackendPackage } from './packages.js';

describe('backend packages (optional peers)', () => {
  it('in Node, initBackend imports an installed backend package by name', async () => {
    const info = await initBackend('cpu');
    expect(info.name).toBe('cpu');
    const pkg = await loadBackendPackage('cpu');
    expect(Object.keys(pkg)).toContain('MathBackendCPU');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('an entry hands its package to initBackend: @diffuse/backend/wasm', async () => {
    await import('./entries/wasm.js');
    const pkg = await loadBackendPackage('wasm');
    expect(typeof pkg.setWasmPaths).toBe('function');
    expect(pkg.getThreadsCount).toBe(
      (await import('@tensorflow/tfjs-backend-wasm')).getThreadsCount,
    );
  });

  it('outside Node, a backend no entry enabled fails with what to import and install', async () => {
    // The check runs before the first await, so the stub only lives for this call.
    vi.stubGlobal('process', { versions: {} });
    const pending = loadBackendPackage('webgl');
    vi.unstubAllGlobals();
    await expect(pending).rejects.toThrow(BackendUnavailableError);
    await expect(pending).rejects.toThrow(
      /import '@diffuse\/backend\/webgl'.*install @tensorflow\/tfjs-backend-webgl/,
    );
  });
});
