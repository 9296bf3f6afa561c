/**
 * The conditional flow-matching loss against closed forms: by hand on its definition; for an x0
 * model, ||x0_hat - x0||^2 / t^2; zero for the exact velocity of a point mass; the same number for
 * the same model in any parameterisation; typed errors; SD 3's logit-normal times.
 */
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { convertPrediction, type Prediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DenoiserLike, flowMatchingLoss, flowTimes, LossError } from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** A model whose x0 estimate is 0.7 x (+ 0.1): not the truth, so the loss is not zero. */
const affine = (prediction: Prediction): DenoiserLike => ({
  prediction,
  predict: (x, level) =>
    tf.tidy(() => convertPrediction(tf.add(tf.mul(x, 0.7), 0.1), 'x0', prediction, x, level)),
});

const x0 = () =>
  tf.tensor([
    [0.5, -1.0, 2.0],
    [1.5, 0.25, -0.75],
    [0.0, 1.0, 1.0],
  ]);
const noise = () =>
  tf.tensor([
    [0.3, 0.2, -1.1],
    [-0.4, 1.3, 0.05],
    [2.0, -0.6, 0.7],
  ]);
const T = [0.1, 0.5, 0.93];

describe('flowMatchingLoss', () => {
  it('is E||u_hat - (eps - x0)||^2 by hand, and ||x0_hat - x0||^2 / t^2 for an x0 model', async () => {
    await assertNoLeaks(async () => {
      const [a, z] = [x0(), noise()];
      const loss = flowMatchingLoss(affine('x0'), a, { t: T, noise: z });
      const got = await loss.array();
      loss.dispose();
      const A = (await a.array()) as number[][];
      const Z = (await z.array()) as number[][];
      for (let i = 0; i < 3; i++) {
        const t = T[i]!;
        let byHand = 0;
        let viaX0 = 0;
        for (let d = 0; d < 3; d++) {
          const x = (1 - t) * A[i]![d]! + t * Z[i]![d]!;
          const x0Hat = 0.7 * x + 0.1;
          const uHat = (x - x0Hat) / t; // eps_hat - x0_hat on the flow path
          byHand += (uHat - (Z[i]![d]! - A[i]![d]!)) ** 2 / 3;
          viaX0 += (x0Hat - A[i]![d]!) ** 2 / 3 / (t * t);
        }
        expect(got[i]).toBeCloseTo(byHand, 4);
        expect(got[i]).toBeCloseTo(viaX0, 4);
      }
      tf.dispose([a, z]);
    });
  });

  it('gives the same number for the same model in every parameterisation', async () => {
    const [a, z] = [x0(), noise()];
    const read = async (p: Prediction) => {
      const l = flowMatchingLoss(affine(p), a, { t: T, noise: z });
      const v = await l.data();
      l.dispose();
      return v;
    };
    const ref = await read('flow');
    for (const p of ['x0', 'epsilon', 'v', 'score'] as Prediction[]) {
      const got = await read(p);
      for (let i = 0; i < 3; i++) expect(got[i]! / ref[i]!).toBeCloseTo(1, 3);
    }
    tf.dispose([a, z]);
  });

  it('is zero for the exact velocity field of a point mass', async () => {
    const mu = 0.8;
    // data = mu exactly: x_t = (1 - t) mu + t eps, so u = eps - mu = (x_t - mu) / t
    const exact: DenoiserLike = {
      prediction: 'flow',
      predict: (x, level) => tf.tidy(() => tf.div(tf.sub(x, mu), level.sigma as tf.Tensor)),
    };
    const a = tf.fill([64, 2], mu);
    const loss = flowMatchingLoss(exact, a, { rng: Random.seed(3), timeSampling: 'logit-normal' });
    expect(Math.max(...(await loss.data()))).toBeLessThan(1e-8);
    tf.dispose([a, loss]);
  });

  it("SD 3's logit-normal times and typed errors", () => {
    const t = flowTimes(4000, Random.seed(1), 'logit-normal', 0.5, 1);
    const logit = Array.from(t, (v) => Math.log(v / (1 - v)));
    const mean = logit.reduce((s, v) => s + v, 0) / logit.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    expect(t.every((v) => v > 0 && v < 1)).toBe(true);
    const a = x0();
    expect(() => flowMatchingLoss(affine('x0'), a, { t: [0, 0.5, 0.5] })).toThrow(LossError);
    expect(() => flowMatchingLoss(affine('x0'), a, { t: [0.5, 0.5] })).toThrow(/t has 2 entries/);
    expect(() => flowMatchingLoss(affine('x0'), a, {})).toThrow(/rng must be a Random/);
    expect(() => flowTimes(3, Random.seed(0), 'beta' as 'uniform')).toThrow(LossError);
    a.dispose();
  });
});
