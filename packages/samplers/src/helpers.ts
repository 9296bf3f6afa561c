/**
 * Tiny shared pieces of the samplers, named as in k-diffusion's `sampling.py`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from './errors.js';
import type { SamplerContext } from './types.js';

/**
 * The probability-flow ODE derivative in VE variables (Karras et al. 2022, eq. 3 with sigma(t) = t):
 * dx/dsigma = (x - D(x; sigma)) / sigma. This is also the noise eps predicted at that level.
 *
 * @example
 * const d = toD(x, 2.5, denoised);
 */
export function toD(x: tf.Tensor, sigma: number, denoised: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.div(tf.sub(x, denoised), sigma));
}

/**
 * The rectified-flow velocity u = eps - x0 of the path x_t = (1 - t) x0 + t eps, from a VE state
 * x = x_t / (1 - t) at sigma = t / (1 - t) and its denoised value D: u = (x - D) / sigma - D.
 *
 * @example
 * const u = flowVelocity(x, 3, denoised); // t = 0.75
 */
export function flowVelocity(x: tf.Tensor, sigma: number, denoised: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(toD(x, sigma, denoised), denoised));
}

/**
 * One step of the flow ODE dx_t/dt = u(x_t, t) in flow coordinates, x_{t'} = x_t + dt mean(u_k) with
 * dt = t' - t: Euler with one velocity (diffusers' `FlowMatchEulerDiscreteScheduler.step`), Heun's
 * trapezoid with the velocities at both ends, (u(x_t, t) + u(x_e, t')) / 2 with the Euler predictor
 * x_e (diffusers' `FlowMatchHeunDiscreteScheduler.step`, its two calls). Written in t, not in the VE
 * view: diffusers' flow schedules start at t = 1, where sigma = t / (1 - t) is infinite. dt is taken as
 * given (diffusers forms it in float32).
 *
 * @example
 * const xe = flowStep(x, -0.1, [u1]);         // Euler predictor from t to t - 0.1
 * const next = flowStep(x, -0.1, [u1, u2]);   // Heun
 */
export function flowStep(x: tf.Tensor, dt: number, velocities: readonly tf.Tensor[]): tf.Tensor {
  if (velocities.length < 1 || velocities.length > 2)
    throw new SamplerError(`flowStep takes one or two velocities, got ${velocities.length}`);
  return tf.tidy(() => {
    const u =
      velocities.length === 1
        ? velocities[0]!
        : tf.mul(tf.add(velocities[0]!, velocities[1]!), 0.5);
    return tf.add(x, tf.mul(u, dt));
  });
}

/**
 * Splits the move from `sigmaFrom` to `sigmaTo` into a deterministic move down to `sigmaDown` and
 * fresh noise of size `sigmaUp`, with sigmaDown^2 + sigmaUp^2 = sigmaTo^2 (k-diffusion's
 * `get_ancestral_step`; for eta = 1 it is DDPM's posterior, Ho et al. 2020 eq. 7, in VE variables;
 * eta interpolates to DDIM, Song et al. 2021 eq. 16). As k-diffusion, sigma_up is capped at sigmaTo, so
 * eta > 1 saturates at a full re-noise (sigma_down = 0); a negative or non-finite eta throws a
 * `SamplerError` (it would make sigma_up negative: no noise added, yet sigma_down computed as if).
 *
 * @example
 * const { sigmaDown, sigmaUp } = ancestralStep(1.0, 0.5); // sigmaUp = 0.5 * sqrt(0.75)
 */
export function ancestralStep(
  sigmaFrom: number,
  sigmaTo: number,
  eta = 1,
): { sigmaDown: number; sigmaUp: number } {
  if (typeof eta !== 'number' || !(eta >= 0) || !Number.isFinite(eta))
    throw new SamplerError(`eta must be a finite number >= 0, got ${String(eta)}`);
  if (eta === 0) return { sigmaDown: sigmaTo, sigmaUp: 0 };
  const sigmaUp = Math.min(
    sigmaTo,
    eta *
      Math.sqrt(
        (sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo)) / (sigmaFrom * sigmaFrom),
      ),
  );
  const sigmaDown = Math.sqrt(Math.max(0, sigmaTo * sigmaTo - sigmaUp * sigmaUp));
  return { sigmaDown, sigmaUp };
}

