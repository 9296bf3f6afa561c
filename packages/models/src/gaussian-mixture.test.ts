import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend, Random } from '@diffuse/backend';
import { convertPrediction, PREDICTIONS, vpLevelFromSigmaVE } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { GaussianMixture, ModelError } from './index.js';

const REFS = fileURLToPath(
  new URL('../../../reference-data/kdiffusion/trajectories.json', import.meta.url),
);

interface KRun {
  id: string;
  stochastic: boolean;
  steps: { sigma_hat: number; x: number[][]; denoised: number[][] }[];
}
const refs = JSON.parse(readFileSync(REFS, 'utf8')) as {
  mixtures: Record<string, { weights: number[]; means: number[][]; covs: number[][][] }>;
  noise: Record<string, { data: number[][] }>;
  runs: (KRun & { mixture: string; schedule: string | null })[];
};

/** Mixture A of the references, with labels (component 0 is class 0, components 1 and 2 are class 1). */
const A = { ...refs.mixtures.A!, labels: [0, 1, 1] };

function data(t: tf.Tensor): Float32Array {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}

function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol = 0,
) {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) - rtol * Math.abs(expected[i]!);
    worst = Math.max(worst, err);
    if (!(err <= atol)) {
      throw new Error(
        `index ${i}: ${actual[i]} vs ${expected[i]} (|diff| ${Math.abs(actual[i]! - expected[i]!)} > ${atol} + ${rtol}|ref|)`,
      );
    }
  }
  return worst;
}

/** A random symmetric positive-definite d x d matrix M M^T / d + eps I. */
function randomSpd(rng: Random, d: number, eps = 0.05): number[][] {
  const m = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.standardNormal()));
  return Array.from({ length: d }, (_, i) =>
    Array.from({ length: d }, (_, j) => {
      let s = 0;
      for (let k = 0; k < d; k++) s += m[i]![k]! * m[j]![k]!;
      return s / d + (i === j ? eps : 0);
    }),
  );
}

function randomMixture(seed: number, d: number, K: number, classes = 0): GaussianMixture {
  const rng = Random.seed(seed);
  const raw = Array.from({ length: K }, () => 0.5 + rng.uniform01());
  const total = raw.reduce((a, b) => a + b, 0);
  return new GaussianMixture({
    weights: raw.map((w) => w / total),
    means: Array.from({ length: K }, () =>
      Array.from({ length: d }, () => 2 * rng.standardNormal()),
    ),
    covs: Array.from({ length: K }, () => randomSpd(rng, d)),
    ...(classes > 0 ? { labels: Array.from({ length: K }, (_, k) => k % classes) } : {}),
  });
}

beforeAll(async () => {
  await initBackend('wasm');
});

