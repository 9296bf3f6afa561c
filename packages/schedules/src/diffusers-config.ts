/**
 * Reading and writing the schedule fields of a diffusers `scheduler_config.json`.
 *
 * The split: this module owns the fields that define the noise schedule and its spacing
 * (`SCHEDULE_FIELDS`). Fields that configure a particular scheduler's update rule (`clip_sample`,
 * `solver_order`, `use_karras_sigmas`, ... listed in `DIFFUSERS_SCHEDULER_FIELDS`) are accepted and
 * handed back untouched in `schedulerFields`, for the scheduler adapters in `@diffuse/samplers`.
 * Any other field is ignored as diffusers' `from_config` ignores it, with one warning listing them
 * (`strict: true` throws instead), so real files with stray keys load while a typo does not pass
 * silently. Values are checked by `validateDiffusersFields`, the one validation `createScheduler` of
 * `@diffuse/samplers` shares.
 */

import { describeValue as describe, validateDiffusersFields } from './diffusers-json.js';
import { BETA_SCHEDULES, type BetaSchedule, DiscreteSchedule } from './discrete.js';
import { ScheduleError } from './errors.js';
import {
  type Prediction,
  predictionFromDiffusers,
  predictionToDiffusers,
} from './parameterization.js';
import { TIMESTEP_SPACINGS, type TimestepSpacing } from './spacing.js';

/** The schedule fields this module reads and writes. */
export const SCHEDULE_FIELDS: readonly string[] = [
  'num_train_timesteps',
  'beta_start',
  'beta_end',
  'beta_schedule',
  'trained_betas',
  'rescale_betas_zero_snr',
  'timestep_spacing',
  'steps_offset',
  'prediction_type',
];

/** Metadata fields diffusers writes into every config. */
export const DIFFUSERS_METADATA_FIELDS: readonly string[] = [
  '_class_name',
  '_diffusers_version',
  '_name_or_path',
];

/**
 * Fields that belong to a scheduler's update rule rather than to the schedule (diffusers 0.40's DDIM,
 * DDPM, PNDM, Euler, EulerAncestral, Heun, LMS, DPMSolver, UniPC, DEIS, LCM, TCD, EDM and flow-matching
 * schedulers). Accepted and passed through untouched.
 */
export const DIFFUSERS_SCHEDULER_FIELDS: readonly string[] = [
  'algorithm_type',
  'base_image_seq_len',
  'base_shift',
  'clip_sample',
  'clip_sample_range',
  'disable_corrector',
  'dynamic_thresholding_ratio',
  'euler_at_final',
  'final_sigmas_type',
  'flow_shift',
  'interpolation_type',
  'invert_sigmas',
  'lambda_min_clipped',
  'lower_order_final',
  'max_image_seq_len',
  'max_shift',
  'noise_sampler_seed',
  'original_inference_steps',
  'predict_x0',
  'rho',
  's',
  's_noise',
  'sample_max_value',
  'scaler',
  'set_alpha_to_one',
  'shift',
  'shift_terminal',
  'sigma_data',
  'sigma_max',
  'sigma_min',
  'sigma_schedule',
  'skip_prk_steps',
  'solver_order',
  'solver_p',
  'solver_type',
  'stochastic_sampling',
  'thresholding',
  'time_shift_type',
  'timestep_scaling',
  'timestep_type',
  'use_beta_sigmas',
  'use_dynamic_shifting',
  'use_exponential_sigmas',
  'use_flow_sigmas',
  'use_karras_sigmas',
  'use_lu_lambdas',
  'variance_type',
];

/** What `fromDiffusersConfig` returns (and `toDiffusersConfig` takes). */
export interface DiffusersScheduleConfig {
  /** The beta table. */
  schedule: DiscreteSchedule;
  /** `timestep_spacing` (diffusers' default `leading` when absent). */
  timestepSpacing: TimestepSpacing;
  /** `steps_offset` (default 0). */
  stepsOffset: number;
  /** `prediction_type` in our names (default `epsilon`). */
  prediction: Prediction;
  /** `_class_name`, `_diffusers_version`, ... when present. */
  metadata: Record<string, unknown>;
  /** The scheduler's own fields, untouched. */
  schedulerFields: Record<string, unknown>;
  /** Fields no diffusers scheduler reads (ignored, as diffusers ignores them), untouched. */
  ignoredFields: Record<string, unknown>;
}

