/** Shared fixtures for this package's tests (not exported from the package). */
import type { AsyncDenoiser, Conditioning, Denoiser } from '@diffuse/models';
import { GaussianMixture } from '@diffuse/models';
import type { NoiseLevel, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';

/**
 * A 2-D class-conditional mixture with 3 classes and 5 components (full covariances), the classes
 * overlapping enough that the exact classifier is uncertain over much of the plane.
 */
export function threeClassMixture(): GaussianMixture {
  return new GaussianMixture({
    weights: [0.2, 0.15, 0.25, 0.2, 0.2],
    means: [
      [-1, 0.2],
      [-0.4, 1],
      [0.8, 0.6],
      [0.3, -0.9],
      [1.1, -0.4],
    ],
    covs: [
      [
        [0.3, 0.1],
        [0.1, 0.2],
      ],
      [
        [0.15, -0.05],
        [-0.05, 0.25],
      ],
      [
        [0.2, 0],
        [0, 0.3],
      ],
      [
        [0.35, 0.12],
        [0.12, 0.18],
      ],
      [
        [0.1, 0.02],
        [0.02, 0.2],
      ],
    ],
    labels: [0, 0, 1, 2, 1],
  });
}

/** Records every call a denoiser receives (batch size and labels), to count forward passes. */
export interface Spy extends Denoiser {
  calls: { batch: number; labels: number[] | undefined; level: NoiseLevel<Scalar> }[];
}

/** Wraps `inner` so each `predict` call is recorded. */
export function spy(inner: Denoiser): Spy {
  const calls: Spy['calls'] = [];
  return {
    prediction: inner.prediction,
    ...(inner.shape ? { shape: inner.shape } : {}),
    ...(inner.numClasses !== undefined ? { numClasses: inner.numClasses } : {}),
    calls,
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      calls.push({
        batch: x.shape[0]!,
        labels: cond?.labels ? Array.from(cond.labels.dataSync()) : undefined,
        level,
      });
      return inner.predict(x, level, cond);
    },
  };
}

/** An `AsyncDenoiser` that counts its calls. */
export interface AsyncSpy extends AsyncDenoiser {
  calls: number;
}

/**
 * The same model as an `AsyncDenoiser`: `predictAsync` waits a macrotask (so the caller's code really
 * is suspended across the await, and inputs it disposed too early would fail) and then returns the
 * synchronous prediction. Its outputs are the sync model's bit for bit.
 */
export function asyncAdapter(inner: Denoiser): AsyncSpy {
  const spy: AsyncSpy = {
    prediction: inner.prediction,
    ...(inner.shape ? { shape: inner.shape } : {}),
    ...(inner.numClasses !== undefined ? { numClasses: inner.numClasses } : {}),
    calls: 0,
    async predictAsync(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) {
      spy.calls++;
      await new Promise((resolve) => setTimeout(resolve, 0));
      return inner.predict(x, level, cond);
    },
  };
  return spy;
}

/**
 * An image-shaped Gaussian oracle: 8 x 8 x 1 images from N(mean, S) with a smooth squared-exponential
 * covariance S_ij = v exp(-|p_i - p_j|^2 / (2 l^2)) + jitter I, and a smooth mean. Its denoiser takes
 * and returns [batch, h, w, 1] (the mixture oracle works on [batch, d]).
 */
export function imageGaussian(h = 8, w = 8) {
  const d = h * w;
  const mean: number[] = [];
  const cov: number[][] = [];
  const v = 0.3;
  const l = 2;
  for (let i = 0; i < d; i++) {
    const [yi, xi] = [Math.floor(i / w), i % w];
    mean.push(0.5 * Math.sin(xi / 2) * Math.cos(yi / 3));
    const row: number[] = [];
    for (let j = 0; j < d; j++) {
      const [yj, xj] = [Math.floor(j / w), j % w];
      const r2 = (yi - yj) ** 2 + (xi - xj) ** 2;
      row.push(v * Math.exp(-r2 / (2 * l * l)) + (i === j ? 0.01 : 0));
    }
    cov.push(row);
  }
  const gm = GaussianMixture.gaussian(mean, cov);
  const flat = gm.denoiser('epsilon');
  const denoiser: Denoiser = {
    prediction: flat.prediction,
    shape: [h, w, 1],
    predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
      const b = x.shape[0]!;
      return tf.tidy(() =>
        tf.reshape(flat.predict(tf.reshape(x, [b, d]), level, cond), [b, h, w, 1]),
      );
    },
  };
  return { gm, mean, cov, denoiser, d, h, w };
}

/** Solves A X = B for symmetric positive definite A (n x n) by Cholesky, in float64. B is n x m. */
export function solveSpd(A: number[][], B: number[][]): number[][] {
  const n = A.length;
  const L = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i]![j]!;
      for (let k = 0; k < j; k++) s -= L[i]![k]! * L[j]![k]!;
      L[i]![j] = i === j ? Math.sqrt(s) : s / L[j]![j]!;
    }
  }
  const m = B[0]!.length;
  const X = B.map((r) => [...r]);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = X[i]![c]!;
      for (let k = 0; k < i; k++) s -= L[i]![k]! * X[k]![c]!;
      X[i]![c] = s / L[i]![i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = X[i]![c]!;
      for (let k = i + 1; k < n; k++) s -= L[k]![i]! * X[k]![c]!;
      X[i]![c] = s / L[i]![i]!;
    }
  }
  return X;
}

/**
 * The exact conditional N(mu_u + S_uk S_kk^{-1} (x_k - mu_k), S_uu - S_uk S_kk^{-1} S_ku) of the
 * unknown pixels given the known ones, for a Gaussian N(mean, cov): its mean and marginal variances.
 */
export function gaussianConditional(
  mean: number[],
  cov: number[][],
  knownIdx: number[],
  unknownIdx: number[],
  xKnown: number[],
): { mean: number[]; variance: number[] } {
  const Skk = knownIdx.map((i) => knownIdx.map((j) => cov[i]![j]!));
  const Sku = knownIdx.map((i) => unknownIdx.map((j) => cov[i]![j]!));
  const resid = knownIdx.map((i, a) => [xKnown[a]! - mean[i]!]);
  const alpha = solveSpd(Skk, resid); // S_kk^{-1} (x_k - mu_k)
  const W = solveSpd(Skk, Sku); // S_kk^{-1} S_ku
  const condMean = unknownIdx.map(
    (u) => mean[u]! + knownIdx.reduce((s, k, a) => s + cov[u]![k]! * alpha[a]![0]!, 0),
  );
  const condVar = unknownIdx.map(
    (u, b) => cov[u]![u]! - knownIdx.reduce((s, k, a) => s + cov[u]![k]! * W[a]![b]!, 0),
  );
  return { mean: condMean, variance: condVar };
}
