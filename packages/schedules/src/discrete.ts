/**
 * Discrete noise schedules: the beta tables of DDPM (Ho et al. 2020) exactly as HuggingFace diffusers
 * builds them (`DDPMScheduler.__init__`, diffusers 0.40), in float32 arithmetic, stored as Float64Array.
 *
 *     alpha_i = 1 - beta_i,   alphas_cumprod_i = prod_{j<=i} alpha_j   (Luo 2022, eq. 61-70)
 *     x_i = sqrt(alphas_cumprod_i) x_0 + sqrt(1 - alphas_cumprod_i) eps
 */
import * as tf from '@tensorflow/tfjs-core';
import { ScheduleError } from './errors.js';
import { type NoiseLevel, vpLevelFromLogSNR } from './noise-level.js';
import { torchLinspaceFloat32 } from './numeric.js';

const f32 = Math.fround;

/** diffusers' `beta_schedule` names. */
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';

/** Every `BetaSchedule`. */
export const BETA_SCHEDULES: readonly BetaSchedule[] = [
  'linear',
  'scaled_linear',
  'squaredcos_cap_v2',
  'sigmoid',
];

/** How to build a discrete schedule (diffusers' `scheduler_config.json` schedule fields, camel-cased). */
export interface DiscreteScheduleConfig {
  /** Number of training steps T (default 1000). */
  numTrainTimesteps?: number;
  /** Beta table shape (default `linear`). Ignored when `trainedBetas` is given. */
  betaSchedule?: BetaSchedule;
  /** First beta (default 1e-4). */
  betaStart?: number;
  /** Last beta (default 0.02). */
  betaEnd?: number;
  /** An explicit beta table (diffusers' `trained_betas`), length `numTrainTimesteps`. */
  trainedBetas?: ArrayLike<number> | null;
  /** Rescale to zero terminal SNR (Lin et al. 2024, Algorithm 1). */
  rescaleBetasZeroSnr?: boolean;
}

/**
 * `linear` betas: `torch.linspace(beta_start, beta_end, T, dtype=float32)` (Ho et al. 2020, sec. 4).
 *
 * @example
 * linearBetas(1000, 1e-4, 0.02)[0]; // 9.999999747378752e-05
 */
export function linearBetas(
  numTrainTimesteps: number,
  betaStart = 1e-4,
  betaEnd = 0.02,
): Float64Array {
  checkEndpoints(betaStart, betaEnd);
  return torchLinspaceFloat32(betaStart, betaEnd, numTrainTimesteps);
}

/**
 * `scaled_linear` betas (Stable Diffusion): linear in sqrt(beta), then squared in float32.
 *
 * @example
 * scaledLinearBetas(1000, 0.00085, 0.012)[999]; // 0.011999999172985554
 */
export function scaledLinearBetas(
  numTrainTimesteps: number,
  betaStart = 0.00085,
  betaEnd = 0.012,
): Float64Array {
  checkEndpoints(betaStart, betaEnd);
  const r = torchLinspaceFloat32(Math.sqrt(betaStart), Math.sqrt(betaEnd), numTrainTimesteps);
  for (let i = 0; i < r.length; i++) r[i] = f32(r[i]! * r[i]!);
  return r;
}

/**
 * `squaredcos_cap_v2` betas (Nichol & Dhariwal 2021, eq. 17; diffusers `betas_for_alpha_bar`):
 * beta_i = min(1 - abar((i+1)/T) / abar(i/T), maxBeta), abar(t) = cos^2((t + 0.008)/1.008 * pi/2),
 * computed in float64 and stored as float32.
 *
 * @example
 * cosineBetas(1000)[999]; // 0.9990000128746033 (the cap 0.999 in float32)
 */
export function cosineBetas(numTrainTimesteps: number, maxBeta = 0.999): Float64Array {
  checkCount(numTrainTimesteps);
  const abar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float64Array(numTrainTimesteps);
  for (let i = 0; i < numTrainTimesteps; i++) {
    const t1 = i / numTrainTimesteps;
    const t2 = (i + 1) / numTrainTimesteps;
    out[i] = f32(Math.min(1 - abar(t2) / abar(t1), maxBeta));
  }
  return out;
}

/**
 * `sigmoid` betas (diffusers DDPM; GeoDiff): sigmoid(linspace(-6, 6, T)) * (end - start) + start, float32.
 *
 * @example
 * sigmoidBetas(1000, 1e-4, 0.02)[500]; // about 0.01
 */
