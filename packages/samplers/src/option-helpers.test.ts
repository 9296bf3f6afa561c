/**
 * The shared step pieces behind diffusers' options, against closed forms: dynamic thresholding (Imagen)
 * with torch.quantile's linear interpolation, and DDPM's learned-range variance at its ends.
 */
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamicThreshold, learnedVarianceStd, SamplerError } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('dynamicThreshold', () => {
  it('clips each batch row to its |x| quantile s (clamped to [1, max]) and divides by s', async () => {
    // row 0: |x| sorted 0.5 1 2 4; ratio 0.5 -> rank 1.5 -> s = 1.5; row 1: all below 1 -> s = 1
    const x = tf.tensor([
      [[4], [-0.5], [1], [-2]],
      [[0.2], [-0.4], [0.6], [0.8]],
    ]);
    const got = await assertNoLeaks(async () => {
      const y = dynamicThreshold(x, 0.5, 3);
      const a = await y.array();
      y.dispose();
      return a as number[][][];
    });
    expect(got[0]!.flat()).toEqual([1, -0.5 / 1.5, 1 / 1.5, -1].map((v) => expect.closeTo(v, 6)));
    expect(got[1]!.flat()).toEqual([0.2, -0.4, 0.6, 0.8].map((v) => expect.closeTo(v, 6)));
    // sample_max_value caps s: ratio 1 -> s = 4, capped at 2
    const capped = dynamicThreshold(x, 1, 2);
    expect((await capped.array()) as number[][][]).toEqual([
      [[1], [-0.25], [0.5], [-1]].map((r) => r.map((v) => expect.closeTo(v, 6))),
      [[0.2], [-0.4], [0.6], [0.8]].map((r) => r.map((v) => expect.closeTo(v, 6))),
    ]);
    tf.dispose([x, capped]);
  });
  it('needs a batch dimension and a valid ratio', () => {
    const x = tf.tensor1d([1, 2]);
    expect(() => dynamicThreshold(x, 0.9, 1)).toThrow(SamplerError);
    const z = tf.zeros([1, 2]);
    expect(() => dynamicThreshold(z, 1.5, 1)).toThrow(/dynamic_thresholding_ratio/);
    tf.dispose([x, z]);
  });
});

describe('learnedVarianceStd', () => {
  it('spans sqrt(posterior variance) at v = -1 to sqrt(beta) at v = 1 (Improved DDPM, eq. 15)', async () => {
    const [a, ap] = [0.5, 0.6];
    const beta = 1 - a / ap;
    const tilde = ((1 - ap) / (1 - a)) * beta;
    const v = tf.tensor1d([-1, 1, 0]);
    const std = learnedVarianceStd(v, a, ap, 'learned_range');
    const got = (await std.data()) as Float32Array;
    expect(got[0]).toBeCloseTo(Math.sqrt(tilde), 6);
    expect(got[1]).toBeCloseTo(Math.sqrt(beta), 6);
    expect(got[2]).toBeCloseTo((tilde * beta) ** 0.25, 6);
    const v2 = tf.tensor1d([0.25]);
    const direct = learnedVarianceStd(v2, a, ap, 'learned');
    expect((await direct.data())[0]).toBeCloseTo(0.5, 6);
    tf.dispose([v, std, v2, direct]);
  });
});
