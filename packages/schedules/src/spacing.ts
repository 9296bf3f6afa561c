/**
 * Sampling-time spacings: which timesteps or noise levels a sampler visits.
 *
 * - diffusers' `timestep_spacing` (`leading`, `trailing`, `linspace`; Lin et al. 2024, Table 2) as
 *   DDIM/DDPM, EulerDiscrete and DPMSolverMultistep compute them in `set_timesteps`, with their sigmas
 *   (including Karras sigmas mapped back to fractional timesteps).
 * - k-diffusion's sigma schedules (`get_sigmas_karras`, `_exponential`, `_polyexponential`, `_vp`),
 *   each returning n + 1 sigmas that end in 0.
 * - Uniform logSNR, and validation of user-given timesteps or sigmas.
 *
 * Everything returns plain Float64Array, so scheduler adapters can be built on top.
 */
import type { ContinuousSchedule } from './continuous/schedule.js';
import type { DiscreteSchedule } from './discrete.js';
import { ScheduleError } from './errors.js';
import {
  betaQuantile,
  interp,
  numpyArange,
  numpyLinspace,
  roundHalfEven,
  torchLinspace,
  torchLinspaceFloat32,
} from './numeric.js';

const f32 = Math.fround;

/** diffusers' `timestep_spacing`. */
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

/** Every `TimestepSpacing`. */
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];

/**
 * Which diffusers scheduler family's `set_timesteps` arithmetic to reproduce:
 * - `ddim`: DDIM, DDPM, PNDM: integer timesteps.
 * - `euler`: EulerDiscrete, EulerAncestral, Heun, LMS: float timesteps (fractional under `linspace`), VE sigmas.
 * - `dpmsolver`: DPMSolverMultistep, UniPC, DEIS: integer timesteps from n + 1 points minus the last, VE sigmas.
 */
export type DiffusersFamily = 'ddim' | 'euler' | 'dpmsolver';

/** Options of `diffusersTimesteps`. */
export interface DiffusersTimestepOptions {
  /** Number of sampling steps n (1 <= n <= T). */
  numInferenceSteps: number;
  /** diffusers `timestep_spacing` (default `leading`). */
  spacing?: TimestepSpacing;
  /** diffusers `steps_offset`, added under `leading` only (default 0). */
  stepsOffset?: number;
  /** The scheduler family whose arithmetic to follow (default `ddim`). */
  family?: DiffusersFamily;
  /**
   * `dpmsolver` only: the number of trailing training steps whose logSNR falls below diffusers'
   * `lambda_min_clipped` (see `clippedTrainTimesteps`), which shortens the range spaced (default 0).
   */
  clippedSteps?: number;
}

/**
 * The timesteps diffusers' `set_timesteps(n)` produces, descending (Lin et al. 2024, Table 2):
 *
 * - `leading`:  (n-1-i) * floor(T/n) + steps_offset
 * - `trailing`: round(T - i*T/n) - 1
 * - `linspace`: round(linspace(0, T-1, n)) reversed (Euler keeps the fractional values)
 *
 * `dpmsolver` spaces n + 1 points and drops the last (t = 0). Rounding is NumPy's (half to even).
 *
 * @example
 * diffusersTimesteps(1000, { numInferenceSteps: 10, spacing: 'trailing' }); // [999, 899, ..., 99]
 * diffusersTimesteps(1000, { numInferenceSteps: 10, spacing: 'leading', stepsOffset: 1 }); // [901, ..., 1]
 */
