/**
 * What each diffusers scheduler class means in terms of the one set of sampler programs: its config
 * keys and defaults (diffusers 0.3x), how `set_timesteps` spaces the levels (from `@diffuse/schedules`),
 * which registered sampler runs the math, and with which options. No step math lives here.
 */
import {
  type DiffusersSigmaSpacing,
  DiscreteSchedule,
  diffusersSetTimesteps,
  exponentialSigmas,
  interp,
  karrasSigmas,
  numpyArange,
  numpyLinspace,
  type Prediction,
  predictionFromDiffusers,
  respaceSigmas,
  roundHalfEven,
  type TimestepSpacing,
} from '@diffuse/schedules';
import { SamplerError, SchedulerConfigError } from '../errors.js';
import type { SchedulerClassName } from '../names.js';
import type { SamplerOptions } from '../types.js';
import { pndmTimesteps } from './pndm.js';
import { SIGNATURES } from './signatures.js';

/** A resolved diffusers config: snake_case keys as in `scheduler_config.json`. */
export type DiffusersConfig = Record<string, unknown>;

/**
 * Overrides for `fromConfig` / `resolveDiffusersConfig`: any config keys, with `_class_name` typed so a
 * misspelled class fails to compile.
 *
 * @example
 * const overrides: SchedulerConfigOverrides = { _class_name: 'UniPCMultistepScheduler', solver_order: 2 };
 */
export type SchedulerConfigOverrides = DiffusersConfig & { _class_name?: SchedulerClassName };

/** Everything the adapter needs after `set_timesteps(n)`. */
export interface ClassPlan {
  /** Timestep of every model call, in order (`scheduler.timesteps`). */
  timesteps: number[];
  /** VE sigma of every model call (aligned with `timesteps`). */
  modelSigmas: number[];
  /** The sampler's chain of VE sigmas (steps + 1). */
  sigmas: number[];
  /**
   * Single-step classes whose step k goes from stepSigmas[k][0] to stepSigmas[k][1] (not necessarily
   * the next model call's level, as in diffusers' DDIM): each `step` runs a fresh one-step program.
   */
  stepSigmas?: [number, number][];
  /** PNDMScheduler: `step` is diffusers' own PNDM step (./pndm.ts); its first prkCalls calls are PRK. */
  diffusersPndm?: { prkCalls: number; finalAlphaOne: boolean };
  /** Exact (alpha, sigma) for levels of the table (VP classes); others use the VP or VE embedding. */
  exactLevels: Map<number, { alpha: number; sigma: number }>;
  sampler: string;
  options: SamplerOptions;
  initNoiseSigma: number;
}

export interface ClassSpec {
  /** Every accepted config key with its diffusers default (diffusers' `__init__` signature). */
  defaults: DiffusersConfig;
  /** The model's prediction when the class has no `prediction_type` key. */
  prediction?: Prediction;
  /** Keys accepted only at these values (others would change the math in ways not implemented here). */
  only?: Record<string, readonly unknown[]>;
  /** Sample convention: VP-scaled (DDIM-like) or VE-scaled (Euler-like, EDM). */
  scaling: 'vp' | 've';
  /** The denoiser-level embedding of VE sigmas: diffusers' VP tables, or EDM's VE. */
  embedding: 'vp' | 've';
  /** EDM classes: the model is preconditioned (c_in input, c_skip / c_out output, sigma_data). */
  edm?: boolean;
  /** diffusers' step of this class ignores `clip_sample` (it takes the key but never clips). */
  noClip?: boolean;
  /**
   * diffusers draws this class's step noise from a Brownian tree: the default noise (no `noise` given
   * to `step`) comes from `brownianNoise`, the same distribution.
   */
  brownian?: boolean;
  /** The class's own alphas_cumprod table (default: `DiscreteSchedule.fromConfig` of the beta keys). */
  schedule?(cfg: DiffusersConfig): DiscreteSchedule;
  /** Builds the plan for n steps; `stepOptions` are the first `step()` call's extra arguments. */
  plan(
    cfg: DiffusersConfig,
    schedule: DiscreteSchedule | null,
    n: number,
    stepOptions: Record<string, unknown>,
  ): ClassPlan;
}

const SCHEDULE_KEYS: DiffusersConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

const SIGMA_KEYS: DiffusersConfig = {
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  final_sigmas_type: 'zero',
};

const THRESHOLD_KEYS: DiffusersConfig = {
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
};

const num = (cfg: DiffusersConfig, k: string) => cfg[k] as number;
const str = (cfg: DiffusersConfig, k: string) => cfg[k] as string;
const bool = (cfg: DiffusersConfig, k: string) => cfg[k] as boolean;

/** The prediction type of the model, as ours. */
export function predictionOf(cfg: DiffusersConfig, fallback: Prediction = 'epsilon'): Prediction {
  if (cfg.prediction_type === undefined) return fallback;
  try {
    return predictionFromDiffusers(str(cfg, 'prediction_type'));
  } catch (e) {
    throw new SchedulerConfigError((e as Error).message);
  }
}

/**
 * The VE sigma that stands for the level alpha = 0 of a zero-terminal-SNR table (`rescale_betas_zero_snr`,
 * Lin et al. 2024) in the DDIM / DDPM / LCM chains: sigma = infinity itself cannot be stepped from, but
 * the ancestral step D + (sigma_down / sigma)(x - D) from this sigma is diffusers' step from alpha = 0
 * to float32 accuracy (x / sigma is the VP sample, the noise); the model's output is still converted
 * at the exact level (alpha 0, sigma 1), as diffusers does.
 */
export const ZERO_SNR_VE_SIGMA = 2 ** 40;

/** sqrt((1 - abar)/abar) of the table entry t (float64 from the float32 table) and its exact level. */
function tableLevel(
  schedule: DiscreteSchedule,
  t: number,
  exact: ClassPlan['exactLevels'],
): number {
  const l = schedule.levelAtIndex(t);
  const s = l.alpha === 0 ? ZERO_SNR_VE_SIGMA : l.sigma / l.alpha;
  exact.set(s, l);
  return s;
}

