import * as tf from '@tensorflow/tfjs-core';
import { flowStep, flowVelocity } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';

/** `flow_heun` has no options. */
export type FlowHeunOptions = Record<string, never>;

/**
 * Heun's method on the flow ODE dx_t/dt = u of the rectified-flow path x_t = (1 - t) x0 + t eps
 * (u = eps - x0; Liu et al. 2023, "Flow Straight and Fast"; Esser et al. 2024, SD 3): with t = sigma / (1 + sigma)
 * and x_t = x / (1 + sigma) for the VE state x,
 *
 * x_e = x_t + (t' - t) u(x_t, t),  x_{t'} = x_t + (t' - t) (u(x_t, t) + u(x_e, t')) / 2,
 *
 * the step to t' = 0 an Euler step (which lands on D). This is diffusers'
 * `FlowMatchHeunDiscreteScheduler` (s_churn 0), whose adapter takes the same `flowStep`. It is not the
 * VE `heun` sampler on the same levels: that one applies the trapezoid to eps in sigma, this one to
 * u in t (the same ODE in another time variable, so the second-order terms differ).
 *
 * @example
 * const x0 = await sample(flowModel, { sampler: 'flow_heun', sigmas, embedding: 'flow', shape: [16, 2] });
 */
export function* sampleFlowHeun(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  _o: FlowHeunOptions,
): SamplerProgram {
  for (let i = 0; i < sigmas.length - 1; i++) {
    const s = sigmas[i]!;
    const sN = sigmas[i + 1]!;
    const [t, tN] = [s / (1 + s), sN / (1 + sN)];
    const d1 = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, d1);
    const u1 = ctx.tidy(() => flowVelocity(x, s, d1));
    const xt = ctx.tidy(() => tf.div(x, 1 + s));
    ctx.free(d1, x);
    // the Euler predictor, back in the VE view at sN
    const xe = ctx.tidy(() => tf.mul(flowStep(xt, tN - t, [u1]), 1 + sN));
    if (sN === 0) {
      ctx.free(u1, xt);
      x = xe;
      continue;
    }
    const d2 = yield* denoise(xe, sN, i);
    const u2 = ctx.tidy(() => flowVelocity(xe, sN, d2));
    x = ctx.tidy(() => tf.mul(flowStep(xt, tN - t, [u1, u2]), 1 + sN));
    ctx.free(u1, u2, xt, xe, d2);
  }
  return x;
}

export const flowHeun: SamplerDefinition<FlowHeunOptions> = {
  name: 'flow_heun',
  description: "Heun's method on the rectified-flow ODE in flow time t (diffusers FlowMatchHeun)",
  reference:
    'Liu et al. 2023 (rectified flow); Esser et al. 2024 (SD 3); diffusers FlowMatchHeunDiscreteScheduler',
  fn: sampleFlowHeun,
  defaults: {},
  stochastic: false,
  order: 2,
};