export function diffusersTimesteps(
  numTrainTimesteps: number,
  options: DiffusersTimestepOptions,
): Float64Array {
  const T = numTrainTimesteps;
  const n = options.numInferenceSteps;
  const spacing = options.spacing ?? 'leading';
  const offset = options.stepsOffset ?? 0;
  const family = options.family ?? 'ddim';
  const clipped = options.clippedSteps ?? 0;
  if (!Number.isInteger(T) || T < 2)
    throw new ScheduleError(`numTrainTimesteps must be an integer >= 2, got ${T}`);
  if (!Number.isInteger(n) || n < 1 || n > T) {
    throw new ScheduleError(
      `numInferenceSteps must be an integer in [1, ${T}] (numTrainTimesteps), got ${n}`,
    );
  }
  if (!Number.isInteger(offset) || offset < 0)
    throw new ScheduleError(`stepsOffset must be an integer >= 0, got ${offset}`);
  if (!TIMESTEP_SPACINGS.includes(spacing)) {
    throw new ScheduleError(
      `unknown timestep spacing '${String(spacing)}'; expected one of ${TIMESTEP_SPACINGS.join(', ')}`,
    );
  }
  if (!['ddim', 'euler', 'dpmsolver'].includes(family)) {
    throw new ScheduleError(
      `unknown diffusers family '${String(family)}'; expected ddim, euler or dpmsolver`,
    );
  }
  if (
    !Number.isInteger(clipped) ||
    clipped < 0 ||
    clipped >= T ||
    (clipped > 0 && family !== 'dpmsolver')
  ) {
    throw new ScheduleError(
      `clippedSteps must be an integer in [0, ${T}) and needs the 'dpmsolver' family, got ${clipped}`,
    );
  }
  const last = T - clipped; // DPMSolver's last_timestep
  const out = new Float64Array(n);
  if (spacing === 'trailing') {
    const ts = numpyArange(last, 0, -T / n);
    // numpy.arange's float length can add one entry just above 0 (e.g. T = 1000, n = 61), whose
    // timestep would be -1 in diffusers; it is dropped.
    return ts.map((t) => roundHalfEven(t) - 1).filter((t) => t >= 0);
  }
  if (family === 'dpmsolver') {
    if (spacing === 'linspace') {
      const ts = numpyLinspace(0, last - 1, n + 1);
      for (let i = 0; i < n; i++) out[i] = roundHalfEven(ts[n - i]!);
    } else {
      const ratio = Math.floor(last / (n + 1));
      for (let i = 0; i < n; i++) out[i] = (n - i) * ratio + offset;
    }
    return out;
  }
  if (spacing === 'linspace') {
    const ts = numpyLinspace(0, T - 1, n);
    for (let i = 0; i < n; i++)
      out[i] = family === 'euler' ? f32(ts[n - 1 - i]!) : roundHalfEven(ts[n - 1 - i]!);
    return out;
  }
  const ratio = Math.floor(T / n);
  for (let i = 0; i < n; i++) out[i] = (n - 1 - i) * ratio + offset;
  return out;
}

/**
 * diffusers' sigma spacings (`use_karras_sigmas`, `use_exponential_sigmas`, `use_beta_sigmas`,
 * DPMSolverMultistep's `use_lu_lambdas`): n levels between two end sigmas, see `diffusersSetTimesteps`.
 */
export type DiffusersSigmaSpacing = 'karras' | 'exponential' | 'beta' | 'lu';

/** Options of `diffusersSetTimesteps`. */
export interface DiffusersSetTimestepsOptions extends Partial<DiffusersTimestepOptions> {
  /** Karras et al. (2022) sigmas between the spaced endpoints, mapped back to timesteps (= `sigmaSpacing: 'karras'`). */
  useKarrasSigmas?: boolean;
  /** Respace the sigmas between the endpoints (`euler` / `dpmsolver`), timesteps mapped back from them. */
  sigmaSpacing?: DiffusersSigmaSpacing;
  /** Explicit end sigmas of the respaced levels (diffusers' `sigma_min` / `sigma_max` config: Euler family, UniPC). */
  sigmaMin?: number | null;
  sigmaMax?: number | null;
  /**
   * `dpmsolver`: how the respaced levels' fractional timesteps become integers: `round` (half to even;
   * diffusers' default for Karras and Lu) or `trunc` (numpy's astype(int64): diffusers' exponential and
   * beta sigmas, and DPMSolverMultistep's Karras / Lu on `squaredcos_cap_v2`).
   */
  timestepRounding?: 'round' | 'trunc';
  /**
   * `euler`: diffusers' `interpolation_type`: `linear` (default: sigma interpolated linearly at the
   * timesteps) or `log_linear` (n + 1 sigmas log-uniform over the whole table, from its largest to its
   * smallest, the timesteps unchanged; the final sigma is appended after them, so the last step ends
   * at the table's smallest sigma and the appended one is never reached).
   */
  interpolation?: 'linear' | 'log_linear';
  /** The sigma appended at the end: `zero` (default) or `sigma_min` (the table's smallest sigma). */
  finalSigmasType?: 'zero' | 'sigma_min';
  /** Custom descending timesteps in [0, T-1] instead of a spacing. */
  timesteps?: ArrayLike<number>;
  /** Custom descending VE sigmas (`euler` / `dpmsolver`); timesteps come from diffusers' sigma-to-t map. */
  sigmas?: ArrayLike<number>;
  /** `dpmsolver` only: diffusers' `lambda_min_clipped` (default -Infinity, no clipping). */
  lambdaMinClipped?: number;
}

