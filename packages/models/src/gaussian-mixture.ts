/**
 * The exact denoiser of Gaussian-mixture data: the oracle the tests, the benchmark app and the demo
 * compare every sampler, loss and trained network against.
 *
 * Data p_0 = sum_k w_k N(mu_k, S_k). Under the forward process x_t = alpha x_0 + sigma eps
 * (Luo 2022, eq. 69) every component stays Gaussian, so the noisy marginal is
 *
 *     p_t(x) = sum_k w_k N(x; alpha mu_k, C_k),   C_k = alpha^2 S_k + sigma^2 I,
 *
 * and with responsibilities r_k(x) = softmax_k(log w_k + log N(x; alpha mu_k, C_k)) the posterior
 * mean (Tweedie's formula, Luo eq. 133; Efron 2011) is
 *
 *     E[x_0 | x_t] = sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k)),
 *     score        = grad log p_t(x) = -sum_k r_k C_k^{-1} (x - alpha mu_k),
 *     epsilon      = -sigma score.
 *
 * Each quantity is evaluated from its own sum, never by subtracting nearly equal numbers, so all are
 * accurate from sigma -> 0 (where x - alpha x0 would cancel) to alpha -> 0. The tensor path works in
 * each component's eigenbasis S_k = U_k diag(lambda_k) U_k^T, where C_k^{-1} = U_k diag(1 / (alpha^2
 * lambda_k + sigma^2)) U_k^T, so per-example noise levels (tensors) and gradients come for free on any
 * backend. The float64 path (`x0Array`, `logProbArray`, ...) uses Cholesky solves instead, an
 * independent implementation to test against (it mirrors k-diffusion's reference model).
 *
 * Components may carry class labels; `labels` then selects p_t(x | y) = sum_{k: y_k = y} w_k N(...) /
 * p(y), and `classLogPosterior` gives log p_t(y | x) (the exact classifier for classifier guidance).
 * The label `numClasses` stands for "no class" (the null class of classifier-free guidance) and
 * selects the unconditional mixture.
 */

