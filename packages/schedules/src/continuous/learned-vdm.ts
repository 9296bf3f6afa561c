/**
 * VDM's learned noise schedule (Kingma et al. 2021, "Variational Diffusion Models", sec. 5 and appendix
 * H; `NoiseSchedule_NNet` / `DenseMonotone` in google-research/vdm): gamma(t) = -logSNR(t) is a
 * monotone network with positive (absolute-valued) weights,
 *
 *     g~(t) = |w1| t + l3(phi(l2(2 (t - 1/2)))) / H,   phi(u) = 2 (sigmoid(u) - 1/2),   H = 1024 units
 *     gamma(t) = gamma_0 + (gamma_1 - gamma_0) (g~(t) - g~(0)) / (g~(1) - g~(0))
 *
 * with trainable endpoints gamma_0 = -logSNR_max and gamma_1 = -logSNR_min. Every layer's kernel enters
 * through |W|, so g~ is non-decreasing in t. The schedule's tensors are tfjs variables, trained jointly
 * with a model through the continuous-time ELBO (VDM eq. 17), which needs
 *
 *     gamma'(t) = (gamma_1 - gamma_0) g~'(t) / (g~(1) - g~(0)),
 *     g~'(t) = |w1| + (1/H) sum_j |w3_j| 4 s_j (1 - s_j) |w2_j|,  s_j = sigmoid(u_j)
 *
 * given here in closed form (`dGammaDtTensor`), differentiable in the parameters with first-order
 * gradients only.
 */
import { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from '../errors.js';
import { BaseSchedule, bisectDecreasing, readParams, type ScheduleConfig } from './schedule.js';

/** Parameters of `LearnedVDMSchedule`. */
export interface LearnedVDMParams {
  /** Initial gamma(0) = -logSNR_max (default -13.3). */
  gammaMin?: number;
  /** Initial gamma(1) = -logSNR_min (default 5). */
  gammaMax?: number;
  /** Units of the hidden layer (default 1024, as VDM). */
  hiddenUnits?: number;
  /** Seed of the normal(0, initStd) initialisation of the hidden kernels (default 0). */
  seed?: number;
  /** Standard deviation of the hidden kernels at initialisation (default 0.01, flax's `normal()`). */
  initStd?: number;
}

interface Weights {
  w1: number;
  w2: Float32Array;
  b2: Float32Array;
  w3: Float32Array;
  g0: number;
  g1: number;
}

/**
 * The learned VDM schedule. Dispose it when done (it owns tfjs variables).
 *
 * @example
 * const s = new LearnedVDMSchedule({ gammaMin: -13.3, gammaMax: 5 });
 * const opt = tf.train.adam(1e-3);
 * opt.minimize(() => someLossUsing(s.logSNRTensor(t), s.dLogSNRdtTensor(t)), false, s.trainableVariables);
 * s.logSNR(0.5); // read back as a number
 * s.dispose();
 */
export class LearnedVDMSchedule extends BaseSchedule {
  readonly name = 'vdm-learned';
  readonly variancePreserving = true;
  readonly hiddenUnits: number;
  private readonly init: { gammaMin: number; gammaMax: number; seed: number; initStd: number };
  /** l1: kernel [1, 1] (no bias: the rescaling to [gamma_0, gamma_1] cancels any constant). */
  readonly w1: tf.Variable;
  /** l2: kernel [1, H], bias [H]. */
  readonly w2: tf.Variable;
  readonly b2: tf.Variable;
  /** l3: kernel [H, 1], no bias. */
  readonly w3: tf.Variable;
  /** gamma(0) and gamma(1), trainable scalars. */
  readonly gamma0: tf.Variable;
  readonly gamma1: tf.Variable;

  constructor(params: LearnedVDMParams = {}) {
    super();
    const p = readParams('vdm-learned', params as Record<string, unknown>, {
      gammaMin: -13.3,
      gammaMax: 5,
      hiddenUnits: 1024,
      seed: 0,
      initStd: 0.01,
    });
    if (!(p.gammaMax > p.gammaMin)) {
      throw new ScheduleError(
        `vdm-learned: need gammaMin < gammaMax, got ${p.gammaMin}, ${p.gammaMax}`,
      );
    }
    if (!Number.isInteger(p.hiddenUnits) || p.hiddenUnits < 1) {
      throw new ScheduleError(
        `vdm-learned: hiddenUnits must be a positive integer, got ${p.hiddenUnits}`,
      );
    }
    if (!(p.initStd >= 0))
      throw new ScheduleError(`vdm-learned: initStd must be >= 0, got ${p.initStd}`);
    this.hiddenUnits = p.hiddenUnits;
    this.init = { gammaMin: p.gammaMin, gammaMax: p.gammaMax, seed: p.seed, initStd: p.initStd };
    const H = p.hiddenUnits;
    const rng = Random.seed(p.seed);
    const scaled = (n: number) => rng.normalArray(n).map((x) => x * p.initStd);
    this.w1 = tf.variable(tf.tensor2d([[p.gammaMax - p.gammaMin]]));
    this.w2 = tf.variable(tf.tensor2d(scaled(H), [1, H]));
    this.b2 = tf.variable(tf.zeros([H]));
    this.w3 = tf.variable(tf.tensor2d(scaled(H), [H, 1]));
    this.gamma0 = tf.variable(tf.scalar(p.gammaMin));
    this.gamma1 = tf.variable(tf.scalar(p.gammaMax));
  }

  /** Every trainable variable (network weights and the two endpoints). */
  get trainableVariables(): tf.Variable[] {
    return [this.w1, this.w2, this.b2, this.w3, this.gamma0, this.gamma1];
  }

  /** The unnormalised monotone network g~(t), elementwise (t of any shape). */
  gammaTildeTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.reshape(t, [-1, 1]);
      const h = tf.matMul(x, tf.abs(this.w1));
      const u = tf.add(tf.matMul(tf.mul(tf.sub(x, 0.5), 2), tf.abs(this.w2)), this.b2);
      const phi = tf.mul(tf.sub(tf.sigmoid(u), 0.5), 2);
      const g = tf.div(tf.matMul(phi, tf.abs(this.w3)), this.hiddenUnits);
      return tf.reshape(tf.add(h, g), t.shape);
    });
  }

  /** dg~/dt in closed form, elementwise. */
  dGammaTildeDtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const x = tf.reshape(t, [-1, 1]);
      const a2 = tf.abs(this.w2);
      const s = tf.sigmoid(tf.add(tf.matMul(tf.mul(tf.sub(x, 0.5), 2), a2), this.b2));
      const ds = tf.mul(tf.mul(tf.mul(s, tf.sub(1, s)), 4), a2); // d phi_j / dt
      const g = tf.div(tf.matMul(ds, tf.abs(this.w3)), this.hiddenUnits);
      return tf.reshape(tf.add(g, tf.reshape(tf.abs(this.w1), [])), t.shape);
    });
  }

  /** gamma(t) = -logSNR(t), rescaled to the trainable endpoints. */
  gammaTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [g0, g1] = this.endsTilde();
      const frac = tf.div(tf.sub(this.gammaTildeTensor(t), g0), tf.sub(g1, g0));
      return tf.add(this.gamma0, tf.mul(tf.sub(this.gamma1, this.gamma0), frac));
    });
  }

  /** gamma'(t) = (gamma_1 - gamma_0) g~'(t) / (g~(1) - g~(0)). */
  dGammaDtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [g0, g1] = this.endsTilde();
      return tf.mul(
        tf.div(tf.sub(this.gamma1, this.gamma0), tf.sub(g1, g0)),
        this.dGammaTildeDtTensor(t),
      );
    });
  }

  logSNRTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.neg(this.gammaTensor(t)));
  }

  dLogSNRdtTensor(t: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.neg(this.dGammaDtTensor(t)));
  }

  override get logSNRMax(): number {
    return -this.gamma0.dataSync()[0]!;
  }

  override get logSNRMin(): number {
    return -this.gamma1.dataSync()[0]!;
  }

  protected logSNRAt(t: number): number {
    return -gammaAt(t, this.read());
  }

  protected dLogSNRdtAt(t: number): number {
    const w = this.read();
    return -((w.g1 - w.g0) * dTildeAt(t, w)) / (tildeAt(1, w) - tildeAt(0, w));
  }

  protected override tFromLogSNRChecked(logSNR: number): number {
    const w = this.read(); // one readback, then bisection in JS
    return bisectDecreasing((t) => -gammaAt(t, w), logSNR);
  }

  toConfig(): ScheduleConfig {
    return { name: this.name, hiddenUnits: this.hiddenUnits, ...this.init };
  }

  /** Frees the variables. */
  override dispose(): void {
    for (const v of this.trainableVariables) v.dispose();
  }

  private endsTilde(): [tf.Tensor, tf.Tensor] {
    const ends = this.gammaTildeTensor(tf.tensor1d([0, 1]));
    return [tf.slice(ends, [0], [1]), tf.slice(ends, [1], [1])];
  }

  /** The current weights as numbers (a few small readbacks; not for inner loops). */
  private read(): Weights {
    const w: Weights = {
      w1: Math.abs(this.w1.dataSync()[0]!),
      w2: (this.w2.dataSync() as Float32Array).map(Math.abs),
      b2: this.b2.dataSync() as Float32Array,
      w3: (this.w3.dataSync() as Float32Array).map(Math.abs),
      g0: this.gamma0.dataSync()[0]!,
      g1: this.gamma1.dataSync()[0]!,
    };
    if (!(tildeAt(1, w) - tildeAt(0, w) > 0) || !Number.isFinite(w.g0) || !Number.isFinite(w.g1)) {
      throw new ScheduleError(
        'vdm-learned: the network is constant in t or its parameters are not finite (g~(1) <= g~(0)), so gamma(t) is undefined',
      );
    }
    return w;
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

function tildeAt(t: number, w: Weights): number {
  const x = 2 * (t - 0.5);
  let g = 0;
  for (let j = 0; j < w.w2.length; j++)
    g += w.w3[j]! * 2 * (sigmoid(x * w.w2[j]! + w.b2[j]!) - 0.5);
  return w.w1 * t + g / w.w2.length;
}

function dTildeAt(t: number, w: Weights): number {
  const x = 2 * (t - 0.5);
  let g = 0;
  for (let j = 0; j < w.w2.length; j++) {
    const s = sigmoid(x * w.w2[j]! + w.b2[j]!);
    g += w.w3[j]! * 4 * s * (1 - s) * w.w2[j]!;
  }
  return w.w1 + g / w.w2.length;
}

function gammaAt(t: number, w: Weights): number {
  const t0 = tildeAt(0, w);
  return w.g0 + ((w.g1 - w.g0) * (tildeAt(t, w) - t0)) / (tildeAt(1, w) - t0);
}