/** What `diffusersSetTimesteps` returns. */
export interface DiffusersTimesteps {
  /** Descending timesteps (integers, or float32 values for `euler`). */
  timesteps: Float64Array;
  /** VE sigmas (float32 values), one per timestep plus the appended final sigma; null for `ddim`. */
  sigmas: Float64Array | null;
}

/**
 * Reproduces diffusers' `set_timesteps(n)`: the timesteps and, for the `euler` and `dpmsolver` families,
 * the VE sigmas with the final sigma appended, all in diffusers' float32 arithmetic.
 *
 * - Sigmas at the timesteps: `np.interp` of the float32 table sqrt((1 - abar)/abar) (linear in sigma).
 * - Karras: rho = 7 between the spaced sigmas' ends (`euler`) or the whole table's ends (`dpmsolver`),
 *   then timesteps from diffusers' `_sigma_to_t` (log-sigma interpolation; rounded for `dpmsolver`).
 * - Under zero-terminal-SNR these families first floor alphas_cumprod[T-1] at 2^-24 (see
 *   `DiscreteSchedule.withTerminalFloor`).
 *
 * @example
 * const s = DiscreteSchedule.fromConfig({ betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012 });
 * const { timesteps, sigmas } = diffusersSetTimesteps(s, { numInferenceSteps: 25, family: 'euler', spacing: 'linspace' });
 */
