/**
 * diffusers' config files as diffusers reads and writes them: the JSON dialect of Python's `json`
 * module (bare `Infinity`, `-Infinity` and `NaN` tokens, which diffusers writes for e.g.
 * `lambda_min_clipped = float('-inf')` and `JSON.parse` rejects), and the one validation of config
 * values shared by `fromDiffusersConfig` (here) and `createScheduler` (`@diffuse/samplers`): types and
 * ranges of every field either reads, checked before anything is allocated.
 */
import { ScheduleError } from './errors.js';

const NONFINITE: Record<string, number> = {
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  NaN: Number.NaN,
};
/** A marker no JSON text can produce from the tokens we rewrite (a raw NUL cannot sit in a JSON string). */
const MARK = '\u0000';

/**
 * Parses a diffusers JSON file (Python `json.loads` dialect): strict JSON plus the bare tokens
 * `Infinity`, `-Infinity` and `NaN` outside strings. A syntax error throws a `ScheduleError`
 * (naming `what`, e.g. the file name) instead of a bare `SyntaxError`.
 *
 * @example
 * parseDiffusersJson('{"lambda_min_clipped": -Infinity}'); // { lambda_min_clipped: -Infinity }
 */
export function parseDiffusersJson(text: string, what = 'diffusers config'): unknown {
  if (typeof text !== 'string')
    throw new ScheduleError(`${what}: expected JSON text, got ${describeValue(text)}`);
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      continue;
    }
    for (const token of ['-Infinity', 'Infinity', 'NaN']) {
      if (text.startsWith(token, i)) {
        out += `${text.slice(last, i)}"\\u0000${token}"`;
        i += token.length - 1;
        last = i + 1;
        break;
      }
    }
  }
  out += text.slice(last);
  try {
    return JSON.parse(out, (_k, v) =>
      typeof v === 'string' && v.startsWith(MARK) && v.slice(1) in NONFINITE
        ? NONFINITE[v.slice(1)]
        : v,
    );
  } catch (e) {
    throw new ScheduleError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Writes a config as diffusers does (`json.dumps(..., indent=2, sort_keys=True)` of `to_json_string`):
 * sorted keys, two-space indent, non-finite numbers as bare `Infinity` / `-Infinity` / `NaN`.
 *
 * @example
 * stringifyDiffusersJson({ lambda_min_clipped: -Infinity }); // '{\n  "lambda_min_clipped": -Infinity\n}\n'
 */
export function stringifyDiffusersJson(config: Record<string, unknown>): string {
  const sorted = Object.fromEntries(
    Object.keys(config)
      .sort()
      .map((k) => [k, config[k]]),
  );
  const text = JSON.stringify(
    sorted,
    (_k, v) =>
      typeof v === 'number' && !Number.isFinite(v)
        ? `${MARK}${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}`
        : v,
    2,
  );
  return `${text.replace(/"\\u0000(-?Infinity|NaN)"/g, '$1')}\n`;
}

/** The most training timesteps a config may ask for (the beta table is allocated from it). */
export const MAX_TRAIN_TIMESTEPS = 1_000_000;

type FieldRule =
  | { kind: 'boolean' }
  | { kind: 'integer'; min: number; max?: number; nullable?: boolean }
  | {
      kind: 'number';
      min?: number;
      max?: number;
      open?: boolean;
      nullable?: boolean;
      inf?: boolean;
    }
  | { kind: 'string'; nullable?: boolean }
  | { kind: 'betas' }
  | { kind: 'integers' };

const bool: FieldRule = { kind: 'boolean' };
const positive: FieldRule = { kind: 'number', min: 0, open: true };
const positiveOrNull: FieldRule = { kind: 'number', min: 0, open: true, nullable: true };
const str: FieldRule = { kind: 'string' };
const strOrNull: FieldRule = { kind: 'string', nullable: true };

/**
 * The type and range of every config field some diffusers scheduler class reads (diffusers 0.40).
 * Which values a class implements (`beta_schedule` names, `algorithm_type`, ...) is the class's check.
 */
export const DIFFUSERS_FIELD_RULES: Readonly<Record<string, FieldRule>> = {
  num_train_timesteps: { kind: 'integer', min: 2, max: MAX_TRAIN_TIMESTEPS },
  beta_start: { kind: 'number', min: 0, max: 1, open: true },
  beta_end: { kind: 'number', min: 0, max: 1, open: true },
  beta_schedule: str,
  trained_betas: { kind: 'betas' },
  clip_sample: bool,
  clip_sample_range: positive,
  set_alpha_to_one: bool,
  skip_prk_steps: bool,
  steps_offset: { kind: 'integer', min: 0, max: MAX_TRAIN_TIMESTEPS },
  prediction_type: str,
  thresholding: bool,
  dynamic_thresholding_ratio: { kind: 'number', min: 0, max: 1, open: true },
  sample_max_value: positive,
  timestep_spacing: str,
  rescale_betas_zero_snr: bool,
  variance_type: strOrNull,
  interpolation_type: str,
  timestep_type: str,
  use_karras_sigmas: bool,
  use_exponential_sigmas: bool,
  use_beta_sigmas: bool,
  use_lu_lambdas: bool,
  use_flow_sigmas: bool,
  flow_shift: positive,
  final_sigmas_type: str,
  lambda_min_clipped: { kind: 'number', nullable: true, inf: true },
  sigma_min: positiveOrNull,
  sigma_max: positiveOrNull,
  sigma_data: positive,
  sigma_schedule: str,
  rho: positive,
  solver_order: { kind: 'integer', min: 1, max: 3 },
  algorithm_type: str,
  solver_type: str,
  lower_order_final: bool,
  euler_at_final: bool,
  predict_x0: bool,
  disable_corrector: { kind: 'integers' },
  solver_p: { kind: 'string', nullable: true },
  use_dynamic_shifting: bool,
  time_shift_type: str,
  shift: positive,
  base_shift: { kind: 'number', nullable: true },
  max_shift: { kind: 'number', nullable: true },
  base_image_seq_len: { kind: 'integer', min: 1 },
  max_image_seq_len: { kind: 'integer', min: 1 },
  invert_sigmas: bool,
  shift_terminal: { kind: 'number', min: 0, max: 1, open: true, nullable: true },
  stochastic_sampling: bool,
  noise_sampler_seed: { kind: 'integer', min: 0, nullable: true },
  scaler: positive,
  s: positive,
  original_inference_steps: { kind: 'integer', min: 1, max: MAX_TRAIN_TIMESTEPS },
  timestep_scaling: positive,
};

/**
 * Checks the value of every field of `config` that has a rule in `DIFFUSERS_FIELD_RULES` (absent and
 * unknown fields are left to the caller), and that `beta_start <= beta_end` and `trained_betas` has
 * `num_train_timesteps` entries when both are given. Throws a `ScheduleError` naming the field and its
 * value. Nothing is allocated: this runs before any table is built.
 *
 * @example
 * validateDiffusersFields({ clip_sample: 'yes' }); // ScheduleError: clip_sample must be a boolean, got 'yes'
 */
export function validateDiffusersFields(
  config: unknown,
): asserts config is Record<string, unknown> {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ScheduleError(
      `a diffusers scheduler config must be a JSON object, got ${describeValue(config)}`,
    );
  }
  const c = config as Record<string, unknown>;
  for (const [key, rule] of Object.entries(DIFFUSERS_FIELD_RULES)) {
    if (!Object.hasOwn(c, key)) continue;
    checkField(key, c[key], rule);
  }
  const T = c.num_train_timesteps;
  const tb = c.trained_betas;
  if (Array.isArray(tb) && typeof T === 'number' && tb.length !== T) {
    throw new ScheduleError(
      `trained_betas has ${tb.length} entries but num_train_timesteps is ${T}; the two fields contradict each other`,
    );
  }
  const start = c.beta_start;
  const end = c.beta_end;
  if (
    tb == null &&
    c.beta_schedule !== 'squaredcos_cap_v2' &&
    typeof start === 'number' &&
    typeof end === 'number' &&
    start > end
  ) {
    throw new ScheduleError(
      `beta_start (${start}) is above beta_end (${end}): a ${String(c.beta_schedule ?? 'linear')} schedule would add less noise over time`,
    );
  }
}

