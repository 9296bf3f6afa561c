/**
 * `sample(denoiser, options)`: the functional face. Resolves the noise levels, runs a registered
 * sampler program and answers its denoise requests with the `Denoiser` (or an `AsyncDenoiser`,
 * whose calls the async driver awaits).
 */
import { Random } from '@diffuse/backend';
import type { AsyncDenoiser, Conditioning, Denoiser } from '@diffuse/models';
import {
  convertPrediction,
  type DiscreteSchedule,
  diffusersTimesteps,
  exponentialSigmas,
  karrasSigmas,
  type NoiseLevel,
  PREDICTIONS,
  TIMESTEP_SPACINGS,
  type TimestepSpacing,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteError, SamplerError, SamplingAbortedError } from './errors.js';
import { assertAllFinite } from './finite.js';
import type { SamplerName } from './names.js';
import { getSampler, resolveSamplerOptions } from './registry.js';
import { type NoiseSource, RunScope } from './run.js';
import type { SamplerOptions } from './types.js';

/**
 * How a VE noise level s maps to the (alpha, sigma) pair the denoiser is called with: `vp`
 * (alpha = 1 / sqrt(1 + s^2)), `ve` (alpha = 1) or `flow`, the rectified-flow path x_t = (1 - t) x0 + t eps
 * (t = s / (1 + s): alpha = 1 / (1 + s), sigma = s / (1 + s)), so flow-matching models run under every sampler.
 */
export type Embedding = 'vp' | 've' | 'flow';

/** Every `Embedding`. */
export const EMBEDDINGS: readonly Embedding[] = ['vp', 've', 'flow'];

/** Options of `sample` and `sampleSteps`. */
export interface SampleOptions {
  /** Registry name of the sampler (default `euler`); see `listSamplers()` and `SamplerNames`. */
  sampler?: SamplerName;
  /** The sampler's own options (e.g. `{ eta: 0.5 }`); unknown keys throw. */
  samplerOptions?: SamplerOptions;
  /** Explicit decreasing VE noise levels sigma_i = sigma_t / alpha_t (k-diffusion's `sigmas`); may end in 0. */
  sigmas?: ArrayLike<number>;
  /** Explicit decreasing noise levels (alpha_i, sigma_i); the denoiser sees exactly these. */
  levels?: readonly NoiseLevel<number>[];
  /**
   * With `steps`: `karras` (default; rho = 7 between sigmaMin and sigmaMax), `exponential` (uniform in
   * log sigma), or a `DiscreteSchedule` (timesteps by `spacing`, then to 0).
   */
  schedule?: 'karras' | 'exponential' | DiscreteSchedule;
  /** Number of sampler steps (with `schedule`). */
  steps?: number;
  /** Range of the `karras` / `exponential` schedules (defaults 0.002 and 80, as EDM). */
  sigmaMin?: number;
  sigmaMax?: number;
  /** Karras rho (default 7). */
  rho?: number;
  /** Timestep spacing for a `DiscreteSchedule` (default `trailing`). */
  spacing?: TimestepSpacing;
  /**
   * The (alpha, sigma) the denoiser sees for a VE level s that is not one of `levels`: `vp` (default:
   * alpha = 1/sqrt(1+s^2)), `ve` (alpha = 1) or `flow` (alpha = 1/(1+s), sigma = s/(1+s): a flow
   * model at t = s/(1+s)). With `levels` all at alpha = 1 it is `ve`.
   */
  embedding?: Embedding;
  /** Standard-normal initial noise [batch, ...]; the start state is noise * sigma_0 (VE), as k-diffusion. */
  noise?: tf.Tensor;
  /**
   * The start state x_T itself (instead of `noise`), VP-scaled at the first level as the denoiser sees
   * it: x_T = alpha_0 x0 + sigma_0 eps (with `sigmas` and the `ve` embedding, x_T = x0 + sigma_0 eps).
   * This is what `invert` returns and what a diffusers pipeline passes as `latents` times
   * `init_noise_sigma`; not combinable with `noise`.
   */
  start?: tf.Tensor;
  /** Shape [batch, ...] of the samples, when `noise` is not given (falls back to `denoiser.shape`). */
  shape?: readonly number[];
  /** Batch size with `denoiser.shape` (default 1). */
  batch?: number;
  /** Seed for the initial and step noise. */
  seed?: number;
  /** Random stream for the initial and step noise (instead of `seed`). */
  rng?: Random;
  /** Injectable step noise (k-diffusion's `noise_sampler`): N(0, I) shaped `shape`; ownership passes to the sampler. */
  noiseSampler?: NoiseSource;
  /** Conditioning passed to the denoiser on every call. */
  cond?: Conditioning;
  /** Cancels sampling between model calls (throws `SamplingAbortedError`). */
  signal?: AbortSignal;
  /** Called after every step's first model call; the tensors are borrowed (valid during the call). */
  onStep?: (info: StepInfo) => void | Promise<void>;
  /** Check every model output for NaN / infinity (one tiny readback per call; default true). */
  checkFinite?: boolean;
}