export function diffusersSetTimesteps(
  schedule: DiscreteSchedule,
  options: DiffusersSetTimestepsOptions,
): DiffusersTimesteps {
  const family = options.family ?? 'ddim';
  const finalType = options.finalSigmasType ?? 'zero';
  if (finalType !== 'zero' && finalType !== 'sigma_min') {
    throw new ScheduleError(
      `unknown finalSigmasType '${String(finalType)}'; expected zero or sigma_min`,
    );
  }
  const T = schedule.numTrainTimesteps;
  if (options.lambdaMinClipped !== undefined && family !== 'dpmsolver') {
    throw new ScheduleError(`lambdaMinClipped needs the 'dpmsolver' family`);
  }
  const given = [options.timesteps, options.sigmas, options.numInferenceSteps].filter(
    (v) => v != null,
  ).length;
  if (given !== 1) {
    throw new ScheduleError('give exactly one of numInferenceSteps, timesteps or sigmas');
  }
  if (family === 'ddim') {
    if (options.sigmas != null)
      throw new ScheduleError(`custom sigmas need the 'euler' or 'dpmsolver' family`);
    if (options.useKarrasSigmas)
      throw new ScheduleError(`useKarrasSigmas needs the 'euler' or 'dpmsolver' family`);
    const timesteps =
      options.timesteps != null
        ? validateTimesteps(options.timesteps, T, { integer: true })
        : diffusersTimesteps(T, {
            ...options,
            numInferenceSteps: options.numInferenceSteps!,
            family,
          });
    return { timesteps, sigmas: null };
  }
  const s = schedule.withTerminalFloor();
  const table = s.sigmas;
  const finalSigma = (last: number): number => (finalType === 'zero' ? 0 : last);
  const index = Float64Array.from({ length: T }, (_, i) => i);

  if (options.sigmas != null) {
    const sig = validateSigmas(options.sigmas, { allowFinalZero: false });
    const ts = sig.map((x) => s.timestepFromSigma(x));
    return {
      timesteps: family === 'dpmsolver' ? ts.map(roundHalfEven) : ts.map(f32),
      sigmas: appendFinal(sig, finalSigma(table[0]!)),
    };
  }

  let timesteps =
    options.timesteps != null
      ? validateTimesteps(options.timesteps, T, { integer: family === 'dpmsolver' })
      : diffusersTimesteps(T, {
          ...options,
          numInferenceSteps: options.numInferenceSteps!,
          family,
          clippedSteps: clippedTrainTimesteps(
            s,
            options.lambdaMinClipped ?? Number.NEGATIVE_INFINITY,
          ),
        });
  if (family === 'euler') timesteps = timesteps.map(f32);
  const n = timesteps.length;

  const spacing = options.sigmaSpacing ?? (options.useKarrasSigmas ? 'karras' : undefined);
  if (spacing !== undefined && !['karras', 'exponential', 'beta', 'lu'].includes(spacing))
    throw new ScheduleError(
      `unknown sigmaSpacing '${String(spacing)}'; expected karras, exponential, beta or lu`,
    );
  const interpolation = options.interpolation ?? 'linear';
  if (interpolation !== 'linear' && interpolation !== 'log_linear')
    throw new ScheduleError(
      `unknown interpolation '${String(interpolation)}'; expected linear or log_linear`,
    );
  if (interpolation === 'log_linear' && family !== 'euler')
    throw new ScheduleError(`interpolation 'log_linear' needs the 'euler' family`);
  // the sigmas at the timesteps (euler 'log_linear': n + 1 log-uniform over the table, in float32)
  const base =
    interpolation === 'log_linear'
      ? torchLinspaceFloat32(Math.log(f32(table[T - 1]!)), Math.log(f32(table[0]!)), n + 1).map(
          (l) => f32(Math.exp(l)),
        )
      : timesteps.map((t) => interp(t, index, table));
  if (spacing === undefined) return { timesteps, sigmas: appendFinal(base, finalSigma(table[0]!)) };
  // Respaced sigmas between the ends diffusers uses (the config's sigma_min / sigma_max, else euler:
  // the spaced sigmas' ends; dpmsolver: the whole table's), then back to timesteps.
  const hi = options.sigmaMax ?? (family === 'euler' ? base[0]! : table[T - 1]!);
  const lo = options.sigmaMin ?? (family === 'euler' ? base[base.length - 1]! : table[0]!);
  const sig = respaceSigmas(spacing, n, lo, hi);
  const ts = sig.map((x) => s.timestepFromSigma(x));
  if (family === 'dpmsolver') {
    const rounding =
      options.timestepRounding ?? (spacing === 'karras' || spacing === 'lu' ? 'round' : 'trunc');
    return {
      timesteps: ts.map(rounding === 'round' ? roundHalfEven : Math.trunc),
      sigmas: appendFinal(sig, finalSigma(sig[n - 1]!)),
    };
  }
  return { timesteps: ts.map(f32), sigmas: appendFinal(sig, finalSigma(table[0]!)) };
}

/**
 * diffusers' respaced sigmas (`_convert_to_karras`, `_convert_to_exponential`, `_convert_to_beta`,
 * `_convert_to_lu`), n levels from sigmaMax down to sigmaMin in float64 (NumPy):
 * - `karras`: Karras et al. (2022, eq. 5), rho = 7, on np.linspace(0, 1, n);
 * - `exponential`, `lu`: exp(np.linspace(log sigmaMax, log sigmaMin, n)) (Lu et al. 2022: uniform in
 *   lambda = -log sigma, which is what diffusers' `use_lu_lambdas` computes on the table's log sigmas);
 * - `beta`: sigmaMin + F^-1(1 - r) (sigmaMax - sigmaMin), r = np.linspace(0, 1, n), F the Beta(0.6, 0.6)
 *   CDF (Lee et al. 2024, "Beta Sampling is All You Need", arXiv 2407.12173).
 *
 * No 0 is appended; the ends may be equal (n = 1 gives [sigmaMax]).
 *
 * @example
 * respaceSigmas('beta', 10, 0.0292, 14.6146); // diffusers' use_beta_sigmas levels for SD's table
 */
