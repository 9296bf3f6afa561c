import type * as tf from '@tensorflow/tfjs-core';
import { lincomb, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';

export type PndmOptions = {
  /** Start with three pseudo Runge-Kutta (RK4) steps (PNDM); false: start with one Heun step (PLMS / F-PNDM). */
  prk: boolean;
  /**
   * The intermediate level of each RK4 step (one per step, VE); empty: the midpoint (sigma_i + sigma_{i+1}) / 2.
   * diffusers' PNDMScheduler uses the level of the midpoint timestep.
   */
  midSigmas: readonly number[];
};

/** Adams-Bashforth weights for the newest-first history of noise predictions (PNDM eq. 12). */
export const AB: readonly (readonly number[])[] = [
  [1],
  [3 / 2, -1 / 2],
  [23 / 12, -16 / 12, 5 / 12],
  [55 / 24, -59 / 24, 37 / 24, -9 / 24],
];

/** The pseudo Runge-Kutta (RK4) weights of the four noise predictions of a PRK step (PNDM eq. 13). */
export const RK4: readonly number[] = [1 / 6, 1 / 3, 1 / 3, 1 / 6];

/** The Heun start's weights of its two noise predictions (PLMS / F-PNDM; diffusers' counter 1). */
export const HEUN_START: readonly number[] = [1 / 2, 1 / 2];

/**
 * PNDM's transfer phi (Liu et al. 2022, eq. 9: DDIM's step with a given noise estimate) in VE
 * variables: x' = x + (sigma' - sigma) sum_k w_k eps_k. Every move of `pndm` / `plms` and of the
 * `PNDMScheduler` adapter is this one function (the adapter picks diffusers' levels).
 *
 * @example
 * const next = pndmTransfer(x, 2.0, 1.5, [[1, eps]]);
 */
export function pndmTransfer(
  x: tf.Tensor,
  sigma: number,
  sigmaNext: number,
  eps: readonly (readonly [number, tf.Tensor])[],
): tf.Tensor {
  return lincomb([[1, x], ...eps.map(([w, e]) => [w * (sigmaNext - sigma), e] as const)]);
}

/**
 * The Adams-Bashforth combination of a newest-first history of noise predictions (up to 4), with
 * the weights of `AB`: (e0), (3 e0 - e1) / 2, ... (PNDM eq. 12).
 *
 * @example
 * const terms = adamsBashforth([eNew, ePrev]); // [[1.5, eNew], [-0.5, ePrev]]
 */
export function adamsBashforth(history: readonly tf.Tensor[]): [number, tf.Tensor][] {
  const w = AB[history.length - 1]!;
  return w.map((c, k) => [c, history[k]!]);
}

/**
 * PNDM and PLMS (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds";
 * diffusers `PNDMScheduler`): linear multistep (Adams-Bashforth, up to 4 terms) on the noise
 * prediction, each move done with DDIM's transfer, which in VE variables is x' = x + (sigma' - sigma) eps.
 * PNDM starts with three RK4 steps through an intermediate level; PLMS starts with one Heun step.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'plms', steps: 20, shape: [16, 2], seed: 1 });
 */
export function* samplePndm(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: PndmOptions,
): SamplerProgram {
  const n = sigmas.length - 1;
  const ets: tf.Tensor[] = []; // newest first, at most 4
  const transfer = (xs: tf.Tensor, s: number, t: number, e: [number, tf.Tensor][]) =>
    ctx.tidy(() => pndmTransfer(xs, s, t, e));
  const push = (e: tf.Tensor) => {
    ets.unshift(e);
    if (ets.length > 4) ctx.free(ets.pop());
  };
  for (let i = 0; i < n; i++) {
    const s = sigmas[i]!;
    const sN = sigmas[i + 1]!;
    const denoised = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, denoised);
    const e1 = ctx.tidy(() => toD(x, s, denoised));
    ctx.free(denoised);
    let next: tf.Tensor;
    if (o.prk && i < 3 && sN > 0) {
      // RK4 through the intermediate level (PNDM's "pseudo" Runge-Kutta, eq. 13).
      const sm = o.midSigmas[i] ?? (s + sN) / 2;
      push(e1);
      const xa = transfer(x, s, sm, [[1, e1]]);
      const e2 = yield* evalEps(ctx, xa, sm, i);
      const xb = transfer(x, s, sm, [[1, e2]]);
      const e3 = yield* evalEps(ctx, xb, sm, i);
      const xc = transfer(x, s, sN, [[1, e3]]);
      const e4 = yield* evalEps(ctx, xc, sN, i);
      next = transfer(
        x,
        s,
        sN,
        [e1, e2, e3, e4].map((e, k) => [RK4[k]!, e]),
      );
      ctx.free(xa, xb, xc, e2, e3, e4);
    } else if (!o.prk && i === 0 && n > 1 && sN > 0) {
      // Heun start (diffusers' PLMS, counter 0 and 1; a 1-step run is one plain step there).
      push(e1);
      const xe = transfer(x, s, sN, [[1, e1]]);
      const e2 = yield* evalEps(ctx, xe, sN, i);
      next = transfer(x, s, sN, [
        [HEUN_START[0]!, e1],
        [HEUN_START[1]!, e2],
      ]);
      ctx.free(xe, e2);
    } else {
      push(e1);
      next = transfer(x, s, sN, adamsBashforth(ets));
    }
    ctx.free(x);
    x = next;
  }
  ctx.free(...ets);
  return x;
}

/** eps = (x - D(x; sigma)) / sigma at an intermediate state. */
function* evalEps(ctx: SamplerContext, x: tf.Tensor, sigma: number, i: number) {
  const d = yield* denoise(x, sigma, i);
  const e = ctx.tidy(() => toD(x, sigma, d));
  ctx.free(d);
  return e;
}

export const pndm: SamplerDefinition<PndmOptions> = {
  name: 'pndm',
  description: 'PNDM: three pseudo Runge-Kutta steps, then 4-step Adams-Bashforth on eps',
  reference:
    'Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds", sec. 3-4; diffusers PNDMScheduler',
  fn: samplePndm,
  defaults: { prk: true, midSigmas: [] },
  stochastic: false,
  order: 2,
};

export const plms: SamplerDefinition<PndmOptions> = {
  name: 'plms',
  description: 'PLMS: a Heun start, then up to 4-step Adams-Bashforth on eps',
  reference: 'Liu et al. 2022 (PLMS / F-PNDM); diffusers PNDMScheduler with skip_prk_steps',
  fn: samplePndm,
  defaults: { prk: false, midSigmas: [] },
  stochastic: false,
  order: 2,
};