/** Options of `fromDiffusersConfig`. */
export interface FromDiffusersConfigOptions {
  /** Throw a `ScheduleError` on a field no diffusers scheduler reads instead of warning (default false). */
  strict?: boolean;
  /** Receives the one warning about ignored fields (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/**
 * Flow-matching files (FlowMatch* classes, MiniMaxH3, `use_flow_sigmas: true`) define their noise levels
 * as sigma = t, x_t = (1 - t) x0 + t eps, not by a beta table: reading their (absent or unused) beta
 * fields would give diffusers' default linear table, a different model. They are a typed error here.
 */
function rejectFlowConfig(c: Record<string, unknown>): void {
  const cls = c._class_name;
  const flowClass =
    typeof cls === 'string' && (cls.startsWith('FlowMatch') || cls === 'MiniMaxH3Scheduler');
  if (flowClass || c.use_flow_sigmas === true) {
    const what = flowClass ? `${cls}` : `a config with use_flow_sigmas: true`;
    throw new ScheduleError(
      `${what} is a flow-matching schedule (sigma = t, x_t = (1 - t) x0 + t eps), not a beta table: ` +
        'use RectifiedFlowSchedule, or createScheduler of @diffuse/samplers for the scheduler itself',
    );
  }
}

/**
 * Parses the schedule fields of a diffusers `scheduler_config.json` (already JSON-parsed), with
 * diffusers' defaults for absent fields (T = 1000, `linear` 1e-4..0.02, `leading`, offset 0, `epsilon`).
 * Wrong types, out-of-range values and contradictions (a `trained_betas` whose length is not
 * `num_train_timesteps`, `beta_start` above `beta_end`) throw a `ScheduleError` naming the field;
 * unknown fields are kept in `ignoredFields` with one warning (or throw with `strict: true`).
 * Flow-matching files have no beta table and throw (use `RectifiedFlowSchedule`).
 *
 * @example
 * const cfg = fromDiffusersConfig(JSON.parse(readFileSync('scheduler/scheduler_config.json', 'utf8')));
 * cfg.schedule.alphasCumprod; cfg.timestepSpacing; cfg.prediction; cfg.schedulerFields.clip_sample;
 */
export function fromDiffusersConfig(
  json: unknown,
  options: FromDiffusersConfigOptions = {},
): DiffusersScheduleConfig {
  validateDiffusersFields(json);
  const c = json as Record<string, unknown>;
  rejectFlowConfig(c);
  const metadata: Record<string, unknown> = {};
  const schedulerFields: Record<string, unknown> = {};
  const ignoredFields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(c)) {
    if (SCHEDULE_FIELDS.includes(key)) continue;
    if (DIFFUSERS_METADATA_FIELDS.includes(key) || key.startsWith('_')) metadata[key] = value;
    else if (DIFFUSERS_SCHEDULER_FIELDS.includes(key)) schedulerFields[key] = value;
    else ignoredFields[key] = value;
  }
  const ignored = Object.keys(ignoredFields);
  if (ignored.length > 0) {
    const list = ignored.map((k) => `'${k}' (${describe(ignoredFields[k])})`).join(', ');
    if (options.strict) throw new ScheduleError(`unknown diffusers scheduler config field ${list}`);
    (options.onWarning ?? console.warn)(
      `the config fields ${list} are not read by any diffusers scheduler and are ignored`,
    );
  }

  const T = read(c, 'num_train_timesteps', 'integer', 1000);
  if (T < 2) throw new ScheduleError(`num_train_timesteps must be >= 2, got ${T}`);
  const betaStart = read(c, 'beta_start', 'number', 1e-4);
  const betaEnd = read(c, 'beta_end', 'number', 0.02);
  const betaSchedule = read(c, 'beta_schedule', 'string', 'linear');
  if (!BETA_SCHEDULES.includes(betaSchedule as BetaSchedule)) {
    throw new ScheduleError(
      `beta_schedule '${betaSchedule}' is not supported; expected one of ${BETA_SCHEDULES.join(', ')}`,
    );
  }
  const rescale = read(c, 'rescale_betas_zero_snr', 'boolean', false);
  const spacing = read(c, 'timestep_spacing', 'string', 'leading');
  if (!TIMESTEP_SPACINGS.includes(spacing as TimestepSpacing)) {
    throw new ScheduleError(
      `timestep_spacing '${spacing}' is not supported; expected one of ${TIMESTEP_SPACINGS.join(', ')}`,
    );
  }
  const stepsOffset = read(c, 'steps_offset', 'integer', 0);
  if (stepsOffset < 0 || stepsOffset >= T) {
    throw new ScheduleError(
      `steps_offset must be in [0, num_train_timesteps) = [0, ${T}), got ${stepsOffset}`,
    );
  }
  const prediction = predictionFromDiffusers(read(c, 'prediction_type', 'string', 'epsilon'));