export function respaceSigmas(
  spacing: DiffusersSigmaSpacing,
  n: number,
  sigmaMin: number,
  sigmaMax: number,
): Float64Array {
  if (!Number.isInteger(n) || n < 1)
    throw new ScheduleError(`n must be a positive integer, got ${n}`);
  if (!(sigmaMin >= 0) || !(sigmaMax >= sigmaMin) || !Number.isFinite(sigmaMax))
    throw new ScheduleError(
      `need 0 <= sigmaMin <= sigmaMax < infinity, got sigmaMin = ${sigmaMin}, sigmaMax = ${sigmaMax}`,
    );
  if (spacing === 'karras') return karrasFromRamp(numpyLinspace(0, 1, n), sigmaMin, sigmaMax, 7);
  if (spacing === 'beta')
    return numpyLinspace(0, 1, n).map(
      (r) => sigmaMin + betaQuantile(1 - r, 0.6, 0.6) * (sigmaMax - sigmaMin),
    );
  return numpyLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp);
}

/**
 * How many of the noisiest training steps DPMSolver drops for `lambda_min_clipped` (Lu et al. 2022b,
 * used for cosine schedules): `torch.searchsorted(flip(lambda_t), lambda_min_clipped)` with
 * lambda_t = log alpha_t - log sigma_t in float32, i.e. the number of steps with lambda_t < the clip.
 *
 * @example
 * clippedTrainTimesteps(DiscreteSchedule.fromConfig({ betaSchedule: 'squaredcos_cap_v2' }), -5.1);
 */
export function clippedTrainTimesteps(
  schedule: DiscreteSchedule,
  lambdaMinClipped: number,
): number {
  if (Number.isNaN(lambdaMinClipped))
    throw new ScheduleError('lambdaMinClipped must be a number, got NaN');
  if (lambdaMinClipped === Number.NEGATIVE_INFINITY) return 0;
  let count = 0;
  for (const a of schedule.alphasCumprod) {
    const lambda = f32(
      f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))),
    );
    if (lambda < lambdaMinClipped) count++;
  }
  return count;
}

function appendFinal(sigmas: Float64Array, last: number): Float64Array {
  const out = new Float64Array(sigmas.length + 1);
  for (let i = 0; i < sigmas.length; i++) out[i] = f32(sigmas[i]!);
  out[sigmas.length] = f32(last);
  return out;
}

/**
 * Karras et al. (2022, eq. 5) noise levels on a ramp r in [0, 1]:
 * sigma = (sigma_max^(1/rho) + r (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
 */
function karrasFromRamp(
  ramp: Float64Array,
  sigmaMin: number,
  sigmaMax: number,
  rho: number,
): Float64Array {
  const minInv = sigmaMin ** (1 / rho);
  const maxInv = sigmaMax ** (1 / rho);
  return ramp.map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/**
 * Beta-distributed sigmas (Lee et al. 2024, "Beta Sampling is All You Need", arXiv 2407.12173; diffusers'
 * `use_beta_sigmas`): sigma_i = sigma_min + F^-1(1 - r_i) (sigma_max - sigma_min) on r = linspace(0, 1, n),
 * F the CDF of Beta(alpha, beta) (default 0.6, 0.6: dense steps at both ends), then 0 appended
 * (n + 1 entries, like `karrasSigmas`).
 *
 * @example
 * betaSigmas(10, 0.03, 14.6)[1]; // 13.91... (F^-1(8/9) = 0.9529...)
 */
export function betaSigmas(
  n: number,
  sigmaMin: number,
  sigmaMax: number,
  alpha = 0.6,
  beta = 0.6,
): Float64Array {
  checkSigmaRange(n, sigmaMin, sigmaMax);
  return appendZero(
    numpyLinspace(0, 1, n).map(
      (r) => sigmaMin + betaQuantile(1 - r, alpha, beta) * (sigmaMax - sigmaMin),
    ),
  );
}

function checkSigmaRange(n: number, sigmaMin: number, sigmaMax: number): void {
  if (!Number.isInteger(n) || n < 1)
    throw new ScheduleError(`n must be a positive integer, got ${n}`);
  if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || !Number.isFinite(sigmaMax)) {
    throw new ScheduleError(
      `need 0 < sigmaMin < sigmaMax < infinity, got sigmaMin = ${sigmaMin}, sigmaMax = ${sigmaMax}`,
    );
  }
}