/** What a step reports (k-diffusion's callback dict). Tensors are borrowed: valid until sampling resumes. */
export interface StepInfo {
  /** Step index, 0-based. */
  i: number;
  /** Number of steps. */
  steps: number;
  /** VE noise level of the step, and the (churned) level the model was evaluated at. */
  sigma: number;
  sigmaHat: number;
  /** The state, VE-scaled (x_t / alpha = x0 + sigma eps). */
  x: tf.Tensor;
  /** The denoiser's estimate of x0 at this state. */
  denoised: tf.Tensor;
  /** Model calls (NFE) made so far, this step's included. */
  nfe: number;
}

/** What `sampleWithInfo` returns: the sample (the caller owns it) and how the run went. */
export interface SampleResult {
  /** The final sample, as `sample` returns it. */
  sample: tf.Tensor;
  /** Number of model calls (function evaluations): e.g. heun 2n - 1, plms n + 1, dpm_adaptive varies. */
  nfe: number;
  /** Number of sampler steps (step events; for dpm_adaptive, attempts). */
  steps: number;
  /** The VE noise levels of the run (the schedule the sampler was given). */
  sigmas: number[];
}

/** The resolved plan of a run (exported for the diffusers adapters and tests). */
export interface SamplingPlan {
  sigmas: number[];
  levelFor: (sigma: number) => NoiseLevel<number>;
}

/** Every key `SampleOptions` has: any other key is a `SamplerError` (a typo would be ignored silently). */
export const SAMPLE_OPTION_KEYS: readonly string[] = [
  'sampler',
  'samplerOptions',
  'sigmas',
  'levels',
  'schedule',
  'steps',
  'sigmaMin',
  'sigmaMax',
  'rho',
  'spacing',
  'embedding',
  'noise',
  'start',
  'shape',
  'batch',
  'seed',
  'rng',
  'noiseSampler',
  'cond',
  'signal',
  'onStep',
  'checkFinite',
];

/** The most steps / elements a run accepts: beyond this a careless value (1e12) would hang or exhaust memory. */
const MAX_STEPS = 1_000_000;
const MAX_ELEMENTS = 2 ** 28;

/** Duck-typed: a tfjs tensor (tensors of another tfjs copy count too). */
function isTensor(t: unknown): t is tf.Tensor {
  const x = t as Partial<tf.Tensor> | null;
  return (
    x != null &&
    typeof x === 'object' &&
    Array.isArray(x.shape) &&
    typeof x.dtype === 'string' &&
    typeof x.dispose === 'function'
  );
}

const describe = (v: unknown): string =>
  Array.isArray(v)
    ? 'an array'
    : v === null
      ? 'null'
      : typeof v === 'object'
        ? 'an object'
        : typeof v === 'string'
          ? `'${v}'`
          : String(v);

/**
 * Checks the types and ranges of every field of `SampleOptions` before anything is allocated: unknown
 * keys, wrong types, NaN, non-positive or huge counts, an unknown `embedding` / `schedule` /
 * `spacing`, disposed tensors and contradictory pairs (`noise` with `start`) throw a `SamplerError`
 * naming the field and the value.
 *
 * @example
 * checkSampleOptions({ steps: 20, embedding: 'foo' }); // throws: embedding must be 'vp', 've', 'flow', got 'foo'
 */
