/**
 * The Dormand-Prince 5(4) adaptive Runge-Kutta method (Dormand & Prince 1980; `dopri5` of
 * torchdiffeq and scipy's RK45), written once as a program over a list of state tensors, used by the
 * probability-flow ODE sampler and by `logLikelihood`. The right-hand side is itself a program, so it
 * can ask the driver for model calls; each step's error norm is read back through a read request.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from './errors.js';
import { read, type SamplerContext, type SamplerResume, type SamplerYield } from './types.js';

/** Options of the adaptive solver. */
export type Dopri5Options = {
  /** Relative and absolute tolerances of the local error (mixed RMS norm, as torchdiffeq). */
  rtol: number;
  atol: number;
  /** First step size, in the ODE's time variable. */
  hInit: number;
  /** Give up (with a `SamplerError`) after this many attempted steps. */
  maxSteps: number;
};

/** dy/du = f(u, y), as a program that may yield. */
export type OdeRhs = (
  u: number,
  y: readonly tf.Tensor[],
) => Generator<SamplerYield, tf.Tensor[], SamplerResume>;

const C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1];
const A: number[][] = [
  [],
  [1 / 5],
  [3 / 40, 9 / 40],
  [44 / 45, -56 / 15, 32 / 9],
  [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
  [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
];
const B5 = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0];
const B4 = [5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40];
const E = B5.map((b, j) => b - B4[j]!);

/** y + h sum_j w_j k_j, for each state component. */
function combine(
  y: readonly tf.Tensor[],
  ks: readonly tf.Tensor[][],
  h: number,
  w: readonly number[],
): tf.Tensor[] {
  return y.map((yc, c) =>
    tf.tidy(() => {
      let acc = yc;
      w.forEach((wj, j) => {
        if (wj !== 0 && ks[j]) acc = tf.add(acc, tf.mul(ks[j]![c]!, h * wj));
      });
      return acc === yc ? tf.clone(yc) : acc;
    }),
  );
}

/**
 * Integrates from us[0] through each of us[1..] (monotone), landing exactly on each; after reaching
 * us[j] it runs `onCheckpoint(j, y, dy)`. Returns the state at the last point (kept in ctx).
 */
export function* dopri5(
  ctx: SamplerContext,
  f: OdeRhs,
  y0: tf.Tensor[],
  us: readonly number[],
  o: Dopri5Options,
  onCheckpoint: (
    j: number,
    y: readonly tf.Tensor[],
    dy: readonly tf.Tensor[],
  ) => Generator<SamplerYield, void, SamplerResume>,
): Generator<SamplerYield, tf.Tensor[], SamplerResume> {
  if (!(o.rtol > 0) || !(o.atol >= 0))
    throw new SamplerError(`need rtol > 0 and atol >= 0, got ${o.rtol}, ${o.atol}`);
  const keepAll = (ts: tf.Tensor[]) => ts.map((t) => ctx.keep(t));
  let y = y0;
  let u = us[0]!;
  let k1 = keepAll(yield* f(u, y));
  yield* onCheckpoint(0, y, k1);
  const dir = Math.sign(us[us.length - 1]! - u) || 1;
  let h = dir * Math.abs(o.hInit);
  let attempts = 0;
  for (let j = 1; j < us.length; j++) {
    const target = us[j]!;
    while (dir * (target - u) > 0) {
      if (++attempts > o.maxSteps)
        throw new SamplerError(
          `dopri5 took more than ${o.maxSteps} steps (rtol ${o.rtol}, atol ${o.atol})`,
        );
      let hh = h;
      let landing = false;
      if (dir * (u + hh - target) >= -1e-12 * Math.abs(target)) {
        hh = target - u;
        landing = true;
      }
      const ks: tf.Tensor[][] = [k1];
      for (let s = 1; s < 6; s++) {
        const ys = keepAll(combine(y, ks, hh, A[s]!));
        ks.push(keepAll(yield* f(u + C[s]! * hh, ys)));
        ctx.free(...ys);
      }
      const y5 = keepAll(combine(y, ks, hh, B5));
      const k7 = keepAll(yield* f(u + hh, y5));
      ks.push(k7);
      const errT = ctx.tidy(() => {
        const norms = y.map((yc, c) => {
          let e: tf.Tensor = tf.zerosLike(yc);
          E.forEach((w, s) => {
            if (w !== 0) e = tf.add(e, tf.mul(ks[s]![c]!, hh * w));
          });
          const scale = tf.add(o.atol, tf.mul(o.rtol, tf.maximum(tf.abs(yc), tf.abs(y5[c]!))));
          return tf.sqrt(tf.mean(tf.square(tf.div(e, scale))));
        });
        return tf.max(tf.stack(norms));
      });
      const [err] = yield* read(errT);
      ctx.free(errT);
      for (const k of ks.slice(1, 6)) ctx.free(...k);
      const e = err!;
      if (!Number.isFinite(e))
        throw new SamplerError(`dopri5: the error estimate is ${e} at u = ${u}`);
      const factor = e === 0 ? 10 : Math.min(10, Math.max(0.2, 0.9 * e ** -0.2));
      if (e <= 1) {
        ctx.free(...y, ...k1);
        y = y5;
        k1 = k7;
        u = landing ? target : u + hh;
        if (!landing || factor < 1) h = hh * factor;
      } else {
        ctx.free(...y5, ...k7);
        h = hh * Math.min(1, factor);
      }
    }
    yield* onCheckpoint(j, y, k1);
  }
  ctx.free(...k1);
  return y;
}