function appendZero(sigmas: Float64Array): Float64Array {
  const out = new Float64Array(sigmas.length + 1);
  out.set(sigmas);
  return out;
}

/**
 * Karras et al. (2022, eq. 5) sigmas, k-diffusion's `get_sigmas_karras`: n levels from sigma_max down to
 * sigma_min evenly spaced in sigma^(1/rho), then 0 appended (n + 1 entries).
 *
 * @example
 * karrasSigmas(10, 0.002, 80); // [80, 42.415..., ..., 0.002, 0]
 */
export function karrasSigmas(n: number, sigmaMin: number, sigmaMax: number, rho = 7): Float64Array {
  checkSigmaRange(n, sigmaMin, sigmaMax);
  if (!(rho > 0)) throw new ScheduleError(`rho must be > 0, got ${rho}`);
  return appendZero(karrasFromRamp(torchLinspace(0, 1, n), sigmaMin, sigmaMax, rho));
}

/**
 * Sigmas evenly spaced in log sigma (k-diffusion's `get_sigmas_exponential`), 0 appended. In logSNR
 * terms (lambda = -2 log sigma) this is the uniform-logSNR schedule.
 *
 * @example
 * exponentialSigmas(10, 0.002, 80)[0]; // 79.99999999999997
 */
export function exponentialSigmas(n: number, sigmaMin: number, sigmaMax: number): Float64Array {
  checkSigmaRange(n, sigmaMin, sigmaMax);
  return appendZero(torchLinspace(Math.log(sigmaMax), Math.log(sigmaMin), n).map(Math.exp));
}

/**
 * k-diffusion's `get_sigmas_polyexponential`: log sigma = r^rho (log sigma_max - log sigma_min) + log sigma_min
 * on a ramp r from 1 to 0, 0 appended. rho = 1 is `exponentialSigmas`.
 *
 * @example
 * polyexponentialSigmas(10, 0.002, 80, 2);
 */
export function polyexponentialSigmas(
  n: number,
  sigmaMin: number,
  sigmaMax: number,
  rho = 1,
): Float64Array {
  checkSigmaRange(n, sigmaMin, sigmaMax);
  if (!(rho > 0)) throw new ScheduleError(`rho must be > 0, got ${rho}`);
  const lmin = Math.log(sigmaMin);
  const span = Math.log(sigmaMax) - lmin;
  return appendZero(torchLinspace(1, 0, n).map((r) => Math.exp(r ** rho * span + lmin)));
}

/**
 * The VE sigmas of the continuous VP SDE (Song et al. 2021) at t evenly spaced from 1 to eps_s,
 * k-diffusion's `get_sigmas_vp`: sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1), 0 appended.
 * (Computed as exp(.) - 1 like k-diffusion, for parity.)
 *
 * @example
 * vpSigmas(10)[0]; // 152.1669702839464
 */
export function vpSigmas(n: number, betaD = 19.9, betaMin = 0.1, epsS = 1e-3): Float64Array {
  if (!Number.isInteger(n) || n < 1)
    throw new ScheduleError(`n must be a positive integer, got ${n}`);
  if (!(betaD > 0) || !(betaMin >= 0) || !(epsS > 0 && epsS < 1)) {
    throw new ScheduleError(
      `need betaD > 0, betaMin >= 0 and 0 < epsS < 1, got ${betaD}, ${betaMin}, ${epsS}`,
    );
  }
  return appendZero(
    torchLinspace(1, epsS, n).map((t) =>
      Math.sqrt(Math.exp((betaD * t * t) / 2 + betaMin * t) - 1),
    ),
  );
}

/**
 * n logSNR values evenly spaced from `logSNRMin` up to `logSNRMax` (inclusive), in sampling order (noisy to
 * clean): the noise levels of a sampler that takes equal steps in lambda (DPM-Solver's "logSNR" spacing;
 * Lu et al. 2022, sec. 3.3).
 * Map them to a schedule's times with its `tFromLogSNR`, or to VE sigmas with sigma = exp(-lambda/2).
 *
 * @example
 * uniformLogSNR(3, -10, 10); // [-10, 0, 10]
 */