export function checkSampleOptions(o: unknown): asserts o is SampleOptions {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new SamplerError(`options must be an object, got ${describe(o)}`);
  const r = o as Record<string, unknown>;
  const bad = (k: string, what: string) =>
    new SamplerError(`option ${k} must be ${what}, got ${describe(r[k])}`);
  for (const k of Object.keys(r)) {
    if (!SAMPLE_OPTION_KEYS.includes(k)) {
      throw new SamplerError(
        `unknown option '${k}'; sample() takes ${SAMPLE_OPTION_KEYS.join(', ')} (sampler-specific ones go in samplerOptions)`,
      );
    }
  }
  const has = (k: string) => r[k] !== undefined;
  const positiveNumber = (k: string) => {
    if (has(k) && !(typeof r[k] === 'number' && Number.isFinite(r[k]) && (r[k] as number) > 0))
      throw bad(k, 'a finite number > 0');
  };
  const count = (k: string, max: number) => {
    const v = r[k];
    if (has(k) && !(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max))
      throw bad(k, `a positive integer (at most ${max})`);
  };
  const fn = (k: string) => {
    if (has(k) && typeof r[k] !== 'function') throw bad(k, 'a function');
  };
  const tensor = (k: string) => {
    const v = r[k];
    if (!has(k)) return;
    if (!isTensor(v)) throw bad(k, 'a tensor');
    if (v.isDisposed) throw new SamplerError(`option ${k} has been disposed`);
    if (v.dtype !== 'float32') throw bad(k, `a float32 tensor (got dtype ${v.dtype})`);
    if (v.rank < 1) throw bad(k, 'a tensor with a batch axis');
    if (v.size > MAX_ELEMENTS) throw bad(k, `a tensor of at most ${MAX_ELEMENTS} elements`);
  };
  if (has('sampler') && typeof r.sampler !== 'string') throw bad('sampler', 'a sampler name');
  if (
    has('samplerOptions') &&
    (typeof r.samplerOptions !== 'object' ||
      r.samplerOptions === null ||
      Array.isArray(r.samplerOptions))
  )
    throw bad('samplerOptions', 'an object');
  if (has('sigmas')) {
    const v = r.sigmas as ArrayLike<unknown> | null;
    if (v === null || typeof v !== 'object' || typeof v.length !== 'number')
      throw bad('sigmas', 'an array of numbers');
    if (v.length > MAX_STEPS + 1) throw bad('sigmas', `at most ${MAX_STEPS + 1} levels`);
    for (let k = 0; k < v.length; k++) {
      if (typeof v[k] !== 'number')
        throw new SamplerError(`sigmas[${k}] must be a number, got ${describe(v[k])}`);
    }
  }
  if (has('levels')) {
    const v = r.levels;
    if (!Array.isArray(v)) throw bad('levels', 'an array of { alpha, sigma }');
    if (v.length > MAX_STEPS + 1) throw bad('levels', `at most ${MAX_STEPS + 1} levels`);
    v.forEach((l: unknown, k) => {
      const lv = l as { alpha?: unknown; sigma?: unknown } | null;
      if (
        lv === null ||
        typeof lv !== 'object' ||
        typeof lv.alpha !== 'number' ||
        typeof lv.sigma !== 'number'
      )
        throw new SamplerError(
          `levels[${k}] must be { alpha: number, sigma: number }, got ${describe(l)}`,
        );
    });
  }
  if (has('schedule')) {
    const v = r.schedule as Partial<DiscreteSchedule> | string;
    const discrete =
      typeof v === 'object' &&
      v !== null &&
      typeof v.levelAt === 'function' &&
      typeof v.numTrainTimesteps === 'number';
    if (v !== 'karras' && v !== 'exponential' && !discrete)
      throw bad('schedule', "'karras', 'exponential' or a DiscreteSchedule");
  }
  count('steps', MAX_STEPS);
  positiveNumber('sigmaMin');
  positiveNumber('sigmaMax');
  positiveNumber('rho');
  if (has('sigmaMin') && has('sigmaMax') && !((r.sigmaMin as number) < (r.sigmaMax as number)))
    throw new SamplerError(`sigmaMin (${r.sigmaMin}) must be < sigmaMax (${r.sigmaMax})`);
  if (has('spacing') && !TIMESTEP_SPACINGS.includes(r.spacing as TimestepSpacing))
    throw bad('spacing', TIMESTEP_SPACINGS.map((x) => `'${x}'`).join(', '));
  if (has('embedding') && !EMBEDDINGS.includes(r.embedding as Embedding))
    throw bad('embedding', EMBEDDINGS.map((e) => `'${e}'`).join(', '));
  tensor('noise');
  tensor('start');
  if (has('noise') && has('start'))
    throw new SamplerError(
      'give noise (unit noise, times sigma_0) or start (x_T itself), not both',
    );
  if (has('shape')) {
    const v = r.shape;
    if (
      !Array.isArray(v) ||
      v.length < 1 ||
      !v.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 1)
    )
      throw bad('shape', 'a non-empty array of positive integers');
    const size = v.reduce((a: number, d: number) => a * d, 1);
    if (size > MAX_ELEMENTS) throw bad('shape', `at most ${MAX_ELEMENTS} elements in all`);
  }
  count('batch', MAX_ELEMENTS);
  if (has('seed') && !Number.isSafeInteger(r.seed)) throw bad('seed', 'a safe integer');
  const obj = (k: string) => typeof r[k] === 'object' && r[k] !== null;
  if (has('rng') && !(obj('rng') && typeof (r.rng as Partial<Random>).normal === 'function'))
    throw bad('rng', 'a Random');
  fn('noiseSampler');
  fn('onStep');
  if (has('cond') && (typeof r.cond !== 'object' || r.cond === null || Array.isArray(r.cond)))
    throw bad('cond', 'an object of conditioning tensors');
  if (
    has('signal') &&
    !(obj('signal') && typeof (r.signal as Partial<AbortSignal>).aborted === 'boolean')
  )
    throw bad('signal', 'an AbortSignal');
  if (has('checkFinite') && typeof r.checkFinite !== 'boolean')
    throw bad('checkFinite', 'a boolean');
}

