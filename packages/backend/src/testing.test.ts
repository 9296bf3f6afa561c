import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  assertNoLeaks,
  assertNoLeaksSync,
  initBackend,
  maxAbsDiff,
  readFloat32,
  TensorLeakError,
} from './index.js';

describe.each(['wasm', 'cpu'] as const)('test helpers on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend);
  });

  it('assertNoLeaks passes clean code and allows returned tensors', async () => {
    const x = tf.tensor1d([1, 2]);
    const y = await assertNoLeaks(() => tf.tidy(() => tf.add(x, 1)));
    expect(Array.from(await readFloat32(y, true))).toEqual([2, 3]);
    const pair = assertNoLeaksSync(() => ({ a: tf.neg(x), b: [tf.abs(x)] }));
    tf.dispose([pair.a, ...pair.b, x]);
  });

  it('assertNoLeaks catches a leak and counts it', async () => {
    const x = tf.tensor1d([1, 2]);
    let leaked: tf.Tensor[] = [];
    const err = await assertNoLeaks(() => {
      leaked = [tf.add(x, 1), tf.mul(x, 2)];
    }, 'leaky').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TensorLeakError);
    expect((err as TensorLeakError).leaked).toBe(2);
    expect((err as Error).message).toBe('leaky leaked 2 tensor(s)');
    tf.dispose([...leaked, x]);
  });

  it('readFloat32 disposes on request; maxAbsDiff measures', async () => {
    const t = tf.tensor1d([1, 2, 3]);
    const before = tf.memory().numTensors;
    await readFloat32(t, true);
    expect(tf.memory().numTensors).toBe(before - 1);
    expect(maxAbsDiff([1, 2, 3], [1, 2.5, 2])).toBe(1);
    expect(() => maxAbsDiff([1], [1, 2])).toThrow(RangeError);
  });
});