export function uniformLogSNR(n: number, logSNRMin: number, logSNRMax: number): Float64Array {
  if (!Number.isInteger(n) || n < 2) throw new ScheduleError(`n must be an integer >= 2, got ${n}`);
  if (!(logSNRMax > logSNRMin) || !Number.isFinite(logSNRMax) || !Number.isFinite(logSNRMin)) {
    throw new ScheduleError(`need finite logSNRMin < logSNRMax, got ${logSNRMin}, ${logSNRMax}`);
  }
  return numpyLinspace(logSNRMin, logSNRMax, n);
}

/**
 * n times of a continuous schedule, from noisiest to cleanest, equally spaced in logSNR between its
 * endpoints (or the given ones): t_i = schedule.tFromLogSNR(lambda_i). Schedules with lambda(0) = +inf
 * (VP/sub-VP) need an explicit `logSNRMax`.
 *
 * @example
 * uniformLogSNRTimes(createSchedule('cosine'), 5); // [1, 0.75, 0.5, 0.25, 0] (the cosine's logSNR is symmetric)
 */
export function uniformLogSNRTimes(
  schedule: ContinuousSchedule,
  n: number,
  range: { logSNRMin?: number; logSNRMax?: number } = {},
): Float64Array {
  const lo = range.logSNRMin ?? schedule.logSNRMin;
  const hi = range.logSNRMax ?? schedule.logSNRMax;
  if (!Number.isFinite(hi)) {
    throw new ScheduleError(`${schedule.name} has logSNR(0) = ${hi}; pass a finite logSNRMax`);
  }
  return uniformLogSNR(n, lo, hi).map((l) => schedule.tFromLogSNR(l));
}

/**
 * Checks user-given timesteps: finite, inside [0, T-1], strictly decreasing (and integers when asked).
 * Returns a Float64Array copy.
 *
 * @example
 * validateTimesteps([999, 500, 0], 1000); // ok
 * validateTimesteps([500, 999], 1000);    // ScheduleError: not strictly decreasing
 */
export function validateTimesteps(
  timesteps: ArrayLike<number>,
  numTrainTimesteps: number,
  options: { integer?: boolean } = {},
): Float64Array {
  const ts = Float64Array.from(timesteps);
  if (ts.length === 0) throw new ScheduleError('timesteps must not be empty');
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    if (!(t >= 0 && t <= numTrainTimesteps - 1)) {
      throw new ScheduleError(`timesteps[${i}] = ${t} is outside [0, ${numTrainTimesteps - 1}]`);
    }
    if (options.integer && !Number.isInteger(t))
      throw new ScheduleError(`timesteps[${i}] = ${t} is not an integer`);
    if (i > 0 && !(t < ts[i - 1]!)) {
      throw new ScheduleError(
        `timesteps must be strictly decreasing, but timesteps[${i}] = ${t} follows ${ts[i - 1]}`,
      );
    }
  }
  return ts;
}

/**
 * Checks user-given VE sigmas: finite, positive, strictly decreasing; with `allowFinalZero` (default
 * true) the last entry may be 0, as in k-diffusion's schedules. Returns a Float64Array copy.
 *
 * @example
 * validateSigmas([80, 1, 0.002, 0]); // ok
 * validateSigmas([1, 2, 0]);         // ScheduleError: not strictly decreasing
 */
export function validateSigmas(
  sigmas: ArrayLike<number>,
  options: { allowFinalZero?: boolean } = {},
): Float64Array {
  const allowZero = options.allowFinalZero ?? true;
  const s = Float64Array.from(sigmas);
  if (s.length === 0) throw new ScheduleError('sigmas must not be empty');
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!;
    const last = i === s.length - 1;
    if (!Number.isFinite(v) || v < 0 || (v === 0 && !(last && allowZero))) {
      throw new ScheduleError(
        `sigmas[${i}] = ${v} must be finite and > 0${allowZero ? ' (only the last may be 0)' : ''}`,
      );
    }
    if (i > 0 && !(v < s[i - 1]!)) {
      throw new ScheduleError(
        `sigmas must be strictly decreasing, but sigmas[${i}] = ${v} follows ${s[i - 1]}`,
      );
    }
  }
  return s;
}
