import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { logSNRFromLevel, PREDICTIONS } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  edmPreconditioned,
  GaussianMixture,
  logSNRTensor,
  type NoiseConditionalNetwork,
  withPrediction,
} from './index.js';

const gm = new GaussianMixture({
  weights: [0.6, 0.4],
  means: [
    [-1, 0.5],
    [1, -0.5],
  ],
  covs: [
    [
      [0.2, 0.05],
      [0.05, 0.1],
    ],
    [
      [0.1, 0],
      [0, 0.3],
    ],
  ],
  labels: [0, 1],
});

function read(t: tf.Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

function expectAllClose(a: number[], b: number[], tol: number) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    expect(Math.abs(a[i]! - b[i]!)).toBeLessThan(tol * (1 + Math.abs(b[i]!)));
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('withPrediction', () => {
  it('converts every target into every other and back to the oracle', () => {
    const x = Random.seed(1).normal([5, 2]);
    const level = { alpha: 0.7, sigma: 0.7141 };
    for (const from of PREDICTIONS) {
      for (const to of PREDICTIONS) {
        const d = withPrediction(gm.denoiser(from), to);
        expect(d.prediction).toBe(to);
        expect(d.numClasses).toBe(2);
        expectAllClose(read(d.predict(x, level)), read(gm.denoiser(to).predict(x, level)), 1e-5);
      }
    }
    x.dispose();
  });
});

describe('edmPreconditioned', () => {
  // A "network" that makes D exact: F = (D_exact(x_ve; s) - c_skip x_ve) / c_out, with the Table 1
  // coefficients written out here independently, s recovered from c_noise = ln(s) / 4.
  const sd = 0.5;
  const exactF: NoiseConditionalNetwork = {
    apply(xIn, noise, cond) {
      return tf.tidy(() => {
        const s = tf.reshape(tf.exp(tf.mul(4, noise)), [-1, 1]);
        const total = tf.add(tf.square(s), sd * sd);
        const xVe = tf.mul(xIn, tf.sqrt(total)); // c_in = 1 / sqrt(s^2 + sd^2)
        const alpha = tf.rsqrt(tf.add(1, tf.square(s)));
        const d = gm.x0(tf.mul(xVe, alpha), { alpha, sigma: tf.mul(s, alpha) }, cond?.labels);
        const cSkip = tf.div(sd * sd, total);
        const cOut = tf.div(tf.mul(s, sd), tf.sqrt(total));
        return tf.div(tf.sub(d, tf.mul(cSkip, xVe)), cOut);
      });
    },
  };

  it('D = c_skip x + c_out F(c_in x; c_noise) reproduces the oracle, number and per-example levels', async () => {
    const D = edmPreconditioned(exactF, { sigmaData: sd });
    expect(D.prediction).toBe('x0');
    const x = Random.seed(2).normal([4, 2]);
    for (const [alpha, sigma] of [
      [0.8, 0.6],
      [0.05, 0.9987],
      [0.9999, 0.0141],
    ] as const) {
      const got = await assertNoLeaks(() => D.predict(x, { alpha, sigma }), 'edm');
      expectAllClose(read(got), read(gm.x0(x, { alpha, sigma })), 2e-4);
    }
    const alpha = tf.tensor2d([0.9, 0.8, 0.6, 0.3], [4, 1]);
    const sigma = tf.sqrt(tf.sub(1, tf.square(alpha)));
    const labels = tf.tensor1d([0, 1, 1, 0], 'int32');
    expectAllClose(
      read(D.predict(x, { alpha, sigma }, { labels })),
      read(gm.x0(x, { alpha, sigma }, labels)),
      2e-4,
    );
    tf.dispose([x, alpha, sigma, labels]);
  });
});

describe('logSNRTensor', () => {
  it('matches logSNRFromLevel for numbers and per-example tensors', () => {
    expectAllClose(
      read(logSNRTensor({ alpha: 0.8, sigma: 0.6 }, 3)),
      Array(3).fill(logSNRFromLevel({ alpha: 0.8, sigma: 0.6 })),
      1e-6,
    );
    const a = tf.tensor2d([0.8, 0.6], [2, 1]);
    const s = tf.tensor2d([0.6, 0.8], [2, 1]);
    expectAllClose(
      read(logSNRTensor({ alpha: a, sigma: s }, 2)),
      [2 * Math.log(0.8 / 0.6), 2 * Math.log(0.6 / 0.8)],
      1e-6,
    );
    tf.dispose([a, s]);
  });
});