/** DDIM-family chain: the table levels at the timesteps, then the level of t_last - floor(T/n). */
function ddimChain(
  cfg: DiffusersConfig,
  schedule: DiscreteSchedule,
  n: number,
  finalAlphaOne: boolean,
) {
  const { timesteps } = diffusersSetTimesteps(schedule, {
    family: 'ddim',
    numInferenceSteps: n,
    spacing: str(cfg, 'timestep_spacing') as TimestepSpacing,
    stepsOffset: num(cfg, 'steps_offset'),
  });
  const exact: ClassPlan['exactLevels'] = new Map();
  const ts = Array.from(timesteps);
  const sigmas = ts.map((t) => tableLevel(schedule, t, exact));
  const prev = ts[ts.length - 1]! - Math.floor(schedule.numTrainTimesteps / n);
  sigmas.push(
    prev >= 0
      ? tableLevel(schedule, prev, exact)
      : finalAlphaOne
        ? 0
        : tableLevel(schedule, 0, exact),
  );
  return { ts, sigmas, exact };
}

/** Which of diffusers' sigma respacings the config asks for (`use_*_sigmas`, `use_lu_lambdas`). */
function sigmaSpacingOf(cfg: DiffusersConfig): DiffusersSigmaSpacing | undefined {
  if (cfg.use_karras_sigmas === true) return 'karras';
  if (cfg.use_lu_lambdas === true) return 'lu';
  if (cfg.use_exponential_sigmas === true) return 'exponential';
  if (cfg.use_beta_sigmas === true) return 'beta';
  return undefined;
}

/**
 * Euler / DPMSolver-family chain from `diffusersSetTimesteps`: timesteps and the sampler's sigmas
 * (`interpolation_type: 'log_linear'`: diffusers' n + 1 levels; its appended final sigma is never
 * reached, so the chain stops at the table's smallest sigma).
 */
function sigmaChain(
  cfg: DiffusersConfig,
  schedule: DiscreteSchedule,
  n: number,
  family: 'euler' | 'dpmsolver',
  finalType?: string,
) {
  const spacing = sigmaSpacingOf(cfg);
  // DPMSolverMultistep rounds its Karras / Lu timesteps except on the cosine table (astype(int64))
  const trunc =
    family === 'dpmsolver' &&
    'use_lu_lambdas' in cfg &&
    cfg.beta_schedule === 'squaredcos_cap_v2' &&
    (spacing === 'karras' || spacing === 'lu');
  const r = diffusersSetTimesteps(schedule, {
    family,
    numInferenceSteps: n,
    // DPMSolverSinglestep has no timestep_spacing key: it always spaces linearly
    spacing: (cfg.timestep_spacing ?? 'linspace') as TimestepSpacing,
    stepsOffset: num(cfg, 'steps_offset'),
    ...(spacing ? { sigmaSpacing: spacing } : {}),
    ...(trunc ? { timestepRounding: 'trunc' as const } : {}),
    // explicit ends of the respaced sigmas (Euler family, UniPC: the classes with the keys)
    sigmaMin: (cfg.sigma_min as number | null | undefined) ?? null,
    sigmaMax: (cfg.sigma_max as number | null | undefined) ?? null,
    ...(family === 'euler'
      ? { interpolation: (cfg.interpolation_type ?? 'linear') as 'linear' | 'log_linear' }
      : {}),
    // classes without the key (Heun, LMS, KDPM2) end at 0
    finalSigmasType: (finalType ?? cfg.final_sigmas_type ?? 'zero') as 'zero' | 'sigma_min',
    ...(family === 'dpmsolver' && typeof cfg.lambda_min_clipped === 'number'
      ? { lambdaMinClipped: num(cfg, 'lambda_min_clipped') }
      : {}),
  });
  const sigmas = Array.from(r.sigmas!);
  return { ts: Array.from(r.timesteps), sigmas: sigmas.slice(0, r.timesteps.length + 1) };
}

const eulerInitSigma = (cfg: DiffusersConfig, sigmas: number[]) => {
  const max = Math.max(...sigmas);
  return ['linspace', 'trailing'].includes(str(cfg, 'timestep_spacing'))
    ? max
    : Math.sqrt(max * max + 1);
};

const euler = (
  sampler: string,
  extra: DiffusersConfig = {},
  options: (cfg: DiffusersConfig, step: Record<string, unknown>) => SamplerOptions = () => ({}),
): ClassSpec => ({
  defaults: {
    ...SCHEDULE_KEYS,
    ...SIGMA_KEYS,
    timestep_spacing: 'linspace',
    interpolation_type: 'linear',
    timestep_type: 'discrete',
    sigma_min: null,
    sigma_max: null,
    ...extra,
  },
  only: {
    interpolation_type: ['linear', 'log_linear'],
    timestep_type: ['discrete', 'continuous'],
    sigma_min: [],
    sigma_max: [],
  },
  scaling: 've',
  embedding: 'vp',
  plan(cfg, schedule, n, step) {
    const { ts: spaced, sigmas } = sigmaChain(cfg, schedule!, n, 'euler');
    // diffusers: continuous timesteps c_noise = sigma.log() / 4 (float32) with v-prediction (SVD)
    const continuous = cfg.timestep_type === 'continuous' && cfg.prediction_type === 'v_prediction';
    const ts = continuous
      ? sigmas.slice(0, -1).map((x) => Math.fround(0.25 * Math.fround(Math.log(x))))
      : spaced;
    return {
      timesteps: ts,
      modelSigmas: sigmas.slice(0, -1),
      sigmas,
      exactLevels: new Map(),
      sampler,
      options: options(cfg, step),
      initNoiseSigma: eulerInitSigma(cfg, sigmas),
    };
  },
});