export function sigmoidBetas(
  numTrainTimesteps: number,
  betaStart = 1e-4,
  betaEnd = 0.02,
): Float64Array {
  checkEndpoints(betaStart, betaEnd);
  const x = torchLinspaceFloat32(-6, 6, numTrainTimesteps);
  const scale = f32(betaEnd - betaStart);
  const start = f32(betaStart);
  for (let i = 0; i < x.length; i++) {
    const s = f32(1 / (1 + Math.exp(-x[i]!)));
    x[i] = f32(f32(s * scale) + start);
  }
  return x;
}

/**
 * Zero-terminal-SNR rescaling (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps
 * are Flawed", Algorithm 1; diffusers `rescale_zero_terminal_snr`), in float32 like diffusers:
 * shift and scale sqrt(alphas_cumprod) so its last entry is 0 and its first is unchanged. The
 * result's last beta is exactly 1 (alphas_cumprod[T-1] = 0, logSNR = -infinity).
 *
 * @example
 * const b = rescaleZeroTerminalSNR(linearBetas(1000)); // b[999] === 1
 */
export function rescaleZeroTerminalSNR(betas: ArrayLike<number>): Float64Array {
  const n = betas.length;
  if (n < 2)
    throw new ScheduleError(`zero-terminal-SNR rescaling needs at least 2 betas, got ${n}`);
  const cum = cumprodFloat32(oneMinus(betas));
  const s = new Float64Array(n);
  for (let i = 0; i < n; i++) s[i] = f32(Math.sqrt(cum[i]!));
  const s0 = s[0]!;
  const sT = s[n - 1]!;
  const scale = f32(s0 / f32(s0 - sT));
  for (let i = 0; i < n; i++) s[i] = f32(f32(s[i]! - sT) * scale);
  const bar = new Float64Array(n);
  for (let i = 0; i < n; i++) bar[i] = f32(s[i]! * s[i]!);
  const out = new Float64Array(n);
  out[0] = f32(1 - bar[0]!);
  for (let i = 1; i < n; i++) out[i] = f32(1 - f32(bar[i]! / bar[i - 1]!));
  return out;
}

/** The number diffusers' Euler, DPMSolver and UniPC schedulers put in alphas_cumprod[T-1] when it is 0. */
export const TERMINAL_ALPHA_CUMPROD_FLOOR = 2 ** -24;

/**
 * A discrete DDPM schedule: betas, alphas, alphas_cumprod (float32 values as diffusers computes them,
 * stored in Float64Array), and the noise level at an integer or fractional timestep.
 *
 * @example
 * const s = DiscreteSchedule.fromConfig({ betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012 });
 * s.alphasCumprod[999];      // 0.0046600960195064545
 * s.levelAt(500.5);          // { alpha, sigma } between steps 500 and 501 (log-sigma interpolation)
 */
export class DiscreteSchedule {
  /** T, the number of training timesteps. */
  readonly numTrainTimesteps: number;
  /** beta_i, i = 0..T-1. */
  readonly betas: Float64Array;
  /** alpha_i = 1 - beta_i (float32 values). */
  readonly alphas: Float64Array;
  /** prod_{j<=i} alpha_j (float32 values, accumulated in float64 as torch.cumprod does). */
  readonly alphasCumprod: Float64Array;
  /** VE noise levels sqrt((1 - abar_i) / abar_i), in float32 as diffusers' Euler/DPMSolver compute them. */
  readonly sigmas: Float64Array;
  /** The config this schedule was built from (defaults filled in). */
  readonly config: Readonly<Required<Omit<DiscreteScheduleConfig, 'trainedBetas'>>> & {
    trainedBetas: Float64Array | null;
  };
  /** logSNR_i = log(abar_i / (1 - abar_i)) in float64 (from the float32 table). */
  readonly logSNRs: Float64Array;
  /** log of `sigmas` (float32 values), for diffusers' sigma-to-timestep interpolation. */
  readonly logSigmasFloat32: Float64Array;

