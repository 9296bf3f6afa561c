import { assertNoLeaks, DiffuseError, initBackend, Random } from '@diffuse/backend';
import { GaussianMixture } from '@diffuse/models';
import { createSchedule, listSchedules, PREDICTIONS } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  exactContinuous,
  exactDiscrete,
  exactNLL,
  exactPrior,
  exactReconstruction,
  gaussianDenoiser,
  warpedSchedule,
} from './gaussian-fixture.js';
import {
  bitsPerDim,
  continuousDiffusionLoss,
  type DenoiserLike,
  denoisingLoss,
  denoisingScoreMatchingLoss,
  discreteDiffusionLoss,
  gaussianReconstructionNLL,
  importanceSampler,
  type LogSNRSchedule,
  LossError,
  meanAndStandardError,
  negativeELBO,
  priorKL,
  uniformLogSNRSampler,
  uniformTimeSampler,
} from './index.js';

// Data x0 ~ N(mu, s^2 I_d): the optimal denoiser and every term of the ELBO are known in closed form.
const d = 4;
const mu = 0.3;
const s = 0.5;
const L_MIN = -10;
const L_MAX = 10;

const gm = GaussianMixture.gaussian(
  Array(d).fill(mu),
  Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? s * s : 0))),
);

/** Three continuous schedules with the same endpoints lambda(0) = 10, lambda(1) = -10. */
const SCHEDULES: Record<string, LogSNRSchedule> = {
  'logSNR-linear': warpedSchedule(
    L_MIN,
    L_MAX,
    (t) => t,
    () => 1,
  ),
  'exponential warp': warpedSchedule(
    L_MIN,
    L_MAX,
    (t) => Math.expm1(3 * t) / Math.expm1(3),
    (t) => (3 * Math.exp(3 * t)) / Math.expm1(3),
  ),
  'sine warp': warpedSchedule(
    L_MIN,
    L_MAX,
    (t) => t - (0.14 * Math.sin(2 * Math.PI * t)) / Math.PI,
    (t) => 1 - 0.28 * Math.cos(2 * Math.PI * t),
  ),
};