/**
 * Resolves `sigmas` / `levels` / `schedule` + `steps` into VE sigmas and the level map.
 *
 * @example
 * const { sigmas } = resolvePlan({ schedule: 'karras', steps: 10 }); // 11 sigmas ending in 0
 */
export function resolvePlan(o: SampleOptions): SamplingPlan {
  checkSampleOptions(o);
  const given = [
    o.sigmas,
    o.levels,
    o.schedule ?? (o.steps !== undefined ? 'karras' : undefined),
  ].filter((v) => v !== undefined).length;
  if (given !== 1) throw new SamplerError('give exactly one of sigmas, levels, or schedule/steps');
  let sigmas: number[];
  let embedding: Embedding = o.embedding ?? 'vp';
  const exact = new Map<number, NoiseLevel<number>>();
  if (o.levels !== undefined) {
    sigmas = o.levels.map((l, k) => {
      if (!(l.alpha > 0) || !(l.sigma >= 0) || !Number.isFinite(l.sigma / l.alpha)) {
        throw new SamplerError(
          `levels[${k}] = (${l.alpha}, ${l.sigma}) needs alpha > 0 and a finite sigma / alpha`,
        );
      }
      const s = l.sigma / l.alpha;
      exact.set(s, { alpha: l.alpha, sigma: l.sigma });
      return s;
    });
    if (o.levels.every((l) => l.alpha === 1)) embedding = 've';
  } else if (o.sigmas !== undefined) {
    sigmas = Array.from(o.sigmas);
  } else {
    const steps = o.steps;
    if (steps === undefined || !Number.isInteger(steps) || steps < 1) {
      throw new SamplerError(`steps must be a positive integer, got ${steps}`);
    }
    const schedule = o.schedule ?? 'karras';
    if (schedule === 'karras' || schedule === 'exponential') {
      const lo = o.sigmaMin ?? 0.002;
      const hi = o.sigmaMax ?? 80;
      sigmas = Array.from(
        schedule === 'karras'
          ? karrasSigmas(steps, lo, hi, o.rho ?? 7)
          : exponentialSigmas(steps, lo, hi),
      );
    } else if (typeof schedule === 'object' && schedule !== null && 'levelAt' in schedule) {
      const T = schedule.numTrainTimesteps;
      if (steps > T)
        throw new SamplerError(`steps (${steps}) exceeds the schedule's ${T} training timesteps`);
      const ts = diffusersTimesteps(T, {
        numInferenceSteps: steps,
        spacing: o.spacing ?? 'trailing',
      });
      sigmas = Array.from(ts, (t) => {
        const l = schedule.levelAt(t);
        const s = l.sigma / l.alpha;
        exact.set(s, l);
        return s;
      });
      sigmas.push(0);
    } else {
      throw new SamplerError(
        `unknown schedule '${String(schedule)}'; expected karras, exponential or a DiscreteSchedule`,
      );
    }
  }
  validateSigmas(sigmas);
  const levelFor = (s: number): NoiseLevel<number> => {
    const e = exact.get(s);
    if (e) return e;
    if (s === 0) return { alpha: 1, sigma: 0 };
    if (embedding === 've') return { alpha: 1, sigma: s };
    if (embedding === 'flow') return { alpha: 1 / (1 + s), sigma: s / (1 + s) };
    const alpha = 1 / Math.sqrt(1 + s * s);
    return { alpha, sigma: s * alpha };
  };
  return { sigmas, levelFor };
}

function validateSigmas(sigmas: readonly number[]): void {
  if (sigmas.length < 2)
    throw new SamplerError(`need at least 2 noise levels (1 step), got ${sigmas.length}`);
  for (let k = 0; k < sigmas.length; k++) {
    const s = sigmas[k]!;
    if (!Number.isFinite(s) || s < 0)
      throw new SamplerError(`sigmas[${k}] = ${s} must be finite and >= 0`);
    if (k > 0 && !(s < sigmas[k - 1]!)) {
      throw new SamplerError(
        `sigmas must decrease strictly: sigmas[${k}] = ${s} >= sigmas[${k - 1}] = ${sigmas[k - 1]}`,
      );
    }
  }
  if (!(sigmas[0]! > 0)) throw new SamplerError('the first noise level must be > 0');
}

