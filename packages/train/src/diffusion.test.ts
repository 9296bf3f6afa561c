import { InvalidArgumentError, initBackend, liveTensors, Random } from '@diffuse/backend';
import { uniformTimeSampler } from '@diffuse/losses';
import { CosineSchedule } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { diffusionLoss, energyDistance } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A denoiser that predicts zeros and records the labels it was given. */
function spy(numClasses: number) {
  const seen: number[][] = [];
  return {
    seen,
    prediction: 'epsilon' as const,
    numClasses,
    predict(x: tf.Tensor, _level: unknown, cond?: Record<string, unknown>) {
      const labels = cond?.labels as tf.Tensor | undefined;
      if (labels) seen.push(Array.from(labels.dataSync()));
      return tf.zerosLike(x);
    },
  };
}

describe('diffusionLoss', () => {
  const sampler = uniformTimeSampler(new CosineSchedule());

  it('with a zero epsilon prediction the loss is the mean squared noise (about 1)', () => {
    const model = spy(0);
    const loss = diffusionLoss(model, { sampler });
    const x = tf.zeros([4000, 2]);
    const before = liveTensors();
    const l = loss({ x }, Random.seed(0));
    expect(liveTensors()).toBe(before + 1);
    // E||eps||^2 / d = 1; standard error sqrt(2 / (4000 * 2))
    expect(Math.abs(l.dataSync()[0]! - 1)).toBeLessThan(5 * Math.sqrt(2 / 8000));
    tf.dispose([x, l]);
  });

  it('replaces labels by the null class with probability condDropout', () => {
    const n = 4000;
    const labels = tf.tensor1d(new Int32Array(n).fill(2), 'int32');
    const x = tf.zeros([n, 2]);
    for (const p of [0, 0.25, 1]) {
      const model = spy(3);
      diffusionLoss(model, { sampler, condDropout: p })({ x, labels }, Random.seed(1)).dispose();
      const got = model.seen[0]!;
      expect(got.every((l) => l === 2 || l === 3)).toBe(true);
      const frac = got.filter((l) => l === 3).length / n;
      expect(Math.abs(frac - p)).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / n));
    }
    // unconditional models never see labels
    const plain = spy(0);
    diffusionLoss(plain, { sampler })({ x, labels }, Random.seed(1)).dispose();
    expect(plain.seen).toEqual([]);
    expect(() => diffusionLoss(spy(3), { sampler, condDropout: 2 })).toThrow(InvalidArgumentError);
    tf.dispose([x, labels]);
  });
});

describe('energyDistance', () => {
  it('closed forms: two point masses at distance r give 2r; identical samples give 0', () => {
    expect(energyDistance([0, 0], [3, 4], 2)).toBeCloseTo(10, 12);
    const a = [0, 1, 2, 5, -1, 3];
    expect(energyDistance(a, a, 2)).toBeCloseTo(0, 12);
    // {0, 2} vs {1}: 2 E|X-Y| = 2, E|X-X'| = (0 + 2 + 2 + 0)/4 = 1, so D^2 = 1
    expect(energyDistance([0, 2], [1], 1)).toBeCloseTo(1, 12);
    expect(() => energyDistance([1, 2, 3], [1, 2], 2)).toThrow(InvalidArgumentError);
  });
});
