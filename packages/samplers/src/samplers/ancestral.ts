import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { addNoise, ancestralStep } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { ETA, NONNEGATIVE } from './rules.js';

/** DDPM's variance choices (Ho et al. 2020, sec. 3.2): the posterior variance or beta_t. */
export type AncestralVariance = 'fixed_small' | 'fixed_large';

export type AncestralOptions = {
  eta: number;
  sNoise: number;
  variance: AncestralVariance;
  /** Inject noise on the last step too (diffusers' DDPM skips it when the last timestep is 0). */
  lastStepNoise: boolean;
  /**
   * The deterministic target of every step, sigma_down in [0, sigma_{i+1}] (one per step), instead of
   * the one eta implies; sigma_up = sqrt(sigma_{i+1}^2 - sigma_down^2). Empty (default): from eta.
   * TCD's strategic stochastic sampling (Zheng et al. 2024, sec. 4.3) goes down to the level of
   * timestep floor((1 - gamma) t_{i+1}) this way.
   */
  sigmaDowns: readonly number[];
};

const ANCESTRAL_RULES = {
  eta: ETA,
  sNoise: NONNEGATIVE,
  variance: { oneOf: ['fixed_small', 'fixed_large'] },
  sigmaDowns: NONNEGATIVE,
} as const;

/**
 * The noise added by DDPM's `fixed_large` choice, sigma_t^2 = beta_t, in VE units: with the VP
 * embedding alpha^2 = 1 / (1 + sigma^2), beta_t = 1 - alpha_t^2 / alpha_{t-1}^2 and the VE noise is
 * sqrt(beta_t) / alpha_{t-1} = sqrt((sigma^2 - sigma'^2)(1 + sigma'^2) / (1 + sigma^2)).
 */
export function betaNoiseVE(sigma: number, sigmaNext: number): number {
  return Math.sqrt(
    ((sigma * sigma - sigmaNext * sigmaNext) * (1 + sigmaNext * sigmaNext)) / (1 + sigma * sigma),
  );
}

/**
 * Ancestral sampling with Euler steps: move deterministically to sigma_down, then add fresh noise of
 * size sigma_up (k-diffusion `sample_euler_ancestral`). In VE variables this one step is also
 *
 * - DDIM with parameter eta (Song et al. 2021, eq. 12 and 16): sigma_up = eta sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2);
 * - DDPM's ancestral step (Ho et al. 2020, Algorithm 2) for eta = 1 (`fixed_small`, the posterior
 *   variance), or with `fixed_large` noise beta_t around the same posterior mean.
 *
 * x_{i+1} = x + (sigma_down - sigma_i) d + sigma_up S_noise z = D + (sigma_down / sigma_i)(x - D) + sigma_up S_noise z
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'euler_ancestral', steps: 30, shape: [16, 2], seed: 1 });
 */
export function* sampleAncestral(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: AncestralOptions,
): SamplerProgram {
  const downs = o.sigmaDowns;
  if (downs.length > 0) {
    if (downs.length !== sigmas.length - 1)
      throw new SamplerError(
        `sigmaDowns has ${downs.length} entries for ${sigmas.length - 1} steps (one per step)`,
      );
    const k = downs.findIndex((d, j) => !(d <= sigmas[j + 1]!));
    if (k >= 0)
      throw new SamplerError(
        `sigmaDowns[${k}] = ${downs[k]} is above the step's next sigma ${sigmas[k + 1]}`,
      );
    if (o.variance === 'fixed_large')
      throw new SamplerError("sigmaDowns and variance 'fixed_large' exclude each other");
  }
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    let { sigmaDown, sigmaUp } =
      downs.length > 0
        ? {
            sigmaDown: downs[i]!,
            sigmaUp: Math.sqrt(Math.max(0, sigmaNext * sigmaNext - downs[i]! * downs[i]!)),
          }
        : ancestralStep(sigma, sigmaNext, o.eta);
    if (o.variance === 'fixed_large') {
      sigmaDown = ancestralStep(sigma, sigmaNext, 1).sigmaDown;
      sigmaUp = betaNoiseVE(sigma, sigmaNext);
    }
    if (i === sigmas.length - 2 && !o.lastStepNoise) sigmaUp = 0;
    // x + (sigma_down - sigma) d, written as D + (sigma_down / sigma)(x - D): the same Euler step, and
    // exact in float32 from a huge sigma too (zero terminal SNR's first level, where x - D ~ sigma eps)
    const next = ctx.tidy(() => tf.add(denoised, tf.mul(tf.sub(x, denoised), sigmaDown / sigma)));
    ctx.free(x, denoised);
    x = sigmaUp > 0 ? addNoise(ctx, next, sigma, sigmaNext, o.sNoise * sigmaUp) : next;
  }
  return x;
}

export const eulerAncestral: SamplerDefinition<AncestralOptions> = {
  name: 'euler_ancestral',
  description: 'Euler steps with ancestral noise (eta)',
  reference:
    'Ho et al. 2020, Algorithm 2; Song et al. 2021 (DDIM) eq. 16; k-diffusion sample_euler_ancestral',
  fn: sampleAncestral,
  defaults: { eta: 1, sNoise: 1, variance: 'fixed_small', lastStepNoise: true, sigmaDowns: [] },
  rules: ANCESTRAL_RULES,
  stochastic: true,
};

export const ddim: SamplerDefinition<AncestralOptions> = {
  name: 'ddim',
  description: 'DDIM; deterministic with eta = 0, DDPM-like with eta = 1',
  reference: 'Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16',
  fn: sampleAncestral,
  defaults: { eta: 0, sNoise: 1, variance: 'fixed_small', lastStepNoise: true, sigmaDowns: [] },
  rules: ANCESTRAL_RULES,
  stochastic: false,
  order: 1,
};

export const ddpm: SamplerDefinition<AncestralOptions> = {
  name: 'ddpm',
  description: 'DDPM ancestral sampling (variance fixed_small or fixed_large)',
  reference: 'Ho et al. 2020, "Denoising Diffusion Probabilistic Models", Algorithm 2 and sec. 3.2',
  fn: sampleAncestral,
  defaults: { eta: 1, sNoise: 1, variance: 'fixed_small', lastStepNoise: true, sigmaDowns: [] },
  rules: ANCESTRAL_RULES,
  stochastic: true,
};