import type { Random } from '@diffuse/backend';
import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import { assertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { Conditioning, Denoiser } from './denoiser.js';
import { ModelError } from './errors.js';
import { cholesky, logSumExp, matVec, solveLower, solveUpperT, symmetricEigen } from './linalg.js';

/** Parameters of a Gaussian mixture p_0 = sum_k w_k N(mu_k, S_k). */
export interface GaussianMixtureSpec {
  /** Mixture weights w_k, positive, summing to 1 (to 1e-6). */
  weights: readonly number[];
  /** Means mu_k, K x d. */
  means: readonly (readonly number[])[];
  /** Covariances S_k, K x d x d, symmetric positive definite. */
  covs: readonly (readonly (readonly number[])[])[];
  /** Optional class of each component (integers >= 0): makes the mixture class-conditional. */
  labels?: readonly number[];
  /** Number of classes (default: largest label + 1). Every class needs at least one component. */
  numClasses?: number;
}

/** Class labels: an int32 tensor [batch] or plain integers. `numClasses` means "unconditional". */
export type Labels = tf.Tensor | readonly number[] | Int32Array;

const LOG_2PI = Math.log(2 * Math.PI);
/** Stands in for log 0 in masked logits: exp underflows to exactly 0, and gradients stay finite. */
const MASKED = -1e30;

/**
 * The spec's structure (an untrusted JSON, say): arrays where arrays belong, numbers where numbers
 * belong; the values are checked by the constructor. A typed `ModelError` naming the field.
 */
function checkSpecStructure(spec: unknown): void {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
    throw new ModelError('a Gaussian mixture spec must be an object { weights, means, covs }');
  const o = spec as Record<string, unknown>;
  // index loops, not every(): every() skips the holes of a sparse array
  const all = (v: unknown, ok: (x: unknown) => boolean) => {
    if (!Array.isArray(v)) return false;
    for (let i = 0; i < v.length; i++) if (!ok(v[i])) return false;
    return true;
  };
  const numbers = (v: unknown) => all(v, (x) => typeof x === 'number');
  if (!numbers(o.weights)) throw new ModelError('spec.weights must be an array of numbers');
  if (!all(o.means, numbers))
    throw new ModelError('spec.means must be an array of arrays of numbers (K x d)');
  if (!all(o.covs, (c) => all(c, numbers)))
    throw new ModelError('spec.covs must be an array of d x d arrays of numbers (K x d x d)');
  if (o.labels !== undefined && !numbers(o.labels))
    throw new ModelError('spec.labels must be an array of integers');
  if (o.numClasses !== undefined && typeof o.numClasses !== 'number')
    throw new ModelError(`spec.numClasses must be a number, got ${JSON.stringify(o.numClasses)}`);
}

/**
 * An exact Gaussian-mixture oracle: posterior mean, epsilon, score, log-density and class posterior
 * of the noisy marginal at any noise level, and samples of the data.
 *
 * @example
 * const gm = new GaussianMixture({
 *   weights: [0.5, 0.5], means: [[-1, 0], [1, 0]],
 *   covs: [[[0.1, 0], [0, 0.1]], [[0.1, 0], [0, 0.1]]], labels: [0, 1],
 * });
 * const x = tf.tensor2d([[0.3, 0.1]]);
 * const x0 = gm.x0(x, { alpha: 0.8, sigma: 0.6 });          // E[x0 | x_t], [1, 2]
 * const logPy = gm.classLogPosterior(x, { alpha: 0.8, sigma: 0.6 }); // [1, 2]
 * const data = gm.sample(100, Random.seed(0));               // [100, 2] draws from p_0
 */
export class GaussianMixture {
  /** Dimension d of the data. */
  readonly dim: number;
  /** Number of components K. */
  readonly numComponents: number;
  /** Number of classes (0 when the components carry no labels). */
  readonly numClasses: number;
  /** The parameters, as given (copied). */
  readonly spec: GaussianMixtureSpec;

  private readonly w: Float64Array;
  private readonly mu: Float64Array; // K*d
  private readonly cov: Float64Array; // K*d*d
  private readonly chol: Float64Array; // K*d*d, Cholesky factors of S_k (sampling)
  private readonly componentClass: Int32Array; // K
  private readonly classLogPrior: Float64Array; // numClasses: log p(y)
  // float32 copies of the constants uploaded by the tensor path
  private readonly muF: Float32Array;
  private eigen: { vectors: Float32Array; values: Float32Array } | null = null; // computed on first tensor use
  private centre: {
    mean: Float32Array;
    delta: Float32Array;
    radius2: number;
    lambdaMin: number;
  } | null = null;
  /** Label tensors already read and validated: a sampling loop passes the same one every step. */
  private readonly labelCache = new WeakMap<tf.Tensor, Int32Array>();
  private readonly logWF: Float32Array;

  constructor(spec: GaussianMixtureSpec) {
    checkSpecStructure(spec);
    const { weights, means, covs } = spec;
    const K = weights.length;
    if (K === 0)
      throw new ModelError('a Gaussian mixture needs at least one component (weights is empty)');
    if (means.length !== K || covs.length !== K) {
      throw new ModelError(
        `weights, means and covs must have one entry per component: got ${K}, ${means.length}, ${covs.length}`,
      );
    }
    const d = means[0]!.length;
    if (d === 0) throw new ModelError('the data dimension must be at least 1 (means[0] is empty)');
    let total = 0;
    for (const [k, wk] of weights.entries()) {
      if (!(wk > 0) || !Number.isFinite(wk))
        throw new ModelError(`weights[${k}] must be positive and finite, got ${wk}`);
      total += wk;
    }
    if (Math.abs(total - 1) > 1e-6) throw new ModelError(`weights must sum to 1, got ${total}`);
    this.dim = d;
    this.numComponents = K;
    this.w = Float64Array.from(weights);
    this.mu = new Float64Array(K * d);
    this.cov = new Float64Array(K * d * d);
    this.chol = new Float64Array(K * d * d);
    this.muF = new Float32Array(K * d);
    this.logWF = Float32Array.from(weights, Math.log);
    for (let k = 0; k < K; k++) {
      const m = means[k]!;
      if (m.length !== d) throw new ModelError(`means[${k}] has length ${m.length}, expected ${d}`);
      for (let i = 0; i < d; i++) {
        if (!Number.isFinite(m[i]!)) throw new ModelError(`means[${k}][${i}] is not finite`);
        this.mu[k * d + i] = m[i]!;
      }
      const c = covs[k]!;
      if (c.length !== d || c.some((row) => row.length !== d))
        throw new ModelError(`covs[${k}] must be ${d} x ${d}`);
      const s = this.cov.subarray(k * d * d, (k + 1) * d * d);
      for (let i = 0; i < d; i++) {
        for (let j = 0; j < d; j++) {
          const v = c[i]![j]!;
          if (!Number.isFinite(v)) throw new ModelError(`covs[${k}][${i}][${j}] is not finite`);
          if (Math.abs(v - c[j]![i]!) > 1e-9 * (Math.abs(v) + 1e-300)) {
            throw new ModelError(
              `covs[${k}] is not symmetric: [${i}][${j}] = ${v} but [${j}][${i}] = ${c[j]![i]}`,
            );
          }
          s[i * d + j] = v;
        }
      }
      this.chol.set(cholesky(s, d, `covs[${k}]`), k * d * d);
    }
    this.muF.set(this.mu);

    // Class structure.
    this.componentClass = new Int32Array(K);
    if (spec.labels !== undefined) {
      if (spec.labels.length !== K)
        throw new ModelError(
          `labels must have one entry per component (${K}), got ${spec.labels.length}`,
        );
      let maxLabel = -1;
      for (const [k, y] of spec.labels.entries()) {
        if (!Number.isInteger(y) || y < 0)
          throw new ModelError(`labels[${k}] must be an integer >= 0, got ${y}`);
        maxLabel = Math.max(maxLabel, y);
        this.componentClass[k] = y;
      }
      const C = spec.numClasses ?? maxLabel + 1;
      if (Number.isInteger(C) && C > K)
        throw new ModelError(
          `numClasses (${C}) is more than the ${K} components: every class needs one`,
        );
      if (!Number.isInteger(C) || C <= maxLabel)
        throw new ModelError(
          `numClasses (${C}) must be an integer above every label (max ${maxLabel})`,
        );
      this.numClasses = C;
      this.classLogPrior = new Float64Array(C);
      const mass = new Float64Array(C);
      for (let k = 0; k < K; k++) mass[this.componentClass[k]!]! += this.w[k]!;
      for (let c = 0; c < C; c++) {
        if (mass[c] === 0)
          throw new ModelError(`class ${c} has no component (labels: ${spec.labels.join(', ')})`);
        this.classLogPrior[c] = Math.log(mass[c]!);
      }
    } else {
      if (spec.numClasses !== undefined)
        throw new ModelError('numClasses needs labels (one class per component)');
      this.numClasses = 0;
      this.classLogPrior = new Float64Array(0);
    }
    this.spec = {
      weights: [...weights],
      means: means.map((m) => [...m]),
      covs: covs.map((c) => c.map((r) => [...r])),
      ...(spec.labels ? { labels: [...spec.labels], numClasses: this.numClasses } : {}),
    };
  }

  /**
   * A single Gaussian N(mean, cov) as a one-component mixture.
   *
   * @example
   * const g = GaussianMixture.gaussian([0, 0], [[1, 0.5], [0.5, 2]]);
   */
  static gaussian(mean: readonly number[], cov: readonly (readonly number[])[]): GaussianMixture {
    return new GaussianMixture({ weights: [1], means: [mean], covs: [cov] });
  }

  // ---------------------------------------------------------------- tensor path

  /**
   * E[x_0 | x_t] = sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k)), shape [batch, d].
   * With `labels`, the posterior mean under p(x_0 | y).
   *
   * @example
   * const x0 = gm.x0(x, { alpha: 0.6, sigma: 0.8 });
   */
  x0(x: tf.Tensor, level: NoiseLevel<Scalar>, labels?: Labels): tf.Tensor {
    return tf.tidy(() => {
      const p = this.posterior(x, level, labels);
      return p.restore(p.x0());
    });
  }

  /**
   * The exact noise prediction eps = (x - alpha x0) / sigma = sigma sum_k r_k C_k^{-1} (x - alpha mu_k),
   * computed without the subtraction. Shape [batch, d].
   *
   * @example
   * const eps = gm.epsilon(x, { alpha: 0.6, sigma: 0.8 });
   */
  epsilon(x: tf.Tensor, level: NoiseLevel<Scalar>, labels?: Labels): tf.Tensor {
    return tf.tidy(() => {
      const p = this.posterior(x, level, labels);
      return p.restore(tf.mul(p.cinvDiff(), p.sigmaB));
    });
  }

  /**
   * The score grad_x log p_t(x) = -sum_k r_k C_k^{-1} (x - alpha mu_k) (class-conditional with labels).
   * Shape [batch, d].
   *
   * @example
   * const s = gm.score(x, { alpha: 1, sigma: 0.1 });
   */
  score(x: tf.Tensor, level: NoiseLevel<Scalar>, labels?: Labels): tf.Tensor {
    return tf.tidy(() => {
      const p = this.posterior(x, level, labels);
      return p.restore(tf.neg(p.cinvDiff()));
    });
  }

  /**
   * log p_t(x) = logsumexp_k (log w_k + log N(x; alpha mu_k, C_k)), or log p_t(x | y) with labels.
   * Shape [batch].
   *
   * @example
   * const lp = gm.logProb(x, { alpha: 1, sigma: 0 }); // the data log-density
   */
  logProb(x: tf.Tensor, level: NoiseLevel<Scalar>, labels?: Labels): tf.Tensor {
    return tf.tidy(() => this.posterior(x, level, labels).logProb());
  }

  /**
   * log p_t(y | x) = logsumexp_{k: y_k = y} (log w_k + log N_k(x)) - log p_t(x): the exact
   * noise-conditional classifier. Shape [batch, numClasses]; each row's exp sums to 1.
   *
   * @example
   * const logits = gm.classLogPosterior(x, { alpha: 0.9, sigma: 0.4 });
   */
  classLogPosterior(x: tf.Tensor, level: NoiseLevel<Scalar>): tf.Tensor {
    if (this.numClasses === 0)
      throw new ModelError('classLogPosterior needs a mixture whose components carry labels');
    return tf.tidy(() => {
      const p = this.posterior(x, level, undefined);
      const C = this.numClasses;
      const K = this.numComponents;
      const member = new Uint8Array(C * K); // [C, K]
      for (let k = 0; k < K; k++) member[this.componentClass[k]! * K + k] = 1;
      const mask = tf.tensor3d(member, [C, K, 1], 'bool');
      const logits = tf.expandDims(p.logits, 0); // [1, K, B]
      const perClass = tf.logSumExp(tf.where(mask, logits, tf.fill(logits.shape, MASKED)), 1); // [C, B]
      return tf.transpose(tf.sub(perClass, p.lse)); // [B, C]
    });
  }

  /**
   * The posterior quantities at x, shared by x0/epsilon/score/logProb (call inside tf.tidy).
   * Layout: components first, [K, B, d].
   */
  private posterior(x: tf.Tensor, level: NoiseLevel<Scalar>, labels: Labels | undefined) {
    const trailing = x.shape.slice(1).reduce((a, b) => a * b, 1);
    if (x.rank < 2 || trailing !== this.dim) {
      throw new ModelError(
        `x must have shape [batch, ${this.dim}] (or [batch, ...dims] with ${this.dim} numbers per example), got [${x.shape.join(', ')}]`,
      );
    }
    const B = x.shape[0]!;
    const K = this.numComponents;
    const d = this.dim;
    if (level.alpha === 0 && level.sigma === 0)
      throw new ModelError('alpha and sigma cannot both be 0');
    const a = levelTensor(level.alpha, B, 'alpha');
    const s = levelTensor(level.sigma, B, 'sigma');
    const mu = tf.tensor3d(this.muF, [K, 1, d]);
    const eig = this.eigenbasis();
    const U = tf.tensor3d(eig.vectors, [K, d, d]);
    const lam = tf.tensor3d(eig.values, [K, 1, d]);
    const xf = tf.reshape(tf.cast(x, 'float32'), [B, d]);
    const diff = tf.sub(tf.expandDims(xf, 0), tf.mul(a, mu)); // [K, B, d]: x - alpha mu_k
    const z = tf.matMul(diff, U); // U_k^T (x - alpha mu_k), as rows
    const dk = tf.add(tf.mul(tf.square(a), lam), tf.square(s)); // eigenvalues of C_k
    const zOverD = tf.div(z, dk);
    // log w_k + log N(x; alpha mu_k, C_k) up to a term shared by all components (`shared`, [B] or
    // scalar), in whichever of two exact forms is accurate at this noise level (see `centredLogits`).
    const { logits: unmasked, shared } = this.logits(xf, z, zOverD, dk, a, s, level);
    let logits: tf.Tensor = unmasked; // [K, B]
    let logPy: tf.Tensor | number = 0;
    if (labels !== undefined) {
      const { mask, logPrior } = this.labelMask(labels, B);
      logits = tf.where(mask, logits, tf.fill(logits.shape, MASKED));
      logPy = logPrior;
    }
    const lse = tf.logSumExp(logits, 0); // [B]
    const r = tf.expandDims(tf.exp(tf.sub(logits, lse)), -1); // [K, B, 1]
    const sigmaB = levelForBatch(s);
    return {
      logits,
      lse,
      sigmaB,
      /** [B, d] back to the input's shape. */
      restore: (t: tf.Tensor) => (x.rank === 2 ? t : tf.reshape(t, x.shape)),
      logProb: () => tf.add(tf.sub(lse, logPy), shared),
      // sum_k r_k U_k (z_k / d_k) = sum_k r_k C_k^{-1} (x - alpha mu_k)
      cinvDiff: () => tf.sum(tf.mul(r, tf.matMul(zOverD, U, false, true)), 0),
      // sum_k r_k (mu_k + U_k (alpha lambda_k / d_k) z_k)
      // sum_k r_k (mu_k + U_k (alpha lambda_k / d_k) z_k), or, where sigma^2 <= alpha^2 lambda_min
      // (noise below every data scale), Tweedie's x0 = (x - sigma^2 sum_k r_k C_k^{-1} (x - alpha mu_k))
      // / alpha, the same sum written around x / alpha: there each term mu_k + (x / alpha - mu_k +
      // ...) costs rounding of the size of x, the correction sigma^2 (...) only its own. Measured on
      // the k-diffusion mixture, 1024 points, wasm vs float64: at VE sigma 0.002 the direct form is off
      // by 1.1e-5 and differs between wasm and cpu by 2.4e-6, Tweedie's by 2.9e-7 and 0; at 0.1 by
      // 6.7e-6 vs 1.5e-6; the forms cross near sigma^2 = 4 alpha^2 lambda_min (direct is better above).
      x0: () => {
        const direct = () => {
          const shrink = tf.matMul(tf.mul(tf.mul(a, lam), zOverD), U, false, true);
          return tf.sum(tf.mul(r, tf.add(mu, shrink)), 0);
        };
        const lamMin = this.centring().lambdaMin;
        if (typeof level.alpha === 'number' && typeof level.sigma === 'number') {
          if (!(level.sigma ** 2 <= level.alpha ** 2 * lamMin)) return direct();
        }
        const below = tf.lessEqual(tf.square(s), tf.mul(tf.square(a), lamMin));
        const useTweedie = below.rank === 0 ? below : tf.reshape(below, [-1, 1]); // [B, 1]
        const aSafe = tf.where(useTweedie, levelForBatch(a), tf.onesLike(levelForBatch(a)));
        const cinv = tf.sum(tf.mul(r, tf.matMul(zOverD, U, false, true)), 0);
        const tweedie = tf.div(tf.sub(xf, tf.mul(tf.square(sigmaB), cinv)), aSafe);
        if (typeof level.alpha === 'number' && typeof level.sigma === 'number') return tweedie;
        return tf.where(tf.broadcastTo(useTweedie, tweedie.shape), tweedie, direct());
      },
    };
  }

  /**
   * The component logits log w_k + log N(x; alpha mu_k, C_k) - `shared`, where `shared` is common to
   * every component (so the responsibilities softmax_k and log p_t(y | x) are unchanged and log p_t(x)
   * = logsumexp_k + shared). Two exact forms:
   *
   * - direct: -1/2 (sum_j z_kj^2 / d_kj + sum_j log d_kj + d log 2 pi), shared = 0, with z_k = U_k^T
   *   (x - alpha mu_k) and d_kj = alpha^2 lambda_kj + sigma^2;
   * - centred: with m the weighted mean of the mu_k, x_c = x - alpha m, delta_k = mu_k - m and
   *   C_k^{-1} = sigma^{-2} (I - alpha^2 S_k C_k^{-1}),
   *
   *       l_k = [alpha delta_k . x_c - alpha^2 |delta_k|^2 / 2 + (alpha^2 / 2) sum_j lambda_kj z_kj^2 / d_kj] / sigma^2
   *             - 1/2 sum_j log1p(alpha^2 lambda_kj / sigma^2),
   *       shared = -|x_c|^2 / (2 sigma^2) - (d / 2) log(2 pi sigma^2).
   *
   * At large sigma every Mahalanobis term of the direct form is ~|x_c|^2 / sigma^2 = O(|eps|^2), and
   * the components differ by only ~alpha R |eps| / sigma (R the spread of the mixture): in float32
   * their differences, and so the responsibilities and E[x0 | x], lose a factor ~sigma / (alpha R)
   * (6e-6 absolute at sigma = 80 on the k-diffusion mixture). The centred form computes those small
   * differences directly. It is used where sigma^2 >= alpha^2 R^2, R^2 = max lambda + max |delta_k|^2
   * (there each of its terms is at most the direct form's), the direct form elsewhere (at small sigma
   * the centred terms would cancel). Per example when the level is a tensor.
   */
  private logits(
    xf: tf.Tensor,
    z: tf.Tensor,
    zOverD: tf.Tensor,
    dk: tf.Tensor,
    a: tf.Tensor,
    s: tf.Tensor,
    level: NoiseLevel<Scalar>,
  ): { logits: tf.Tensor; shared: tf.Tensor | number } {
    const K = this.numComponents;
    const d = this.dim;
    const logW = tf.tensor2d(this.logWF, [K, 1]);
    const direct = () =>
      tf.add(
        logW,
        tf.mul(
          -0.5,
          tf.add(tf.add(tf.sum(tf.mul(z, zOverD), -1), tf.sum(tf.log(dk), -1)), d * LOG_2PI),
        ),
      ); // [K, B]
    const c = this.centring();
    if (typeof level.alpha === 'number' && typeof level.sigma === 'number') {
      if (level.sigma ** 2 < level.alpha ** 2 * c.radius2) return { logits: direct(), shared: 0 };
    }
    // Where a tensor level is below the threshold, sigma is replaced by 1 in the (then unused) centred
    // form, so it stays finite and so do its gradients through tf.where.
    const useCentred = tf.greaterEqual(tf.square(s), tf.mul(tf.square(a), c.radius2)); // scalar or [1, B, 1]
    const sc = tf.where(useCentred, s, tf.onesLike(s));
    const s2 = tf.square(sc);
    const a2 = tf.square(a);
    const xc = tf.sub(xf, tf.mul(tf.reshape(a, a.rank === 0 ? [] : [-1, 1]), c.mean)); // [B, d]
    const delta = tf.tensor3d(c.delta, [K, 1, d]);
    const lam = tf.tensor3d(this.eigenbasis().values, [K, 1, d]);
    const inner = tf.add(
      tf.sub(
        tf.mul(a, tf.sum(tf.mul(delta, tf.expandDims(xc, 0)), -1, true)), // alpha delta_k . x_c
        tf.mul(tf.mul(0.5, a2), tf.sum(tf.square(delta), -1, true)),
      ),
      tf.mul(tf.mul(0.5, a2), tf.sum(tf.mul(lam, tf.mul(z, zOverD)), -1, true)),
    ); // [K, B, 1]
    const logDet = tf.mul(-0.5, tf.sum(tf.log1p(tf.div(tf.mul(a2, lam), s2)), -1, true)); // [K, B|1, 1]
    const centred = tf.add(logW, tf.squeeze(tf.add(tf.div(inner, s2), logDet), [2])); // [K, B]
    const s2B = tf.reshape(s2, s2.rank === 0 ? [] : [-1]);
    const shared = tf.sub(
      tf.div(tf.mul(-0.5, tf.sum(tf.square(xc), -1)), s2B),
      tf.mul(0.5 * d, tf.log(tf.mul(2 * Math.PI, s2B))),
    ); // [B]
    if (typeof level.alpha === 'number' && typeof level.sigma === 'number')
      return { logits: centred, shared };
    const mask = tf.reshape(useCentred, useCentred.rank === 0 ? [] : [1, -1]);
    return {
      logits: tf.where(tf.broadcastTo(mask, centred.shape), centred, direct()),
      shared: tf.where(
        tf.broadcastTo(tf.reshape(mask, [-1]), shared.shape),
        shared,
        tf.zerosLike(shared),
      ),
    };
  }

  /** The weighted mean m of the means, delta_k = mu_k - m (float32, K*d), R^2 and min lambda (cached). */
  private centring(): {
    mean: tf.Tensor;
    delta: Float32Array;
    radius2: number;
    lambdaMin: number;
  } {
    if (this.centre === null) {
      const K = this.numComponents;
      const d = this.dim;
      const m = new Float64Array(d);
      for (let k = 0; k < K; k++)
        for (let i = 0; i < d; i++) m[i]! += this.w[k]! * this.mu[k * d + i]!;
      const delta = new Float32Array(K * d);
      let spread = 0;
      for (let k = 0; k < K; k++) {
        let n2 = 0;
        for (let i = 0; i < d; i++) {
          const v = this.mu[k * d + i]! - m[i]!;
          delta[k * d + i] = v;
          n2 += v * v;
        }
        spread = Math.max(spread, n2);
      }
      let lamMax = 0;
      let lamMin = Number.POSITIVE_INFINITY;
      for (const v of this.eigenbasis().values) {
        lamMax = Math.max(lamMax, v);
        lamMin = Math.min(lamMin, v);
      }
      this.centre = {
        mean: Float32Array.from(m),
        delta,
        radius2: lamMax + spread,
        lambdaMin: Math.max(0, lamMin),
      };
    }
    const c = this.centre;
    return {
      mean: tf.tensor1d(c.mean),
      delta: c.delta,
      radius2: c.radius2,
      lambdaMin: c.lambdaMin,
    };
  }

  /** Each component's eigendecomposition S_k = U_k diag(lambda_k) U_k^T, as float32 (cached). */
  private eigenbasis(): { vectors: Float32Array; values: Float32Array } {
    if (this.eigen === null) {
      const K = this.numComponents;
      const d = this.dim;
      const vectors = new Float32Array(K * d * d);
      const values = new Float32Array(K * d);
      for (let k = 0; k < K; k++) {
        const e = symmetricEigen(this.cov.subarray(k * d * d, (k + 1) * d * d), d);
        values.set(e.values, k * d);
        vectors.set(e.vectors, k * d * d);
      }
      this.eigen = { vectors, values };
    }
    return this.eigen;
  }

  /** [K, B] membership mask of each example's class, and log p(y) per example ([B]). */
  private labelMask(labels: Labels, B: number): { mask: tf.Tensor; logPrior: tf.Tensor } {
    const ys = this.checkLabels(labels, B);
    const K = this.numComponents;
    const mask = new Uint8Array(K * B);
    const logPrior = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      const y = ys[b]!;
      const isNull = y === this.numClasses;
      for (let k = 0; k < K; k++) if (isNull || this.componentClass[k] === y) mask[k * B + b] = 1;
      logPrior[b] = isNull ? 0 : this.classLogPrior[y]!;
    }
    return { mask: tf.tensor2d(mask, [K, B], 'bool'), logPrior: tf.tensor1d(logPrior) };
  }

  /** Reads and validates labels: integers in [0, numClasses] (numClasses = unconditional). */
  private checkLabels(labels: Labels, n: number): Int32Array {
    if (this.numClasses === 0)
      throw new ModelError('labels were given, but the mixture components carry no class labels');
    let ys: ArrayLike<number>;
    // Tensors are immutable (variables excepted), so one readback per labels tensor suffices.
    const cacheable = labels instanceof tf.Tensor && !(labels instanceof tf.Variable);
    if (cacheable && !labels.isDisposed) {
      const cached = this.labelCache.get(labels);
      if (cached !== undefined && cached.length === n) return cached;
    }
    if (labels instanceof tf.Tensor) {
      if (labels.rank !== 1)
        throw new ModelError(`labels must have shape [batch], got [${labels.shape.join(', ')}]`);
      ys = labels.dataSync(); // a few bytes, once per tensor; needed to reject out-of-range classes
    } else {
      ys = labels;
    }
    if (ys.length !== n)
      throw new ModelError(`expected ${n} labels (one per example), got ${ys.length}`);
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const y = ys[i]!;
      if (!Number.isInteger(y) || y < 0 || y > this.numClasses) {
        throw new ModelError(
          `label ${y} is out of range: classes are 0..${this.numClasses - 1} (and ${this.numClasses} = unconditional)`,
        );
      }
      out[i] = y;
    }
    if (cacheable) this.labelCache.set(labels, out);
    return out;
  }

  // ---------------------------------------------------------------- denoiser

  /**
   * This oracle as a `Denoiser` predicting `prediction` (x0, epsilon, v, score or flow velocity). `cond.labels`
   * makes it class-conditional. Each target is computed from its own sum (v = alpha eps - sigma x0
   * from both), so there is no cancellation at either end of the noise range.
   *
   * @example
   * const denoise = gm.denoiser('epsilon');
   * const eps = denoise.predict(x, { alpha: 0.6, sigma: 0.8 });
   */
  denoiser(prediction: Prediction = 'x0'): Denoiser {
    assertPrediction(prediction);
    const gm = this;
    return {
      prediction,
      shape: [this.dim],
      ...(this.numClasses > 0 ? { numClasses: this.numClasses } : {}),
      predict(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): tf.Tensor {
        const labels = cond?.labels;
        switch (prediction) {
          case 'x0':
            return gm.x0(x, level, labels);
          case 'epsilon':
            return gm.epsilon(x, level, labels);
          case 'score':
            return gm.score(x, level, labels);
          case 'flow': // u = eps - x0
            return tf.tidy(() => tf.sub(gm.epsilon(x, level, labels), gm.x0(x, level, labels)));
          case 'v':
            return tf.tidy(() => {
              const p = gm.posterior(x, level, labels);
              const eps = tf.mul(p.cinvDiff(), p.sigmaB);
              return p.restore(
                tf.sub(
                  tf.mul(levelForBatch(levelTensor(level.alpha, x.shape[0]!, 'alpha')), eps),
                  tf.mul(p.sigmaB, p.x0()),
                ),
              );
            });
        }
      },
    };
  }

  // ---------------------------------------------------------------- sampling

  /**
   * n draws from the data distribution p_0 (or p_0(x | y) for the given labels: one per draw, or one
   * for all). Float32 tensor [n, d]; the same seed gives the same draws on every backend.
   *
   * @example
   * const x = gm.sample(1000, Random.seed(1));
   * const ones = gm.sample(100, Random.seed(2), 1); // all from class 1
   */
  sample(n: number, rng: Random, labels?: number | readonly number[] | Int32Array): tf.Tensor {
    return tf.tensor2d(this.sampleArray(n, rng, labels).x, [n, this.dim]);
  }

  /**
   * Like `sample`, also returning each draw's class (int32 tensor [n]; all zeros without labels)
   * and component index.
   *
   * @example
   * const { x, labels } = gm.sampleWithLabels(256, Random.seed(0));
   */
  sampleWithLabels(
    n: number,
    rng: Random,
    labels?: number | readonly number[] | Int32Array,
  ): { x: tf.Tensor; labels: tf.Tensor; components: Int32Array } {
    const { x, classes, components } = this.sampleArray(n, rng, labels);
    return { x: tf.tensor2d(x, [n, this.dim]), labels: tf.tensor1d(classes, 'int32'), components };
  }

  /**
   * The draws of `sampleWithLabels` as plain arrays (x: Float32Array n*d).
   *
   * @example
   * const { x, classes } = gm.sampleArray(500, Random.seed(3));
   */
  sampleArray(
    n: number,
    rng: Random,
    labels?: number | readonly number[] | Int32Array,
  ): { x: Float32Array; classes: Int32Array; components: Int32Array } {
    if (!Number.isInteger(n) || n < 0)
      throw new ModelError(`sample size must be a non-negative integer, got ${n}`);
    const d = this.dim;
    const K = this.numComponents;
    let ys: Int32Array | undefined;
    if (labels !== undefined) {
      ys =
        typeof labels === 'number' ? new Int32Array(n).fill(labels) : this.checkLabels(labels, n);
      if (typeof labels === 'number') this.checkLabels([labels], 1);
    }
    const x = new Float32Array(n * d);
    const classes = new Int32Array(n);
    const components = new Int32Array(n);
    const zs = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      const y = ys?.[i];
      const conditional = y !== undefined && y !== this.numClasses;
      const total = conditional ? Math.exp(this.classLogPrior[y]!) : 1;
      let u = rng.uniform01() * total;
      let k = -1;
      for (let j = 0; j < K; j++) {
        if (conditional && this.componentClass[j] !== y) continue;
        k = j;
        u -= this.w[j]!;
        if (u < 0) break;
      }
      components[i] = k;
      classes[i] = this.componentClass[k]!;
      for (let j = 0; j < d; j++) zs[j] = rng.standardNormal();
      const lz = matVec(this.chol.subarray(k * d * d, (k + 1) * d * d), zs, d);
      for (let j = 0; j < d; j++) x[i * d + j] = this.mu[k * d + j]! + lz[j]!;
    }
    return { x, classes, components };
  }

  /**
   * Monte Carlo estimate of the differential entropy H(p_t) = -E[log p_t(x)] (nats) from n draws of
   * x_t = alpha x_0 + sigma eps, x_0 ~ p_0 (default alpha = 1, sigma = 0: the data entropy), with its
   * standard error. The reference for probability-flow NLL checks (Song et al. 2021, sec. D.2).
   *
   * @example
   * const { entropy, standardError } = gm.entropy(20000, Random.seed(0));
   */
  entropy(
    n: number,
    rng: Random,
    level: NoiseLevel<number> = { alpha: 1, sigma: 0 },
  ): { entropy: number; standardError: number } {
    if (!Number.isInteger(n) || n < 2)
      throw new ModelError(`entropy needs at least 2 draws, got ${n}`);
    const { x } = this.sampleArray(n, rng);
    const xt = Float64Array.from(x, (v) => level.alpha * v);
    if (level.sigma > 0)
      for (let i = 0; i < xt.length; i++) xt[i]! += level.sigma * rng.standardNormal();
    const lp = this.logProbArray(xt, level.alpha, level.sigma);
    let mean = 0;
    for (const v of lp) mean += v;
    mean /= n;
    let varSum = 0;
    for (const v of lp) varSum += (v - mean) ** 2;
    return { entropy: -mean, standardError: Math.sqrt(varSum / (n - 1) / n) };
  }

  // ---------------------------------------------------------------- float64 reference path

  /**
   * Float64 E[x_0 | x_t] for a batch of points (row-major, batch*d), by Cholesky solves.
   *
   * @example
   * const x0 = gm.x0Array(Float64Array.of(0.1, 0.2), 0.8, 0.6);
   */
  x0Array(
    x: ArrayLike<number>,
    alpha: number,
    sigma: number,
    labels?: readonly number[] | Int32Array,
  ): Float64Array {
    return this.exact64(x, alpha, sigma, labels).x0;
  }

  /**
   * Float64 epsilon = sigma sum_k r_k C_k^{-1} (x - alpha mu_k).
   *
   * @example
   * const eps = gm.epsilonArray([0.1, 0.2], 0.8, 0.6);
   */
  epsilonArray(
    x: ArrayLike<number>,
    alpha: number,
    sigma: number,
    labels?: readonly number[] | Int32Array,
  ): Float64Array {
    const { cinvDiff } = this.exact64(x, alpha, sigma, labels);
    return cinvDiff.map((v) => sigma * v);
  }

  /**
   * Float64 score = -sum_k r_k C_k^{-1} (x - alpha mu_k).
   *
   * @example
   * const score = gm.scoreArray([0.1, 0.2], 1, 0.1);
   */
  scoreArray(
    x: ArrayLike<number>,
    alpha: number,
    sigma: number,
    labels?: readonly number[] | Int32Array,
  ): Float64Array {
    return this.exact64(x, alpha, sigma, labels).cinvDiff.map((v) => -v);
  }

  /**
   * Float64 log p_t(x) (or log p_t(x | y)) per point.
   *
   * @example
   * const lp = gm.logProbArray(Float64Array.of(0, 0), 1, 0);
   */
  logProbArray(
    x: ArrayLike<number>,
    alpha: number,
    sigma: number,
    labels?: readonly number[] | Int32Array,
  ): Float64Array {
    return this.exact64(x, alpha, sigma, labels).logProb;
  }

  /**
   * Float64 log p_t(y | x), row-major [batch, numClasses].
   *
   * @example
   * const logPy = gm.classLogPosteriorArray([0.1, 0.2], 0.9, 0.44);
   */
  classLogPosteriorArray(x: ArrayLike<number>, alpha: number, sigma: number): Float64Array {
    if (this.numClasses === 0)
      throw new ModelError('classLogPosteriorArray needs a mixture whose components carry labels');
    const { logits, logProb } = this.exact64(x, alpha, sigma, undefined);
    const K = this.numComponents;
    const C = this.numClasses;
    const B = logProb.length;
    const out = new Float64Array(B * C);
    for (let b = 0; b < B; b++) {
      for (let c = 0; c < C; c++) {
        const sel: number[] = [];
        for (let k = 0; k < K; k++) if (this.componentClass[k] === c) sel.push(logits[b * K + k]!);
        out[b * C + c] = logSumExp(sel) - logProb[b]!;
      }
    }
    return out;
  }

  private exact64(
    x: ArrayLike<number>,
    alpha: number,
    sigma: number,
    labels: readonly number[] | Int32Array | undefined,
  ) {
    const d = this.dim;
    const K = this.numComponents;
    checkLevelNumber(alpha, 'alpha');
    checkLevelNumber(sigma, 'sigma');
    if (alpha === 0 && sigma === 0) throw new ModelError('alpha and sigma cannot both be 0');
    if (x.length % d !== 0)
      throw new ModelError(`x has ${x.length} numbers, not a multiple of the dimension ${d}`);
    const B = x.length / d;
    const ys = labels === undefined ? undefined : this.checkLabels(labels, B);
    // Factor C_k = alpha^2 S_k + sigma^2 I once per call.
    const a2 = alpha * alpha;
    const s2 = sigma * sigma;
    const facs: Float64Array[] = [];
    const logDets: number[] = [];
    for (let k = 0; k < K; k++) {
      const c = new Float64Array(d * d);
      for (let i = 0; i < d * d; i++) c[i] = a2 * this.cov[k * d * d + i]!;
      for (let i = 0; i < d; i++) c[i * d + i]! += s2;
      const l = cholesky(c, d, `C_${k} = alpha^2 S_${k} + sigma^2 I`);
      facs.push(l);
      let ld = 0;
      for (let i = 0; i < d; i++) ld += 2 * Math.log(l[i * d + i]!);
      logDets.push(ld);
    }
    const x0 = new Float64Array(B * d);
    const cinvDiff = new Float64Array(B * d);
    const logProb = new Float64Array(B);
    const logits = new Float64Array(B * K);
    const diff = new Float64Array(d);
    const solves: Float64Array[] = [];
    for (let b = 0; b < B; b++) {
      const y = ys?.[b];
      const conditional = y !== undefined && y !== this.numClasses;
      solves.length = 0;
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < d; i++) diff[i] = x[b * d + i]! - alpha * this.mu[k * d + i]!;
        const l = facs[k]!;
        const half = solveLower(l, diff, d);
        let maha = 0;
        for (let i = 0; i < d; i++) maha += half[i]! ** 2;
        solves.push(solveUpperT(l, half, d)); // C_k^{-1} (x - alpha mu_k)
        const member = !conditional || this.componentClass[k] === y;
        logits[b * K + k] = member
          ? Math.log(this.w[k]!) - 0.5 * (maha + logDets[k]! + d * LOG_2PI)
          : Number.NEGATIVE_INFINITY;
      }
      const row = logits.subarray(b * K, (b + 1) * K);
      const lse = logSumExp(row);
      logProb[b] = lse - (conditional ? this.classLogPrior[y]! : 0);
      for (let k = 0; k < K; k++) {
        const r = Math.exp(row[k]! - lse);
        if (r === 0) continue;
        const ci = solves[k]!;
        const sci = matVec(this.cov.subarray(k * d * d, (k + 1) * d * d), ci, d);
        for (let i = 0; i < d; i++) {
          x0[b * d + i]! += r * (this.mu[k * d + i]! + alpha * sci[i]!);
          cinvDiff[b * d + i]! += r * ci[i]!;
        }
      }
    }
    return { x0, cinvDiff, logProb, logits };
  }
}

function checkLevelNumber(v: number, name: string): void {
  if (!Number.isFinite(v) || v < 0)
    throw new ModelError(`${name} must be a finite number >= 0, got ${v}`);
}

/** alpha or sigma as a tensor that broadcasts against [K, B, d]: a scalar, or [1, B, 1]. */
function levelTensor(v: Scalar, batch: number, name: string): tf.Tensor {
  if (typeof v === 'number') {
    checkLevelNumber(v, name);
    return tf.scalar(v);
  }
  if (v.size === 1) return tf.reshape(tf.cast(v, 'float32'), []);
  if (v.size === batch) return tf.reshape(tf.cast(v, 'float32'), [1, batch, 1]);
  throw new ModelError(
    `${name} must be a number or a tensor with 1 or ${batch} (batch) elements, got shape [${v.shape.join(', ')}]`,
  );
}

/** A level tensor from `levelTensor` reshaped to broadcast against [B, d]. */
function levelForBatch(t: tf.Tensor): tf.Tensor {
  return t.rank === 0 ? t : tf.reshape(t, [-1, 1]);
}
