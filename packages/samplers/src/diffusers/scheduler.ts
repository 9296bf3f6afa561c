/**
 * `createScheduler(config)`: diffusers-compatible scheduler objects as thin adapters over the sampler
 * programs. `step(modelOutput, t, sample)` converts the model output to x0 with `convertPrediction`
 * (or EDM's preconditioning), feeds it to the paused program and returns the state at its next model
 * call (or its result) in the class's sample convention. All step math is the registered samplers'.
 */
import { Random } from '@diffuse/backend';
import {
  type BetaSchedule,
  convertPrediction,
  DiscreteSchedule,
  edmPreconditioning,
  type NoiseLevel,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { NonFiniteError, SamplerError, SchedulerConfigError } from '../errors.js';
import { getSampler, resolveSamplerOptions } from '../registry.js';
import { RunScope } from '../run.js';
import type { DenoiseRequest, SamplerProgram } from '../types.js';
import {
  CLASSES,
  type ClassPlan,
  type ClassSpec,
  type DiffusersConfig,
  predictionOf,
} from './classes.js';

/** Extra arguments of `step`. */
export interface StepOptions {
  /** The noise this step injects (stochastic schedulers), N(0, I) shaped like the sample. */
  noise?: tf.Tensor;
  /** DDIM's eta (fixed by the first call). */
  eta?: number;
  /** LMS order (fixed by the first call). */
  order?: number;
}

/** What `step` returns; the caller owns both tensors. */
export interface StepOutput {
  prevSample: tf.Tensor;
  predOriginalSample: tf.Tensor;
}

/** Options of `createScheduler` beyond the diffusers config. */
export interface CreateSchedulerOptions {
  /** Seed for step noise when `step` is not given `noise` (default 0). */
  seed?: number;
  /** Check every model output for NaN / infinity (one scalar readback per step; default true). */
  checkFinite?: boolean;
}

/** A diffusers-style scheduler. */
export interface Scheduler {
  readonly className: string;
  /** Model-call timesteps after `setTimesteps` (Heun/KDPM2/PNDM: one per model call). */
  readonly timesteps: number[];
  /** VE sigmas of the sampler chain (steps + 1). */
  readonly sigmas: number[];
  readonly initNoiseSigma: number;
  readonly numInferenceSteps: number | null;
  setTimesteps(n: number): void;
  scaleModelInput(x: tf.Tensor, t: number): tf.Tensor;
  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options?: StepOptions): StepOutput;
  addNoise(x0: tf.Tensor, noise: tf.Tensor, t: number | readonly number[]): tf.Tensor;
  toConfig(): DiffusersConfig;
  /** Frees the tensors a half-finished run holds. */
  dispose(): void;
}

const camel = (cfg: DiffusersConfig) => ({
  numTrainTimesteps: cfg.num_train_timesteps as number,
  betaSchedule: cfg.beta_schedule as BetaSchedule,
  betaStart: cfg.beta_start as number,
  betaEnd: cfg.beta_end as number,
  trainedBetas: (cfg.trained_betas as number[] | null) ?? null,
  rescaleBetasZeroSnr: cfg.rescale_betas_zero_snr as boolean,
});

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b) || a === b;
}