async function perExample(t: tf.Tensor): Promise<Float32Array> {
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

async function estimate(fn: () => tf.Tensor): Promise<{ mean: number; standardError: number }> {
  return meanAndStandardError(await perExample(await assertNoLeaks(fn, 'loss')));
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('continuous-time diffusion loss (VDM eq. 17) on Gaussian data', () => {
  const exact = exactContinuous(d, s, L_MIN, L_MAX);
  const N = 8192;

  it.each(Object.keys(SCHEDULES))(
    '%s: the Monte-Carlo estimate matches d/2 log[(1+SNRmax s^2)/(1+SNRmin s^2)]',
    async (name) => {
      const schedule = SCHEDULES[name]!;
      const rng = Random.seed(11);
      const x0 = gm.sample(N, rng);
      const est = await estimate(() =>
        continuousDiffusionLoss(gm.denoiser('epsilon'), x0, { schedule, rng, sampling: 'iid' }),
      );
      x0.dispose();
      expect(Math.abs(est.mean - exact)).toBeLessThan(4 * est.standardError);
      expect(est.standardError / exact).toBeLessThan(0.05); // the check has teeth
    },
  );

  it('is the same per example for every prediction type of the model (x0, epsilon, v, score)', async () => {
    const rng = Random.seed(3);
    const x0 = gm.sample(512, rng);
    const noise = rng.normal([512, d]);
    const schedule = SCHEDULES['sine warp']!;
    const values = [];
    for (const p of PREDICTIONS) {
      values.push(
        await perExample(
          continuousDiffusionLoss(gaussianDenoiser(mu, s, p), x0, {
            schedule,
            rng: Random.seed(5),
            noise,
          }),
        ),
      );
    }
    for (const v of values.slice(1)) {
      for (let i = 0; i < v.length; i++) expect(v[i]!).toBeCloseTo(values[0]![i]!, 2);
    }
    tf.dispose([x0, noise]);
  });

  it('the closed-form oracle and the mixture oracle of @diffuse/models agree', async () => {
    const rng = Random.seed(8);
    const x0 = gm.sample(256, rng);
    const noise = rng.normal([256, d]);
    const opts = { schedule: SCHEDULES['logSNR-linear']!, noise };
    const a = await perExample(
      continuousDiffusionLoss(gaussianDenoiser(mu, s), x0, { ...opts, rng: Random.seed(1) }),
    );
    const b = await perExample(
      continuousDiffusionLoss(gm.denoiser('x0'), x0, { ...opts, rng: Random.seed(1) }),
    );
    for (let i = 0; i < a.length; i++) expect(a[i]!).toBeCloseTo(b[i]!, 3);
    tf.dispose([x0, noise]);
  });

  it('low-discrepancy and antithetic times: unbiased, with the standard error taken over independent batches', async () => {
    const schedule = SCHEDULES['exponential warp']!;
    for (const sampling of ['low-discrepancy', 'antithetic'] as const) {
      const rng = Random.seed(21);
      const means: number[] = [];
      for (let r = 0; r < 24; r++) {
        const x0 = gm.sample(256, rng);
        const v = await perExample(
          continuousDiffusionLoss(gm.denoiser('x0'), x0, { schedule, rng, sampling }),
        );
        x0.dispose();
        means.push(meanAndStandardError(v).mean);
      }
      const est = meanAndStandardError(means);
      expect(Math.abs(est.mean - exact)).toBeLessThan(4 * est.standardError);
    }
  });

  it('any logSNR sampler over the same range gives the same expectation (importance sampling)', async () => {
    const rng = Random.seed(4);
    const x0 = gm.sample(N, rng);
    const uniform = await estimate(() =>
      continuousDiffusionLoss(gm.denoiser('epsilon'), x0, {
        sampler: uniformLogSNRSampler(L_MIN, L_MAX),
        rng,
      }),
    );
    // p(lambda) proportional to the expected eps error, d SNR s^2 / (1 + SNR s^2): the ideal proposal.
    const ideal = importanceSampler((l) => (Math.exp(l) * s * s) / (1 + Math.exp(l) * s * s), {
      logSNRMin: L_MIN,
      logSNRMax: L_MAX,
    });
    const is = await estimate(() =>
      continuousDiffusionLoss(gm.denoiser('epsilon'), x0, { sampler: ideal, rng }),
    );
    x0.dispose();
    expect(Math.abs(uniform.mean - exact)).toBeLessThan(4 * uniform.standardError);
    expect(Math.abs(is.mean - exact)).toBeLessThan(4 * is.standardError);
    expect(is.standardError).toBeLessThan(0.8 * uniform.standardError);
  });

  it("denoising score matching with score-SDE's likelihood weighting equals the continuous loss draw for draw", async () => {
    const rng = Random.seed(6);
    const x0 = gm.sample(512, rng);
    const noise = rng.normal([512, d]);
    const schedule = SCHEDULES['sine warp']!;
    const sample = uniformTimeSampler(schedule).sample(512, Random.seed(9));
    const dsm = await perExample(
      denoisingScoreMatchingLoss(gm.denoiser('score'), x0, {
        rng,
        sample,
        noise,
        weighting: 'likelihood',
      }),
    );
    const vdm = await perExample(
      continuousDiffusionLoss(gm.denoiser('epsilon'), x0, {
        sampler: { name: 'fixed', logSNRMin: L_MIN, logSNRMax: L_MAX, sample: () => sample },
        rng,
        noise,
      }),
    );
    for (let i = 0; i < dsm.length; i++) expect(dsm[i]!).toBeCloseTo(vdm[i]!, 2);
    // NCSN's sigma^2 weighting: 1/2 sigma^2 ||score_hat + eps/sigma||^2 = 1/2 ||eps - eps_hat||^2, for a
    // score model and an x0 model alike.
    const ncsn = await perExample(
      denoisingScoreMatchingLoss(gm.denoiser('score'), x0, {
        rng,
        sample,
        noise,
        weighting: 'ncsn',
      }),
    );
    const epsSum = await perExample(
      denoisingLoss(gm.denoiser('x0'), x0, { rng, sample, noise, reduction: 'sum' }),
    );
    for (let i = 0; i < ncsn.length; i++) expect(ncsn[i]!).toBeCloseTo(0.5 * epsSum[i]!, 3);
    tf.dispose([x0, noise]);
  });
});

describe('every schedule registered in @diffuse/schedules', () => {
  // Whatever its shape, L_inf must equal the closed form for the schedule's own endpoints; a schedule
  // whose lambda(0) is infinite (VP-linear, sub-VP start at SNR = inf) has no finite ELBO and says so.
  it.each(listSchedules())('%s', async (name) => {
    const schedule = createSchedule(name);
    try {
      const lMax = schedule.logSNR(0);
      const lMin = schedule.logSNR(1);
      const rng = Random.seed(50);
      const x0 = gm.sample(8192, rng);
      let tMin = 0;
      if (!Number.isFinite(lMax)) {
        expect(() => negativeELBO(gm.denoiser('epsilon'), x0, { schedule, rng })).toThrow(
          LossError,
        );
        expect(() => negativeELBO(gm.denoiser('epsilon'), x0, { schedule, rng })).toThrow(
          /not finite.*tMin/,
        );
        tMin = 1e-5; // score SDE's starting time
      }
      const est = await estimate(() =>
        continuousDiffusionLoss(gm.denoiser('epsilon'), x0, {
          schedule,
          rng,
          sampling: 'iid',
          tMin,
        }),
      );
      const exact = exactContinuous(d, s, lMin, schedule.logSNR(tMin));
      expect(Math.abs(est.mean - exact)).toBeLessThan(4 * est.standardError);
      if (tMin > 0) {
        // Uniform t puts little mass where lambda'(t) is huge: a heavy-tailed estimator (the reason
        // score SDE's likelihood training samples by importance). Uniform logSNR over the same range:
        const sampler = uniformLogSNRSampler(lMin, schedule.logSNR(tMin));
        const is = await estimate(() =>
          continuousDiffusionLoss(gm.denoiser('epsilon'), x0, { sampler, rng }),
        );
        expect(Math.abs(is.mean - exact)).toBeLessThan(4 * is.standardError);
        expect(is.standardError).toBeLessThan(est.standardError / 3);
        Object.assign(est, is);
      }
      x0.dispose();
      expect(est.standardError / exact).toBeLessThan(0.1);
    } finally {
      schedule.dispose();
    }
  });
});

describe('discrete-time diffusion loss (VDM eq. 13)', () => {
  const schedule = SCHEDULES['logSNR-linear']!;
  const exactInf = exactContinuous(d, s, L_MIN, L_MAX);

  it('exceeds the continuous loss and falls towards it as T grows (closed form)', () => {
    const Ts = [1, 2, 5, 10, 50, 100, 1000, 10000];
    const values = Ts.map((T) => exactDiscrete(d, s, schedule.logSNR, T));
    for (let i = 0; i < Ts.length; i++) {
      expect(values[i]!).toBeGreaterThan(exactInf);
      if (i > 0) expect(values[i]!).toBeLessThan(values[i - 1]!);
    }
    // A Riemann sum: the excess falls as 1/T (ten times more steps, ten times less excess).
    const ratio = (values.at(-2)! - exactInf) / (values.at(-1)! - exactInf);
    expect(ratio).toBeGreaterThan(9.5);
    expect(ratio).toBeLessThan(10.5);
    // Leading term: L_T - L_inf ~ (d/2)(h/2)(I - 1), h = (lmax - lmin)/T, I = int SNR s^2/(1+SNR s^2) dlambda.
    const h = (L_MAX - L_MIN) / 10000;
    const I = (2 / d) * exactInf;
    expect((values.at(-1)! - exactInf) / ((d / 2) * (h / 2) * (I - 1))).toBeCloseTo(1, 2);
  });

  it.each([2, 10, 100])('T = %i: the Monte-Carlo estimate matches the closed form', async (T) => {
    const rng = Random.seed(100 + T);
    const x0 = gm.sample(8192, rng);
    const est = await estimate(() =>
      discreteDiffusionLoss(gm.denoiser('x0'), x0, { schedule, steps: T, rng, sampling: 'iid' }),
    );
    x0.dispose();
    const exact = exactDiscrete(d, s, schedule.logSNR, T);
    expect(Math.abs(est.mean - exact)).toBeLessThan(4 * est.standardError);
  });

  it('the Monte-Carlo estimates order as the exact values do (T = 2 above T = 1000 above continuous)', async () => {
    const rng = Random.seed(7);
    const x0 = gm.sample(8192, rng);
    const noise = rng.normal([8192, d]);
    const m2 = await estimate(() =>
      discreteDiffusionLoss(gm.denoiser('x0'), x0, { schedule, steps: 2, rng, noise }),
    );
    const m1000 = await estimate(() =>
      discreteDiffusionLoss(gm.denoiser('x0'), x0, { schedule, steps: 1000, rng, noise }),
    );
    tf.dispose([x0, noise]);
    expect(m2.mean - m1000.mean).toBeGreaterThan(
      4 * Math.hypot(m2.standardError, m1000.standardError),
    );
  });
});

describe('the full ELBO', () => {
  it('prior KL and Gaussian reconstruction terms match their closed forms', async () => {
    const rng = Random.seed(12);
    const x0 = gm.sample(20000, rng);
    const kl = meanAndStandardError(await perExample(priorKL(x0, -3)));
    expect(Math.abs(kl.mean - exactPrior(d, mu, s, -3))).toBeLessThan(4 * kl.standardError);
    const rec = await perExample(gaussianReconstructionNLL(x0, 7));
    expect(rec[0]!).toBeCloseTo(exactReconstruction(d, 7), 5);
    // KL of one point, by hand: q(z_1|x) = N(alpha x, sigma^2), alpha^2 = sigmoid(l).
    const one = await perExample(priorKL(tf.tensor2d([[0.7, -1]]), 0.5));
    const a2 = 1 / (1 + Math.exp(-0.5));
    const klByHand = [0.7, -1].reduce(
      (acc, x) => acc + 0.5 * (1 - a2 + a2 * x * x - 1 - Math.log(1 - a2)),
      0,
    );
    expect(one[0]!).toBeCloseTo(klByHand, 5);
    x0.dispose();
  });

  it('tends to the true NLL d/2 log(2 pi e s^2) as lambda_max -> inf and lambda_min -> -inf', () => {
    const nll = exactNLL(d, s);
    let previous = Number.POSITIVE_INFINITY;
    for (const l of [4, 8, 12, 16, 20]) {
      const elbo =
        exactPrior(d, mu, s, -l) + exactReconstruction(d, l) + exactContinuous(d, s, -l, l);
      const gap = elbo - nll;
      expect(gap).toBeGreaterThan(0);
      expect(gap).toBeLessThan(previous);
      previous = gap;
      // The gap, term by term: d/2 log(1 + e^-lmax / s^2) - d/2 log(1 + e^lmin s^2) + KL_prior.
      const predicted =
        0.5 * d * Math.log1p(Math.exp(-l) / (s * s)) -
        0.5 * d * Math.log1p(Math.exp(-l) * s * s) +
        exactPrior(d, mu, s, -l);
      expect(gap).toBeCloseTo(predicted, 10);
    }
    expect(previous).toBeLessThan(1e-7);
  });

  it.each([
    [-6, 6],
    [-10, 10],
    [-5, 13.3],
  ])(
    'Monte-Carlo -ELBO with endpoints [%d, %d] matches the closed form and bounds the true NLL',
    async (lo, hi) => {
      const schedule = warpedSchedule(
        lo,
        hi,
        (t) => t,
        () => 1,
      );
      const rng = Random.seed(31);
      const x0 = gm.sample(8192, rng);
      const terms = await assertNoLeaks(
        () => negativeELBO(gm.denoiser('epsilon'), x0, { schedule, rng, sampling: 'iid' }),
        'negativeELBO',
      );
      const total = meanAndStandardError(await perExample(terms.total));
      tf.dispose([terms.prior, terms.reconstruction, terms.diffusion, x0]);
      const exact =
        exactPrior(d, mu, s, lo) + exactReconstruction(d, hi) + exactContinuous(d, s, lo, hi);
      expect(Math.abs(total.mean - exact)).toBeLessThan(4 * total.standardError);
      expect(exact).toBeGreaterThan(exactNLL(d, s));
    },
  );

  it('in discrete time, -ELBO uses L_T', async () => {
    const schedule = SCHEDULES['exponential warp']!;
    const rng = Random.seed(41);
    const x0 = gm.sample(8192, rng);
    const terms = negativeELBO(gm.denoiser('v'), x0, { schedule, rng, steps: 4, sampling: 'iid' });
    const total = meanAndStandardError(await perExample(terms.total));
    tf.dispose([terms.prior, terms.reconstruction, terms.diffusion, x0]);
    const exact =
      exactPrior(d, mu, s, L_MIN) +
      exactReconstruction(d, L_MAX) +
      exactDiscrete(d, s, schedule.logSNR, 4);
    expect(Math.abs(total.mean - exact)).toBeLessThan(4 * total.standardError);
  });

  it('bits per dimension', () => {
    expect(bitsPerDim(2 * Math.LN2, 2)).toBeCloseTo(1, 12);
    // Uniform dequantisation bound for 8-bit data in [-1, 1]: bin width 2/255.
    expect(bitsPerDim(0, 1, { binWidth: 2 / 255 })).toBeCloseTo(Math.log2(255 / 2), 12);
  });
});

describe('no tensor leaks', () => {
  it('every loss leaves only its result', async () => {
    const schedule = SCHEDULES['sine warp']!;
    const x0 = gm.sample(16, Random.seed(60));
    const model = gm.denoiser('v');
    const results = [
      await assertNoLeaks(
        () => continuousDiffusionLoss(model, x0, { schedule, rng: Random.seed(1) }),
        'continuous',
      ),
      await assertNoLeaks(
        () => discreteDiffusionLoss(model, x0, { schedule, steps: 10, rng: Random.seed(1) }),
        'discrete',
      ),
      await assertNoLeaks(() => priorKL(x0, -5), 'prior'),
      await assertNoLeaks(() => gaussianReconstructionNLL(x0, 5), 'reconstruction'),
      await assertNoLeaks(
        () =>
          denoisingScoreMatchingLoss(model, x0, {
            rng: Random.seed(1),
            sampler: uniformTimeSampler(schedule),
          }),
        'dsm',
      ),
    ];
    const terms = await assertNoLeaks(
      () => negativeELBO(model, x0, { schedule, rng: Random.seed(1), steps: 5 }),
      'negativeELBO',
    );
    tf.dispose([x0, ...results, terms.prior, terms.reconstruction, terms.diffusion, terms.total]);
  });
});

describe('bad input gives typed errors that say what was wrong', () => {
  const model: DenoiserLike = gaussianDenoiser(mu, s);
  const x0 = () => tf.zeros([4, d]);

  it.each([
    [
      'a schedule that increases',
      () =>
        continuousDiffusionLoss(model, x0(), {
          schedule: warpedSchedule(
            5,
            -5,
            (t) => t,
            () => 1,
          ),
          rng: Random.seed(0),
        }),
      /strictly decreas/,
    ],
    [
      'no schedule',
      () => continuousDiffusionLoss(model, x0(), { rng: Random.seed(0) }),
      /needs `schedule` or `sampler`/,
    ],
    [
      'not a schedule',
      () =>
        continuousDiffusionLoss(model, x0(), {
          schedule: {} as LogSNRSchedule,
          rng: Random.seed(0),
        }),
      /continuous schedule with logSNR/,
    ],
    [
      'T = 0',
      () =>
        discreteDiffusionLoss(model, x0(), {
          schedule: SCHEDULES['logSNR-linear']!,
          steps: 0,
          rng: Random.seed(0),
        }),
      /steps \(T\) must be a positive integer/,
    ],
    ['a rank-1 x0', () => priorKL(tf.zeros([3]), -5), /x0 must be a tensor of shape \[batch/],
    [
      'a NaN endpoint',
      () => gaussianReconstructionNLL(x0(), Number.NaN),
      /logSNRMax must be a finite number/,
    ],
    ['dims = 0', () => bitsPerDim(1, 0), /dims must be a positive integer/],
    [
      'a sampler over the wrong range',
      () =>
        negativeELBO(model, x0(), {
          schedule: SCHEDULES['logSNR-linear']!,
          sampler: uniformLogSNRSampler(-5, 5),
          rng: Random.seed(0),
        }),
      /sampler covers logSNR \[-5, 5\] but the schedule runs over \[-10, 10\]/,
    ],
    [
      'an unknown time sampling',
      () =>
        continuousDiffusionLoss(model, x0(), {
          schedule: SCHEDULES['logSNR-linear']!,
          rng: Random.seed(0),
          sampling: 'sobol' as never,
        }),
      /unknown time sampling 'sobol'/,
    ],
    ['a NaN per-example loss', () => meanAndStandardError([1, Number.NaN]), /value 1 is NaN/],
  ])('%s', (_, fn, message) => {
    const before = tf.memory().numTensors;
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LossError);
    expect(err).toBeInstanceOf(DiffuseError);
    expect((err as Error).message).toMatch(message);
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(1); // only the x0 made for the call
  });
});
