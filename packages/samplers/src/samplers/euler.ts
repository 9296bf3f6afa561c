import * as tf from '@tensorflow/tfjs-core';
import { churnGamma, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { CHURN_RULES } from './rules.js';

/** EDM's stochastic churn options (Karras et al. 2022, Algorithm 2): off with `sChurn = 0`. */
export type ChurnOptions = {
  sChurn: number;
  sTmin: number;
  sTmax: number;
  sNoise: number;
};

export const CHURN_DEFAULTS: ChurnOptions = {
  sChurn: 0,
  sTmin: 0,
  sTmax: Number.POSITIVE_INFINITY,
  sNoise: 1,
};

/**
 * EDM's churn (Karras et al. 2022, Algorithm 2, lines 4-6): raise the noise level of the state from
 * sigma_i to sigma_hat = (1 + gamma_i) sigma_i by adding N(0, (sigma_hat^2 - sigma_i^2) S_noise^2).
 * As in k-diffusion, with `sChurn > 0` one noise draw is made every step (also where gamma = 0).
 * Returns the new state (kept) and sigma_hat; frees the old state when it changed.
 */
export function churn(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  i: number,
  o: ChurnOptions,
): { x: tf.Tensor; sigmaHat: number } {
  const sigma = sigmas[i]!;
  if (!(o.sChurn > 0)) return { x, sigmaHat: sigma };
  const gamma = churnGamma(o.sChurn, sigmas.length - 1, sigma, o.sTmin, o.sTmax);
  const eps = ctx.noise(sigma, sigmas[i + 1]!);
  const sigmaHat = sigma * (gamma + 1);
  if (!(gamma > 0)) {
    ctx.free(eps);
    return { x, sigmaHat };
  }
  const scale = o.sNoise * Math.sqrt(sigmaHat * sigmaHat - sigma * sigma);
  const next = ctx.tidy(() => tf.add(x, tf.mul(eps, scale)));
  ctx.free(eps, x);
  return { x: next, sigmaHat };
}

/**
 * Euler steps on the probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma, with EDM's optional
 * churn: Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models",
 * Algorithm 2 without the second-order correction (k-diffusion `sample_euler`). With the VP embedding
 * this is also DDIM with eta = 0 (Song et al. 2021, eq. 13; Karras et al. sec. 3).
 *
 * x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) d,   d = (x_hat - D(x_hat; sigma_hat)) / sigma_hat
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'euler', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* sampleEuler(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: ChurnOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(ctx, x, sigmas, i, o);
    x = c.x;
    const denoised = yield* denoise(x, c.sigmaHat, i);
    yield stepEvent(i, sigmas[i]!, c.sigmaHat, x, denoised);
    const dt = sigmas[i + 1]! - c.sigmaHat;
    const next = ctx.tidy(() => tf.add(x, tf.mul(toD(x, c.sigmaHat, denoised), dt)));
    ctx.free(x, denoised);
    x = next;
  }
  return x;
}

export const euler: SamplerDefinition<ChurnOptions> = {
  name: 'euler',
  description: 'Euler steps on the probability-flow ODE, optional EDM churn',
  reference: 'Karras et al. 2022, Algorithm 2 (first order); k-diffusion sample_euler',
  fn: sampleEuler,
  defaults: CHURN_DEFAULTS,
  rules: CHURN_RULES,
  stochastic: false,
  order: 1,
};