function checkField(key: string, v: unknown, rule: FieldRule): void {
  const fail = (what: string) => {
    throw new ScheduleError(`${key} must be ${what}, got ${describeValue(v)}`);
  };
  switch (rule.kind) {
    case 'boolean':
      if (typeof v !== 'boolean') fail('a boolean');
      return;
    case 'string':
      if (v === null && rule.nullable) return;
      if (typeof v !== 'string') fail(rule.nullable ? 'a string or null' : 'a string');
      return;
    case 'integer': {
      if (v === null && rule.nullable) return;
      const range = `an integer in [${rule.min}, ${rule.max ?? 'infinity'}]${rule.nullable ? ' or null' : ''}`;
      if (typeof v !== 'number' || !Number.isInteger(v)) fail(range);
      const n = v as number;
      if (n < rule.min || (rule.max !== undefined && n > rule.max)) fail(range);
      return;
    }
    case 'number': {
      if (v === null && rule.nullable) return;
      const range =
        rule.min !== undefined && rule.max !== undefined
          ? ` in ${rule.open ? '(' : '['}${rule.min}, ${rule.max}${rule.open ? ')' : ']'}`
          : rule.min !== undefined
            ? ` ${rule.open ? '>' : '>='} ${rule.min}`
            : '';
      const what = `a ${rule.inf ? '' : 'finite '}number${range}${rule.nullable ? ' or null' : ''}`;
      if (typeof v !== 'number' || Number.isNaN(v)) fail(what);
      const n = v as number;
      if (!rule.inf && !Number.isFinite(n)) fail(what);
      if (rule.min !== undefined && (rule.open ? !(n > rule.min) : !(n >= rule.min))) fail(what);
      if (rule.max !== undefined && (rule.open ? !(n < rule.max) : !(n <= rule.max))) fail(what);
      return;
    }
    case 'betas': {
      if (v === null) return;
      if (!Array.isArray(v) || v.length > MAX_TRAIN_TIMESTEPS) {
        fail(`null or an array of numbers (at most ${MAX_TRAIN_TIMESTEPS})`);
      }
      const a = v as unknown[];
      for (let i = 0; i < a.length; i++) {
        const b = a[i];
        if (typeof b !== 'number' || !(b > 0 && b < 1)) {
          throw new ScheduleError(
            `trained_betas[${i}] = ${describeValue(b)} is outside (0, 1); betas must be numbers in (0, 1)`,
          );
        }
      }
      return;
    }
    case 'integers':
      if (!Array.isArray(v) || v.length > 10_000 || !v.every((x) => Number.isInteger(x) && x >= 0))
        fail('an array of non-negative integers');
      return;
  }
}

/**
 * A short description of a value for error messages (strings quoted and cut at 60 characters).
 *
 * @example
 * describeValue([1, 2]); // 'an array of 2'
 * describeValue('yes'); // "'yes'"
 */
export function describeValue(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `'${v.length > 60 ? `${v.slice(0, 60)}...` : v}'`;
  if (typeof v === 'bigint') return `${v}n`;
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
}