/** Interleaves each step's second model call (Heun: at sigma_{i+1}; KDPM2: at the midpoint). */
function twoStage(
  cfg: DiffusersConfig,
  schedule: DiscreteSchedule,
  n: number,
  second: (i: number, sigmas: number[]) => number,
) {
  const { ts, sigmas } = sigmaChain(cfg, schedule, n, 'euler');
  const timesteps: number[] = [];
  const modelSigmas: number[] = [];
  for (let i = 0; i < n; i++) {
    timesteps.push(ts[i]!);
    modelSigmas.push(sigmas[i]!);
    if (sigmas[i + 1]! > 0) {
      const s = second(i, sigmas);
      modelSigmas.push(s);
      timesteps.push(Math.fround(schedule.timestepFromSigma(s)));
    }
  }
  return { timesteps, modelSigmas, sigmas, ts };
}

const geometric = (a: number, b: number) => Math.exp(0.5 * (Math.log(a) + Math.log(b)));

const dpmsolverKeys: DiffusersConfig = {
  ...SCHEDULE_KEYS,
  ...SIGMA_KEYS,
  ...THRESHOLD_KEYS,
  timestep_spacing: 'linspace',
  solver_order: 2,
  lower_order_final: true,
  use_lu_lambdas: false,
  use_flow_sigmas: false,
  flow_shift: 1.0,
  lambda_min_clipped: Number.NEGATIVE_INFINITY,
  variance_type: null,
  use_dynamic_shifting: false,
  time_shift_type: 'exponential',
  sigma_min: null,
  sigma_max: null,
  shift_terminal: null,
};
const dpmsolverOnly: Record<string, readonly unknown[]> = {
  // DPM-Solver needs the mean only: a learned variance's extra channels are dropped (see step)
  variance_type: [
    null,
    'fixed_small',
    'fixed_small_log',
    'fixed_large',
    'fixed_large_log',
    'learned',
    'learned_range',
  ],
  solver_order: [1, 2, 3],
  shift_terminal: [null],
};

function dpmsolverPlan(
  cfg: DiffusersConfig,
  schedule: DiscreteSchedule,
  n: number,
  sampler: string,
  options: SamplerOptions,
  finalType?: string,
): ClassPlan {
  if (cfg.use_flow_sigmas === true) return flowSigmasPlan(cfg, schedule, n, sampler, options);
  const { ts, sigmas } = sigmaChain(cfg, schedule, n, 'dpmsolver', finalType);
  return {
    timesteps: ts,
    modelSigmas: sigmas.slice(0, -1),
    sigmas,
    exactLevels: new Map(),
    sampler,
    options,
    initNoiseSigma: 1,
  };
}

/** The `mu` of `setTimesteps` travels to the plan under this key of the config copy. */
export const MU_KEY = '__mu';

/**
 * diffusers' `use_flow_sigmas` (DPMSolverMultistep / Singlestep, UniPCMultistep, DEIS; Sana, Wan): flow-matching levels
 * alpha = 1 - s, sigma = s with s = flow_shift u / (1 + (flow_shift - 1) u) on u = linspace(1, 1/T, n + 1)
 * (UniPC: the first n, with dynamic shifting by mu, `shift_terminal`, and s_0 = 1 - 1e-6), timesteps
 * int(s T). The solver runs on their VE view s / (1 - s); DPM-Solver and UniPC are exponential
 * integrators in lambda, so they are the same there.
 */
function flowSigmasPlan(
  cfg: DiffusersConfig,
  schedule: DiscreteSchedule,
  n: number,
  sampler: string,
  options: SamplerOptions,
): ClassPlan {
  const T = num(cfg, 'num_train_timesteps');
  const unipc = sampler === 'unipc';
  const mu = cfg[MU_KEY] as number | undefined;
  const linspace = (a: number, b: number, k: number) =>
    Array.from({ length: k }, (_, i) => (i === k - 1 ? b : a + (i * (b - a)) / (k - 1)));
  const shiftOf = (shift: number) => (u: number) => (shift * u) / (1 + (shift - 1) * u);
  let s: number[];
  if (unipc) {
    s = linspace(1, 1 / T, n + 1).slice(0, -1);
    if (cfg.use_dynamic_shifting === true) {
      const m = mu as number;
      s =
        cfg.time_shift_type === 'linear'
          ? s.map((t) => m / (m + (1 / t - 1)))
          : s.map((t) => Math.exp(m) / (Math.exp(m) + (1 / t - 1)));
    } else s = s.map(shiftOf(num(cfg, 'flow_shift')));
    const terminal = cfg.shift_terminal as number | null;
    if (terminal) {
      const scale = (1 - s[s.length - 1]!) / (1 - terminal);
      s = s.map((t) => 1 - (1 - t) / scale);
    }
    if (Math.abs(s[0]! - 1) < 1e-6) s[0] = s[0]! - 1e-6;
  } else {
    const shift = mu !== undefined ? Math.exp(mu) : num(cfg, 'flow_shift');
    s = linspace(1, 1 / T, n + 1)
      .map((a) => 1 - a)
      .map(shiftOf(shift))
      .reverse()
      .slice(0, -1);
  }
  const timesteps = s.map((v) => Math.trunc(v * T));
  // UniPC (final_sigmas_type 'sigma_min') and DEIS (always) repeat the last flow sigma
  const last =
    cfg.final_sigmas_type === 'zero'
      ? 0
      : unipc || sampler === 'deis'
        ? s[s.length - 1]!
        : (() => {
            const a = schedule.alphasCumprod[0]!;
            return Math.sqrt((1 - a) / a);
          })();
  const exact: ClassPlan['exactLevels'] = new Map();
  const sigmas = [...s, last].map((v) => {
    const f = Math.fround(v);
    if (f === 0) return 0;
    const ve = f / (1 - f);
    exact.set(ve, { alpha: 1 - f, sigma: f });
    return ve;
  });
  return {
    timesteps,
    modelSigmas: sigmas.slice(0, -1),
    sigmas,
    exactLevels: exact,
    sampler,
    options,
    initNoiseSigma: 1,
  };
}

const ALGORITHMS: Record<string, { prediction: 'x0' | 'epsilon'; eta: number }> = {
  'dpmsolver++': { prediction: 'x0', eta: 0 },
  'sde-dpmsolver++': { prediction: 'x0', eta: 1 },
  dpmsolver: { prediction: 'epsilon', eta: 0 },
  'sde-dpmsolver': { prediction: 'epsilon', eta: 1 },
};

