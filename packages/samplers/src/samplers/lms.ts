import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { lmsCoefficients, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';

export type LmsOptions = { order: number };

/**
 * Linear multistep: the Lagrange interpolant of the last `order` derivatives d_j, as a polynomial in
 * sigma, integrated exactly over [sigma_i, sigma_{i+1}] (k-diffusion `sample_lms`; diffusers
 * `LMSDiscreteScheduler`; Karras et al. 2022, sec. 3 discuss multistep ODE solvers). The first steps
 * use the orders available.
 *
 * x_{i+1} = x_i + sum_j c_ij d_{i-j},  c_ij = integral of l_j(sigma) from sigma_i to sigma_{i+1}
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'lms', samplerOptions: { order: 4 }, steps: 20, shape: [16, 2], seed: 1 });
 */
export function* sampleLms(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: LmsOptions,
): SamplerProgram {
  if (!Number.isInteger(o.order) || o.order < 1)
    throw new SamplerError(`lms order must be a positive integer, got ${o.order}`);
  const ds: tf.Tensor[] = [];
  for (let i = 0; i < sigmas.length - 1; i++) {
    const sigma = sigmas[i]!;
    const denoised = yield* denoise(x, sigma, i);
    yield stepEvent(i, sigma, sigma, x, denoised);
    ds.push(ctx.tidy(() => toD(x, sigma, denoised)));
    ctx.free(denoised);
    if (ds.length > o.order) ctx.free(ds.shift());
    const coeffs = lmsCoefficients(sigmas, i, Math.min(i + 1, o.order));
    const next = ctx.tidy(() =>
      coeffs.reduce((acc, c, j) => tf.add(acc, tf.mul(ds[ds.length - 1 - j]!, c)), x),
    );
    ctx.free(x);
    x = next;
  }
  ctx.free(...ds);
  return x;
}

export const lms: SamplerDefinition<LmsOptions> = {
  name: 'lms',
  description: 'Linear multistep in sigma (Lagrange interpolation of derivatives)',
  reference: 'k-diffusion sample_lms; diffusers LMSDiscreteScheduler',
  fn: sampleLms,
  defaults: { order: 4 },
  rules: { order: { integer: true, min: 1, max: 100 } },
  stochastic: false,
  order: 3,
};
