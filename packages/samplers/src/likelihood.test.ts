/** The probability-flow ODE: adaptive sampling against a tight reference solve, and log-likelihoods against closed forms. */
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { type Conditioning, GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { logLikelihood, SamplerError, sample } from './index.js';
import { flat, loadRef, maxRelErr } from './testing/refs.js';

interface KRefs {
  mixtures: { A: { weights: number[]; means: number[][]; covs: number[][][] } };
  noise: { A: { data: number[][] } };
  exact: { A: { 'end_at_sigma_min_0.002': number[][] } };
}
const refs = loadRef<KRefs>('kdiffusion/trajectories.json');
let mixA: GaussianMixture;
let gauss: GaussianMixture;
const MU = [0.5, -1];
const VAR = [0.09, 0.36];
const SMIN = 1e-3;
/** Large enough that the prior N(0, SMAX^2) differs from the true p_SMAX by < 1e-3 nats at these points. */
const SMAX = 2000;

beforeAll(async () => {
  await initBackend('wasm');
  const A = refs.mixtures.A;
  mixA = new GaussianMixture({ weights: A.weights, means: A.means, covs: A.covs });
  gauss = new GaussianMixture({
    weights: [1],
    means: [MU],
    covs: [
      [
        [VAR[0]!, 0],
        [0, VAR[1]!],
      ],
    ],
  });
});

describe('probability-flow ODE with dopri5', () => {
  it('lands on the DOP853 reference solve (rtol = atol = 1e-12) from sigma 80 to 0.002 on mixture A', async () => {
    const noise = tf.tensor(refs.noise.A.data);
    const out = await sample(mixA.denoiser('x0'), {
      sampler: 'ode_dopri5',
      samplerOptions: { rtol: 1e-6, atol: 1e-6 },
      sigmas: [80, 0.002],
      embedding: 've',
      noise,
    });
    const err = maxRelErr(await out.data(), flat(refs.exact.A['end_at_sigma_min_0.002']));
    tf.dispose([noise, out]);
    expect(err).toBeLessThan(2e-4);
  });

  it('tighter tolerances get closer', async () => {
    const errs: number[] = [];
    for (const tol of [1e-2, 1e-5]) {
      const noise = tf.tensor(refs.noise.A.data);
      const out = await sample(mixA.denoiser('epsilon'), {
        sampler: 'ode_dopri5',
        samplerOptions: { rtol: tol, atol: tol },
        sigmas: [80, 0.002],
        noise,
      });
      errs.push(maxRelErr(await out.data(), flat(refs.exact.A['end_at_sigma_min_0.002'])));
      tf.dispose([noise, out]);
    }
    expect(errs[1]!).toBeLessThan(errs[0]! / 10);
  });
});

/** log N(x; mu, diag(var)) */
const logNormal = (x: number[], mu: number[], v: number[]) =>
  x.reduce(
    (acc, xi, k) => acc - 0.5 * Math.log(2 * Math.PI * v[k]!) - (xi - mu[k]!) ** 2 / (2 * v[k]!),
    0,
  );

describe('logLikelihood', () => {
  const pts = [
    [0.5, -1],
    [0.9, -0.2],
    [0.1, -1.8],
    [0.7, -1.3],
  ];

  it('Gaussian data: log N(x0; mu, S + sigmaMin^2 I), exact trace and Rademacher probes', async () => {
    const x0 = tf.tensor(pts);
    for (const trace of ['exact', 'hutchinson'] as const) {
      const r = await assertNoLeaks(() =>
        logLikelihood(gauss.denoiser('epsilon'), x0, {
          trace,
          sigmaMin: SMIN,
          sigmaMax: SMAX,
          rtol: 1e-5,
          atol: 1e-5,
        }),
      );
      pts.forEach((p, b) => {
        const want = logNormal(
          p,
          MU,
          VAR.map((v) => v + SMIN * SMIN),
        );
        expect(Math.abs(r.nats[b]! - want)).toBeLessThan(2e-3);
        expect(r.bitsPerDim[b]!).toBeCloseTo(-r.nats[b]! / (2 * Math.LN2), 10);
      });
    }
    x0.dispose();
  });

  it('Gaussian probes: the estimate is exactly what v^T J v integrates to', async () => {
    // For diagonal covariances J = dD/dx is diagonal, so Hutchinson's estimate replaces the trace
    // by sum_i v_i^2 J_ii, and the integral of J_ii = var_i / (var_i + sigma^2) over log sigma is
    // I_i = [u - log(var_i + e^{2u}) / 2] between the ends: exact minus estimate = sum_i (mean_p v_pi^2 - 1) I_i.
    const x0 = tf.tensor(pts);
    const opts = { sigmaMin: SMIN, sigmaMax: SMAX, rtol: 1e-5, atol: 1e-5 };
    const r = await logLikelihood(gauss.denoiser('x0'), x0, {
      ...opts,
      trace: 'hutchinson',
      probe: 'gaussian',
      probes: 2,
      seed: 3,
    });
    const e = await logLikelihood(gauss.denoiser('x0'), x0, { ...opts, trace: 'exact' });
    x0.dispose();
    const rng = Random.seed(3);
    const probes = [rng.normalArray(8), rng.normalArray(8)];
    const [u0, u1] = [Math.log(SMIN), Math.log(SMAX)];
    const I = VAR.map(
      (v) =>
        u1 - 0.5 * Math.log(v + Math.exp(2 * u1)) - (u0 - 0.5 * Math.log(v + Math.exp(2 * u0))),
    );
    pts.forEach((_, b) => {
      const want = I.reduce(
        (acc, Ii, i) =>
          acc + ((probes[0]![b * 2 + i]! ** 2 + probes[1]![b * 2 + i]! ** 2) / 2 - 1) * Ii,
        0,
      );
      expect(Math.abs(want)).toBeGreaterThan(0.05); // the probes really are random
      expect(Math.abs(e.nats[b]! - r.nats[b]! - want)).toBeLessThan(3e-3);
    });
  });

  it('Gaussian mixture: matches the true log density', async () => {
    const x = [
      [-1.5, 0.1],
      [1.0, 1.1],
      [1.2, -1.4],
      [0, 0],
    ];
    const x0 = tf.tensor(x);
    const r = await logLikelihood(mixA.denoiser('epsilon'), x0, {
      sigmaMin: SMIN,
      sigmaMax: SMAX,
      rtol: 1e-5,
      atol: 1e-5,
    });
    x0.dispose();
    const want = mixA.logProbArray(new Float64Array(x.flat()), 1, SMIN);
    x.forEach((_, b) => {
      expect(Math.abs(r.nats[b]! - want[b]!)).toBeLessThan(5e-3);
    });
    expect(r.nfe).toBeGreaterThan(6);
  });
});

describe('logLikelihood with conditioning (its internal batches repeat every per-example tensor)', () => {
  // Two classes of two full-covariance components each: log p(x0 | y) is the class's own mixture.
  const covA = [
    [0.2, 0.06],
    [0.06, 0.1],
  ];
  const covB = [
    [0.08, -0.03],
    [-0.03, 0.15],
  ];
  let classMix: GaussianMixture;
  beforeAll(() => {
    classMix = new GaussianMixture({
      weights: [0.3, 0.2, 0.25, 0.25],
      means: [
        [-1.5, 0.2],
        [-0.5, 1.2],
        [1.2, -1.0],
        [1.0, 0.8],
      ],
      covs: [covA, covB, covB, covA],
      labels: [0, 0, 1, 1],
    });
  });
  // Points under mixed labels (the same point under both classes, too): a label tensor repeated
  // in the wrong order or not at all gives another class's density.
  const x = [
    [-1.2, 0.4],
    [1.1, -0.6],
    [-0.2, 0.9],
    [-0.2, 0.9],
    [0.9, 0.3],
  ];
  const labels = [0, 1, 0, 1, 1];
  const opts = { sigmaMin: SMIN, sigmaMax: SMAX, rtol: 1e-5, atol: 1e-5 };

  it('exact trace (internal batch = dim x batch): per-class log p(x0 | y) of a class-conditional mixture', async () => {
    const x0 = tf.tensor(x);
    const y = tf.tensor1d(labels, 'int32');
    const r = await assertNoLeaks(() =>
      logLikelihood(classMix.denoiser('epsilon'), x0, {
        ...opts,
        trace: 'exact',
        cond: { labels: y },
      }),
    );
    expect(Array.from(await y.data())).toEqual(labels); // the caller's labels are untouched
    tf.dispose([x0, y]);
    const want = classMix.logProbArray(new Float64Array(x.flat()), 1, SMIN, labels);
    const other = classMix.logProbArray(
      new Float64Array(x.flat()),
      1,
      SMIN,
      labels.map((l) => 1 - l),
    );
    x.forEach((_, b) => {
      expect(Math.abs(r.nats[b]! - want[b]!)).toBeLessThan(5e-3);
      expect(Math.abs(want[b]! - other[b]!)).toBeGreaterThan(0.5); // the labels matter
    });
  });

  it('Hutchinson with 3 Rademacher probes: per-class log N(x0; mu_y, S_y + sigmaMin^2 I)', async () => {
    // One diagonal Gaussian per class: dD/dx is diagonal, so Rademacher probes give the exact trace
    // and the result is deterministic.
    const V = [
      [0.3, 0.12],
      [0.2, 0.3],
    ];
    const M = [
      [-0.8, 0.6],
      [0.6, 0.1],
    ];
    const diagMix = new GaussianMixture({
      weights: [0.5, 0.5],
      means: M,
      covs: V.map(([a, b]) => [
        [a!, 0],
        [0, b!],
      ]),
      labels: [0, 1],
    });
    const x0 = tf.tensor(x);
    const y = tf.tensor1d(labels, 'int32');
    const r = await assertNoLeaks(() =>
      logLikelihood(diagMix.denoiser('x0'), x0, {
        ...opts,
        trace: 'hutchinson',
        probes: 3,
        seed: 5,
        cond: { labels: y },
      }),
    );
    tf.dispose([x0, y]);
    x.forEach((p, b) => {
      const l = labels[b]!;
      const want = logNormal(
        p,
        M[l]!,
        V[l]!.map((v) => v + SMIN * SMIN),
      );
      expect(Math.abs(r.nats[b]! - want)).toBeLessThan(2e-3);
    });
  });

  it('every batch-shaped conditioning tensor is repeated; scalars, broadcast tensors and plain values pass as given', async () => {
    // p(x0 | y, o) = p(x0 - o | y): epsilon(x_t) = eps_y(x_t - alpha o), with a per-example offset o.
    const offsets = [
      [0.3, -0.2],
      [-0.5, 0.1],
      [0, 0.4],
      [0.2, 0.2],
      [-0.1, -0.3],
    ];
    const seen: number[][] = [];
    const shifted = {
      prediction: 'epsilon' as const,
      predict(
        xt: tf.Tensor,
        level: { alpha: number | tf.Tensor; sigma: number | tf.Tensor },
        cond?: Conditioning,
      ) {
        const c = cond!;
        const o = c.offset as tf.Tensor;
        seen.push([
          xt.shape[0]!,
          o.shape[0]!,
          (c.labels as tf.Tensor).shape[0]!,
          (c.scale as tf.Tensor).rank,
        ]);
        expect(c.tag).toBe('kept');
        expect((c.bias as tf.Tensor).shape).toEqual([1, 2]);
        return tf.tidy(() =>
          classMix.epsilon(
            tf.sub(xt, tf.mul(o, level.alpha as number)),
            level,
            c.labels as tf.Tensor,
          ),
        );
      },
    };
    const x0 = tf.tensor(x);
    const y = tf.tensor1d(labels, 'int32');
    const o = tf.tensor(offsets);
    const scale = tf.scalar(2);
    const bias = tf.zeros([1, 2]);
    const r = await logLikelihood(shifted, x0, {
      ...opts,
      trace: 'exact',
      cond: { labels: y, offset: o, scale, bias, tag: 'kept' },
    });
    tf.dispose([x0, y, o, scale, bias]);
    expect(
      seen.every(([n, no, nl, rs]) => n === 2 * x.length && no === n && nl === n && rs === 0),
    ).toBe(true);
    const want = classMix.logProbArray(
      new Float64Array(x.flatMap((p, b) => p.map((v, k) => v - offsets[b]![k]!))),
      1,
      SMIN,
      labels,
    );
    x.forEach((_, b) => {
      expect(Math.abs(r.nats[b]! - want[b]!)).toBeLessThan(5e-3);
    });
  });

  it('a conditioning tensor whose leading dimension is neither the batch nor 1 is a SamplerError naming it', async () => {
    const x0 = tf.tensor(x);
    const y = tf.tensor1d([0, 1, 0], 'int32');
    await expect(
      logLikelihood(classMix.denoiser('epsilon'), x0, { ...opts, cond: { labels: y } }),
    ).rejects.toThrow(/cond\.labels.*\[3\].*batch of 5/);
    await expect(
      logLikelihood(classMix.denoiser('epsilon'), x0, { ...opts, cond: { labels: y } }),
    ).rejects.toBeInstanceOf(SamplerError);
    await expect(
      logLikelihood(classMix.denoiser('epsilon'), x0, { ...opts, trace: 'hutchinson', probes: 0 }),
    ).rejects.toThrow(/probes must be a positive integer, got 0/);
    tf.dispose([x0, y]);
  });
});