/** A synchronous `Denoiser` or an `AsyncDenoiser`: what `sample`, `sampleSteps` and `invert` accept. */
export type AnyDenoiser = Denoiser | AsyncDenoiser;

/** Whether the driver awaits `predictAsync` (preferred when a model offers both) or calls `predict`. */
function isAsync(denoiser: AnyDenoiser): denoiser is AsyncDenoiser {
  return typeof (denoiser as Partial<AsyncDenoiser>).predictAsync === 'function';
}

/** Throws a `SamplerError` unless `denoiser` has `predict` or `predictAsync` (plain-JS callers). */
function assertDenoiser(denoiser: AnyDenoiser): void {
  const d = denoiser as Partial<Denoiser & AsyncDenoiser> | null | undefined;
  if (
    d == null ||
    (typeof d !== 'object' && typeof d !== 'function') ||
    (typeof d.predict !== 'function' && typeof d.predictAsync !== 'function')
  ) {
    throw new SamplerError(
      'the denoiser must have a predict(x, level, cond) or predictAsync method',
    );
  }
  if (!(PREDICTIONS as readonly unknown[]).includes(d.prediction)) {
    throw new SamplerError(
      `the denoiser's prediction must be one of ${PREDICTIONS.join(', ')}, got ${describe(d.prediction)}`,
    );
  }
}

/** Throws a `SamplerError` naming the denoiser's output unless it is a live tensor. */
function assertPredictionTensor(
  pred: unknown,
  how: string,
  step: number,
): asserts pred is tf.Tensor {
  if (!isTensor(pred)) {
    throw new SamplerError(
      `the denoiser's ${how} returned ${describe(pred)}${Array.isArray(pred) ? ` (length ${pred.length})` : ''}, not a tensor; wrap plain values with tf.tensor(...)`,
      step,
    );
  }
  if (pred.isDisposed)
    throw new SamplerError(`the denoiser's ${how} returned a disposed tensor`, step);
}

/** The VP-scaled model input x_t = alpha x of a VE state x. */
function vpInput(x: tf.Tensor, level: NoiseLevel<number>): tf.Tensor {
  return level.alpha === 1 ? x : tf.mul(x, level.alpha);
}

/** Checks the prediction's shape and converts it to x0 (`convertPrediction`); `pred` is borrowed. */
function predictionToX0(
  pred: tf.Tensor,
  prediction: Denoiser['prediction'],
  xin: tf.Tensor,
  level: NoiseLevel<number>,
  step: number,
): tf.Tensor {
  if (pred.shape.length !== xin.shape.length || pred.shape.some((d, k) => d !== xin.shape[k])) {
    throw new SamplerError(
      `the denoiser returned shape [${pred.shape.join(', ')}] for input [${xin.shape.join(', ')}]`,
      step,
    );
  }
  return convertPrediction(pred, prediction, 'x0', xin, level);
}

/**
 * Calls the denoiser on a VE-scaled state: the model sees x_t = alpha x (VP-scaled) and its level
 * (alpha, sigma); its prediction is converted to x0 with `convertPrediction`. Synchronous: an
 * `AsyncDenoiser` (no `predict`) is a `SamplerError` here; `sample` / `sampleSteps` / `invert`
 * accept one (they await it), synchronous math such as `logLikelihood`'s ODE cannot.
 *
 * @example
 * const x0 = denoiseVE(gm.denoiser('epsilon'), xVE, { alpha: 0.8, sigma: 0.6 }, undefined, 0);
 */
export function denoiseVE(
  denoiser: Denoiser,
  x: tf.Tensor,
  level: NoiseLevel<number>,
  cond: Conditioning | undefined,
  step: number,
): tf.Tensor {
  if (typeof (denoiser as Partial<Denoiser>).predict !== 'function') {
    throw new SamplerError(
      isAsync(denoiser)
        ? 'this denoiser is asynchronous (predictAsync only, e.g. ONNX Runtime Web): sample, sampleSteps and invert accept it, but this API evaluates the model synchronously and needs a Denoiser with predict'
        : 'the denoiser has no predict(x, level, cond) method',
      step,
    );
  }
  return tf.tidy(() => {
    const xin = vpInput(x, level);
    const pred: unknown = denoiser.predict(xin, level, cond);
    assertPredictionTensor(pred, 'predict', step);
    return predictionToX0(pred, denoiser.prediction, xin, level, step);
  });
}