/**
 * EDM's churn factor (Karras et al. 2022, Algorithm 2, line 4):
 * gamma_i = min(S_churn / N, sqrt(2) - 1) if S_tmin <= sigma_i <= S_tmax, else 0.
 *
 * @example
 * churnGamma(40, 10, 1.0, 0.05, 50); // sqrt(2) - 1
 */
export function churnGamma(
  sChurn: number,
  steps: number,
  sigma: number,
  sTmin: number,
  sTmax: number,
): number {
  return sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / steps, Math.SQRT2 - 1) : 0;
}

/** Coefficients (constant first) of the product of (u - r) over the roots. */
function polyFromRoots(roots: readonly number[]): number[] {
  let p = [1];
  for (const r of roots) {
    const q = new Array<number>(p.length + 1).fill(0);
    for (let k = 0; k < p.length; k++) {
      q[k + 1]! += p[k]!;
      q[k]! -= r * p[k]!;
    }
    p = q;
  }
  return p;
}

/**
 * The integral over [a, b] of the Lagrange basis polynomial l_j through `nodes`, computed exactly
 * (k-diffusion's `linear_multistep_coeff` uses quadrature for the same polynomial integral).
 *
 * @example
 * lagrangeIntegral([1, 0.5], 0, 0.5, 0.25); // the weight of the first node, integrating from 0.5 to 0.25
 */
export function lagrangeIntegral(
  nodes: readonly number[],
  j: number,
  a: number,
  b: number,
): number {
  const others = nodes.filter((_, k) => k !== j);
  const p = polyFromRoots(others);
  let denom = 1;
  for (const r of others) denom *= nodes[j]! - r;
  let F = 0;
  for (let k = 0; k < p.length; k++) F += (p[k]! * (b ** (k + 1) - a ** (k + 1))) / (k + 1);
  return F / denom;
}

/**
 * Linear multistep weights for step i: the Lagrange interpolant of the last `order` derivatives
 * through sigmas i, i-1, ..., integrated from sigma_i to sigma_{i+1} (k-diffusion `sample_lms`).
 * Entry j weighs the derivative of step i - j.
 *
 * @example
 * lmsCoefficients([10, 5, 2, 0], 2, 2); // two weights for step 2
 */
export function lmsCoefficients(sigmas: readonly number[], i: number, order: number): number[] {
  const nodes = Array.from({ length: order }, (_, k) => sigmas[i - k]!);
  return nodes.map((_, j) => lagrangeIntegral(nodes, j, sigmas[i]!, sigmas[i + 1]!));
}

/** phi_2(h) = (e^{-h} - 1) / h + 1, the exponential-integrator weight of a first difference (Lu et al. 2022). */
export function phi2(h: number): number {
  return Math.expm1(-h) / h + 1;
}

/** phi_3(h) = phi_2(h) / h - 1/2, the weight of a second difference. */
export function phi3(h: number): number {
  return phi2(h) / h - 0.5;
}

/** x + sum_k c_k t_k in one tidy (skips zero weights). */
export function axpy(x: tf.Tensor, terms: readonly (readonly [number, tf.Tensor])[]): tf.Tensor {
  return tf.tidy(() => {
    let y = x;
    for (const [c, t] of terms) if (c !== 0) y = tf.add(y, tf.mul(t, c));
    return y === x ? tf.clone(x) : y;
  });
}

/** sum_k c_k t_k in one tidy. */
export function lincomb(terms: readonly (readonly [number, tf.Tensor])[]): tf.Tensor {
  return tf.tidy(() => {
    let y: tf.Tensor | null = null;
    for (const [c, t] of terms) {
      const ct = tf.mul(t, c);
      y = y === null ? ct : tf.add(y, ct);
    }
    if (y === null) throw new RangeError('lincomb of nothing');
    return y;
  });
}

/**
 * x + scale * noise(sigma, sigmaNext): one noise request, scaled and added; frees x and the noise.
 *
 * @example
 * x = addNoise(ctx, x, sigma, sigmaNext, sNoise * sigmaUp);
 */
export function addNoise(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigma: number,
  sigmaNext: number,
  scale: number,
): tf.Tensor {
  const n = ctx.noise(sigma, sigmaNext);
  const next = ctx.tidy(() => tf.add(x, tf.mul(n, scale)));
  ctx.free(n, x);
  return next;
}