  let trained: number[] | null = null;
  const tb = c.trained_betas;
  if (tb != null) {
    if (!Array.isArray(tb) || !tb.every((b) => typeof b === 'number')) {
      throw new ScheduleError(
        `trained_betas must be null or an array of numbers, got ${describe(tb)}`,
      );
    }
    if (tb.length !== T) {
      throw new ScheduleError(
        `trained_betas has ${tb.length} entries but num_train_timesteps is ${T}; the two fields contradict each other`,
      );
    }
    trained = tb as number[];
  } else if (betaSchedule !== 'squaredcos_cap_v2' && betaStart > betaEnd) {
    throw new ScheduleError(
      `beta_start (${betaStart}) is above beta_end (${betaEnd}): a ${betaSchedule} schedule would add less noise over time`,
    );
  }

  let schedule: DiscreteSchedule;
  try {
    schedule = DiscreteSchedule.fromConfig({
      numTrainTimesteps: T,
      betaSchedule: betaSchedule as BetaSchedule,
      betaStart,
      betaEnd,
      trainedBetas: trained,
      rescaleBetasZeroSnr: rescale,
    });
  } catch (e) {
    if (!(e instanceof ScheduleError)) throw e;
    // name the config's fields, not our option names
    const renamed = e.message
      .replace(/\btrainedBetas\b/g, 'trained_betas')
      .replace(/\bbetaStart\b/g, 'beta_start')
      .replace(/\bbetaEnd\b/g, 'beta_end');
    throw new ScheduleError(renamed);
  }
  return {
    schedule,
    timestepSpacing: spacing as TimestepSpacing,
    stepsOffset,
    prediction,
    metadata,
    schedulerFields,
    ignoredFields,
  };
}

/**
 * Writes a diffusers `scheduler_config.json` object: the schedule fields, then any metadata and
 * scheduler fields given. `fromDiffusersConfig(toDiffusersConfig(c))` rebuilds the same schedule.
 *
 * @example
 * const json = toDiffusersConfig({ schedule: DiscreteSchedule.fromConfig({ betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012 }),
 *   timestepSpacing: 'trailing', prediction: 'v' });
 * // { num_train_timesteps: 1000, beta_start: 0.00085, ..., prediction_type: 'v_prediction' }
 */
export function toDiffusersConfig(config: {
  schedule: DiscreteSchedule;
  timestepSpacing?: TimestepSpacing;
  stepsOffset?: number;
  prediction?: Prediction;
  metadata?: Record<string, unknown>;
  schedulerFields?: Record<string, unknown>;
}): Record<string, unknown> {
  const s = config.schedule.config;
  return {
    ...(config.metadata ?? {}),
    num_train_timesteps: s.numTrainTimesteps,
    beta_start: s.betaStart,
    beta_end: s.betaEnd,
    beta_schedule: s.betaSchedule,
    trained_betas: s.trainedBetas === null ? null : Array.from(s.trainedBetas),
    rescale_betas_zero_snr: s.rescaleBetasZeroSnr,
    timestep_spacing: config.timestepSpacing ?? 'leading',
    steps_offset: config.stepsOffset ?? 0,
    prediction_type: predictionToDiffusers(config.prediction ?? 'epsilon'),
    ...(config.schedulerFields ?? {}),
  };
}

type Kind = 'number' | 'integer' | 'string' | 'boolean';
type KindType<K extends Kind> = K extends 'string'
  ? string
  : K extends 'boolean'
    ? boolean
    : number;

function read<K extends Kind>(
  c: Record<string, unknown>,
  key: string,
  kind: K,
  fallback: KindType<K>,
): KindType<K> {
  const v = c[key];
  if (v === undefined || v === null) return fallback;
  const ok =
    kind === 'integer'
      ? Number.isInteger(v)
      : kind === 'number'
        ? typeof v === 'number' && Number.isFinite(v)
        : typeof v === kind;
  if (!ok)
    throw new ScheduleError(
      `${key} must be ${kind === 'integer' ? 'an integer' : `a ${kind}`}, got ${describe(v)}`,
    );
  return v as KindType<K>;
}