  private constructor(
    betas: Float64Array,
    alphasCumprod: Float64Array,
    config: DiscreteSchedule['config'],
  ) {
    this.numTrainTimesteps = betas.length;
    this.betas = betas;
    this.alphas = oneMinus(betas);
    this.alphasCumprod = alphasCumprod;
    this.config = config;
    const n = betas.length;
    this.sigmas = new Float64Array(n);
    this.logSNRs = new Float64Array(n);
    this.logSigmasFloat32 = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const a = alphasCumprod[i]!;
      this.sigmas[i] = f32(Math.sqrt(f32(f32(1 - a) / a)));
      this.logSNRs[i] = Math.log(a) - Math.log1p(-a);
      this.logSigmasFloat32[i] = f32(Math.log(this.sigmas[i]!));
    }
  }

  /**
   * Builds the schedule from diffusers-style fields (defaults: T = 1000, `linear`, 1e-4..0.02).
   *
   * @example
   * DiscreteSchedule.fromConfig({ betaSchedule: 'squaredcos_cap_v2' }).betas[999]; // 0.999 (float32)
   */
  static fromConfig(config: DiscreteScheduleConfig = {}): DiscreteSchedule {
    const T = config.numTrainTimesteps ?? 1000;
    checkCount(T);
    const betaSchedule = config.betaSchedule ?? 'linear';
    const betaStart = config.betaStart ?? 1e-4;
    const betaEnd = config.betaEnd ?? 0.02;
    const rescale = config.rescaleBetasZeroSnr ?? false;
    let betas: Float64Array;
    let trained: Float64Array | null = null;
    if (config.trainedBetas != null) {
      trained = Float64Array.from(config.trainedBetas as ArrayLike<number>);
      if (trained.length !== T) {
        throw new ScheduleError(
          `trainedBetas has ${trained.length} entries but numTrainTimesteps is ${T}`,
        );
      }
      checkBetas(trained, 'trainedBetas');
      betas = Float64Array.from(trained, f32);
    } else {
      switch (betaSchedule) {
        case 'linear':
          betas = linearBetas(T, betaStart, betaEnd);
          break;
        case 'scaled_linear':
          betas = scaledLinearBetas(T, betaStart, betaEnd);
          break;
        case 'squaredcos_cap_v2':
          betas = cosineBetas(T);
          break;
        case 'sigmoid':
          betas = sigmoidBetas(T, betaStart, betaEnd);
          break;
        default:
          throw new ScheduleError(
            `unknown betaSchedule '${String(betaSchedule)}'; expected one of ${BETA_SCHEDULES.join(', ')}`,
          );
      }
      checkBetas(betas, `${betaSchedule} betas`);
    }
    if (rescale) betas = rescaleZeroTerminalSNR(betas);
    return new DiscreteSchedule(betas, cumprodFloat32(oneMinus(betas)), {
      numTrainTimesteps: T,
      betaSchedule,
      betaStart,
      betaEnd,
      rescaleBetasZeroSnr: rescale,
      trainedBetas: trained,
    });
  }

  /**
   * A schedule from an explicit beta table (each in (0, 1); the last may be exactly 1, zero terminal SNR).
   *
   * @example
   * DiscreteSchedule.fromBetas([0.1, 0.2, 0.3]).alphasCumprod; // [0.9, 0.72, 0.504] (float32)
   */
  static fromBetas(betas: ArrayLike<number>): DiscreteSchedule {
    return DiscreteSchedule.fromConfig({ trainedBetas: betas, numTrainTimesteps: betas.length });
  }

  /**
   * A schedule from an explicit alphas_cumprod table, kept exactly as given (float64), for the classes
   * that transform the table itself (CogVideoX's SNR shift abar / (s + (1 - s) abar) on a float64
   * table). Each entry must be in (0, 1] and the table non-increasing; the last may be 0 (zero terminal
   * SNR). betas are 1 - abar_i / abar_{i-1}.
   *
   * @example
   * DiscreteSchedule.fromAlphasCumprod([0.9, 0.72, 0.504]).betas; // [0.1, 0.2, 0.3] (up to rounding)
   */
  static fromAlphasCumprod(alphasCumprod: ArrayLike<number>): DiscreteSchedule {
    const n = alphasCumprod.length;
    checkCount(n);
    const ac = Float64Array.from(alphasCumprod);
    for (let i = 0; i < n; i++) {
      const a = ac[i]!;
      const ok = (a > 0 && a <= 1) || (a === 0 && i === n - 1);
      if (!ok || (i > 0 && !(a <= ac[i - 1]!)))
        throw new ScheduleError(
          `alphasCumprod[${i}] = ${a} must be in (0, 1] and at most the entry before it (only the last may be 0)`,
        );
    }
    const betas = ac.map((a, i) => (i === 0 ? 1 - a : 1 - a / ac[i - 1]!));
    return new DiscreteSchedule(betas, ac, {
      numTrainTimesteps: n,
      betaSchedule: 'linear',
      betaStart: betas[0]!,
      betaEnd: betas[n - 1]!,
      rescaleBetasZeroSnr: false,
      trainedBetas: betas,
    });
  }

  /**
   * The same schedule with alphas_cumprod[T-1] replaced by `floor` (2^-24) when it is 0, as diffusers'
   * EulerDiscrete, DPMSolverMultistep and UniPCMultistep do under `rescale_betas_zero_snr`, so the
   * last VE sigma is finite (about 4096) instead of infinite.
   *
   * @example
   * DiscreteSchedule.fromConfig({ rescaleBetasZeroSnr: true }).withTerminalFloor().alphasCumprod[999]; // 2**-24
   */
  withTerminalFloor(floor = TERMINAL_ALPHA_CUMPROD_FLOOR): DiscreteSchedule {
    const last = this.numTrainTimesteps - 1;
    if (this.alphasCumprod[last] !== 0) return this;
    const ac = Float64Array.from(this.alphasCumprod);
    ac[last] = floor;
    return new DiscreteSchedule(this.betas, ac, this.config);
  }

  /** The noise level at integer index i: alpha = sqrt(abar_i), sigma = sqrt(1 - abar_i). */
  levelAtIndex(i: number): NoiseLevel<number> {
    this.checkIndex(i);
    const a = this.alphasCumprod[i]!;
    return { alpha: Math.sqrt(a), sigma: Math.sqrt(1 - a) };
  }

  /**
   * The noise level at a timestep t in [0, T-1], integer or fractional. Between steps the logSNR (that
   * is, log sigma_VE) is interpolated linearly: sigma = exp((1-f) log sigma_i + f log sigma_{i+1}),
   * the exact inverse of diffusers' `_sigma_to_t`, which is how Euler-type schedulers read fractional
   * timesteps. At integer t this is exactly `levelAtIndex(t)`.
   */
  levelAt(t: number): NoiseLevel<number> {
    this.checkTime(t);
    if (Number.isInteger(t)) return this.levelAtIndex(t);
    return vpLevelFromLogSNR(this.logSNR(t));
  }

  /** alpha at timestep t (see `levelAt`). */
  alpha(t: number): number {
    return this.levelAt(t).alpha;
  }

  /** sigma (variance-preserving) at timestep t (see `levelAt`). */
  sigma(t: number): number {
    return this.levelAt(t).sigma;
  }

  /** logSNR at timestep t, linear between integer steps; -Infinity where abar = 0. */
  logSNR(t: number): number {
    this.checkTime(t);
    const i = Math.floor(t);
    const f = t - i;
    if (f === 0) return this.logSNRs[i]!;
    const a = this.logSNRs[i]!;
    const b = this.logSNRs[i + 1]!;
    if (b === Number.NEGATIVE_INFINITY) return b;
    return (1 - f) * a + f * b;
  }

  /** The VE noise level sigma / alpha at timestep t, float64 (see `levelAt`). */
  sigmaVE(t: number): number {
    return Math.exp(-0.5 * this.logSNR(t));
  }

  /**
   * dlogSNR/dt of the piecewise-linear logSNR (see `logSNR`): the slope of the step containing t (the
   * step to the right at integer t, the last step at t = T-1).
   */
  dLogSNRdt(t: number): number {
    this.checkTime(t);
    const i = Math.min(Math.floor(t), this.numTrainTimesteps - 2);
    return this.logSNRs[i + 1]! - this.logSNRs[i]!;
  }

  /**
   * The (fractional) timestep whose logSNR is `logSNR`: the inverse of `logSNR(t)`, linear between steps.
   *
   * @example
   * const s = DiscreteSchedule.fromConfig();
   * s.tFromLogSNR(s.logSNR(123.4)); // 123.4
   */
  tFromLogSNR(logSNR: number): number {
    const l = this.logSNRs;
    const last = this.numTrainTimesteps - 1;
    if (!(logSNR <= l[0]! && logSNR >= l[last]!)) {
      throw new ScheduleError(
        `logSNR ${logSNR} is outside the schedule's range [${l[last]}, ${l[0]}]`,
      );
    }
    if (logSNR === l[last]) return last;
    // binary search: l[lo] >= logSNR > l[hi]
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (l[mid]! >= logSNR) lo = mid;
      else hi = mid;
    }
    if (l[hi] === Number.NEGATIVE_INFINITY) return lo;
    return lo + (l[lo]! - logSNR) / (l[lo]! - l[hi]!);
  }

  /**
   * The (fractional) timestep whose variance-preserving sigma is `sigma` (logSNR = log((1 - sigma^2) / sigma^2)).
   * For a VE sigma use `tFromLogSNR(-2 log sigmaVE)`, or `timestepFromSigma` for diffusers' float32 rounding.
   */
  tFromSigma(sigma: number): number {
    if (!(sigma > 0 && sigma <= 1))
      throw new ScheduleError(`a VP sigma must be in (0, 1], got ${sigma}`);
    return this.tFromLogSNR(Math.log1p(-sigma * sigma) - 2 * Math.log(sigma));
  }

  /**
   * alpha and sigma at integer timesteps, gathered as float32 tensors (for discrete-time training).
   * Indices must be int32 in [0, T-1].
   *
   * @example
   * const { alpha, sigma } = schedule.levelAtIndexTensor(tf.tensor1d([0, 500, 999], 'int32'));
   */
  levelAtIndexTensor(indices: tf.Tensor): NoiseLevel<tf.Tensor> {
    if (indices.dtype !== 'int32')
      throw new ScheduleError(`timestep indices must be int32, got ${indices.dtype}`);
    return tf.tidy(() => {
      const a = tf.tensor1d(Float32Array.from(this.alphasCumprod));
      const ac = tf.gather(a, indices);
      return { alpha: tf.sqrt(ac), sigma: tf.sqrt(tf.sub(1, ac)) };
    });
  }

  /**
   * The fractional timestep of a VE noise level, as diffusers' `_sigma_to_t` computes it: linear
   * interpolation of log sigma between the two table entries that bracket it (float32 log table),
   * clamped to [0, T-1], with diffusers' float32 weight (NumPy casts the float64 log sigma to the
   * table's float32 there).
   *
   * @example
   * const s = DiscreteSchedule.fromConfig();
   * s.timestepFromSigma(s.sigmas[500]); // 500
   */
  timestepFromSigma(sigma: number): number {
    if (!(sigma >= 0) || Number.isNaN(sigma))
      throw new ScheduleError(`sigma must be >= 0, got ${sigma}`);
    const ls = this.logSigmasFloat32;
    // diffusers subtracts the float64 log sigma from the float32 log table as a numpy scalar and a
    // float32 array: NumPy's value-based casting does it in float32, so the weight w is float32 too
    // (and the largest sigma of the table lands on T - 1, not on 998.99999...).
    const logSigma = f32(Math.log(Math.max(sigma, 1e-10)));
    // low = the last index with ls[low] <= logSigma (0 if none), clipped to T-2
    let low = 0;
    for (let i = 0; i < ls.length; i++) if (f32(logSigma - ls[i]!) >= 0) low = i;
    low = Math.min(low, ls.length - 2);
    const lo = ls[low]!;
    const hi = ls[low + 1]!;
    let w = f32(f32(lo - logSigma) / f32(lo - hi));
    w = Math.min(1, Math.max(0, w));
    return f32(1 - w) * low + w * (low + 1);
  }

  private checkIndex(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.numTrainTimesteps) {
      throw new ScheduleError(
        `timestep index ${i} is outside 0..${this.numTrainTimesteps - 1} (integer)`,
      );
    }
  }

  private checkTime(t: number): void {
    if (!(t >= 0 && t <= this.numTrainTimesteps - 1)) {
      throw new ScheduleError(`timestep ${t} is outside [0, ${this.numTrainTimesteps - 1}]`);
    }
  }
}

