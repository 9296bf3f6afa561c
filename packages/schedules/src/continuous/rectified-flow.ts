/**
 * The rectified-flow / flow-matching path (Liu et al. 2023, "Flow Straight and Fast"; Lipman et al.
 * 2023, "Flow Matching for Generative Modeling", sec. 4.1 with sigma_min -> 0; Esser et al. 2024,
 * SD 3, sec. 2 and 5.3.2 for the shift):
 *
 *     x_tau = (1 - tau) x_0 + tau eps,   alpha = 1 - tau,  sigma = tau,  lambda = 2 log((1 - tau) / tau)
 *
 * with the velocity u = eps - x_0 (`'flow'` in `convertPrediction`). Its VE view is x / (1 - tau) at
 * sigma_VE = tau / (1 - tau), so every VE sampler runs on a flow model. The schedule time t in [0, 1]
 * maps to the flow time tau = shift s / (1 + (shift - 1) s), s = tMin + (tMax - tMin) t: SD 3's
 * resolution shift (`shift` of diffusers' FlowMatchEulerDiscreteScheduler), and tMin > 0, tMax < 1 keep
 * lambda finite at both ends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import type { NoiseLevel } from '../noise-level.js';
import { BaseSchedule, checkTime, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `RectifiedFlowSchedule` (defaults shift = 1, tMin = 1e-3, tMax = 1 - 1e-3). */
export interface RectifiedFlowParams {
  shift?: number;
  tMin?: number;
  tMax?: number;
}

/**
 * The rectified-flow schedule alpha = 1 - tau, sigma = tau.
 *
 * @example
 * const s = new RectifiedFlowSchedule({ shift: 3 });
 * s.level(0.5); // { alpha: 0.25, sigma: 0.75 } (tau = 3 * 0.5 / (1 + 2 * 0.5), tMin / tMax aside)
 */
export class RectifiedFlowSchedule extends BaseSchedule {
  readonly name = 'rectified-flow';
  readonly variancePreserving = false;
  readonly shift: number;
  readonly tMin: number;
  readonly tMax: number;

  constructor(params: RectifiedFlowParams = {}) {
    super();
    const p = readParams('rectified-flow', params as Record<string, unknown>, {
      shift: 1,
      tMin: 1e-3,
      tMax: 1 - 1e-3,
    });
    if (!(p.shift > 0))
      throw new ScheduleError(`rectified-flow: shift must be > 0, got ${p.shift}`);
    if (!(p.tMin > 0 && p.tMin < p.tMax && p.tMax < 1)) {
      throw new ScheduleError(
        `rectified-flow: need 0 < tMin < tMax < 1, got tMin = ${p.tMin}, tMax = ${p.tMax}`,
      );
    }
    this.shift = p.shift;
    this.tMin = p.tMin;
    this.tMax = p.tMax;
  }

  /**
   * The flow time tau of schedule time t.
   *
   * @example
   * new RectifiedFlowSchedule({ shift: 3, tMin: 1e-3, tMax: 1 - 1e-3 }).tau(1); // 0.99967
   */
  tau(t: number): number {
    const s = this.tMin + (this.tMax - this.tMin) * checkTime(t, this.name);
    return (this.shift * s) / (1 + (this.shift - 1) * s);
  }

  protected logSNRAt(t: number): number {
    const tau = this.tau(t);
    return 2 * (Math.log1p(-tau) - Math.log(tau));
  }

  protected dLogSNRdtAt(t: number): number {
    const s = this.tMin + (this.tMax - this.tMin) * t;
    const tau = this.tau(t);
    const dTau = this.shift / (1 + (this.shift - 1) * s) ** 2;
    return (-2 / (tau * (1 - tau))) * dTau * (this.tMax - this.tMin);
  }

  override level(t: number): NoiseLevel<number> {
    const tau = this.tau(t);
    return { alpha: 1 - tau, sigma: tau };
  }

  /** The t with this schedule's own sigma (= tau) equal to `sigma`. */
  override tFromSigma(sigma: number): number {
    if (!(sigma > 0 && sigma < 1))
      throw new ScheduleError(`${this.name}: sigma must be in (0, 1), got ${sigma}`);
    return this.tFromLogSNR(2 * (Math.log1p(-sigma) - Math.log(sigma)));
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    const tau = 1 / (1 + Math.exp(0.5 * logSNR));
    const s = tau / (this.shift - (this.shift - 1) * tau);
    return Math.min(1, Math.max(0, (s - this.tMin) / (this.tMax - this.tMin)));
  }

  private tauTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const s = tf.add(tf.mul(t, this.tMax - this.tMin), this.tMin);
      return tf.div(tf.mul(s, this.shift), tf.add(tf.mul(s, this.shift - 1), 1));
    });
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const tau = this.tauTensor(t);
      return tf.mul(tf.sub(tf.log1p(tf.neg(tau)), tf.log(tau)), 2);
    });
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const s = tf.add(tf.mul(t, this.tMax - this.tMin), this.tMin);
      const tau = this.tauTensor(t);
      const dTau = tf.div(this.shift, tf.square(tf.add(tf.mul(s, this.shift - 1), 1)));
      return tf.mul(tf.div(-2 * (this.tMax - this.tMin), tf.mul(tau, tf.sub(1, tau))), dTau);
    });
  }

  override levelTensor(t: tf.Tensor): NoiseLevel<tf.Tensor> {
    return tf.tidy(() => {
      const tau = this.tauTensor(t);
      return { alpha: tf.sub(1, tau), sigma: tau };
    });
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, shift: this.shift, tMin: this.tMin, tMax: this.tMax };
  }
}
