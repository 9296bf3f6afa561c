import * as tf from '@tensorflow/tfjs-core';
import { addNoise, ancestralStep, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  type SamplerResume,
  type SamplerYield,
  stepEvent,
} from '../types.js';
import { CHURN_DEFAULTS, type ChurnOptions, churn } from './euler.js';
import { CHURN_RULES, ETA, NONNEGATIVE } from './rules.js';

/** Where DPM-2 takes its midpoint between sigma_a and sigma_b. */
export type Dpm2Midpoint = 'rho3' | 'geometric';
const MIDPOINT = { oneOf: ['rho3', 'geometric'] } as const;

/**
 * The midpoint: 'geometric' = exp((log sigma_a + log sigma_b) / 2), the midpoint in log sigma
 * (k-diffusion since 2023, diffusers `KDPM2DiscreteScheduler`); 'rho3' = ((sigma_a^(1/3) + sigma_b^(1/3)) / 2)^3,
 * a rho = 3 Karras ramp (k-diffusion's first version).
 *
 * @example
 * dpm2Midpoint(4, 1, 'geometric'); // 2
 */
export function dpm2Midpoint(a: number, b: number, kind: Dpm2Midpoint): number {
  return kind === 'geometric'
    ? Math.exp(0.5 * (Math.log(a) + Math.log(b)))
    : ((a ** (1 / 3) + b ** (1 / 3)) / 2) ** 3;
}

export type Dpm2Options = ChurnOptions & { midpoint: Dpm2Midpoint };

/** One DPM-Solver-2 style midpoint step from (x, sigma) to sigmaTo, given D(x; sigma) (x is freed). */
function* midpointStep(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigma: number,
  sigmaTo: number,
  denoised: tf.Tensor,
  midpoint: Dpm2Midpoint,
  i: number,
): Generator<SamplerYield, tf.Tensor, SamplerResume> {
  const d = ctx.tidy(() => toD(x, sigma, denoised));
  ctx.free(denoised);
  if (sigmaTo === 0) {
    const next = ctx.tidy(() => tf.add(x, tf.mul(d, sigmaTo - sigma)));
    ctx.free(x, d);
    return next;
  }
  const sigmaMid = dpm2Midpoint(sigma, sigmaTo, midpoint);
  const x2 = ctx.tidy(() => tf.add(x, tf.mul(d, sigmaMid - sigma)));
  ctx.free(d);
  const denoised2 = yield* denoise(x2, sigmaMid, i);
  const next = ctx.tidy(() => tf.add(x, tf.mul(toD(x2, sigmaMid, denoised2), sigmaTo - sigma)));
  ctx.free(x, x2, denoised2);
  return next;
}

/**
 * DPM-2: a second-order midpoint step inspired by DPM-Solver-2 (Lu et al. 2022, Algorithm 1) in
 * Karras et al.'s sigma parameterisation, with EDM's optional churn (k-diffusion `sample_dpm_2`;
 * diffusers `KDPM2DiscreteScheduler` with `midpoint: 'geometric'`). The step to sigma = 0 is Euler.
 *
 * x_mid = x + (sigma_mid - sigma) d,  x_{i+1} = x + (sigma_{i+1} - sigma) d(x_mid, sigma_mid)
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpm_2', steps: 10, shape: [16, 2], seed: 1 });
 */
export function* sampleDpm2(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: Dpm2Options,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(ctx, x, sigmas, i, o);
    x = c.x;
    const denoised = yield* denoise(x, c.sigmaHat, i);
    yield stepEvent(i, sigmas[i]!, c.sigmaHat, x, denoised);
    x = yield* midpointStep(ctx, x, c.sigmaHat, sigmas[i + 1]!, denoised, o.midpoint, i);
  }
  return x;
}

export const dpm2: SamplerDefinition<Dpm2Options> = {
  name: 'dpm_2',
  description: 'DPM-Solver-2 style midpoint steps in sigma, optional EDM churn',
  reference:
    'Lu et al. 2022 (DPM-Solver), Algorithm 1; Karras et al. 2022; k-diffusion sample_dpm_2',
  fn: sampleDpm2,
  defaults: { ...CHURN_DEFAULTS, midpoint: 'geometric' },
  rules: { ...CHURN_RULES, midpoint: MIDPOINT },
  stochastic: false,
  order: 2,
};

export type Dpm2AncestralOptions = { eta: number; sNoise: number; midpoint: Dpm2Midpoint };

/**
 * Ancestral DPM-2: a DPM-2 step down to sigma_down, then fresh noise of size sigma_up
 * (k-diffusion `sample_dpm_2_ancestral`; diffusers `KDPM2AncestralDiscreteScheduler` with geometric midpoints).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpm_2_ancestral', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* sampleDpm2Ancestral(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: Dpm2AncestralOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmas[i + 1]!, o.eta);
    x = yield* midpointStep(ctx, x, sigma, sigmaDown, denoised, o.midpoint, i);
    if (sigmaDown > 0 && sigmaUp > 0)
      x = addNoise(ctx, x, sigma, sigmas[i + 1]!, o.sNoise * sigmaUp);
  }
  return x;
}

export const dpm2Ancestral: SamplerDefinition<Dpm2AncestralOptions> = {
  name: 'dpm_2_ancestral',
  description: 'DPM-2 steps with ancestral noise',
  reference:
    'Lu et al. 2022; Ho et al. 2020 (ancestral sampling); k-diffusion sample_dpm_2_ancestral',
  fn: sampleDpm2Ancestral,
  defaults: { eta: 1, sNoise: 1, midpoint: 'geometric' },
  rules: { eta: ETA, sNoise: NONNEGATIVE, midpoint: MIDPOINT },
  stochastic: true,
};
