import type * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { lincomb, toD } from '../helpers.js';
import {
  denoise,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerProgram,
  stepEvent,
} from '../types.js';
import { multistepOrder } from './dpm-solver-multistep.js';
import { ORDER_1_3 } from './rules.js';

export type DeisOptions = { order: number; lowerOrderFinal: boolean };

/** t (log t - 1), continuous at t = 0. */
const tlog = (t: number, f: (lt: number) => number): number => (t === 0 ? 0 : t * f(Math.log(t)));

/**
 * DEIS weights (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator",
 * the `logrho` variant of diffusers' `DEISMultistepScheduler`): the noise predictions at rho_0 =
 * sigma_i, rho_1, rho_2 (VE sigmas of steps i, i-1, i-2) are interpolated by Lagrange polynomials in
 * log rho and integrated exactly over rho from sigma_i to sigma_{i+1}. Entry j weighs eps_{i-j}.
 *
 * @example
 * deisCoefficients([1, 2], 0.5, 2); // two weights
 */
export function deisCoefficients(rhos: readonly number[], rhoT: number, order: number): number[] {
  const [r0, r1, r2] = rhos as [number, number, number];
  if (order === 1) return [rhoT - r0];
  if (order === 2) {
    // Integral of (log t - log c) / (log b - log c) dt = t (log t - log c - 1) / (log b - log c)
    const ind = (t: number, b: number, c: number) =>
      tlog(t, (lt) => lt - Math.log(c) - 1) / (Math.log(b) - Math.log(c));
    return [ind(rhoT, r0, r1) - ind(r0, r0, r1), ind(rhoT, r1, r0) - ind(r0, r1, r0)];
  }
  // Integral of (log t - log c)(log t - log d) / ((log b - log c)(log b - log d)) dt
  const ind = (t: number, b: number, c: number, d: number) => {
    const lc = Math.log(c);
    const ld = Math.log(d);
    const num = tlog(t, (lt) => lc * (ld - lt + 1) - ld * lt + ld + lt * lt - 2 * lt + 2);
    return num / ((Math.log(b) - lc) * (Math.log(b) - ld));
  };
  return [
    ind(rhoT, r0, r1, r2) - ind(r0, r0, r1, r2),
    ind(rhoT, r1, r2, r0) - ind(r0, r1, r2, r0),
    ind(rhoT, r2, r0, r1) - ind(r0, r2, r0, r1),
  ];
}

/**
 * DEIS multistep (Zhang & Chen 2023, sec. 4, tAB-DEIS with log-rho interpolation; diffusers
 * `DEISMultistepScheduler`): x' = x + sum_j c_j eps_{i-j} in VE variables, where eps = (x - D) / sigma.
 * Orders 1 to 3; order 1 is DDIM. Warm-up and `lowerOrderFinal` as diffusers.
 *
 * Log rho = -lambda, so integrating the Lagrange polynomial of eps in log rho exactly is what
 * multistep DPM-Solver with noise prediction does with its divided differences (Lu et al. 2022a,
 * sec. 3.3): `deis` at order k equals `dpm_solver_multistep` with `{ order: k, solverType: 'heun',
 * trueThirdOrder: true }` up to float rounding (its registered defaults at k = 3), which is why the
 * two show the same errors. It differs from DPM-Solver++ (data prediction, `dpmpp_2m`/`dpmpp_3m`)
 * at orders 2 and 3, and from diffusers' third-order DPM-Solver, which weighs D2 by half.
 * `deis.test.ts` checks all of this and every step against diffusers, orders 1 to 3.
 *
 * @example
 * const x0 = await sample(denoiser, { sampler: 'deis', steps: 15, shape: [16, 2], seed: 1 });
 */
export function* sampleDeis(
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  o: DeisOptions,
): SamplerProgram {
  if (![1, 2, 3].includes(o.order))
    throw new SamplerError(`DEIS order must be 1, 2 or 3, got ${o.order}`);
  const n = sigmas.length - 1;
  const eps: tf.Tensor[] = []; // newest first
  const mo = { order: o.order, lowerOrderFinal: o.lowerOrderFinal, eulerAtFinal: false } as const;
  for (let i = 0; i < n; i++) {
    const s = sigmas[i]!;
    const denoised = yield* denoise(x, s, i);
    yield stepEvent(i, s, s, x, denoised);
    eps.unshift(ctx.tidy(() => toD(x, s, denoised)));
    ctx.free(denoised);
    if (eps.length > o.order) ctx.free(eps.pop());
    const order = multistepOrder(mo, i, n, sigmas[i + 1] === 0);
    const c = deisCoefficients([s, sigmas[i - 1] ?? 0, sigmas[i - 2] ?? 0], sigmas[i + 1]!, order);
    const next = ctx.tidy(() =>
      lincomb([[1, x], ...c.map((w, j) => [w, eps[j]!] as [number, tf.Tensor])]),
    );
    ctx.free(x);
    x = next;
  }
  ctx.free(...eps);
  return x;
}

export const deis: SamplerDefinition<DeisOptions> = {
  name: 'deis',
  description: 'DEIS multistep (log-rho Lagrange interpolation of noise predictions)',
  reference:
    'Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential Integrator"; diffusers DEISMultistepScheduler',
  fn: sampleDeis,
  defaults: { order: 3, lowerOrderFinal: false },
  rules: { order: ORDER_1_3 },
  stochastic: false,
  order: 3,
};
