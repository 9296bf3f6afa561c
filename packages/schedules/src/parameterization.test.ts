import { assertNoLeaksSync, initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  assertPrediction,
  convertPrediction,
  edmPreconditioning,
  edmPreconditioningTensor,
  logSNRFromLevel,
  type NoiseLevel,
  PREDICTIONS,
  type Prediction,
  predictionFromDiffusers,
  predictionToDiffusers,
  type Scalar,
  ScheduleError,
  sigmaVE,
  softplus,
  vpLevelFromLogSNR,
  vpLevelFromSigmaVE,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function maxDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const v = (await d.data())[0]!;
  d.dispose();
  return v;
}

/** Every target, from its definition, for x = alpha x0 + sigma eps. */
function targets(x0: tf.Tensor, eps: tf.Tensor, { alpha, sigma }: NoiseLevel<Scalar>) {
  return tf.tidy(() => ({
    x: tf.add(tf.mul(alpha, x0), tf.mul(sigma, eps)),
    x0: tf.clone(x0),
    epsilon: tf.clone(eps),
    v: tf.sub(tf.mul(alpha, eps), tf.mul(sigma, x0)),
    score: tf.neg(tf.div(eps, sigma)),
    flow: tf.sub(eps, x0),
  }));
}

const levels: [string, () => NoiseLevel<Scalar>][] = [
  ['VP numbers', () => ({ alpha: 0.8, sigma: 0.6 })],
  ['VE numbers (alpha = 1, sigma = 5)', () => ({ alpha: 1, sigma: 5 })],
  ['sub-VP numbers (alpha^2 + sigma^2 < 1)', () => ({ alpha: 0.7, sigma: 0.4 })],
  [
    'per-example tensors',
    () => ({
      alpha: tf.tensor2d([[0.99], [0.6], [0.1]]),
      sigma: tf.tensor2d([[0.14], [0.8], [2.5]]),
    }),
  ],
];

describe('convertPrediction: every pair of targets', () => {
  it.each(levels)(
    '%s: converting the true target of one type gives the true target of another',
    async (_n, mk) => {
      const rng = Random.seed(3);
      const x0 = rng.normal([3, 4]);
      const eps = rng.normal([3, 4]);
      const level = mk();
      const t = targets(x0, eps, level);
      for (const from of PREDICTIONS) {
        for (const to of PREDICTIONS) {
          const out = assertNoLeaksSync(
            () => convertPrediction(t[from], from, to, t.x, level),
            `${from}->${to}`,
          );
          expect(await maxDiff(out, t[to]), `${from} -> ${to}`).toBeLessThan(5e-5);
          // and back again (round trip)
          const back = convertPrediction(out, to, from, t.x, level);
          expect(await maxDiff(back, t[from]), `${from} -> ${to} -> ${from}`).toBeLessThan(5e-5);
          tf.dispose([out, back]);
        }
      }
      tf.dispose([x0, eps, ...Object.values(t)]);
      if (typeof level.alpha !== 'number') tf.dispose([level.alpha, level.sigma as tf.Tensor]);
    },
  );

  it('Tweedie on a Gaussian: the exact posterior mean, as a score, is grad log p(x)', async () => {
    // x0 ~ N(mu, s^2) per dimension; x = alpha x0 + sigma eps ~ N(alpha mu, alpha^2 s^2 + sigma^2)
    const mu = [1.5, -0.5, 0, 3];
    const s = [0.3, 1, 2, 0.05];
    const xs = [0.7, -2, 1.1, 2.9];
    for (const { alpha, sigma } of [
      { alpha: 0.9, sigma: Math.sqrt(1 - 0.81) },
      { alpha: 0.2, sigma: Math.sqrt(0.96) },
      { alpha: 1, sigma: 3 },
    ]) {
      const v = mu.map((_, i) => alpha * alpha * s[i]! ** 2 + sigma * sigma);
      // E[x0 | x] = (alpha s^2 x + sigma^2 mu) / (alpha^2 s^2 + sigma^2)
      const posteriorMean = tf.tensor1d(
        xs.map((x, i) => (alpha * s[i]! ** 2 * x + sigma * sigma * mu[i]!) / v[i]!),
      );
      const x = tf.tensor1d(xs);
      const score = convertPrediction(posteriorMean, 'x0', 'score', x, { alpha, sigma });
      const analytic = xs.map((xx, i) => -(xx - alpha * mu[i]!) / v[i]!);
      const got = await score.data();
      for (const [i, a] of analytic.entries()) expect(got[i]).toBeCloseTo(a, 4);
      // and the optimal epsilon-prediction is -sigma times that score
      const eps = convertPrediction(score, 'score', 'epsilon', x, { alpha, sigma });
      const ev = await eps.data();
      for (const [i, a] of analytic.entries()) expect(ev[i]).toBeCloseTo(-sigma * a, 4);
      tf.dispose([posteriorMean, x, score, eps]);
    }
  });

  it('rejects unknown prediction types', () => {
    const z = tf.zeros([2]);
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong input
    expect(() => convertPrediction(z, 'eps' as any, 'x0', z, { alpha: 1, sigma: 1 })).toThrow(
      /unknown prediction type 'eps'/,
    );
    expect(() => assertPrediction('noise')).toThrow(ScheduleError);
    z.dispose();
  });
});