/**
 * `denoiseVE` for either kind of denoiser: awaits `predictAsync` when the model has it, else calls
 * `predict`. The tensor ops are the same as `denoiseVE`'s, so results are bit-identical.
 */
async function denoiseVEAny(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  level: NoiseLevel<number>,
  cond: Conditioning | undefined,
  step: number,
): Promise<tf.Tensor> {
  if (!isAsync(denoiser)) return denoiseVE(denoiser, x, level, cond, step);
  const xin = vpInput(x, level);
  try {
    const pred: unknown = await denoiser.predictAsync(xin, level, cond);
    assertPredictionTensor(pred, 'predictAsync', step);
    try {
      return tf.tidy(() => predictionToX0(pred, denoiser.prediction, xin, level, step));
    } finally {
      pred.dispose();
    }
  } finally {
    if (xin !== x) xin.dispose();
  }
}

/** Throws `NonFiniteError` naming the step when `t` holds NaN or infinity (one scalar readback). */
export async function assertFinite(t: tf.Tensor, what: string, step: number): Promise<void> {
  const ok = tf.tidy(() => tf.all(tf.isFinite(t)));
  const v = (await ok.data())[0];
  ok.dispose();
  if (!v) throw new NonFiniteError(what, step);
}

function initialNoise(denoiser: AnyDenoiser, o: SampleOptions, rng: () => Random): tf.Tensor {
  if (o.noise !== undefined) return tf.clone(o.noise);
  const shape = o.shape ?? (denoiser.shape ? [o.batch ?? 1, ...denoiser.shape] : undefined);
  if (shape === undefined)
    throw new SamplerError('give noise, start, shape, or a denoiser with a fixed shape');
  return rng().normal(shape);
}

/** The VE start state: `start` / alpha_0, or the unit noise times sigma_0 (k-diffusion). */
function startState(
  denoiser: AnyDenoiser,
  o: SampleOptions,
  plan: SamplingPlan,
  rng: () => Random,
): tf.Tensor {
  const s0 = plan.sigmas[0]!;
  if (o.start !== undefined) {
    const start = o.start;
    return tf.tidy(() => tf.div(start, plan.levelFor(s0).alpha));
  }
  return tf.tidy(() => tf.mul(initialNoise(denoiser, o, rng), s0));
}

/**
 * Runs a sampler step by step: an async generator of `StepInfo` (borrowed tensors, valid until the
 * next iteration) whose return value is the final sample, VP-scaled at the last level
 * (x = alpha_N x_VE; the data itself when the last level is 0). Breaking out of the loop frees everything.
 *
 * @example
 * const it = sampleSteps(gm.denoiser('epsilon'), { sampler: 'dpmpp_2m', steps: 20, shape: [64, 2], seed: 7 });
 * for (let r = await it.next(); ; r = await it.next()) {
 *   if (r.done) { draw(await r.value.array()); r.value.dispose(); break; }
 *   progress(r.value.i / r.value.steps);
 * }
 */
export async function* sampleSteps(
  denoiser: AnyDenoiser,
  options: SampleOptions = {},
): AsyncGenerator<StepInfo, tf.Tensor, void> {
  return yield* sampleStepsCounting(denoiser, options, { nfe: 0, steps: 0 });
}

/** What a run counts as it goes (read by `sampleWithInfo`). */
interface RunStats {
  nfe: number;
  steps: number;
  sigmas?: number[];
}

async function* sampleStepsCounting(
  denoiser: AnyDenoiser,
  options: SampleOptions,
  stats: RunStats,
): AsyncGenerator<StepInfo, tf.Tensor, void> {
  const plan = resolvePlan(options);
  stats.sigmas = plan.sigmas;
  return yield* drive(
    denoiser,
    options,
    plan,
    (getRng) => startState(denoiser, options, plan, getRng),
    false,
    stats,
  );
}