/**
 * EDM's `set_timesteps` (EDMEulerScheduler, EDMDPMSolverMultistepScheduler): Karras (rho) or
 * log-uniform sigmas between sigma_max and sigma_min in float32, timesteps c_noise = ln(sigma) / 4, then 0.
 */
function edmSigmas(cfg: DiffusersConfig, n: number) {
  const lo = num(cfg, 'sigma_min');
  const hi = num(cfg, 'sigma_max');
  const base =
    str(cfg, 'sigma_schedule') === 'karras'
      ? karrasSigmas(n, lo, hi, num(cfg, 'rho'))
      : exponentialSigmas(n, lo, hi);
  const sigmas = Array.from(base).map(Math.fround);
  // final_sigmas_type 'sigma_min' ends on sigma_min itself: a last step of length zero after a Karras
  // or exponential schedule that already reached it (diffusers appends it all the same)
  if (cfg.final_sigmas_type === 'sigma_min') sigmas[sigmas.length - 1] = Math.fround(lo);
  const modelSigmas = sigmas.slice(0, -1);
  return {
    timesteps: modelSigmas.map((s) => Math.fround(0.25 * Math.log(s))),
    modelSigmas,
    sigmas,
  };
}

/**
 * `set_timesteps` of the consistency-distilled classes (diffusers' LCMScheduler and TCDScheduler, the same
 * code): every k-th training step of the distillation schedule (k = T // original_inference_steps),
 * n of them picked by floor(linspace(0, len, n, endpoint=False)). Too many steps is diffusers' error.
 */
function distillationTimesteps(
  cfg: DiffusersConfig,
  s: DiscreteSchedule,
  n: number,
  className: string,
): number[] {
  const T = s.numTrainTimesteps;
  const orig = num(cfg, 'original_inference_steps');
  if (orig > T)
    throw new SchedulerConfigError(
      `${className}: original_inference_steps (${orig}) is larger than num_train_timesteps (${T})`,
    );
  if (n > orig)
    throw new SchedulerConfigError(
      `${className}: ${n} steps is more than original_inference_steps (${orig}); the schedule is a subset of it`,
    );
  const k = Math.floor(T / orig);
  const origin = Array.from({ length: orig }, (_, i) => (orig - i) * k - 1);
  const step = orig / n; // numpy: arange(n) * step, floored
  return Array.from({ length: n }, (_, i) => origin[Math.floor(i * step)]!);
}

/**
 * `CosineDPMSolverMultistepScheduler.set_timesteps`' sigmas in PyTorch's float32 arithmetic: Karras
 * (max^(1/rho) + r (min^(1/rho) - max^(1/rho)))^rho on r = torch.linspace(0, 1, n), or exponential
 * exp(torch.linspace(log min, log max, n)) reversed (so n = 1 gives sigma_min, not sigma_max).
 */
function cosineSigmas(cfg: DiffusersConfig, n: number): number[] {
  const f = Math.fround;
  const lo = num(cfg, 'sigma_min');
  const hi = num(cfg, 'sigma_max');
  if (str(cfg, 'sigma_schedule') === 'karras') {
    const rho = num(cfg, 'rho');
    const [minInv, maxInv] = [lo ** (1 / rho), hi ** (1 / rho)];
    return torchLinspace32(0, 1, n).map((r) =>
      f(f(f(maxInv) + f(r * f(minInv - maxInv))) ** f(rho)),
    );
  }
  return torchLinspace32(f(Math.log(lo)), f(Math.log(hi)), n)
    .map((v) => f(Math.exp(v)))
    .reverse();
}

/**
 * CogVideoX's alphas_cumprod (scheduling_ddim_cogvideox.py): the beta table's cumulative product with
 * its SNR divided by `snr_shift_scale`, abar / (s + (1 - s) abar). `scaled_linear` betas are float64
 * there (torch.linspace(sqrt(start), sqrt(end), T, float64) ** 2, the product in float64); the other
 * tables are diffusers' float32 ones, shifted in float32.
 */
function cogvideoxSchedule(cfg: DiffusersConfig): DiscreteSchedule {
  const T = num(cfg, 'num_train_timesteps');
  const shift = num(cfg, 'snr_shift_scale');
  let ac: number[];
  if (cfg.trained_betas == null && cfg.beta_schedule === 'scaled_linear') {
    const [a, b] = [Math.sqrt(num(cfg, 'beta_start')), Math.sqrt(num(cfg, 'beta_end'))];
    const step = (b - a) / (T - 1);
    const half = Math.floor(T / 2);
    let p = 1;
    ac = Array.from({ length: T }, (_, i) => {
      const x = i < half ? a + step * i : b - step * (T - 1 - i);
      p *= 1 - x * x;
      return p;
    }).map((v) => v / (shift + (1 - shift) * v));
    if (cfg.rescale_betas_zero_snr === true) ac = rescaleZeroSnrAlphasCumprod(ac, (v) => v);
  } else {
    const f = Math.fround;
    const base = DiscreteSchedule.fromConfig({
      numTrainTimesteps: T,
      betaSchedule: cfg.beta_schedule as 'linear',
      betaStart: num(cfg, 'beta_start'),
      betaEnd: num(cfg, 'beta_end'),
      trainedBetas: (cfg.trained_betas as number[] | null) ?? null,
    }).alphasCumprod;
    ac = Array.from(base, (v) => f(v / f(f(shift) + f(f(1 - shift) * v))));
    if (cfg.rescale_betas_zero_snr === true) ac = rescaleZeroSnrAlphasCumprod(ac, f);
  }
  return DiscreteSchedule.fromAlphasCumprod(ac);
}

/**
 * CogVideoX's `rescale_zero_terminal_snr(alphas_cumprod)` (Lin et al. 2024, Algorithm 1, on the table
 * itself): sqrt(abar) shifted so its last entry is 0 and scaled so its first is unchanged, squared; each
 * operation rounded by `round` (float32 tables) or not (float64).
 */
