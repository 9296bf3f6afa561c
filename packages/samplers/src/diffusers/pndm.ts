/**
 * diffusers' `PNDMScheduler` step, call by call (scheduling_pndm.py at 58eb52c: `set_timesteps`,
 * `step_prk`, `step_plms`, `_get_prev_sample`). Its moves are DDIM's transfer between table levels, but
 * which levels it uses is diffusers' own: a PLMS step goes from t to t - T // n whatever the spacing (the
 * next call's sample is then read at its own timestep's level), the RK steps of one PRK step all start
 * from that step's first timestep, and the first PLMS call after a Heun start reads t + T // n. For
 * `leading` spacing these are the chain's own levels; for `linspace` / `trailing` they are not, so the
 * level bookkeeping lives here (the Adams-Bashforth weights are the `pndm` sampler's).
 */
import type { DiscreteSchedule, NoiseLevel } from '@diffuse/schedules';
import { convertPrediction } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError } from '../errors.js';
import { AB } from '../samplers/pndm.js';

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

/** The state of one diffusers PNDM run (ets, counter, cur_sample, cur_model_output). */
export class DiffusersPndm {
  private ets: tf.Tensor[] = [];
  private counter = 0;
  private curSample: tf.Tensor | null = null;
  private curModelOutput: tf.Tensor | null = null;

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
   * `_get_prev_sample`: DDIM's transfer from level t to level prev (PNDM eq. 9), the model output read
   * as eps (v converted at t with `sample`). Returns [prev sample, x0 estimate].
   */
  private prev(sample: tf.Tensor, t: number, prev: number, out: tf.Tensor): [tf.Tensor, tf.Tensor] {
    const a = this.level(t);
    const b = this.level(prev);
    return tf.tidy(() => {
      const eps =
        this.prediction === 'v_prediction'
          ? convertPrediction(out, 'v', 'epsilon', sample, a)
          : tf.clone(out);
      const x0 = tf.div(tf.sub(sample, tf.mul(eps, a.sigma)), a.alpha);
      return [tf.add(tf.mul(x0, b.alpha), tf.mul(eps, b.sigma)), x0];
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
      const prev = timestep - (c % 2 ? 0 : Math.floor(ratio / 2));
      const t = this.prkTimesteps[c - (c % 4)]!;
      const w = c % 4 === 0 || c % 4 === 3 ? 1 / 6 : 1 / 3;
      if (c % 4 === 0) {
        this.ets.push(this.keep(out));
        this.curSample?.dispose();
        this.curSample = this.keep(sample);
      }
      const acc = tf.tidy(() =>
        this.curModelOutput ? tf.add(this.curModelOutput, tf.mul(out, w)) : tf.mul(out, w),
      );
      this.curModelOutput?.dispose();
      this.curModelOutput = null;
      if (c % 4 === 3) {
        r = this.prev(this.curSample!, t, prev, acc);
        acc.dispose();
      } else {
        this.curModelOutput = tf.keep(acc);
        r = this.prev(this.curSample!, t, prev, out);
      }
    } else {
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
        r = this.prev(sample, t, prev, out);
      } else if (e.length === 1 && c === 1) {
        const m = tf.tidy(() => tf.div(tf.add(out, e[0]!), 2));
        r = this.prev(this.curSample!, t, prev, m);
        m.dispose();
        this.curSample!.dispose();
        this.curSample = null;
      } else {
        const w = AB[e.length - 1]!;
        const m = tf.tidy(() => tf.addN(w.map((k, j) => tf.mul(e[e.length - 1 - j]!, k))));
        r = this.prev(sample, t, prev, m);
        m.dispose();
      }
    }
    this.counter++;
    return r;
  }

  dispose(): void {
    tf.dispose([...this.ets, ...(this.curSample ? [this.curSample] : [])]);
    this.curModelOutput?.dispose();
    this.ets = [];
    this.curSample = null;
    this.curModelOutput = null;
    this.counter = 0;
  }
}