/** Runs the sampler program of `options.sampler` over `plan`, starting from the VE state `start()`. */
async function* drive(
  denoiser: AnyDenoiser,
  options: SampleOptions,
  plan: SamplingPlan,
  start: (getRng: () => Random) => tf.Tensor,
  requireDeterministic = false,
  stats: RunStats = { nfe: 0, steps: 0 },
): AsyncGenerator<StepInfo, tf.Tensor, void> {
  checkSampleOptions(options);
  assertDenoiser(denoiser);
  const def = getSampler(options.sampler ?? 'euler');
  if (requireDeterministic && def.stochastic) {
    throw new SamplerError(
      `sampler '${def.name}' is stochastic; inversion needs a deterministic one (e.g. euler = DDIM)`,
    );
  }
  const samplerOptions = resolveSamplerOptions(def, options.samplerOptions);
  const { sigmas, levelFor } = plan;
  const steps = sigmas.length - 1;
  let rng: Random | undefined = options.rng;
  const getRng = (): Random => {
    if (rng) return rng;
    if (options.seed === undefined) {
      throw new SamplerError(
        `sampler '${def.name}' needs noise: give seed, rng or noiseSampler (and noise for the start)`,
      );
    }
    rng = Random.seed(options.seed);
    return rng;
  };
  const scope = new RunScope();
  let x = scope.keep(start(getRng));
  const shape = x.shape;
  const userNoise = options.noiseSampler;
  const source: NoiseSource = userNoise
    ? (s, sn, sh) => {
        const z: unknown = userNoise(s, sn, sh);
        if (!isTensor(z) || z.isDisposed || z.shape.join() !== sh.join()) {
          if (isTensor(z) && !z.isDisposed) z.dispose();
          throw new SamplerError(
            `noiseSampler(${s}, ${sn}) must return a live tensor of shape [${sh.join(', ')}], got ${isTensor(z) ? `shape [${z.shape.join(', ')}]` : describe(z)}`,
          );
        }
        return z;
      }
    : (_s, _n, sh) => getRng().normal(sh);
  const program = def.fn(
    scope.context(() => shape, source),
    x,
    sigmas,
    samplerOptions,
  );
  const check = options.checkFinite ?? true;
  let calls = 0;
  try {
    let input: tf.Tensor | Float32Array | undefined;
    for (;;) {
      const r = program.next(input);
      input = undefined;
      if (r.done) {
        x = r.value;
        const alpha = levelFor(sigmas[steps]!).alpha;
        const result = alpha === 1 ? tf.clone(x) : tf.tidy(() => tf.mul(x, alpha));
        if (check) {
          try {
            await assertFinite(result, 'the final sample', steps - 1);
          } catch (e) {
            result.dispose();
            throw e;
          }
        }
        return result;
      }
      const y = r.value;
      if (options.signal?.aborted)
        throw new SamplingAbortedError(
          y.kind === 'denoise' ? y.step : y.kind === 'step' ? y.i : undefined,
        );
      if (y.kind === 'read') {
        const v = await y.tensor.data();
        input = v instanceof Float32Array ? v : Float32Array.from(v as ArrayLike<number>);
      } else if (y.kind === 'denoise') {
        if (!(y.sigma > 0) || !Number.isFinite(y.sigma)) {
          throw new SamplerError(
            `the sampler asked for the denoiser at sigma = ${y.sigma}`,
            y.step,
          );
        }
        const level = levelFor(y.sigma);
        input = scope.keep(await denoiseVEAny(denoiser, y.x, level, options.cond, y.step));
        calls++;
        stats.nfe = calls;
        // One readback per model call: the state the sampler passed in and the model's output.
        if (check)
          await assertAllFinite(
            [
              [
                calls === 1
                  ? `the start state (input of model call 1 at sigma = ${y.sigma})`
                  : `the sampler state x (input of model call ${calls} at sigma = ${y.sigma})`,
                y.x,
              ],
              [`the model output at sigma = ${y.sigma} (model call ${calls})`, input],
            ],
            y.step,
          );
      } else {
        const info: StepInfo = {
          i: y.i,
          steps,
          sigma: y.sigma,
          sigmaHat: y.sigmaHat,
          x: y.x,
          denoised: y.denoised,
          nfe: calls,
        };
        stats.steps++;
        if (options.onStep) await options.onStep(info);
        yield info;
      }
    }
  } finally {
    program.return(undefined as unknown as tf.Tensor);
    scope.disposeAll();
  }
}

/**
 * Draws samples with a registered sampler: `sample(denoiser, options)` in the style of k-diffusion's
 * `sample_*(model, x, sigmas)`. The denoiser sees VP-scaled inputs x_t = alpha x0 + sigma eps with their
 * levels; every sampler is written once in VE variables (Karras et al. 2022, sec. 2-3).
 * Returns the final sample (VP-scaled at the last level; the data when it is 0); the caller owns it.
 * `denoiser` may be an `AsyncDenoiser` (e.g. ONNX Runtime Web): each model call is awaited, with
 * bit-identical results to the same model called synchronously.
 *
 * @example
 * import { GaussianMixture } from '@diffuse/models';
 * const gm = new GaussianMixture({ weights: [0.5, 0.5], means: [[-1, 0], [1, 0]], covs: [[[0.05, 0], [0, 0.05]], [[0.05, 0], [0, 0.05]]] });
 * const x = await sample(gm.denoiser('epsilon'), { sampler: 'dpmpp_2m', steps: 20, shape: [256, 2], seed: 1 });
 */
