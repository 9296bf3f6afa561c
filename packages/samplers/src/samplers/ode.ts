import * as tf from '@tensorflow/tfjs-core';
import { type Dopri5Options, dopri5 } from '../ode.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';

export type OdeOptions = Dopri5Options;

/**
 * The probability-flow ODE (Song et al. 2021, eq. 13; in VE variables Karras et al. 2022, eq. 4:
 * dx/dsigma = (x - D(x; sigma)) / sigma) solved with adaptive Dormand-Prince 5(4) in u = log sigma,
 * dx/du = x - D(x; e^u), landing exactly on every given sigma (one step event each). A final level 0
 * is reached by D(x; sigma_last), the exact limit of the last Euler step.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'ode_dopri5', samplerOptions: { rtol: 1e-4, atol: 1e-4 }, steps: 4, shape: [16, 2], seed: 1 });
 */
export function* sampleOde(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: OdeOptions,
): SamplerProgram {
  const positive = sigmas.filter((s) => s > 0);
  let step = 0;
  const rhs = function* (u: number, y: readonly tf.Tensor[]) {
    const d = yield* denoise(y[0]!, Math.exp(u), step);
    const dy = ctx.tidy(() => tf.sub(y[0]!, d));
    ctx.free(d);
    return [dy];
  };
  let last: tf.Tensor | null = null;
  const [xEnd] = yield* dopri5(ctx, rhs, [x], positive.map(Math.log), o, function* (j, y, dy) {
    const denoised = ctx.tidy(() => tf.sub(y[0]!, dy[0]!));
    yield stepEvent(j, positive[j]!, positive[j]!, y[0]!, denoised);
    ctx.free(last);
    last = denoised;
    step = j;
  });
  if (positive.length < sigmas.length) {
    ctx.free(xEnd);
    return last!;
  }
  ctx.free(last);
  return xEnd!;
}

export const odeDopri5: SamplerDefinition<OdeOptions> = {
  name: 'ode_dopri5',
  description: 'Probability-flow ODE with adaptive Dormand-Prince 5(4)',
  reference:
    'Song et al. 2021 (probability-flow ODE, eq. 13); Dormand & Prince 1980; torchdiffeq dopri5',
  fn: sampleOde,
  defaults: { rtol: 1e-5, atol: 1e-5, hInit: 0.1, maxSteps: 10000 },
  rules: {
    rtol: { above: 0 },
    atol: { above: 0 },
    hInit: { above: 0 },
    maxSteps: { integer: true, min: 1, max: 1_000_000 },
  },
  stochastic: false,
};