/**
 * Dynamic thresholding of a predicted x0 (Saharia et al. 2022, "Photorealistic Text-to-Image Diffusion
 * Models with Deep Language Understanding" (Imagen), sec. 2.3; diffusers' `_threshold_sample`): per batch
 * element, s = the `ratio` quantile of |x0| over all its other dimensions (linear interpolation, as
 * `torch.quantile`), clamped to [1, maxValue]; then x0 <- clip(x0, -s, s) / s. With s = 1 this is plain
 * clipping to [-1, 1]. The first dimension is the batch and there must be at least one more (diffusers
 * reads `batch, channels, *rest`). NaN entries stay NaN.
 *
 * @example
 * const x0t = dynamicThreshold(x0, 0.995, 1.0); // x0: [batch, channels, height, width]
 */
export function dynamicThreshold(x0: tf.Tensor, ratio: number, maxValue: number): tf.Tensor {
  if (x0.rank < 2)
    throw new SamplerError(
      `dynamic thresholding needs a batch dimension and at least one more, got shape [${x0.shape}]`,
    );
  if (!(ratio >= 0 && ratio <= 1))
    throw new SamplerError(`dynamic_thresholding_ratio must be in [0, 1], got ${ratio}`);
  if (!(maxValue >= 1) || !Number.isFinite(maxValue))
    throw new SamplerError(`sample_max_value must be a finite number >= 1, got ${maxValue}`);
  return tf.tidy(() => {
    const b = x0.shape[0]!;
    const n = x0.size / b;
    const flat = tf.reshape(x0, [b, n]);
    // ascending order statistics of |x0| per row (topk sorts descending)
    const desc = tf.topk(tf.abs(flat), n, true).values;
    const rank = Math.fround(ratio * (n - 1));
    const lo = Math.floor(rank);
    const hi = Math.min(lo + 1, n - 1);
    const w = rank - lo;
    const at = (i: number) => tf.slice(desc, [0, n - 1 - i], [b, 1]);
    const below = at(lo);
    const q = tf.add(below, tf.mul(tf.sub(at(hi), below), w));
    const s = tf.minimum(tf.maximum(q, 1), maxValue);
    const clipped = tf.div(tf.minimum(tf.maximum(flat, tf.neg(s)), s), s);
    return tf.reshape(tf.where(tf.isNaN(flat), flat, clipped), x0.shape);
  });
}

/**
 * The noise scale of DDPM's step with a learned variance (Nichol & Dhariwal 2021, "Improved Denoising
 * Diffusion Probabilistic Models", eq. 15; diffusers' `DDPMScheduler._get_variance`), elementwise from the
 * model's variance output v, between the levels alphaBar (now) and alphaBarPrev (next):
 * beta = 1 - alphaBar / alphaBarPrev, the posterior variance betaTilde = (1 - alphaBarPrev) / (1 - alphaBar) beta;
 * - `learned_range`: log Sigma = f log beta + (1 - f) log max(betaTilde, 1e-20), f = (v + 1) / 2;
 * - `learned`: Sigma = v itself.
 * Returns the standard deviation sqrt(Sigma) in VP units (the noise is sqrt(Sigma) z around the posterior mean).
 *
 * @example
 * const std = learnedVarianceStd(v, 0.5, 0.6, 'learned_range'); // between sqrt(betaTilde) and sqrt(beta)
 */
export function learnedVarianceStd(
  v: tf.Tensor,
  alphaBar: number,
  alphaBarPrev: number,
  kind: 'learned' | 'learned_range',
): tf.Tensor {
  if (kind !== 'learned' && kind !== 'learned_range')
    throw new SamplerError(
      `learned variance kind must be learned or learned_range, got ${String(kind)}`,
    );
  return tf.tidy(() => {
    if (kind === 'learned') return tf.sqrt(v);
    const beta = 1 - alphaBar / alphaBarPrev;
    const betaTilde = ((1 - alphaBarPrev) / (1 - alphaBar)) * beta;
    const minLog = Math.log(Math.max(betaTilde, 1e-20));
    const maxLog = Math.log(beta);
    const frac = tf.div(tf.add(v, 1), 2);
    return tf.exp(tf.mul(tf.add(tf.mul(frac, maxLog - minLog), minLog), 0.5));
  });
}
