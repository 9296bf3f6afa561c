import { assertNoLeaks, DiffuseError, initBackend, Random } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import {
  CosineSchedule,
  convertPrediction,
  PREDICTIONS,
  type Prediction,
  vpLevelFromLogSNRTensor,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  convertWeighting,
  denoisingLoss,
  edmLogNormalSampler,
  edmWeighting,
  effectiveWeighting,
  elboWeighting,
  LossError,
  likelihoodWeighting,
  meanAndStandardError,
  minSNRWeighting,
  ncsnWeighting,
  snrWeighting,
  targetFactor,
  truncatedSNRWeighting,
  uniformLogSNRSampler,
  uniformTimeSampler,
  uniformWeighting,
  type Weighting,
  weightedMSE,
  weightingValues,
} from './index.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const LAMBDAS = [-12, -4, -1, 0, 0.5, 3, 9];
const relClose = (a: number, b: number, tol = 1e-5) =>
  expect(Math.abs(a - b)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b)));

describe('target factors: ||target error||^2 = F_target(lambda) ||x0 error||^2', () => {
  it('F_x0 = 1, F_eps = SNR, F_v = 1 + SNR, F_score = SNR (1 + SNR)', () => {
    for (const l of LAMBDAS) {
      const snr = Math.exp(l);
      relClose(targetFactor('x0', l), 1);
      relClose(targetFactor('epsilon', l), snr);
      relClose(targetFactor('v', l), 1 + snr);
      relClose(targetFactor('score', l), snr * (1 + snr));
    }
  });

  it('match the conversions of @diffuse/schedules on real errors', async () => {
    const rng = Random.seed(2);
    const n = 7;
    const x0 = rng.normal([n, 3]);
    const noise = rng.normal([n, 3]);
    const lam = tf.tensor2d(LAMBDAS, [n, 1]);
    const level = vpLevelFromLogSNRTensor(lam);
    const x = tf.add(tf.mul(level.alpha, x0), tf.mul(level.sigma, noise));
    const x0Hat = tf.add(x0, tf.mul(0.1, rng.normal([n, 3])));
    const errX0 = (await tf.sum(tf.square(tf.sub(x0Hat, x0)), 1).data()) as Float32Array;
    for (const p of PREDICTIONS) {
      const hat = convertPrediction(x0Hat, 'x0', p, x, level);
      const truth = convertPrediction(x0, 'x0', p, x, level);
      const err = (await tf.sum(tf.square(tf.sub(hat, truth)), 1).data()) as Float32Array;
      for (let i = 0; i < n; i++) relClose(err[i]! / errX0[i]!, targetFactor(p, LAMBDAS[i]!), 2e-2);
    }
    tf.dispose([x0, noise, lam, level.alpha, level.sigma, x, x0Hat]);
  });
});

