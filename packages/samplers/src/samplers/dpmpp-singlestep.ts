import * as tf from '@tensorflow/tfjs-core';
import { addNoise, ancestralStep, lincomb, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { ETA, NONNEGATIVE } from './rules.js';

/**
 * The first-order DPM-Solver++ step from sigma to sigmaTo in VE variables (Lu et al. 2022b,
 * "DPM-Solver++", eq. 9 with h = log(sigma / sigmaTo)):
 * x' = (sigmaTo / sigma) x - expm1(-h) D  =  (sigmaTo / sigma) x + (1 - sigmaTo / sigma) D.
 */
export function dpmppFirstOrder(
  x: tf.Tensor,
  sigma: number,
  sigmaTo: number,
  denoised: tf.Tensor,
): tf.Tensor {
  const ratio = sigmaTo / sigma;
  return lincomb([
    [ratio, x],
    [-Math.expm1(Math.log(ratio)), denoised],
  ]);
}

export type AncestralSolverOptions = { eta: number; sNoise: number };

/**
 * DPM-Solver++(2S) with ancestral noise: a second-order singlestep step to sigma_down (midpoint in
 * log sigma, r = 1/2), then noise of size sigma_up (Lu et al. 2022b, Algorithm 1 with r = 1/2;
 * k-diffusion `sample_dpmpp_2s_ancestral`). The step to sigma_down = 0 is Euler.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpmpp_2s_ancestral', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* sampleDpmpp2sAncestral(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: AncestralSolverOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    const { sigmaDown, sigmaUp } = ancestralStep(sigma, sigmaNext, o.eta);
    let next: tf.Tensor;
    if (sigmaDown === 0) {
      next = ctx.tidy(() => tf.add(x, tf.mul(toD(x, sigma, denoised), sigmaDown - sigma)));
      ctx.free(denoised);
    } else {
      const t = -Math.log(sigma);
      const h = -Math.log(sigmaDown) - t;
      const sigmaMid = Math.exp(-(t + 0.5 * h));
      const x2 = ctx.tidy(() => dpmppFirstOrder(x, sigma, sigmaMid, denoised));
      ctx.free(denoised);
      const denoised2 = yield* denoise(x2, sigmaMid, i);
      next = ctx.tidy(() => dpmppFirstOrder(x, sigma, sigmaDown, denoised2));
      ctx.free(x2, denoised2);
    }
    ctx.free(x);
    x =
      sigmaNext > 0 && sigmaUp > 0
        ? addNoise(ctx, next, sigma, sigmaNext, o.sNoise * sigmaUp)
        : next;
  }
  return x;
}

export const dpmpp2sAncestral: SamplerDefinition<AncestralSolverOptions> = {
  name: 'dpmpp_2s_ancestral',
  description: 'DPM-Solver++(2S), singlestep second order, with ancestral noise',
  reference: 'Lu et al. 2022, "DPM-Solver++", Algorithm 1; k-diffusion sample_dpmpp_2s_ancestral',
  fn: sampleDpmpp2sAncestral,
  defaults: { eta: 1, sNoise: 1 },
  rules: { eta: ETA, sNoise: NONNEGATIVE },
  stochastic: true,
};

export type DpmppSdeOptions = { eta: number; sNoise: number; r: number };

/**
 * DPM-Solver++ (stochastic, singlestep): two first-order ancestral DPM-Solver++ moves, to the
 * intermediate level sigma_s = sigma^(1-r) sigma_next^r and to sigma_next, the second using
 * (1 - 1/(2r)) D + 1/(2r) D(x_s) (Lu et al. 2022b; k-diffusion `sample_dpmpp_sde`, here with i.i.d.
 * noise per request instead of a Brownian tree). The step to sigma = 0 is Euler.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpmpp_sde', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* sampleDpmppSde(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: DpmppSdeOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const sigmaNext = sigmas[i + 1]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    if (sigmaNext === 0) {
      const next = ctx.tidy(() => tf.add(x, tf.mul(toD(x, sigma, denoised), sigmaNext - sigma)));
      ctx.free(x, denoised);
      x = next;
      continue;
    }
    const t = -Math.log(sigma);
    const h = -Math.log(sigmaNext) - t;
    const sigmaS = Math.exp(-(t + h * o.r));
    const fac = 1 / (2 * o.r);
    // Step 1: to sigma_s.
    const a = ancestralStep(sigma, sigmaS, o.eta);
    let x2 = ctx.tidy(() => dpmppFirstOrder(x, sigma, a.sigmaDown, denoised));
    if (a.sigmaUp > 0) x2 = addNoise(ctx, x2, sigma, sigmaS, o.sNoise * a.sigmaUp);
    const denoised2 = yield* denoise(x2, sigmaS, i);
    // Step 2: to sigma_next with the combined denoised value.
    const b = ancestralStep(sigma, sigmaNext, o.eta);
    let next = ctx.tidy(() =>
      dpmppFirstOrder(
        x,
        sigma,
        b.sigmaDown,
        lincomb([
          [1 - fac, denoised],
          [fac, denoised2],
        ]),
      ),
    );
    ctx.free(x, x2, denoised, denoised2);
    if (b.sigmaUp > 0) next = addNoise(ctx, next, sigma, sigmaNext, o.sNoise * b.sigmaUp);
    x = next;
  }
  return x;
}

export const dpmppSde: SamplerDefinition<DpmppSdeOptions> = {
  name: 'dpmpp_sde',
  description: 'DPM-Solver++ SDE, singlestep with an intermediate level (r)',
  reference: 'Lu et al. 2022, "DPM-Solver++"; k-diffusion sample_dpmpp_sde',
  fn: sampleDpmppSde,
  defaults: { eta: 1, sNoise: 1, r: 0.5 },
  rules: { eta: ETA, sNoise: NONNEGATIVE, r: { above: 0, max: 1 } },
  stochastic: true,
};