/** cumprod of float32 values, accumulated in float64 and stored as float32 (torch.cumprod on CPU). */
function cumprodFloat32(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  let acc = 1;
  for (let i = 0; i < values.length; i++) {
    acc *= values[i]!;
    out[i] = f32(acc);
  }
  return out;
}

function oneMinus(betas: ArrayLike<number>): Float64Array {
  const out = new Float64Array(betas.length);
  for (let i = 0; i < betas.length; i++) out[i] = f32(1 - betas[i]!);
  return out;
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 2) {
    throw new ScheduleError(`numTrainTimesteps must be an integer >= 2, got ${n}`);
  }
}

function checkEndpoints(start: number, end: number): void {
  for (const [name, v] of [
    ['betaStart', start],
    ['betaEnd', end],
  ] as const) {
    if (!(v > 0 && v < 1)) throw new ScheduleError(`${name} must be in (0, 1), got ${v}`);
  }
}

/** Every beta in (0, 1); only the last may be exactly 1 (zero terminal SNR). */
function checkBetas(betas: ArrayLike<number>, what: string): void {
  const n = betas.length;
  for (let i = 0; i < n; i++) {
    const b = betas[i]!;
    const ok = (b > 0 && b < 1) || (b === 1 && i === n - 1);
    if (!ok) {
      throw new ScheduleError(
        `${what}[${i}] = ${b} is outside (0, 1) (only the last beta may be exactly 1, for zero terminal SNR)`,
      );
    }
  }
}