function rescaleZeroSnrAlphasCumprod(ac: number[], round: (v: number) => number): number[] {
  const r = ac.map((v) => round(Math.sqrt(v)));
  const [first, last] = [r[0]!, r[r.length - 1]!];
  const scale = round(first / round(first - last));
  return r.map((v) => {
    const w = round(round(v - last) * scale);
    return round(w * w);
  });
}

/**
 * diffusers' `_sigma_to_t` as `DPMSolverSDEScheduler` evaluates it: a float64 sigma against the float32
 * log-sigma table, the weight (low - log sigma) / (low - high) with a float32 denominator, in float64.
 */
function sigmaToTFloat64(schedule: DiscreteSchedule, sigma: number): number {
  const ls = schedule.logSigmasFloat32;
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < ls.length; i++) if (logSigma - ls[i]! >= 0) low = i;
  low = Math.min(low, ls.length - 2);
  const w = Math.min(1, Math.max(0, (ls[low]! - logSigma) / Math.fround(ls[low]! - ls[low + 1]!)));
  return (1 - w) * low + w * (low + 1);
}

/**
 * `DPMSolverSDEScheduler.set_timesteps` (scheduling_dpmsolver_sde.py): float64 timesteps (numpy; kept
 * fractional under `linspace`), sigmas by `np.interp` of the float32 table (or Karras between its ends,
 * timesteps then from `_sigma_to_t`), and each step's midpoint sigma exp(-(t + (t' - t) / 2)),
 * t = -log sigma, whose timestep is the step's second call.
 */
function sdeSetTimesteps(cfg: DiffusersConfig, s: DiscreteSchedule, n: number) {
  const T = s.numTrainTimesteps;
  const spacing = str(cfg, 'timestep_spacing');
  let ts: number[];
  if (spacing === 'linspace') ts = Array.from(numpyLinspace(0, T - 1, n)).reverse();
  else if (spacing === 'leading') {
    const ratio = Math.floor(T / n);
    ts = Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + num(cfg, 'steps_offset'));
  } else ts = Array.from(numpyArange(T, 0, -T / n), (t) => roundHalfEven(t) - 1);
  const index = Array.from({ length: T }, (_, i) => i);
  let sig = ts.map((t) => interp(t, index, s.sigmas));
  if (cfg.use_karras_sigmas === true) {
    const k = sig.length;
    const [minInv, maxInv] = [sig[k - 1]! ** (1 / 7), sig[0]! ** (1 / 7)];
    sig = Array.from(numpyLinspace(0, 1, k), (r) => (maxInv + r * (minInv - maxInv)) ** 7);
    ts = sig.map((x) => sigmaToTFloat64(s, x));
  } else if (cfg.use_exponential_sigmas === true || cfg.use_beta_sigmas === true) {
    const spacing = cfg.use_beta_sigmas === true ? 'beta' : 'exponential';
    sig = Array.from(respaceSigmas(spacing, sig.length, sig[sig.length - 1]!, sig[0]!));
    ts = sig.map((x) => sigmaToTFloat64(s, x));
  }
  const tOf = sig.map((x) => -Math.log(x));
  const midTs = sig
    .slice(0, -1)
    .map((_, i) => sigmaToTFloat64(s, Math.exp(-(tOf[i]! + (tOf[i + 1]! - tOf[i]!) * 0.5))));
  return { ts, midTs, sigmas: [...sig.map(Math.fround), 0] };
}

