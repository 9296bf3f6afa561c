import type * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { lincomb, phi2, phi3, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { ORDER_1_3, PREDICTION, SOLVER_TYPE } from './rules.js';

export type DpmSolverSinglestepOptions = {
  /** 1, 2 or 3. */
  order: number;
  /** 'x0': DPM-Solver++; 'epsilon': DPM-Solver. */
  prediction: 'x0' | 'epsilon';
  solverType: 'midpoint' | 'heun';
  /** diffusers' `lower_order_final`: end on groups of lower order (see `singlestepOrders`). */
  lowerOrderFinal: boolean;
};

/**
 * The order of every step (diffusers `DPMSolverSinglestepScheduler.get_order_list`): groups
 * [1, 2, ..., order], each group one singlestep solver step whose intermediate points are the
 * schedule's own levels; with `lowerOrderFinal` the tail uses shorter groups; a step to sigma = 0 is
 * first order.
 *
 * @example
 * singlestepOrders(7, 3, true, true); // [1, 2, 3, 1, 2, 3, 1]
 */
export function singlestepOrders(
  steps: number,
  order: number,
  lowerOrderFinal: boolean,
  finalIsZero: boolean,
): number[] {
  let orders: number[];
  const rep = (k: number) =>
    Array.from({ length: k }, () => Array.from({ length: order }, (_, j) => j + 1)).flat();
  if (order === 1) orders = new Array<number>(steps).fill(1);
  else if (!lowerOrderFinal) orders = rep(Math.floor(steps / order));
  else if (order === 3) {
    orders =
      steps % 3 === 0
        ? [...rep(steps / 3 - 1), 1, 2, 1]
        : steps % 3 === 1
          ? [...rep((steps - 1) / 3), 1]
          : [...rep((steps - 2) / 3), 1, 2];
  } else orders = steps % 2 === 0 ? [...rep(steps / 2 - 1), 1, 1] : [...rep((steps - 1) / 2), 1];
  if (orders.length !== steps) {
    throw new SamplerError(
      `singlestep order ${order} without lowerOrderFinal needs a multiple of ${order} steps, got ${steps}`,
    );
  }
  if (finalIsZero) orders[steps - 1] = 1;
  return orders;
}

/**
 * Singlestep DPM-Solver (Lu et al. 2022a, Algorithms 1-2: DPM-Solver-2 and -3) and DPM-Solver++
 * (Lu et al. 2022b, Algorithm 1), as diffusers' `DPMSolverSinglestepScheduler` runs them: the
 * intermediate evaluations of each k-th order step are the schedule's next k - 1 levels, every one
 * of which is also returned as a step. In VE variables from the group's start x_b at sigma_b
 * (h = log(sigma_b / sigma_t)); the third-order step uses D2 = 2 (D1_1 - D1_0) / (r0 - r1).
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'dpm_solver_singlestep', steps: 12, shape: [16, 2], seed: 1 });
 */
export function* sampleDpmSolverSinglestep(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: DpmSolverSinglestepOptions,
): SamplerProgram {
  if (![1, 2, 3].includes(o.order))
    throw new SamplerError(`DPM-Solver order must be 1, 2 or 3, got ${o.order}`);
  const n = sigmas.length - 1;
  const orders = singlestepOrders(n, o.order, o.lowerOrderFinal, sigmas[n] === 0);
  const lam = (k: number) => -Math.log(sigmas[k]!);
  const ms: tf.Tensor[] = []; // newest first
  let base = x;
  let b = 0;
  for (let i = 0; i < n; i++) {
    const s = sigmas[i]!;
    const denoised = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, denoised);
    let m = denoised;
    if (o.prediction === 'epsilon') {
      m = ctx.tidy(() => toD(x, s, denoised));
      ctx.free(denoised);
    }
    ms.unshift(m);
    if (ms.length > o.order) ctx.free(ms.pop());
    let order = orders[i]!;
    while (order > 1 && ms.length < order) order--;
    if (order === 1) {
      if (base !== x) ctx.free(base);
      base = x;
      b = i;
    }
    const t = i + 1;
    const st = sigmas[t]!;
    const sb = sigmas[b]!;
    const terms: [number, tf.Tensor][] = [];
    if (st === 0) {
      terms.push(o.prediction === 'x0' ? [1, ms[order - 1]!] : [1, base]);
      if (o.prediction === 'epsilon') terms.push([-sb, ms[order - 1]!]);
    } else {
      const h = lam(t) - lam(b);
      const D0 = ms[order - 1]!;
      const data = o.prediction === 'x0';
      const A = sb - st;
      terms.push(data ? [st / sb, base] : [1, base], data ? [-Math.expm1(-h), D0] : [-A, D0]);
      // c1: weight of a first difference ~ h m'; c2: of D2 ~ h^2 m''.
      const c1 = data ? phi2(h) : -(A / h - st);
      const c2 = data ? -phi3(h) : -((A - st * h) / (h * h) - 0.5 * st);
      if (order === 2) {
        const r0 = (lam(b + 1) - lam(b)) / h;
        const w = o.solverType === 'midpoint' ? (data ? -0.5 * Math.expm1(-h) : -0.5 * A) : c1;
        terms.push([w / r0, ms[0]!], [-w / r0, D0]);
      } else if (order === 3) {
        const r0 = (lam(b + 2) - lam(b)) / h;
        const r1 = (lam(b + 1) - lam(b)) / h;
        const [m0, m1] = [ms[0]!, ms[1]!];
        // D1_0 = (m1 - D0)/r1, D1_1 = (m0 - D0)/r0
        if (o.solverType === 'midpoint') terms.push([c1 / r0, m0], [-c1 / r0, D0]);
        else {
          // D1 = (r0 D1_0 - r1 D1_1)/(r0 - r1); D2 = 2 (D1_1 - D1_0)/(r0 - r1)
          const k = 1 / (r0 - r1);
          const a1 = (r0 / r1) * k; // on (m1 - D0)
          const a0 = -(r1 / r0) * k; // on (m0 - D0)
          const b0 = (2 * k) / r0; // D2 on (m0 - D0)
          const b1 = (-2 * k) / r1; // D2 on (m1 - D0)
          const w1 = c1 * a1 + c2 * b1;
          const w0 = c1 * a0 + c2 * b0;
          terms.push([w1, m1], [w0, m0], [-(w1 + w0), D0]);
        }
      }
    }
    const next = ctx.tidy(() => lincomb(terms));
    if (x !== base) ctx.free(x);
    x = next;
  }
  ctx.free(base, ...ms);
  return x;
}

export const dpmSolverSinglestep: SamplerDefinition<DpmSolverSinglestepOptions> = {
  name: 'dpm_solver_singlestep',
  description: 'DPM-Solver++ singlestep (orders 1-3), intermediate points on the schedule',
  reference:
    'Lu et al. 2022, "DPM-Solver" Algorithms 1-2 and "DPM-Solver++" Algorithm 1; diffusers DPMSolverSinglestepScheduler',
  fn: sampleDpmSolverSinglestep,
  defaults: { order: 3, prediction: 'x0', solverType: 'heun', lowerOrderFinal: true },
  rules: { order: ORDER_1_3, prediction: PREDICTION, solverType: SOLVER_TYPE },
  stochastic: false,
  order: 3,
};