export async function sample(
  denoiser: AnyDenoiser,
  options: SampleOptions = {},
): Promise<tf.Tensor> {
  return (await sampleWithInfo(denoiser, options)).sample;
}

/**
 * `sample` that also reports how the run went: the number of model calls (NFE; heun makes 2n - 1,
 * plms n + 1, dpm_adaptive as many as its error control needs), the number of steps and the noise
 * levels. The caller owns `result.sample`.
 *
 * @example
 * const { sample: x, nfe } = await sampleWithInfo(denoiser, { sampler: 'heun', steps: 10, shape: [16, 2], seed: 1 });
 * // nfe === 19: Heun evaluates twice per step except the last (to sigma = 0)
 * // An explicit start state x_T (VP-scaled at the first level), e.g. from invert():
 * const again = await sampleWithInfo(denoiser, { sampler: 'euler', steps: 10, start: xT });
 */
export async function sampleWithInfo(
  denoiser: AnyDenoiser,
  options: SampleOptions = {},
): Promise<SampleResult> {
  const stats: RunStats = { nfe: 0, steps: 0 };
  const it = sampleStepsCounting(denoiser, options, stats);
  for (;;) {
    const r = await it.next();
    if (r.done) {
      return { sample: r.value, nfe: stats.nfe, steps: stats.steps, sigmas: [...stats.sigmas!] };
    }
  }
}

/**
 * Deterministic inversion, data to noise (Song et al. 2021, DDIM sec. 4.3 and 5.4; Dhariwal & Nichol
 * 2021, appendix): a deterministic sampler run up the noise levels. With `euler` (the default) each
 * step is DDIM's x_{t+1} = alpha_{t+1} x0(x_t) + sigma_{t+1} eps(x_t), i.e. x' = x + (sigma' - sigma) d in
 * VE variables. `x` is VP-scaled at the first (lowest, > 0) level; the result is VP-scaled at the
 * last. Noise levels: increasing `sigmas` / `levels`, or a schedule whose levels are reversed (a final
 * 0 dropped). Yields `StepInfo` like `sampleSteps`.
 *
 * @example
 * const latent = await invert(gm.denoiser('epsilon'), x0, { schedule: DiscreteSchedule.fromConfig(), steps: 50 });
 * const back = await sample(gm.denoiser('epsilon'), { levels: reversedLevels, noise: ... });
 */
export async function* invertSteps(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  options: SampleOptions = {},
): AsyncGenerator<StepInfo, tf.Tensor, void> {
  checkSampleOptions(options);
  if (options.noise !== undefined || options.start !== undefined)
    throw new SamplerError('invert starts from x: noise and start do not apply');
  if (!isTensor(x) || x.isDisposed) throw new SamplerError('invert needs x as a live tensor');
  let plan: SamplingPlan;
  const increasing = (a: ArrayLike<number>) => a.length > 1 && a[0]! < a[a.length - 1]!;
  if (options.sigmas !== undefined && increasing(options.sigmas)) {
    const rev = Array.from(options.sigmas).reverse();
    const p = resolvePlan({ ...options, sigmas: rev });
    plan = { sigmas: Array.from(options.sigmas), levelFor: p.levelFor };
  } else if (
    options.levels !== undefined &&
    options.levels.length > 1 &&
    options.levels[0]!.sigma / options.levels[0]!.alpha <
      options.levels[options.levels.length - 1]!.sigma /
        options.levels[options.levels.length - 1]!.alpha
  ) {
    const p = resolvePlan({ ...options, levels: [...options.levels].reverse() });
    plan = { sigmas: [...p.sigmas].reverse(), levelFor: p.levelFor };
  } else {
    const p = resolvePlan(options);
    plan = { sigmas: p.sigmas.filter((s) => s > 0).reverse(), levelFor: p.levelFor };
  }
  if (plan.sigmas.length < 2)
    throw new SamplerError('inversion needs at least two positive noise levels');
  const a0 = plan.levelFor(plan.sigmas[0]!).alpha;
  return yield* drive(denoiser, options, plan, () => tf.div(x, a0), true);
}

/**
 * `invertSteps` run to the end: the latent (VP-scaled at the highest level); the caller owns it.
 *
 * @example
 * const latent = await invert(denoiser, x0, { sigmas: [0.01, 0.1, 1, 10] });
 */
export async function invert(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  options: SampleOptions = {},
): Promise<tf.Tensor> {
  const it = invertSteps(denoiser, x, options);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