/** Every supported `_class_name`. */
export const CLASSES: Record<string, ClassSpec> = {
  DDIMScheduler: {
    defaults: {
      ...SCHEDULE_KEYS,
      ...THRESHOLD_KEYS,
      clip_sample: true,
      set_alpha_to_one: true,
      clip_sample_range: 1.0,
    },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n, step) {
      const s = schedule!;
      const alphaOne = bool(cfg, 'set_alpha_to_one');
      const { ts, sigmas, exact } = ddimChain(cfg, s, n, alphaOne);
      // diffusers' DDIM steps from t to t - T // n whatever the spacing (DDIMScheduler.step), and reads
      // the sample it is given at the next timestep's level: one single-step run per call.
      const ratio = Math.floor(s.numTrainTimesteps / n);
      const stepSigmas = ts.map((t, i): [number, number] => {
        const prev = t - ratio;
        return [
          sigmas[i]!,
          prev >= 0 ? tableLevel(s, prev, exact) : alphaOne ? 0 : tableLevel(s, 0, exact),
        ];
      });
      return {
        timesteps: ts,
        modelSigmas: sigmas.slice(0, -1),
        sigmas,
        stepSigmas,
        exactLevels: exact,
        sampler: 'ddim',
        options: { eta: (step.eta as number) ?? 0 },
        initNoiseSigma: 1,
      };
    },
  },
  DDPMScheduler: {
    defaults: {
      ...SCHEDULE_KEYS,
      ...THRESHOLD_KEYS,
      variance_type: 'fixed_small',
      clip_sample: true,
      clip_sample_range: 1.0,
    },
    only: {
      variance_type: [
        'fixed_small',
        'fixed_small_log',
        'fixed_large',
        'fixed_large_log',
        'learned',
        'learned_range',
      ],
    },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      const { ts, sigmas, exact } = ddimChain(cfg, schedule!, n, true);
      const variance = str(cfg, 'variance_type').startsWith('fixed_large')
        ? 'fixed_large'
        : 'fixed_small';
      return {
        timesteps: ts,
        modelSigmas: sigmas.slice(0, -1),
        sigmas,
        exactLevels: exact,
        sampler: 'ddpm',
        options: { variance, lastStepNoise: ts[ts.length - 1]! > 0 },
        initNoiseSigma: 1,
      };
    },
  },
  PNDMScheduler: {
    defaults: { ...SCHEDULE_KEYS, skip_prk_steps: false, set_alpha_to_one: false },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      const s = schedule!;
      const alphaOne = bool(cfg, 'set_alpha_to_one');
      const { ts, sigmas, exact } = ddimChain(cfg, s, n, alphaOne);
      const skip = bool(cfg, 'skip_prk_steps');
      // diffusers' PNDM steps between its own levels (see ./pndm.ts): the adapter runs its step.
      const timesteps = pndmTimesteps(ts, s.numTrainTimesteps, skip);
      return {
        timesteps,
        modelSigmas: timesteps.map((t) => tableLevel(s, t, exact)),
        sigmas,
        exactLevels: exact,
        sampler: 'pndm',
        options: { prk: !skip },
        initNoiseSigma: 1,
        diffusersPndm: { prkCalls: skip ? 0 : 12, finalAlphaOne: alphaOne },
      };
    },
  },
  EulerDiscreteScheduler: euler('euler'),
  EulerAncestralDiscreteScheduler: euler('euler_ancestral'),
  LMSDiscreteScheduler: euler('lms', {}, (_cfg, step) => ({ order: (step.order as number) ?? 4 })),
  HeunDiscreteScheduler: {
    ...euler('heun', { clip_sample: false, clip_sample_range: 1.0 }),
    plan(cfg, schedule, n) {
      const { timesteps, modelSigmas, sigmas } = twoStage(cfg, schedule!, n, (i, s) => s[i + 1]!);
      // Heun's second call reuses the next timestep exactly.
      const { ts } = sigmaChain(cfg, schedule!, n, 'euler');
      let k = 0;
      for (let i = 0; i < n; i++) {
        timesteps[k++] = ts[i]!;
        if (sigmas[i + 1]! > 0) timesteps[k++] = ts[i + 1]!;
      }
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'heun',
        options: {},
        initNoiseSigma: eulerInitSigma(cfg, sigmas),
      };
    },
  },
  KDPM2DiscreteScheduler: {
    ...euler('dpm_2'),
    plan(cfg, schedule, n) {
      const { timesteps, modelSigmas, sigmas } = twoStage(cfg, schedule!, n, (i, s) =>
        geometric(s[i]!, s[i + 1]!),
      );
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'dpm_2',
        options: { midpoint: 'geometric' },
        initNoiseSigma: eulerInitSigma(cfg, sigmas),
      };
    },
  },
  KDPM2AncestralDiscreteScheduler: {
    ...euler('dpm_2_ancestral'),
    plan(cfg, schedule, n) {
      const down = (i: number, s: number[]) => {
        const a = s[i]!;
        const b = s[i + 1]!;
        const up = Math.sqrt((b * b * (a * a - b * b)) / (a * a));
        return Math.sqrt(Math.max(0, b * b - up * up));
      };
      const { timesteps, modelSigmas, sigmas } = twoStage(cfg, schedule!, n, (i, s) =>
        geometric(s[i]!, down(i, s)),
      );
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'dpm_2_ancestral',
        options: { midpoint: 'geometric' },
        initNoiseSigma: eulerInitSigma(cfg, sigmas),
      };
    },
  },
  DPMSolverSDEScheduler: {
    defaults: {},
    only: {
      prediction_type: ['epsilon', 'v_prediction'],
      timestep_spacing: ['linspace', 'leading', 'trailing'],
    },
    scaling: 've',
    embedding: 'vp',
    brownian: true,
    plan(cfg, schedule, n) {
      // k-diffusion's DPM-Solver++ SDE (r = 1/2, eta 1), the `dpmpp_sde` program: each step's first
      // call is at sigma_i, its second at the midpoint exp(-(t_i + h / 2)); diffusers draws the noise
      // of both stages from a torchsde Brownian tree, here it is the step's `noise` (or the seeded
      // Brownian path of `brownianNoise`, the same distribution).
      const { ts, midTs, sigmas } = sdeSetTimesteps(cfg, schedule!, n);
      const timesteps: number[] = [];
      const modelSigmas: number[] = [];
      for (let i = 0; i + 1 < sigmas.length; i++) {
        timesteps.push(ts[i]!);
        modelSigmas.push(sigmas[i]!);
        if (sigmas[i + 1]! > 0) {
          // the program's intermediate level, from the float32 chain
          const t = -Math.log(sigmas[i]!);
          modelSigmas.push(Math.exp(-(t + (-Math.log(sigmas[i + 1]!) - t) * 0.5)));
          timesteps.push(midTs[i]!);
        }
      }
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'dpmpp_sde',
        options: { eta: 1, sNoise: 1, r: 0.5 },
        initNoiseSigma: eulerInitSigma(cfg, sigmas),
      };
    },
  },
  DPMSolverMultistepScheduler: {
    defaults: {
      ...dpmsolverKeys,
      algorithm_type: 'dpmsolver++',
      solver_type: 'midpoint',
      euler_at_final: false,
    },
    only: {
      ...dpmsolverOnly,
      algorithm_type: Object.keys(ALGORITHMS),
      solver_type: ['midpoint', 'heun'],
    },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      const a = ALGORITHMS[str(cfg, 'algorithm_type')]!;
      return dpmsolverPlan(cfg, schedule!, n, 'dpmpp_2m', {
        order: num(cfg, 'solver_order'),
        prediction: a.prediction,
        eta: a.eta,
        solverType: str(cfg, 'solver_type'),
        lowerOrderFinal: bool(cfg, 'lower_order_final'),
        eulerAtFinal: bool(cfg, 'euler_at_final'),
      });
    },
  },
  DPMSolverSinglestepScheduler: {
    defaults: { ...dpmsolverKeys, algorithm_type: 'dpmsolver++', solver_type: 'midpoint' },
    only: {
      ...dpmsolverOnly,
      algorithm_type: ['dpmsolver++', 'dpmsolver'],
      solver_type: ['midpoint', 'heun'],
    },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      // diffusers' set_timesteps turns lower_order_final on (with a warning) for a step count that is
      // not a multiple of the order, and for final_sigmas_type 'zero'
      const order = num(cfg, 'solver_order');
      return dpmsolverPlan(cfg, schedule!, n, 'dpm_solver_singlestep', {
        order,
        prediction: ALGORITHMS[str(cfg, 'algorithm_type')]!.prediction,
        solverType: str(cfg, 'solver_type'),
        lowerOrderFinal:
          bool(cfg, 'lower_order_final') || n % order !== 0 || cfg.final_sigmas_type === 'zero',
      });
    },
  },
  UniPCMultistepScheduler: {
    defaults: {
      ...dpmsolverKeys,
      predict_x0: true,
      solver_type: 'bh2',
      disable_corrector: [],
      solver_p: null,
    },
    only: {
      ...dpmsolverOnly,
      shift_terminal: [],

      solver_type: ['bh1', 'bh2'],
      solver_p: [null],
    },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      return dpmsolverPlan(cfg, schedule!, n, 'unipc', {
        order: num(cfg, 'solver_order'),
        variant: str(cfg, 'solver_type'),
        lowerOrderFinal: bool(cfg, 'lower_order_final'),
        disableCorrector: cfg.disable_corrector as number[],
        prediction: cfg.predict_x0 === false ? 'epsilon' : 'x0',
      });
    },
  },
  DEISMultistepScheduler: {
    defaults: { ...dpmsolverKeys, algorithm_type: 'deis', solver_type: 'logrho' },
    only: { ...dpmsolverOnly, algorithm_type: ['deis'], solver_type: ['logrho'] },
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      return dpmsolverPlan(
        cfg,
        schedule!,
        n,
        'deis',
        { order: num(cfg, 'solver_order'), lowerOrderFinal: bool(cfg, 'lower_order_final') },
        'sigma_min',
      );
    },
  },
  EDMEulerScheduler: {
    defaults: {},
    only: {
      sigma_schedule: ['karras', 'exponential'],
      prediction_type: ['epsilon', 'v_prediction'],
      final_sigmas_type: ['zero', 'sigma_min'],
    },
    scaling: 've',
    embedding: 've',
    edm: true,
    plan(cfg, _schedule, n) {
      const { timesteps, modelSigmas, sigmas } = edmSigmas(cfg, n);
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'euler',
        options: {},
        initNoiseSigma: Math.sqrt(num(cfg, 'sigma_max') ** 2 + 1),
      };
    },
  },
  EDMDPMSolverMultistepScheduler: {
    defaults: {},
    only: {
      sigma_schedule: ['karras', 'exponential'],
      prediction_type: ['epsilon', 'v_prediction'],
      final_sigmas_type: ['zero', 'sigma_min'],
      algorithm_type: ['dpmsolver++', 'sde-dpmsolver++'],
      solver_type: ['midpoint', 'heun'],
      solver_order: [1, 2, 3],
    },
    scaling: 've',
    embedding: 've',
    edm: true,
    plan(cfg, _schedule, n) {
      // Playground v2.5: EDM's sigmas and preconditioning, DPM-Solver++ with alpha = 1 (VE), which is
      // the VE program itself
      const { timesteps, modelSigmas, sigmas } = edmSigmas(cfg, n);
      return {
        timesteps,
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'dpmpp_2m',
        options: {
          order: num(cfg, 'solver_order'),
          prediction: 'x0',
          eta: str(cfg, 'algorithm_type') === 'sde-dpmsolver++' ? 1 : 0,
          solverType: str(cfg, 'solver_type'),
          lowerOrderFinal: bool(cfg, 'lower_order_final'),
          eulerAtFinal: bool(cfg, 'euler_at_final'),
        },
        initNoiseSigma: Math.sqrt(num(cfg, 'sigma_max') ** 2 + 1),
      };
    },
  },
  CosineDPMSolverMultistepScheduler: {
    defaults: {},
    only: {
      sigma_schedule: ['karras', 'exponential'],
      prediction_type: ['epsilon', 'v_prediction'],
      // sigma_min would repeat the last level (a zero-length final step)
      final_sigmas_type: ['zero'],
      solver_type: ['midpoint', 'heun'],
      // diffusers' step has no third-order branch (solver_order 3 fails after two steps there)
      solver_order: [1, 2],
    },
    scaling: 've',
    embedding: 've',
    edm: true,
    brownian: true,
    plan(cfg, _schedule, n) {
      // Stable Audio: EDM's sigmas and preconditioning (sigma_data), the arctangent noise input
      // t = atan(sigma) 2 / pi (float32), and SDE-DPM-Solver++ (order 1-2) on the VE levels, which is the
      // EDMDPMSolverMultistep program with eta 1. diffusers draws the noise from a torchsde Brownian
      // tree; here it is the step's `noise` (or a seeded `brownianNoise` path).
      const f = Math.fround;
      const modelSigmas = cosineSigmas(cfg, n);
      const sigmas = [...modelSigmas, 0];
      return {
        timesteps: modelSigmas.map((s) => f(f(f(Math.atan(s)) / f(Math.PI)) * 2)),
        modelSigmas,
        sigmas,
        exactLevels: new Map(),
        sampler: 'dpmpp_2m',
        options: {
          order: num(cfg, 'solver_order'),
          prediction: 'x0',
          eta: 1,
          solverType: str(cfg, 'solver_type'),
          lowerOrderFinal: bool(cfg, 'lower_order_final'),
          eulerAtFinal: bool(cfg, 'euler_at_final'),
        },
        initNoiseSigma: Math.sqrt(num(cfg, 'sigma_max') ** 2 + 1),
      };
    },
  },
  LCMScheduler: {
    defaults: {},
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, schedule, n) {
      const s = schedule!;
      const ts = distillationTimesteps(cfg, s, n, 'LCMScheduler');
      const exact: ClassPlan['exactLevels'] = new Map();
      const sigmas = [...ts.map((t) => tableLevel(s, t, exact)), 0];
      // consistency sampling (Song et al. 2023, Algorithm 1; k-diffusion's sample_lcm): jump to the
      // denoised estimate, then re-noise fully to the next level. That is the ancestral step with its
      // noise saturated at sigma_up = sigma_next (sigma_down = 0): eta above every step's threshold.
      let eta = 1;
      for (let i = 0; i + 1 < n; i++) {
        const [a, b] = [sigmas[i]!, sigmas[i + 1]!];
        eta = Math.max(eta, (2 * a) / Math.sqrt(a * a - b * b));
      }
      return {
        timesteps: ts,
        modelSigmas: sigmas.slice(0, -1),
        sigmas,
        exactLevels: exact,
        sampler: 'ddim',
        options: { eta },
        initNoiseSigma: 1,
      };
    },
  },
  CogVideoXDDIMScheduler: {
    defaults: {},
    only: { beta_schedule: ['linear', 'scaled_linear', 'squaredcos_cap_v2'] },
    scaling: 'vp',
    embedding: 'vp',
    // diffusers' CogVideoX DDIM step neither clips nor takes eta: deterministic DDIM, t -> t - T // n
    noClip: true,
    schedule: cogvideoxSchedule,
    plan(cfg, schedule, n) {
      return CLASSES.DDIMScheduler!.plan(cfg, schedule, n, {});
    },
  },
  TCDScheduler: {
    defaults: {},
    scaling: 'vp',
    embedding: 'vp',
    // diffusers' TCD step neither clips nor thresholds (the keys are accepted and unused)
    noClip: true,
    plan(cfg, schedule, n, step) {
      // Trajectory Consistency Distillation (Zheng et al. 2024), diffusers' TCDScheduler: LCM's
      // timesteps; each step goes deterministically (DDIM) from t to s = floor((1 - gamma) t_next) and
      // re-noises forward to t_next (strategic stochastic sampling, gamma = step's eta, default 0.3):
      // the ancestral step with sigma_down at s. The last step goes to the level of t = 0, no noise.
      // Zero terminal SNR: the first level alpha = 0 is the ZERO_SNR_VE_SIGMA stand-in of the chain.
      const s = schedule!;
      const gamma = (step.eta as number | undefined) ?? 0.3;
      if (!(gamma >= 0 && gamma <= 1))
        throw new SamplerError(`TCDScheduler.step: eta (gamma) must be in [0, 1], got ${gamma}`);
      const ts = distillationTimesteps(cfg, s, n, 'TCDScheduler');
      const exact: ClassPlan['exactLevels'] = new Map();
      const sigmas = [...ts.map((t) => tableLevel(s, t, exact)), tableLevel(s, 0, exact)];
      // torch: floor(float32(1 - gamma) * t_next) in float32
      const f = Math.fround;
      const sigmaDowns = ts.map((_, k) =>
        k === n - 1 ? sigmas[n]! : tableLevel(s, Math.floor(f(f(1 - gamma) * ts[k + 1]!)), exact),
      );
      return {
        timesteps: ts,
        modelSigmas: sigmas.slice(0, -1),
        sigmas,
        exactLevels: exact,
        sampler: 'euler_ancestral',
        options: { sigmaDowns, lastStepNoise: false },
        initNoiseSigma: 1,
      };
    },
  },
  DDPMWuerstchenScheduler: {
    defaults: {},
    prediction: 'epsilon',
    scaling: 'vp',
    embedding: 'vp',
    plan(cfg, _schedule, n) {
      // diffusers: timesteps = torch.linspace(1, 0, n + 1) (float32); the pipeline calls the model at
      // all but the last; each step is DDPM's posterior step (variance fixed_small) between the levels
      // of the continuous cosine alpha_cumprod, with no noise into t = 0 (whose level is clamped).
      const all = torchLinspace32(1, 0, n + 1);
      const exact: ClassPlan['exactLevels'] = new Map();
      const sigmas = all.map((t) => {
        const a = wuerstchenAlphaCumprod(t, num(cfg, 'scaler'), num(cfg, 's'));
        const level = { alpha: Math.sqrt(a), sigma: Math.sqrt(1 - a) };
        const sv = level.sigma / level.alpha;
        exact.set(sv, level);
        return sv;
      });
      return {
        timesteps: all.slice(0, -1),
        modelSigmas: sigmas.slice(0, -1),
        sigmas,
        exactLevels: exact,
        sampler: 'ddpm',
        options: { variance: 'fixed_small', lastStepNoise: false },
        initNoiseSigma: 1,
      };
    },
  },
};

