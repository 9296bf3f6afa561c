// Its own file (own process): the cpu backend prints its banner once, on its first tensor.
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { initBackend } from './index.js';

describe('the tfjs-node banner', () => {
  afterEach(() => vi.restoreAllMocks());

  it('initBackend("cpu") in Node prints no advertisement for @tensorflow/tfjs-node', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    await initBackend('cpu');
    tf.dispose(tf.add(tf.tensor1d([1, 2]), 1));
    const printed = [...warn.mock.calls, ...log.mock.calls].flat().join('\n');
    expect(printed).not.toMatch(/tfjs-node/);
  });

  it('tfjs-backend-cpu would print it without initBackend (the test can fail)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    await import('@tensorflow/tfjs-backend-cpu');
    tf.removeBackend('cpu');
    const { MathBackendCPU } = await import('@tensorflow/tfjs-backend-cpu');
    tf.registerBackend('cpu', () => new MathBackendCPU());
    await tf.setBackend('cpu');
    tf.dispose(tf.tensor1d([1, 2]));
    expect(warn.mock.calls.flat().join('\n')).toMatch(/tfjs-node/);
  });
});