/** Validates a config against its class: unknown keys and unimplemented values throw. */
export function resolveConfig(config: DiffusersConfig): {
  className: string;
  spec: ClassSpec;
  cfg: DiffusersConfig;
} {
  const className = config._class_name;
  if (typeof className !== 'string')
    throw new SchedulerConfigError('the config has no _class_name');
  const spec = CLASSES[className];
  if (spec === undefined) {
    throw new SchedulerConfigError(
      `unknown _class_name '${className}'; supported: ${Object.keys(CLASSES).join(', ')}`,
    );
  }
  const cfg: DiffusersConfig = { ...spec.defaults };
  for (const [k, v] of Object.entries(config)) {
    if (k.startsWith('_') || v === undefined) continue;
    if (!(k in spec.defaults)) {
      throw new SchedulerConfigError(
        `${className} has no option '${k}'; its options are ${Object.keys(spec.defaults).join(', ')}`,
      );
    }
    cfg[k] =
      v === '-inf' || (v === null && spec.defaults[k] === Number.NEGATIVE_INFINITY)
        ? Number.NEGATIVE_INFINITY
        : v === 'inf'
          ? Number.POSITIVE_INFINITY
          : v;
  }
  for (const [k, allowed] of Object.entries(spec.only ?? {})) {
    if (!(k in spec.defaults)) continue;
    if (!allowed.some((a) => same(a, cfg[k]))) {
      throw new SchedulerConfigError(
        `${className} option ${k} = ${JSON.stringify(cfg[k])} is not supported here (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }
  predictionOf(cfg);
  return { className, spec, cfg };
}

class AdapterScheduler implements Scheduler {
  readonly className: string;
  private readonly spec: ClassSpec;
  private readonly cfg: DiffusersConfig;
  private readonly schedule: DiscreteSchedule | null;
  private readonly rng: Random;
  private readonly checkFinite: boolean;
  private plan: ClassPlan | null = null;
  private n: number | null = null;
  // The paused program of the current run.
  private scope: RunScope | null = null;
  private program: SamplerProgram | null = null;
  private request: DenoiseRequest | null = null;
  private finished = false;
  private counter = 0;
  private pendingNoise: tf.Tensor | null = null;

  constructor(
    className: string,
    spec: ClassSpec,
    cfg: DiffusersConfig,
    options: CreateSchedulerOptions,
  ) {
    this.className = className;
    this.spec = spec;
    this.cfg = cfg;
    this.schedule = 'beta_schedule' in cfg ? DiscreteSchedule.fromConfig(camel(cfg)) : null;
    this.rng = Random.seed(options.seed ?? 0);
    this.checkFinite = options.checkFinite ?? true;
  }

  get timesteps(): number[] {
    return this.plan ? [...this.plan.timesteps] : [];
  }
  get sigmas(): number[] {
    return this.plan ? [...this.plan.sigmas] : [];
  }
  get initNoiseSigma(): number {
    if (this.plan) return this.plan.initNoiseSigma;
    return this.className === 'EDMEulerScheduler'
      ? Math.sqrt((this.cfg.sigma_max as number) ** 2 + 1)
      : 1;
  }
  get numInferenceSteps(): number | null {
    return this.n;
  }

  setTimesteps(n: number): void {
    const T = (this.cfg.num_train_timesteps as number) ?? 1000;
    if (!Number.isInteger(n) || n < 1)
      throw new SamplerError(`setTimesteps needs a positive integer number of steps, got ${n}`);
    if (this.schedule && n > T)
      throw new SamplerError(`setTimesteps(${n}): more steps than the ${T} training timesteps`);
    this.dispose();
    this.n = n;
    this.plan = this.spec.plan(this.cfg, this.schedule, n, {});
    this.counter = 0;
  }

  private levelFor(s: number): NoiseLevel<number> {
    const e = this.plan?.exactLevels.get(s);
    if (e) return e;
    if (s === 0 || this.spec.embedding === 've') return { alpha: 1, sigma: s };
    const alpha = 1 / Math.sqrt(1 + s * s);
    return { alpha, sigma: s * alpha };
  }

  private requirePlan(): ClassPlan {
    if (!this.plan)
      throw new SamplerError(`${this.className}: call setTimesteps(n) before using the scheduler`);
    return this.plan;
  }

  /** Index of model call for timestep t: the current one when it matches, else the first match. */
  private callIndex(t: number): number {
    const ts = this.requirePlan().timesteps;
    if (ts[this.counter] === t) return this.counter;
    const k = ts.indexOf(t);
    if (k < 0)
      throw new SamplerError(
        `${this.className}: timestep ${t} is not one of the scheduler's timesteps`,
      );
    return k;
  }

  scaleModelInput(x: tf.Tensor, t: number): tf.Tensor {
    const s = this.requirePlan().modelSigmas[this.callIndex(t)]!;
    if (this.className === 'EDMEulerScheduler')
      return tf.mul(x, edmPreconditioning(s, this.cfg.sigma_data as number).cIn);
    if (this.spec.scaling === 've') return tf.div(x, Math.sqrt(s * s + 1));
    return tf.clone(x);
  }

  private toVE(x: tf.Tensor, s: number): tf.Tensor {
    if (this.spec.scaling === 've') return tf.clone(x);
    return tf.div(x, this.levelFor(s).alpha);
  }

  private fromVE(x: tf.Tensor, s: number): tf.Tensor {
    if (this.spec.scaling === 've') return tf.clone(x);
    return tf.mul(x, this.levelFor(s).alpha);
  }

  private start(sample: tf.Tensor, stepOptions: StepOptions): void {
    const plan = this.spec.plan(this.cfg, this.schedule, this.n!, { ...stepOptions });
    this.plan = plan;
    const def = getSampler(plan.sampler);
    const options = resolveSamplerOptions(def, plan.options);
    const scope = new RunScope();
    const x = scope.keep(tf.tidy(() => this.toVE(sample, plan.sigmas[0]!)));
    const shape = x.shape;
    this.scope = scope;
    this.program = def.fn(
      scope.context(
        () => shape,
        (_s, _n, sh) => {
          if (this.pendingNoise) {
            const z = this.pendingNoise;
            this.pendingNoise = null;
            return z;
          }
          return this.rng.normal(sh);
        },
      ),
      x,
      plan.sigmas,
      options,
    );
    this.finished = false;
    this.advance(undefined);
  }

  /** Resumes the program until its next model call (or its end). Returns the final state if it ended. */
  private advance(first: tf.Tensor | undefined): tf.Tensor | null {
    let input: tf.Tensor | Float32Array | undefined = first;
    for (;;) {
      const r = this.program!.next(input);
      input = undefined;
      if (r.done) {
        this.request = null;
        this.finished = true;
        return r.value;
      }
      if (r.value.kind === 'denoise') {
        this.request = r.value;
        return null;
      }
      if (r.value.kind === 'read') input = r.value.tensor.dataSync() as Float32Array;
    }
  }

  private toX0(modelOutput: tf.Tensor, sample: tf.Tensor, s: number): tf.Tensor {
    return tf.tidy(() => {
      if (this.className === 'EDMEulerScheduler') {
        const p = edmPreconditioning(s, this.cfg.sigma_data as number);
        const sign = this.cfg.prediction_type === 'v_prediction' ? -1 : 1;
        return tf.add(tf.mul(sample, p.cSkip), tf.mul(modelOutput, sign * p.cOut));
      }
      const level = this.levelFor(s);
      const xin = this.spec.scaling === 've' ? tf.mul(sample, level.alpha) : sample;
      let x0 = convertPrediction(modelOutput, predictionOf(this.cfg), 'x0', xin, level);
      if (this.cfg.clip_sample === true) {
        const r = this.cfg.clip_sample_range as number;
        x0 = tf.clipByValue(x0, -r, r);
      }
      return x0;
    });
  }

  step(
    modelOutput: tf.Tensor,
    t: number,
    sample: tf.Tensor,
    options: StepOptions = {},
  ): StepOutput {
    const plan = this.requirePlan();
    for (const k of Object.keys(options)) {
      if (!['noise', 'eta', 'order'].includes(k))
        throw new SamplerError(`${this.className}.step has no option '${k}'`, this.counter);
    }
    const k = this.counter;
    if (k >= plan.timesteps.length || this.finished) {
      throw new SamplerError(
        `${this.className}: step called ${k + 1} times but there are ${plan.timesteps.length} timesteps; call setTimesteps again`,
        k,
      );
    }
    if (t !== plan.timesteps[k]) {
      throw new SamplerError(
        `${this.className}: expected timestep ${plan.timesteps[k]}, got ${t}`,
        k,
      );
    }
    const same = (a: readonly number[], b: readonly number[]) =>
      a.length === b.length && a.every((d, j) => d === b[j]);
    if (!same(modelOutput.shape, sample.shape)) {
      throw new SamplerError(
        `model output shape [${modelOutput.shape}] differs from sample shape [${sample.shape}]`,
        k,
      );
    }
    if (options.noise && !same(options.noise.shape, sample.shape)) {
      throw new SamplerError(
        `noise shape [${options.noise.shape}] differs from sample shape [${sample.shape}]`,
        k,
      );
    }
    if (this.checkFinite) {
      const ok = tf.tidy(() => tf.all(tf.isFinite(modelOutput)));
      const v = ok.dataSync()[0];
      ok.dispose();
      if (!v) throw new NonFiniteError(`${this.className}: the model output at timestep ${t}`, k);
    }
    if (!this.program) this.start(sample, options);
    if (!same(this.request!.x.shape, sample.shape)) {
      throw new SamplerError(
        `sample shape [${sample.shape}] differs from the run's [${this.request!.x.shape}]`,
        k,
      );
    }
    const s = this.request!.sigma;
    if (Math.abs(s - plan.modelSigmas[k]!) > 1e-6 * s) {
      throw new SamplerError(
        `internal: model call ${k} is at sigma ${s}, expected ${plan.modelSigmas[k]}`,
        k,
      );
    }
    const scope = this.scope!;
    const denoised = scope.keep(this.toX0(modelOutput, sample, s));
    const predOriginalSample = tf.clone(denoised);
    if (options.noise) this.pendingNoise = tf.clone(options.noise);
    const final = this.advance(denoised);
    if (this.pendingNoise) {
      this.pendingNoise.dispose();
      this.pendingNoise = null;
    }
    this.counter++;
    let prevSample: tf.Tensor;
    if (final) {
      const sEnd = plan.sigmas[plan.sigmas.length - 1]!;
      prevSample = tf.tidy(() => this.fromVE(final, sEnd));
      this.releaseRun();
      this.finished = true;
    } else {
      const r = this.request!;
      prevSample = tf.tidy(() => this.fromVE(r.x, r.sigma));
    }
    return { prevSample, predOriginalSample };
  }

  addNoise(x0: tf.Tensor, noise: tf.Tensor, t: number | readonly number[]): tf.Tensor {
    const plan = this.requirePlan();
    const ts = typeof t === 'number' ? [t] : [...t];
    const levels = ts.map((ti) => {
      const k = plan.timesteps.indexOf(ti);
      if (k >= 0) return this.levelFor(plan.modelSigmas[k]!);
      if (this.schedule && Number.isInteger(ti)) return this.schedule.levelAtIndex(ti);
      throw new SamplerError(`${this.className}.addNoise: unknown timestep ${ti}`);
    });
    return tf.tidy(() => {
      const shape = [ts.length, ...new Array(x0.rank - 1).fill(1)];
      const scaleVE = this.spec.scaling === 've';
      const a = tf.tensor(
        levels.map((l) => (scaleVE ? 1 : l.alpha)),
        ts.length === 1 ? [1] : shape,
      );
      const sg = tf.tensor(
        levels.map((l) => (scaleVE ? l.sigma / l.alpha : l.sigma)),
        ts.length === 1 ? [1] : shape,
      );
      return tf.add(tf.mul(x0, a), tf.mul(noise, sg));
    });
  }

  toConfig(): DiffusersConfig {
    return { _class_name: this.className, ...this.cfg };
  }

  private releaseRun(): void {
    this.program?.return(undefined as unknown as tf.Tensor);
    this.scope?.disposeAll();
    this.scope = null;
    this.program = null;
    this.request = null;
  }

  dispose(): void {
    this.releaseRun();
    this.counter = 0;
    this.finished = false;
  }
}

/**
 * A diffusers-compatible scheduler from a `scheduler_config.json` object (with `_class_name`).
 * Supported classes: DDPMScheduler, DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, KDPM2DiscreteScheduler,
 * KDPM2AncestralDiscreteScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler,
 * DEISMultistepScheduler, EDMEulerScheduler. Unknown classes or options throw `SchedulerConfigError`.
 *
 * @example
 * const scheduler = createScheduler({ _class_name: 'EulerDiscreteScheduler', beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 });
 * scheduler.setTimesteps(25);
 * let x = tf.mul(noise, scheduler.initNoiseSigma);
 * for (const t of scheduler.timesteps) {
 *   const out = model(scheduler.scaleModelInput(x, t), t);
 *   const { prevSample, predOriginalSample } = scheduler.step(out, t, x);
 *   x.dispose(); predOriginalSample.dispose(); x = prevSample;
 * }
 */
export function createScheduler(
  config: DiffusersConfig,
  options: CreateSchedulerOptions = {},
): Scheduler {
  const { className, spec, cfg } = resolveConfig(config);
  return new AdapterScheduler(className, spec, cfg, options);
}

/** Every `_class_name` `createScheduler` accepts. */
export const SCHEDULER_CLASSES: readonly string[] = Object.keys(CLASSES);
