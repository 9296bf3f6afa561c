/**
 * diffusers' `PNDMScheduler`, call by call (scheduling_pndm.py at 58eb52c: `set_timesteps`,
 * `step_prk`, `step_plms`, `_get_prev_sample`): which levels and which history each call uses. The
 * math is the `pndm` / `plms` sampler's (`pndmTransfer`, `RK4`, `HEUN_START`, `adamsBashforth` of
 * ../samplers/pndm.ts); only diffusers' level bookkeeping lives here, because it is not a chain of
 * levels: a PLMS step goes from t to t - T // n whatever the spacing (the next call's sample is then
 * read at its own timestep's level), the RK calls of one PRK step all start from that step's first
 * timestep, and the first PLMS call after a Heun start reads t + T // n. For `leading` spacing these
 * are the chain's own levels and the calls are the sampler's steps.
 */
import type { DiscreteSchedule, NoiseLevel } from '@diffuse/schedules';
import { convertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { lincomb } from '../helpers.js';
import { adamsBashforth, HEUN_START, pndmTransfer, RK4 } from '../samplers/pndm.js';

/**
 * diffusers' `PNDMScheduler.timesteps` from the DDIM-family timesteps `ts` (descending, `_timesteps`
 * reversed). With PRK steps diffusers needs n >= 4 (below it `set_timesteps` fails): a typed error here.
 *
 * @example
 * pndmTimesteps([900, 800, 700, 600, 500], 1000, true); // [900, 800, 800, 700, 600, 500]
 */
export function pndmTimesteps(ts: readonly number[], numTrain: number, skipPrk: boolean): number[] {
  const n = ts.length;
  if (skipPrk) return n < 2 ? [...ts] : [ts[0]!, ts[1]!, ...ts.slice(1)];
  if (n < 4)
    throw new SamplerError(
      `PNDMScheduler: setTimesteps(${n}) needs at least 4 steps with skip_prk_steps = false (diffusers' set_timesteps fails below 4: its PRK timesteps take the 4 highest timesteps)`,
    );
  const half = Math.floor(Math.floor(numTrain / n) / 2);
  const asc = ts.slice(0, 4).reverse();
  const pairs = asc.flatMap((a) => [a, a + half]).slice(0, -1);
  const prk = pairs
    .flatMap((a) => [a, a])
    .slice(1, -1)
    .reverse();
  return [...prk, ...ts.slice(3)];
}

/** The state of one diffusers PNDM run (ets, counter, cur_sample, the PRK step's model outputs). */
export class DiffusersPndm {
  private ets: tf.Tensor[] = [];
  private counter = 0;
  private curSample: tf.Tensor | null = null;
  /** The model outputs of the current PRK step (diffusers accumulates them in cur_model_output). */
  private prk: tf.Tensor[] = [];

  constructor(
    private readonly schedule: DiscreteSchedule,
    private readonly n: number,
    private readonly prkTimesteps: readonly number[],
    private readonly finalAlphaOne: boolean,
    private readonly prediction: string,
  ) {}

  /** alphas_cumprod[t] as (sqrt a, sqrt(1 - a)); t < 0: final_alpha_cumprod. */
  private level(t: number): NoiseLevel<number> {
    if (t < 0) return this.finalAlphaOne ? { alpha: 1, sigma: 0 } : this.schedule.levelAtIndex(0);
    return this.schedule.levelAtIndex(t);
  }

  /**
   * `_get_prev_sample`: `pndmTransfer` of `sample`, read at level t, to level prev, with the
   * combination `terms` of model outputs read as eps (v converted at t with `sample`), in the VE view
   * (x = sample / alpha at sigma / alpha). Returns [prev sample, x0 estimate].
   */
  private prev(
    sample: tf.Tensor,
    t: number,
    prev: number,
    terms: readonly (readonly [number, tf.Tensor])[],
  ): [tf.Tensor, tf.Tensor] {
    const a = this.level(t);
    const b = this.level(prev);
    return tf.tidy(() => {
      const out = lincomb(terms);
      const eps =
        this.prediction === 'v_prediction'
          ? convertPrediction(out, 'v', 'epsilon', sample, a)
          : out;
      const x0 = convertPrediction(eps, 'epsilon', 'x0', sample, a);
      const next = pndmTransfer(tf.div(sample, a.alpha), a.sigma / a.alpha, b.sigma / b.alpha, [
        [1, eps],
      ]);
      return [tf.mul(next, b.alpha), x0];
    });
  }

  private keep(t: tf.Tensor): tf.Tensor {
    return tf.keep(tf.clone(t));
  }

  /** One `scheduler.step(model_output, timestep, sample)`. */
  step(out: tf.Tensor, timestep: number, sample: tf.Tensor): [tf.Tensor, tf.Tensor] {
    if (this.prediction !== 'epsilon' && this.prediction !== 'v_prediction')
      throw new SamplerError(
        `PNDMScheduler: prediction_type must be 'epsilon' or 'v_prediction', got '${this.prediction}'`,
      );
    const ratio = Math.floor(this.schedule.numTrainTimesteps / this.n);
    const c = this.counter;
    let r: [tf.Tensor, tf.Tensor];
    if (c < this.prkTimesteps.length) {
      // step_prk: four calls per RK step, all from the step's start (cur_sample at its first timestep)
      const prev = timestep - (c % 2 ? 0 : Math.floor(ratio / 2));
      const t = this.prkTimesteps[c - (c % 4)]!;
      if (c % 4 === 0) {
        this.ets.push(this.keep(out));
        this.curSample?.dispose();
        this.curSample = this.keep(sample);
      }
      this.prk.push(this.keep(out));
      if (c % 4 === 3) {
        r = this.prev(
          this.curSample!,
          t,
          prev,
          this.prk.map((e, k) => [RK4[k]!, e] as const),
        );
        tf.dispose(this.prk);
        this.prk = [];
      } else r = this.prev(this.curSample!, t, prev, [[1, out]]);
    } else {
      // step_plms: Adams-Bashforth on the history; counter 0 and 1 of a PLMS start are Heun's step
      let t = timestep;
      let prev = timestep - ratio;
      if (c !== 1) {
        this.ets.push(this.keep(out));
        while (this.ets.length > 4) this.ets.shift()!.dispose();
      } else {
        prev = timestep;
        t = timestep + ratio;
      }
      const e = this.ets;
      if (e.length === 1 && c === 0) {
        this.curSample?.dispose();
        this.curSample = this.keep(sample);
        r = this.prev(sample, t, prev, [[1, out]]);
      } else if (e.length === 1 && c === 1) {
        r = this.prev(this.curSample!, t, prev, [
          [HEUN_START[1]!, out],
          [HEUN_START[0]!, e[0]!],
        ]);
        this.curSample!.dispose();
        this.curSample = null;
      } else r = this.prev(sample, t, prev, adamsBashforth([...e].reverse()));
    }
    this.counter++;
    return r;
  }

  dispose(): void {
    tf.dispose([...this.ets, ...this.prk, ...(this.curSample ? [this.curSample] : [])]);
    this.ets = [];
    this.prk = [];
    this.curSample = null;
    this.counter = 0;
  }
}