describe('diffusers prediction_type names', () => {
  it('map both ways', () => {
    for (const p of ['x0', 'epsilon', 'v', 'flow'] as Prediction[])
      expect(predictionFromDiffusers(predictionToDiffusers(p))).toBe(p);
    expect(predictionFromDiffusers('sample')).toBe('x0');
    expect(predictionFromDiffusers('v_prediction')).toBe('v');
    expect(predictionFromDiffusers('flow_prediction')).toBe('flow');
    expect(() => predictionFromDiffusers('flow')).toThrow(
      /unknown diffusers prediction_type 'flow'/,
    );
    expect(() => predictionToDiffusers('score')).toThrow(/no prediction_type for 'score'/);
  });
});

describe('noise levels', () => {
  it('VP level from logSNR and from VE sigma, and back', () => {
    for (const l of [-30, -5, 0, 2.5, 40]) {
      const lvl = vpLevelFromLogSNR(l);
      expect(lvl.alpha ** 2 + lvl.sigma ** 2).toBeCloseTo(1, 14);
      expect(logSNRFromLevel(lvl)).toBeCloseTo(l, 10);
      const ve = sigmaVE(lvl);
      expect(ve / Math.exp(-l / 2)).toBeCloseTo(1, 12);
      const back = vpLevelFromSigmaVE(ve);
      expect(back.alpha).toBeCloseTo(lvl.alpha, 14);
      expect(back.sigma).toBeCloseTo(lvl.sigma, 14);
    }
    expect(softplus(1000)).toBe(1000);
    expect(softplus(-1000)).toBe(0);
    expect(softplus(0)).toBeCloseTo(Math.LN2, 15);
  });
});

describe('EDM preconditioning (Karras et al. 2022, Table 1)', () => {
  it('unit-variance input and training target, skip connection at sigma_data', () => {
    for (const sigma of [0.002, 0.1, 0.5, 1, 80]) {
      for (const sd of [0.5, 1]) {
        const c = edmPreconditioning(sigma, sd);
        // Var[c_in (x0 + sigma n)] = 1
        expect(c.cIn ** 2 * (sd * sd + sigma * sigma)).toBeCloseTo(1, 12);
        // Var[(x0 - c_skip (x0 + sigma n)) / c_out] = 1  (the effective target has unit variance)
        expect(
          ((1 - c.cSkip) ** 2 * sd * sd + c.cSkip ** 2 * sigma * sigma) / c.cOut ** 2,
        ).toBeCloseTo(1, 10);
        expect(c.cNoise).toBeCloseTo(Math.log(sigma) / 4, 14);
      }
    }
  });

  it('tensor version equals the number version and has no leaks', async () => {
    const sig = [0.01, 0.5, 2, 60];
    const t = tf.tensor1d(sig);
    const c = assertNoLeaksSync(() => edmPreconditioningTensor(t, 0.5));
    const [sk, so, si, sn] = await Promise.all([
      c.cSkip.data(),
      c.cOut.data(),
      c.cIn.data(),
      c.cNoise.data(),
    ]);
    sig.forEach((s, i) => {
      const n = edmPreconditioning(s, 0.5);
      expect(sk[i]).toBeCloseTo(n.cSkip, 5);
      expect(so[i]).toBeCloseTo(n.cOut, 5);
      expect(si[i]).toBeCloseTo(n.cIn, 5);
      expect(sn[i]).toBeCloseTo(n.cNoise, 5);
    });
    tf.dispose([t, c.cSkip, c.cOut, c.cIn, c.cNoise]);
  });

  it('rejects sigma <= 0 and sigma_data <= 0', () => {
    expect(() => edmPreconditioning(0)).toThrow(/sigma > 0/);
    expect(() => edmPreconditioning(1, -1)).toThrow(ScheduleError);
    const t = tf.ones([2]);
    expect(() => edmPreconditioningTensor(t, 0)).toThrow(/sigmaData > 0/);
    t.dispose();
  });
});