// Every class's accepted keys and defaults are diffusers' own `__init__` signature.
for (const [name, spec] of Object.entries(CLASSES)) spec.defaults = SIGNATURES[name]!;

/**
 * `torch.linspace(start, end, steps)` in float32 as PyTorch's CPU kernel computes it: from the start for
 * the first half, from the end for the second.
 */
export function torchLinspace32(start: number, end: number, steps: number): number[] {
  const f = Math.fround;
  if (steps === 1) return [f(start)];
  const step = f(f(end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  const at = (i: number) =>
    i < half ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1)));
  const out: number[] = [];
  // PyTorch's vectorised CPU loop (AVX2: two vectors of 8 float32 lanes per iteration): in each full
  // block of 16, every 8 lanes start at the serial formula's value and add j * step; the rest is serial.
  const vectorised = Math.floor(steps / 16) * 16;
  let i = 0;
  for (; i < vectorised; i += 8) {
    const base = at(i);
    for (let j = 0; j < 8; j++) out.push(f(base + f(j * step)));
  }
  for (; i < steps; i++) out.push(at(i));
  return out;
}

/**
 * diffusers' `DDPMWuerstchenScheduler._alpha_cumprod(t)`: the cosine schedule of Nichol & Dhariwal
 * (2021, eq. 17) in continuous t in [0, 1], t warped by `scaler`, clamped to [1e-4, 0.9999].
 */
export function wuerstchenAlphaCumprod(t: number, scaler: number, s: number): number {
  let u = t;
  if (scaler > 1) u = 1 - (1 - t) ** scaler;
  else if (scaler < 1) u = t ** scaler;
  const init = Math.cos((s / (1 + s)) * Math.PI * 0.5) ** 2;
  const a = Math.cos(((u + s) / (1 + s)) * Math.PI * 0.5) ** 2 / init;
  return Math.fround(Math.min(0.9999, Math.max(0.0001, a)));
}