describe('GaussianMixture: closed form for a single Gaussian', () => {
  // 2-D Gaussian with full covariance: C = a^2 S + s^2 I, inverse and determinant by hand.
  const mu = [0.7, -1.2];
  const S = [
    [0.5, 0.3],
    [0.3, 0.4],
  ];
  const g = GaussianMixture.gaussian(mu, S);
  const pts = [0.3, 0.1, -2, 1.5, 0.7 * 0.6, -1.2 * 0.6];

  function closedForm(a: number, s: number) {
    const c = [a * a * S[0]![0]! + s * s, a * a * S[0]![1]!, a * a * S[1]![1]! + s * s];
    const det = c[0]! * c[2]! - c[1]! * c[1]!;
    const inv = [c[2]! / det, -c[1]! / det, c[0]! / det];
    const x0: number[] = [];
    const lp: number[] = [];
    const score: number[] = [];
    for (let b = 0; b < pts.length / 2; b++) {
      const u = [pts[2 * b]! - a * mu[0]!, pts[2 * b + 1]! - a * mu[1]!];
      const ci = [inv[0]! * u[0]! + inv[1]! * u[1]!, inv[1]! * u[0]! + inv[2]! * u[1]!];
      x0.push(
        mu[0]! + a * (S[0]![0]! * ci[0]! + S[0]![1]! * ci[1]!),
        mu[1]! + a * (S[1]![0]! * ci[0]! + S[1]![1]! * ci[1]!),
      );
      score.push(-ci[0]!, -ci[1]!);
      lp.push(
        -0.5 * (u[0]! * ci[0]! + u[1]! * ci[1]!) - 0.5 * Math.log(det) - Math.log(2 * Math.PI),
      );
    }
    return { x0, lp, score };
  }

  it.each([
    [1, 0],
    [0.9, 0.3],
    [0.6, 0.8],
    [0.05, 0.99],
    [0, 1],
    [1, 1e-4],
  ])('alpha %f, sigma %f: float64 and tensor paths match the formulas', (a, s) => {
    const ref = closedForm(a, s);
    expectClose(g.x0Array(pts, a, s), ref.x0, 1e-12, 1e-12);
    expectClose(g.logProbArray(pts, a, s), ref.lp, 1e-12, 1e-12);
    expectClose(g.scoreArray(pts, a, s), ref.score, 1e-9, 1e-12);
    const x = tf.tensor2d(pts, [3, 2]);
    expectClose(data(g.x0(x, { alpha: a, sigma: s })), ref.x0, 1e-5, 1e-5);
    expectClose(data(g.logProb(x, { alpha: a, sigma: s })), ref.lp, 1e-4, 1e-5);
    expectClose(data(g.score(x, { alpha: a, sigma: s })), ref.score, 1e-4, 1e-5);
    x.dispose();
  });

  it('1-D: the posterior mean shrinks toward the mean by alpha s2 / (alpha^2 s2 + sigma^2)', () => {
    const g1 = GaussianMixture.gaussian([2], [[0.25]]);
    const [a, s] = [0.8, 0.6];
    const x = [-1, 0, 1.6, 3];
    const expected = x.map((v) => 2 + (a * 0.25 * (v - a * 2)) / (a * a * 0.25 + s * s));
    expectClose(g1.x0Array(x, a, s), expected, 1e-14, 1e-14);
  });
});