describe('the weightings, as functions of logSNR', () => {
  const onSpace = (w: Weighting, space: Prediction, density?: number[]) =>
    Array.from(weightingValues(w, LAMBDAS, density, space));

  it('min-SNR-gamma (Hang et al. 2023): min(SNR, g) on x0, min(SNR, g)/SNR on eps, min(SNR, g)/(SNR+1) on v', () => {
    const w = minSNRWeighting(5);
    LAMBDAS.forEach((l, i) => {
      const snr = Math.exp(l);
      relClose(onSpace(w, 'x0')[i]!, Math.min(snr, 5));
      relClose(onSpace(w, 'epsilon')[i]!, Math.min(snr, 5) / snr);
      relClose(onSpace(w, 'v')[i]!, Math.min(snr, 5) / (snr + 1));
    });
  });

  it('SNR on x0 is uniform on eps; truncated SNR is max(SNR, 1) on x0 and max(1, 1/SNR) on eps', () => {
    for (const v of onSpace(snrWeighting(), 'epsilon')) relClose(v, 1);
    LAMBDAS.forEach((l, i) => {
      relClose(onSpace(truncatedSNRWeighting(), 'x0')[i]!, Math.max(Math.exp(l), 1));
      relClose(onSpace(truncatedSNRWeighting(), 'epsilon')[i]!, Math.max(1, Math.exp(-l)));
    });
  });

  it("EDM's lambda(sigma) = (sigma^2 + sd^2)/(sigma sd)^2 with sigma = e^(-lambda/2); uniform on v when sd = 1", () => {
    LAMBDAS.forEach((l, i) => {
      const sigma = Math.exp(-l / 2);
      const sd = 0.5;
      relClose(onSpace(edmWeighting(sd), 'x0')[i]!, (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2);
    });
    for (const v of onSpace(edmWeighting(1), 'v')) relClose(v, 1);
  });

  it('ELBO = likelihood weighting; NCSN = half the uniform eps weighting; uniform keeps its space', () => {
    const density = LAMBDAS.map((_, i) => 0.05 + 0.1 * i);
    const elbo = onSpace(elboWeighting(), 'epsilon', density);
    const lik = onSpace(likelihoodWeighting(), 'epsilon', density);
    elbo.forEach((v, i) => {
      relClose(v, 1 / (2 * density[i]!));
      relClose(lik[i]!, v);
    });
    for (const v of onSpace(ncsnWeighting(), 'epsilon')) relClose(v, 0.5);
    for (const v of onSpace(uniformWeighting('v'), 'v')) relClose(v, 1);
    LAMBDAS.forEach((l, i) => {
      relClose(onSpace(uniformWeighting('v'), 'x0')[i]!, 1 + Math.exp(l));
    });
  });

  it("Kingma & Gao's w(lambda) = 2 p(lambda) w_eps(lambda): 1 for the ELBO, and EDM's Table 1 entry", () => {
    const density = LAMBDAS.map(
      (l) => Math.exp(-0.5 * ((l - 2.4) / 2.4) ** 2) / (2.4 * Math.sqrt(2 * Math.PI)),
    );
    for (const v of effectiveWeighting(elboWeighting(), LAMBDAS, density)) relClose(v, 1);
    // EDM: lambda ~ N(2.4, 2.4^2) (ln sigma ~ N(-1.2, 1.2^2)) and lambda(sigma) on x0:
    const edm = effectiveWeighting(edmWeighting(0.5), LAMBDAS, density);
    LAMBDAS.forEach((l, i) => {
      relClose(edm[i]!, (2 * density[i]! * (Math.exp(-l) + 0.25)) / 0.25, 1e-4);
    });
    // ... and the density the EDM sampler reports is that normal density.
    const sample = edmLogNormalSampler().sample(64, Random.seed(1));
    sample.logSNR.forEach((l, i) => {
      relClose(
        sample.density[i]!,
        Math.exp(-0.5 * ((l - 2.4) / 2.4) ** 2) / (2.4 * Math.sqrt(2 * Math.PI)),
        1e-9,
      );
    });
  });
});

describe('Kingma & Gao 2023, Table 1, with the cosine schedule of @diffuse/schedules', () => {
  // Under t ~ U(0, 1), p(lambda) = 1 / |lambda'(t)|; the effective weighting is w(lambda) = 2 p(lambda) w_eps.
  const schedule = new CosineSchedule({ logSNRMin: -15, logSNRMax: 15 });
  const { logSNR, density } = uniformTimeSampler(schedule).sample(200, Random.seed(3));

  it('eps-MSE (Ho et al., IDDPM): w(lambda) is proportional to sech(lambda / 2)', () => {
    const w = effectiveWeighting(uniformWeighting('epsilon'), logSNR, density);
    const ratio = Array.from(w, (v, i) => v * Math.cosh(logSNR[i]! / 2));
    for (const r of ratio) relClose(r, ratio[0]!, 1e-4);
    relClose(ratio[0]!, 1 / Math.PI, 1e-3); // 1 / (2a), a ~ pi / 2 for the clipped cosine
  });

  it('v-MSE: w(lambda) is proportional to e^(-lambda / 2)', () => {
    const w = effectiveWeighting(uniformWeighting('v'), logSNR, density);
    const ratio = Array.from(w, (v, i) => v * Math.exp(logSNR[i]! / 2));
    for (const r of ratio) relClose(r, ratio[0]!, 1e-4);
  });

  it('the ELBO weighting gives w(lambda) = 1 under any schedule', () => {
    for (const v of effectiveWeighting(elboWeighting(), logSNR, density)) relClose(v, 1, 1e-5);
  });
});

describe('weightedMSE on any target', () => {
  const WEIGHTINGS: Weighting[] = [
    uniformWeighting('epsilon'),
    uniformWeighting('x0'),
    snrWeighting(),
    minSNRWeighting(5),
    truncatedSNRWeighting(),
    edmWeighting(0.5),
    elboWeighting(),
    ncsnWeighting(),
    likelihoodWeighting(),
  ];

  it.each(PREDICTIONS)(
    "a %s prediction: equals converting the prediction to the weighting's target, then weighting its MSE",
    async (predictionType) => {
      const rng = Random.seed(7);
      const n = LAMBDAS.length;
      const x0 = rng.normal([n, 5]);
      const noise = rng.normal([n, 5]);
      const density = LAMBDAS.map((_, i) => 0.02 * (i + 1));
      const lam = tf.tensor2d(LAMBDAS, [n, 1]);
      const level = vpLevelFromLogSNRTensor(lam);
      const x = tf.add(tf.mul(level.alpha, x0), tf.mul(level.sigma, noise));
      // A prediction with a small error in x0 space, expressed in the model's space.
      const x0Hat = tf.add(x0, tf.mul(0.05, rng.normal([n, 5])));
      const prediction = convertPrediction(x0Hat, 'x0', predictionType, x, level);
      for (const w of WEIGHTINGS) {
        const got = (await (
          await assertNoLeaks(
            () =>
              weightedMSE({
                prediction,
                predictionType,
                x0,
                noise,
                logSNR: LAMBDAS,
                density,
                weighting: w,
              }),
            'weightedMSE',
          )
        ).data()) as Float32Array;
        // By hand: the true target from its definition, the prediction converted to it.
        const a = level.alpha;
        const s = level.sigma;
        const truth = {
          x0,
          epsilon: noise,
          v: tf.sub(tf.mul(a, noise), tf.mul(s, x0)),
          score: tf.neg(tf.div(noise, s)),
          flow: tf.sub(noise, x0),
        }[w.space];
        const hat = convertPrediction(prediction, predictionType, w.space, x, level);
        const mse = (await tf.mean(tf.square(tf.sub(hat, truth)), 1).data()) as Float32Array;
        const wv = weightingValues(w, LAMBDAS, density);
        for (let i = 0; i < n; i++) relClose(got[i]!, wv[i]! * mse[i]!, 2e-2);
      }
      tf.dispose([x0, noise, lam, level.alpha, level.sigma, x, x0Hat, prediction]);
    },
  );

  it("'sum' is d times 'mean', and gradients flow to the prediction", async () => {
    const rng = Random.seed(1);
    const x0 = rng.normal([3, 4]);
    const noise = rng.normal([3, 4]);
    const prediction = rng.normal([3, 4]);
    const input = { prediction, predictionType: 'epsilon' as const, x0, noise, logSNR: [0, 1, 2] };
    const mean = await weightedMSE(input).data();
    const sum = await weightedMSE({ ...input, reduction: 'sum' }).data();
    for (let i = 0; i < 3; i++) relClose(sum[i]!, 4 * mean[i]!);
    // d/dpred mean((pred - eps)^2) = 2 (pred - eps) / d
    const g = tf.grad((p: tf.Tensor) => tf.sum(weightedMSE({ ...input, prediction: p })))(
      prediction,
    );
    const expected = tf.div(tf.mul(2, tf.sub(prediction, noise)), 4);
    expect(tf.max(tf.abs(tf.sub(g, expected))).dataSync()[0]).toBeLessThan(1e-5);
    tf.dispose([x0, noise, prediction, g, expected]);
  });
});

describe('denoisingLoss with the exact Gaussian denoiser: E[loss | lambda] in closed form', () => {
  // x0 ~ N(mu, s^2 I): E||x0 - x0_hat||^2 / d = s^2 / (1 + SNR s^2) for the optimal denoiser, so the
  // mean-reduced loss has conditional expectation w_x0(lambda) s^2 / (1 + e^lambda s^2) given lambda.
  const s = 0.5;
  const gm = GaussianMixture.gaussian(
    [0.2, -0.1, 0.4],
    [
      [s * s, 0, 0],
      [0, s * s, 0],
      [0, 0, s * s],
    ],
  );

  it.each([
    ['uniform eps (Ho et al.)', uniformWeighting('epsilon')],
    ['min-SNR-5', minSNRWeighting(5)],
    ['truncated SNR', truncatedSNRWeighting()],
    ['uniform v', uniformWeighting('v')],
    ['ELBO', elboWeighting()],
  ] as const)('%s, for every prediction type of the model', async (_, weighting) => {
    for (const p of PREDICTIONS) {
      const rng = Random.seed(17);
      const x0 = gm.sample(4096, rng);
      const sample = uniformLogSNRSampler(-8, 8).sample(4096, rng);
      const loss = (await denoisingLoss(gm.denoiser(p), x0, {
        rng,
        sample,
        weighting,
      }).data()) as Float32Array;
      x0.dispose();
      const wx0 = weightingValues(weighting, sample.logSNR, sample.density, 'x0');
      const diff = Array.from(
        loss,
        (v, i) => v - (wx0[i]! * s * s) / (1 + Math.exp(sample.logSNR[i]!) * s * s),
      );
      const { mean, standardError } = meanAndStandardError(diff);
      expect(Math.abs(mean)).toBeLessThan(4 * standardError);
    }
  });

  it("EDM's weighting with sigma_data = s makes the optimal loss exactly 1 per dimension at every noise level", async () => {
    const rng = Random.seed(5);
    const x0 = gm.sample(8192, rng);
    const loss = await denoisingLoss(gm.denoiser('x0'), x0, {
      rng,
      sampler: edmLogNormalSampler(),
      weighting: edmWeighting(s),
    }).data();
    x0.dispose();
    const { mean, standardError } = meanAndStandardError(loss);
    expect(Math.abs(mean - 1)).toBeLessThan(4 * standardError);
    expect(standardError).toBeLessThan(0.02);
  });
});

describe('bad input gives typed errors', () => {
  const t = () => tf.zeros([2, 3]);
  it.each([
    [
      'a negative min-SNR gamma',
      () => minSNRWeighting(-1),
      /min-SNR gamma must be a positive finite number, got -1/,
    ],
    [
      'sigmaData = 0',
      () => edmWeighting(0),
      /EDM sigmaData must be a positive finite number, got 0/,
    ],
    [
      'an unknown target',
      () => uniformWeighting('eps' as Prediction),
      /unknown prediction type 'eps'/,
    ],
    [
      'ELBO weighting without density',
      () =>
        weightedMSE({
          prediction: t(),
          predictionType: 'epsilon',
          x0: t(),
          noise: t(),
          logSNR: [0, 1],
          weighting: elboWeighting(),
        }),
      /elbo weighting needs density/,
    ],
    [
      'mismatched shapes',
      () =>
        weightedMSE({
          prediction: tf.zeros([2, 4]),
          predictionType: 'x0',
          x0: t(),
          noise: t(),
          logSNR: [0, 1],
        }),
      /prediction has shape \[2, 4\] but x0 has \[2, 3\]/,
    ],
    [
      'a logSNR per example missing',
      () =>
        weightedMSE({ prediction: t(), predictionType: 'x0', x0: t(), noise: t(), logSNR: [0] }),
      /logSNR must have one entry per example \(2\), got 1/,
    ],
    [
      'a NaN logSNR',
      () =>
        weightedMSE({
          prediction: t(),
          predictionType: 'x0',
          x0: t(),
          noise: t(),
          logSNR: [0, Number.NaN],
        }),
      /logSNR\[1\] = NaN is not finite/,
    ],
    [
      'a zero density',
      () =>
        weightedMSE({
          prediction: t(),
          predictionType: 'x0',
          x0: t(),
          noise: t(),
          logSNR: [0, 1],
          density: [1, 0],
          weighting: elboWeighting(),
        }),
      /density\[1\] = 0/,
    ],
    [
      'not a weighting',
      () =>
        weightedMSE({
          prediction: t(),
          predictionType: 'x0',
          x0: t(),
          noise: t(),
          logSNR: [0, 1],
          weighting: 'min-snr' as never,
        }),
      /weighting must be a Weighting/,
    ],
    [
      'an unknown reduction',
      () =>
        weightedMSE({
          prediction: t(),
          predictionType: 'x0',
          x0: t(),
          noise: t(),
          logSNR: [0, 1],
          reduction: 'max' as never,
        }),
      /reduction must be 'mean' or 'sum', got 'max'/,
    ],
    [
      'no noise levels',
      () => denoisingLoss({ prediction: 'x0', predict: (x) => x }, t(), { rng: Random.seed(0) }),
      /needs either `sampler` or `sample`/,
    ],
    [
      'a denoiser returning the wrong shape',
      () =>
        denoisingLoss({ prediction: 'x0', predict: () => tf.zeros([2, 2]) }, t(), {
          rng: Random.seed(0),
          sample: { logSNR: [0, 1] },
        }),
      /the denoiser output has shape \[2, 2\] but x0 has \[2, 3\]/,
    ],
    [
      'a weighting of an unknown space in convertWeighting',
      () => convertWeighting(snrWeighting(), 'noise' as Prediction),
      /unknown prediction type 'noise'/,
    ],
  ])('%s', (_, fn, message) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DiffuseError);
    expect((err as Error).message).toMatch(message);
    if (!/unknown prediction type/.test(String(message))) expect(err).toBeInstanceOf(LossError);
  });
});
