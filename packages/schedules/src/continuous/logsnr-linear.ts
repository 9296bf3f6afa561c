/**
 * VDM's fixed schedule (Kingma et al. 2021, sec. 3 and appendix; the "linear" noise schedule of the
 * VDM code): gamma(t) = -lambda(t) linear in t,
 *
 *     gamma(t) = gamma_min + (gamma_max - gamma_min) t,   alpha^2 = sigmoid(-gamma),  sigma^2 = sigmoid(gamma)
 *
 * with gamma in [-13.3, 5] by default.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `LogSNRLinearSchedule` (VDM defaults gammaMin = -13.3, gammaMax = 5). */
export interface LogSNRLinearParams {
  gammaMin?: number;
  gammaMax?: number;
}

/**
 * Linear gamma = -logSNR (VDM's fixed schedule).
 *
 * @example
 * const s = new LogSNRLinearSchedule();
 * s.logSNR(0); // 13.3
 * s.logSNR(1); // -5
 */
export class LogSNRLinearSchedule extends BaseSchedule {
  readonly name = 'logsnr-linear';
  readonly variancePreserving = true;
  readonly gammaMin: number;
  readonly gammaMax: number;

  constructor(params: LogSNRLinearParams = {}) {
    super();
    const p = readParams('logsnr-linear', params as Record<string, unknown>, {
      gammaMin: -13.3,
      gammaMax: 5,
    });
    if (!(p.gammaMax > p.gammaMin)) {
      throw new ScheduleError(
        `logsnr-linear: need gammaMin < gammaMax, got ${p.gammaMin}, ${p.gammaMax}`,
      );
    }
    this.gammaMin = p.gammaMin;
    this.gammaMax = p.gammaMax;
  }

  protected logSNRAt(t: number): number {
    return -(this.gammaMin + (this.gammaMax - this.gammaMin) * t);
  }

  protected dLogSNRdtAt(_t: number): number {
    return -(this.gammaMax - this.gammaMin);
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    return Math.min(1, Math.max(0, (-logSNR - this.gammaMin) / (this.gammaMax - this.gammaMin)));
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.neg(tf.add(tf.mul(t, this.gammaMax - this.gammaMin), this.gammaMin)));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.fill(t.shape, -(this.gammaMax - this.gammaMin));
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, gammaMin: this.gammaMin, gammaMax: this.gammaMax };
  }
}
