import * as tf from '@tensorflow/tfjs-core';
import { toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { CHURN_DEFAULTS, type ChurnOptions, churn } from './euler.js';
import { CHURN_RULES } from './rules.js';

/**
 * Heun's second-order method with EDM's optional churn: Karras et al. 2022, Algorithm 2
 * (k-diffusion `sample_heun`; diffusers `HeunDiscreteScheduler`). The step to sigma = 0 is an Euler step.
 *
 * x' = x_hat + dt d,  x_{i+1} = x_hat + dt (d + d') / 2,  d' = (x' - D(x'; sigma_{i+1})) / sigma_{i+1}
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'heun', steps: 10, shape: [16, 2], seed: 1 });
 */
export function* sampleHeun(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: ChurnOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const c = churn(ctx, x, sigmas, i, o);
    x = c.x;
    const sNext = sigmas[i + 1]!;
    const denoised = yield* denoise(x, c.sigmaHat, i);
    yield stepEvent(i, sigmas[i]!, c.sigmaHat, x, denoised);
    const dt = sNext - c.sigmaHat;
    const d = ctx.tidy(() => toD(x, c.sigmaHat, denoised));
    ctx.free(denoised);
    const x2 = ctx.tidy(() => tf.add(x, tf.mul(d, dt)));
    if (sNext === 0) {
      ctx.free(x, d);
      x = x2;
      continue;
    }
    const denoised2 = yield* denoise(x2, sNext, i);
    const next = ctx.tidy(() => tf.add(x, tf.mul(tf.add(d, toD(x2, sNext, denoised2)), dt / 2)));
    ctx.free(x, x2, d, denoised2);
    x = next;
  }
  return x;
}

export const heun: SamplerDefinition<ChurnOptions> = {
  name: 'heun',
  description: "Heun's second-order method, optional EDM churn (EDM's stochastic sampler)",
  reference: 'Karras et al. 2022, Algorithm 2; k-diffusion sample_heun',
  fn: sampleHeun,
  defaults: CHURN_DEFAULTS,
  rules: CHURN_RULES,
  stochastic: false,
  order: 2,
};