describe('GaussianMixture: k-diffusion reference denoiser', () => {
  const gm = new GaussianMixture(A);
  // Schedule-based runs store D(x; sigma_hat) at x. (dpm_fast / dpm_adaptive record x after the step.)
  const runs = refs.runs.filter((r) => r.mixture === 'A' && r.schedule !== null);

  it('float64 x0Array matches every stored denoised value to 1e-12 (1 + |ref|) (measured: 2.2e-15)', () => {
    let checked = 0;
    for (const run of runs) {
      for (const step of run.steps) {
        const { alpha, sigma } = vpLevelFromSigmaVE(step.sigma_hat);
        const xvp = step.x.flat().map((v) => v * alpha);
        expectClose(gm.x0Array(xvp, alpha, sigma), step.denoised.flat(), 1e-12, 1e-12);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it('float32 tensor x0 matches them to 1e-5 (1 + |ref|) (measured: 9e-7 on wasm)', () => {
    for (const run of runs.filter((_, i) => i % 4 === 0)) {
      for (const step of run.steps) {
        const { alpha, sigma } = vpLevelFromSigmaVE(step.sigma_hat);
        const x = tf.tensor2d(
          step.x.flat().map((v) => v * alpha),
          [step.x.length, 2],
        );
        expectClose(data(gm.x0(x, { alpha, sigma })), step.denoised.flat(), 1e-5, 1e-5);
        x.dispose();
      }
    }
  });
});

describe('GaussianMixture: float32 accuracy at both ends of the noise range', () => {
  // At sigma = 80 every component's Mahalanobis term is ~|eps|^2 while they differ by ~|eps| R / sigma:
  // formed directly in float32, the responsibilities (and so x0) were off by up to 4.1e-7 (measured
  // 2.6e-7 .. 4.1e-7 at VE sigma 20..80; now 1.2e-7 .. 1.8e-7, about 1 ulp of |x0| ~ 1).
  it('float32 x0 (VE sigma 20..80, scalar and per-example levels) within 2.2e-7 of float64', () => {
    const gm = new GaussianMixture(A);
    const noise = refs.noise.A!.data.flat();
    const B = noise.length / 2;
    let worst = 0;
    for (const sve of [80, 40, 20]) {
      const { alpha, sigma } = vpLevelFromSigmaVE(sve);
      const xs = noise.map((v) => v * sve * alpha);
      const ref = gm.x0Array(xs, alpha, sigma);
      const x = tf.tensor2d(xs, [B, 2]);
      worst = Math.max(worst, expectClose(data(gm.x0(x, { alpha, sigma })), ref, 2.2e-7));
      // the same level as a per-example tensor, half of the batch at a small level (the other form)
      const small = vpLevelFromSigmaVE(0.05);
      const aT = tf.tensor1d(Array.from({ length: B }, (_, b) => (b % 2 ? small.alpha : alpha)));
      const sT = tf.tensor1d(Array.from({ length: B }, (_, b) => (b % 2 ? small.sigma : sigma)));
      const got = data(gm.x0(x, { alpha: aT, sigma: sT }));
      const lp = data(gm.logProb(x, { alpha: aT, sigma: sT }));
      for (let b = 0; b < B; b += 2) {
        expectClose(got.subarray(2 * b, 2 * b + 2), ref.subarray(2 * b, 2 * b + 2), 2.2e-7);
        const lpRef = gm.logProbArray(xs.slice(2 * b, 2 * b + 2), alpha, sigma)[0]!;
        expectClose([lp[b]!], [lpRef], 1e-5, 1e-6);
      }
      tf.dispose([x, aT, sT]);
    }
    expect(worst).toBeLessThan(2.2e-7);
  });
});

describe('GaussianMixture: small sigma', () => {
  // Below every data scale x0 ~ x / alpha: as sum_k r_k (mu_k + ...) each term costs rounding of the
  // size of x (measured 1.1e-5 from float64 at VE sigma 0.002, 2.4e-6 between wasm and cpu); in
  // Tweedie's form (x - sigma^2 sum_k r_k C_k^{-1} (x - alpha mu_k)) / alpha, 2.9e-7 and 0.
  it('float32 x0 at VE sigma 0.002 .. 0.1 within 2e-6 of float64, and the same on wasm and cpu', async () => {
    const gm = new GaussianMixture(A);
    const noise = Random.seed(5).normalArray(512);
    const B = 256;
    const small = vpLevelFromSigmaVE(0.05);
    const runs: Record<string, Float32Array[]> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      await initBackend(backend);
      runs[backend] = [0.002, 0.02, 0.1].map((sve) => {
        const { alpha, sigma } = vpLevelFromSigmaVE(sve);
        const x = tf.tensor2d(
          Float32Array.from(noise, (v) => v * alpha),
          [B, 2],
        );
        const got = data(gm.x0(x, { alpha, sigma }));
        expectClose(got, gm.x0Array(x.dataSync(), alpha, sigma), 2e-6);
        // per-example levels, every other one at VE 0.05: the same numbers
        const aT = tf.tensor1d(Array.from({ length: B }, (_, b) => (b % 2 ? small.alpha : alpha)));
        const sT = tf.tensor1d(Array.from({ length: B }, (_, b) => (b % 2 ? small.sigma : sigma)));
        const mixed = data(gm.x0(x, { alpha: aT, sigma: sT }));
        for (let b = 0; b < B; b += 2)
          expectClose(mixed.subarray(2 * b, 2 * b + 2), got.subarray(2 * b, 2 * b + 2), 1e-7);
        tf.dispose([x, aT, sT]);
        return got;
      });
    }
    // measured 0, 1.2e-7, 4.2e-7 (the direct form: 2.4e-6, 2.2e-6, 9.5e-7)
    for (const [k, tol] of [1e-7, 5e-7, 6e-7].entries())
      expectClose(runs.wasm![k]!, runs.cpu![k]!, tol);
  });
});

describe('GaussianMixture: identities', () => {
  const gm = new GaussianMixture(A);
  const rng = Random.seed(7);

  it('score equals the gradient of logProb (tf.grad), with and without labels, per-example levels', () => {
    const x = rng.normal([6, 2]);
    const alpha = tf.tensor2d([0.99, 0.9, 0.7, 0.5, 0.2, 0.05], [6, 1]);
    const sigma = tf.sqrt(tf.sub(1, tf.square(alpha)));
    const level = { alpha, sigma };
    for (const labels of [undefined, [0, 1, 1, 0, 2, 1]]) {
      const grad = tf.grad((v: tf.Tensor) => tf.sum(gm.logProb(v, level, labels)));
      const g = data(grad(x));
      const s = data(gm.score(x, level, labels));
      expectClose(s, g, 2e-3, 2e-3);
    }
    tf.dispose([x, alpha, sigma]);
  });

  it('float64 score equals a central finite difference of logProbArray', () => {
    const g = randomMixture(3, 4, 3);
    const x = Array.from({ length: 8 }, () => rng.standardNormal());
    const [a, s] = [0.7, 0.5];
    const score = g.scoreArray(x, a, s);
    const h = 1e-5;
    for (let i = 0; i < x.length; i++) {
      const up = [...x];
      const dn = [...x];
      up[i]! += h;
      dn[i]! -= h;
      const b = Math.floor(i / 4);
      const fd = (g.logProbArray(up, a, s)[b]! - g.logProbArray(dn, a, s)[b]!) / (2 * h);
      expect(Math.abs(fd - score[i]!)).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
    }
  });

  it('Tweedie: x0 = (x + sigma^2 score) / alpha and epsilon = -sigma score (independent sums)', () => {
    const g = randomMixture(11, 5, 4, 2);
    const x = Array.from({ length: 15 }, () => rng.standardNormal());
    const [a, s] = [0.6, 0.8];
    const x0 = g.x0Array(x, a, s);
    const sc = g.scoreArray(x, a, s);
    expectClose(
      x0,
      x.map((v, i) => (v + s * s * sc[i]!) / a),
      1e-12,
      1e-12,
    );
    expectClose(
      g.epsilonArray(x, a, s),
      sc.map((v) => -s * v),
      1e-14,
      1e-14,
    );
  });

  it('tensor and float64 paths agree in 5-D with 4 full-covariance components', () => {
    const g = randomMixture(5, 5, 4, 2);
    const xs = Array.from({ length: 40 }, () => rng.standardNormal());
    const x = tf.tensor2d(xs, [8, 5]);
    for (const [a, s] of [
      [0.999, 0.045],
      [0.7, 0.71],
      [0.1, 0.995],
    ] as const) {
      for (const labels of [undefined, [0, 1, 2, 0, 1, 2, 0, 1]]) {
        expectClose(
          data(g.x0(x, { alpha: a, sigma: s }, labels)),
          g.x0Array(xs, a, s, labels),
          2e-4,
          2e-4,
        );
        expectClose(
          data(g.epsilon(x, { alpha: a, sigma: s }, labels)),
          g.epsilonArray(xs, a, s, labels),
          2e-4,
          2e-4,
        );
        expectClose(
          data(g.logProb(x, { alpha: a, sigma: s }, labels)),
          g.logProbArray(xs, a, s, labels),
          1e-3,
          1e-5,
        );
      }
      expectClose(
        data(g.classLogPosterior(x, { alpha: a, sigma: s })),
        g.classLogPosteriorArray(xs, a, s),
        1e-3,
        1e-4,
      );
    }
    x.dispose();
  });

  it('cpu and wasm backends agree (batched matMul path)', async () => {
    const g = randomMixture(21, 3, 3, 2);
    const xs = Array.from({ length: 12 }, () => rng.standardNormal());
    const run = () => {
      const x = tf.tensor2d(xs, [4, 3]);
      const out = [
        g.x0(x, { alpha: 0.8, sigma: 0.6 }, [0, 1, 2, 1]),
        g.classLogPosterior(x, { alpha: 0.8, sigma: 0.6 }),
      ].map(data);
      x.dispose();
      return out;
    };
    const onWasm = run();
    await initBackend('cpu');
    const onCpu = run();
    await initBackend('wasm');
    onWasm.forEach((v, i) => {
      expectClose(v, onCpu[i]!, 1e-5, 1e-5);
    });
  });

  it('no cancellation at small sigma: epsilon stays exact where (x - alpha x0) / sigma would not', () => {
    const g = GaussianMixture.gaussian(
      [3, -2],
      [
        [1, 0.2],
        [0.2, 0.5],
      ],
    );
    const s = 1e-4;
    const a = Math.sqrt(1 - s * s);
    const xs = [3.1, -1.8, 2.5, -2.4];
    const x = tf.tensor2d(xs, [2, 2]);
    // eps = s C^{-1}(x - a mu), C ~ a^2 S: |eps| ~ 1e-4; float32 x - a x0 would have error ~ 3e-7 / 1e-4.
    expectClose(data(g.epsilon(x, { alpha: a, sigma: s })), g.epsilonArray(xs, a, s), 1e-9, 1e-4);
    x.dispose();
  });

  it('class posterior: rows sum to 1 and match Bayes p(y) p_t(x|y) / p_t(x)', () => {
    const x = rng.normal([5, 2]);
    const level = { alpha: 0.8, sigma: 0.6 };
    const post = data(tf.exp(gm.classLogPosterior(x, level)));
    const lpx = data(gm.logProb(x, level));
    const prior = [0.5, 0.5]; // class 0: w 0.5; class 1: w 0.3 + 0.2
    for (let b = 0; b < 5; b++) expect(post[2 * b]! + post[2 * b + 1]!).toBeCloseTo(1, 6);
    for (const y of [0, 1]) {
      const lpxy = data(gm.logProb(x, level, [y, y, y, y, y]));
      for (let b = 0; b < 5; b++) {
        expect(post[2 * b + y]!).toBeCloseTo(Math.exp(Math.log(prior[y]!) + lpxy[b]! - lpx[b]!), 5);
      }
    }
    // The null label (numClasses) is the unconditional mixture.
    expectClose(data(gm.logProb(x, level, [2, 2, 2, 2, 2])), lpx, 1e-6);
    x.dispose();
  });

  it('denoiser(prediction) gives x0, epsilon, v and score consistent with convertPrediction', () => {
    const x = rng.normal([4, 2]);
    const level = { alpha: 0.6, sigma: 0.8 };
    const labels = tf.tensor1d([0, 1, 2, 1], 'int32');
    const ref = gm.denoiser('x0').predict(x, level, { labels });
    for (const p of PREDICTIONS) {
      const d = gm.denoiser(p);
      expect(d.prediction).toBe(p);
      expect(d.numClasses).toBe(2);
      const conv = convertPrediction(ref, 'x0', p, x, level);
      expectClose(data(d.predict(x, level, { labels })), data(conv), 1e-5, 1e-5);
    }
    tf.dispose([x, labels, ref]);
  });

  it('accepts image-shaped inputs [batch, ...dims] and returns that shape', () => {
    const g = randomMixture(31, 4, 2);
    const xs = Array.from({ length: 8 }, () => rng.standardNormal());
    const flat = tf.tensor2d(xs, [2, 4]);
    const img = tf.tensor4d(xs, [2, 2, 2, 1]);
    const level = { alpha: 0.7, sigma: 0.7 };
    for (const p of PREDICTIONS) {
      const a = g.denoiser(p).predict(img, level);
      expect(a.shape).toEqual([2, 2, 2, 1]);
      expect(Array.from(data(a))).toEqual(Array.from(data(g.denoiser(p).predict(flat, level))));
    }
    expect(g.logProb(img, level).shape).toEqual([2]);
    expect(() => g.x0(tf.zeros([2, 3, 1]), level)).toThrow(/4 numbers per example/);
    tf.dispose([flat, img]);
  });

  it('does not leak tensors', async () => {
    const x = rng.normal([3, 2]);
    const alpha = tf.fill([3, 1], 0.8);
    const labels = tf.tensor1d([0, 1, 2], 'int32');
    await assertNoLeaks(() => {
      for (const p of PREDICTIONS)
        gm.denoiser(p).predict(x, { alpha, sigma: 0.6 }, { labels }).dispose();
      gm.logProb(x, { alpha: 0.8, sigma: 0.6 }).dispose();
      gm.classLogPosterior(x, { alpha: 0.8, sigma: 0.6 }).dispose();
      gm.sample(4, Random.seed(1)).dispose();
    }, 'oracle');
    tf.dispose([x, alpha, labels]);
  });
});

describe('GaussianMixture: sampling', () => {
  it('samples have the mixture mean and covariance (within 5 standard errors), same seed same draws', () => {
    const gm = new GaussianMixture(A);
    const n = 20000;
    const { x } = gm.sampleArray(n, Random.seed(3));
    expect(gm.sampleArray(10, Random.seed(3)).x).toEqual(x.slice(0, 20));
    // Mixture moments: E[x] = sum w mu; Cov = sum w (S + mu mu^T) - E E^T.
    const m = [0, 0];
    const second = [0, 0, 0];
    A.weights.forEach((w, k) => {
      const mu = A.means[k]!;
      const S = A.covs[k]!;
      m[0]! += w * mu[0]!;
      m[1]! += w * mu[1]!;
      second[0]! += w * (S[0]![0]! + mu[0]! ** 2);
      second[1]! += w * (S[0]![1]! + mu[0]! * mu[1]!);
      second[2]! += w * (S[1]![1]! + mu[1]! ** 2);
    });
    const cov = [second[0]! - m[0]! ** 2, second[1]! - m[0]! * m[1]!, second[2]! - m[1]! ** 2];
    let s0 = 0;
    let s1 = 0;
    for (let i = 0; i < n; i++) {
      s0 += x[2 * i]!;
      s1 += x[2 * i + 1]!;
    }
    expect(Math.abs(s0 / n - m[0]!)).toBeLessThan(5 * Math.sqrt(cov[0]! / n));
    expect(Math.abs(s1 / n - m[1]!)).toBeLessThan(5 * Math.sqrt(cov[2]! / n));
    let c01 = 0;
    for (let i = 0; i < n; i++) c01 += (x[2 * i]! - s0 / n) * (x[2 * i + 1]! - s1 / n);
    expect(Math.abs(c01 / n - cov[1]!)).toBeLessThan(
      5 * Math.sqrt((cov[0]! * cov[2]! + cov[1]! ** 2) / n),
    );
  });

  it('class-conditional draws come only from that class, with the within-class weights', () => {
    const gm = new GaussianMixture(A);
    const { classes, components } = gm.sampleArray(6000, Random.seed(4), 1);
    expect(classes.every((c) => c === 1)).toBe(true);
    const share1 = components.filter((k) => k === 1).length / 6000; // 0.3 / 0.5 = 0.6
    expect(Math.abs(share1 - 0.6)).toBeLessThan(5 * Math.sqrt((0.6 * 0.4) / 6000));
    const t = gm.sampleWithLabels(8, Random.seed(4));
    expect(t.x.shape).toEqual([8, 2]);
    expect(t.labels.dtype).toBe('int32');
    tf.dispose([t.x, t.labels]);
  });
});

describe('GaussianMixture: entropy', () => {
  it('matches 0.5 log det(2 pi e S) for a Gaussian, and H(w) + sum w_k H_k for separated components', () => {
    const S = [
      [0.5, 0.2],
      [0.2, 0.3],
    ];
    const exact = 0.5 * Math.log((2 * Math.PI * Math.E) ** 2 * (0.5 * 0.3 - 0.04));
    const g = GaussianMixture.gaussian([1, 2], S).entropy(20000, Random.seed(1));
    expect(Math.abs(g.entropy - exact)).toBeLessThan(5 * g.standardError);
    // Far-apart components: the overlap term is negligible (< 1e-20).
    const w = [0.3, 0.7];
    const m = new GaussianMixture({
      weights: w,
      means: [
        [-50, 0],
        [50, 0],
      ],
      covs: [S, S],
    }).entropy(20000, Random.seed(2));
    const mixExact = exact - w.reduce((a, wk) => a + wk * Math.log(wk), 0);
    expect(Math.abs(m.entropy - mixExact)).toBeLessThan(5 * m.standardError);
    // At a noise level: p_t of a Gaussian is N(alpha mu, alpha^2 S + sigma^2 I).
    const [a, s] = [0.6, 0.8];
    const det = (a * a * 0.5 + s * s) * (a * a * 0.3 + s * s) - (a * a * 0.2) ** 2;
    const t = GaussianMixture.gaussian([1, 2], S).entropy(20000, Random.seed(3), {
      alpha: a,
      sigma: s,
    });
    expect(Math.abs(t.entropy - 0.5 * Math.log((2 * Math.PI * Math.E) ** 2 * det))).toBeLessThan(
      5 * t.standardError,
    );
  });
});

describe('GaussianMixture: errors', () => {
  const I = [
    [1, 0],
    [0, 1],
  ];
  it.each([
    [
      {
        weights: [0.5, 0.6],
        means: [
          [0, 0],
          [1, 1],
        ],
        covs: [I, I],
      },
      /sum to 1/,
    ],
    [
      {
        weights: [1],
        means: [[0, 0]],
        covs: [
          [
            [1, 2],
            [2, 1],
          ],
        ],
      },
      /positive definite/,
    ],
    [
      {
        weights: [1],
        means: [[0, 0]],
        covs: [
          [
            [1, 0.1],
            [0, 1],
          ],
        ],
      },
      /not symmetric/,
    ],
    [{ weights: [1], means: [[0, 0]], covs: [[[1, 0, 0]]] }, /2 x 2/],
    [
      {
        weights: [-1, 2],
        means: [
          [0, 0],
          [1, 1],
        ],
        covs: [I, I],
      },
      /positive/,
    ],
    [{ weights: [1], means: [[0, 0]], covs: [I], labels: [1.5] }, /integer/],
  ])('rejects invalid parameters with a ModelError', (spec, msg) => {
    expect(() => new GaussianMixture(spec)).toThrow(ModelError);
    expect(() => new GaussianMixture(spec)).toThrow(msg);
  });

  it('rejects wrong shapes, out-of-range labels and invalid levels', () => {
    const gm = new GaussianMixture(A);
    const x = tf.zeros([2, 3]);
    expect(() => gm.x0(x, { alpha: 1, sigma: 0.1 })).toThrow(/shape \[batch, 2\]/);
    const y = tf.zeros([2, 2]);
    expect(() => gm.x0(y, { alpha: 1, sigma: 0.1 }, [0, 5])).toThrow(/out of range/);
    expect(() => gm.x0(y, { alpha: 1, sigma: 0.1 }, [0])).toThrow(/expected 2 labels/);
    expect(() => gm.x0(y, { alpha: -1, sigma: 0.1 })).toThrow(/alpha/);
    expect(() => gm.x0(y, { alpha: 0, sigma: 0 })).toThrow(/both be 0/);
    expect(() =>
      GaussianMixture.gaussian([0], [[1]]).classLogPosterior(tf.zeros([1, 1]), {
        alpha: 1,
        sigma: 1,
      }),
    ).toThrow(/labels/);
    tf.dispose([x, y]);
  });
});
