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
import { type BrownianNoise, brownianNoise } from '../brownian.js';
import { SamplerError, SchedulerConfigError } from '../errors.js';
import { ancestralStep, dynamicThreshold, learnedVarianceStd } from '../helpers.js';
import { getSampler, resolveSamplerOptions } from '../registry.js';
import { RunScope } from '../run.js';
import type { DenoiseRequest, SamplerProgram } from '../types.js';
import {
  CLASSES,
  type ClassPlan,
  type ClassSpec,
  type DiffusersConfig,
  MU_KEY,
  predictionOf,
  type SchedulerConfigOverrides,
} from './classes.js';
import { FLOW_CLASSES, FlowScheduler } from './flow.js';
import { type ResolvedDiffusersConfig, resolveDiffusersConfig } from './from-config.js';
import { DiffusersPndm } from './pndm.js';
import { assertFinalStepFinite, assertFiniteSync, checkStepArguments } from './step-checks.js';

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
  /**
   * Throw a `SchedulerConfigError` on any config key the class does not take (default false: such keys
   * are ignored as diffusers' `from_config` ignores them, with one warning for the keys no compatible
   * class knows).
   */
  strict?: boolean;
  /** Receives the load warning (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/** Extra arguments of `setTimesteps`. */
export interface SetTimestepsOptions {
  /** The dynamic-shifting exponent (`FlowMatchEulerDiscreteScheduler` with `use_dynamic_shifting`). */
  mu?: number;
}

/** A diffusers-style scheduler. */
export interface Scheduler {
  readonly className: string;
  /**
   * The timestep of every model call after `setTimesteps`: diffusers' `scheduler.timesteps` (Heun, KDPM2,
   * PNDM: one per model call), except `DDPMWuerstchenScheduler`, whose diffusers list ends with the
   * final t = 0 that Stable Cascade's pipeline does not step (`timesteps[:-1]`): here it is left out.
   */
  readonly timesteps: number[];
  /** VE sigmas of the sampler chain (steps + 1); flow classes: diffusers' flow sigmas t. */
  readonly sigmas: number[];
  /** The scale of the initial noise (flow classes, which have none in diffusers: 1, the noise itself). */
  readonly initNoiseSigma: number;
  readonly numInferenceSteps: number | null;
  /** The config keys this class does not take (ignored, as diffusers' `from_config` ignores them). */
  readonly ignoredKeys: readonly string[];
  /** diffusers' load warning for keys no compatible class knows (empty or one message). */
  readonly warnings: readonly string[];
  setTimesteps(n: number, options?: SetTimestepsOptions): void;
  scaleModelInput(x: tf.Tensor, t: number): tf.Tensor;
  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options?: StepOptions): StepOutput;
  addNoise(x0: tf.Tensor, noise: tf.Tensor, t: number | readonly number[]): tf.Tensor;
  /**
   * `scheduler.config` as diffusers holds it: every init parameter, `_use_default_values`, then the
   * file's other keys (`_class_name`, `_diffusers_version`, ignored keys). Feed it to `fromConfig` to
   * swap classes; write it with `stringifyDiffusersJson` for diffusers' file format.
   */
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

/** A resolved config with its class spec (beta-table and EDM classes). */
export interface ResolvedClass extends ResolvedDiffusersConfig {
  spec: ClassSpec;
  cfg: DiffusersConfig;
}

/** Why the diffusers classes this package knows but does not implement are left out. */
const UNIMPLEMENTED: Record<string, string> = {
  CogVideoXDPMScheduler:
    "its step is not the scheduler contract: the pipeline passes the previous x0 estimate and the previous timestep (step(model_output, old_pred_original_sample, timestep, timestep_back, sample)); use DPMSolverMultistepScheduler with algorithm_type 'sde-dpmsolver++' on the same levels",
};

/**
 * Resolves a config (and overrides) with diffusers' `from_config` semantics, then checks the values
 * against what the class implements here. Every check runs before anything is allocated.
 */
export function resolveConfig(
  config: unknown,
  overrides: DiffusersConfig = {},
  options: { strict?: boolean } = {},
): ResolvedClass {
  const r = resolveDiffusersConfig(config, overrides, options);
  const className = r.className;
  if (FLOW_CLASSES[className]) {
    return { ...r, spec: null as unknown as ClassSpec, cfg: { ...r.init } };
  }
  const spec = CLASSES[className];
  if (spec === undefined) {
    throw new SchedulerConfigError(
      `${className} is a diffusers class this package does not implement${UNIMPLEMENTED[className] ? ` (${UNIMPLEMENTED[className]})` : ''}; supported: ${SCHEDULER_CLASSES.join(', ')}`,
    );
  }
  const cfg: DiffusersConfig = {};
  for (const [k, v] of Object.entries(r.init)) {
    cfg[k] =
      v === '-inf' || (v === null && spec.defaults[k] === Number.NEGATIVE_INFINITY)
        ? Number.NEGATIVE_INFINITY
        : v === 'inf'
          ? Number.POSITIVE_INFINITY
          : v;
  }
  for (const [k, allowed] of Object.entries(spec.only ?? {})) {
    if (!(k in spec.defaults) || allowed.length === 0) continue;
    if (!allowed.some((a) => same(a, cfg[k]))) {
      throw new SchedulerConfigError(
        `${className} option ${k} = ${JSON.stringify(cfg[k])} is not supported here (supported: ${allowed.map((a) => JSON.stringify(a)).join(', ')})`,
      );
    }
  }
  if (
    cfg.trained_betas == null &&
    typeof cfg.beta_start === 'number' &&
    typeof cfg.beta_end === 'number' &&
    cfg.beta_schedule !== 'squaredcos_cap_v2' &&
    cfg.beta_start > cfg.beta_end
  ) {
    throw new SchedulerConfigError(
      `${className}: beta_start (${cfg.beta_start}) is above beta_end (${cfg.beta_end})`,
    );
  }
  if (cfg.use_flow_sigmas === true) {
    const other = [
      'use_karras_sigmas',
      'use_exponential_sigmas',
      'use_beta_sigmas',
      'use_lu_lambdas',
    ];
    const with_ = other.filter((k) => cfg[k] === true);
    if (with_.length > 0)
      throw new SchedulerConfigError(
        `${className}: use_flow_sigmas together with ${with_.join(', ')} is not supported here`,
      );
  }
  if (cfg.thresholding === true) {
    const ratio = cfg.dynamic_thresholding_ratio;
    const max = cfg.sample_max_value;
    if (typeof ratio !== 'number' || !(ratio >= 0 && ratio <= 1))
      throw new SchedulerConfigError(
        `${className}: dynamic_thresholding_ratio must be a number in [0, 1], got ${JSON.stringify(ratio)}`,
      );
    if (typeof max !== 'number' || !(max >= 1) || !Number.isFinite(max))
      throw new SchedulerConfigError(
        `${className}: sample_max_value must be a finite number >= 1 with thresholding, got ${JSON.stringify(max)}`,
      );
  }
  if (
    className === 'UniPCMultistepScheduler' &&
    cfg.predict_x0 === false &&
    cfg.final_sigmas_type === 'zero' &&
    cfg.use_flow_sigmas !== true
  )
    throw new SchedulerConfigError(
      `${className}: predict_x0 = false with final_sigmas_type 'zero' ends in NaN in diffusers (the noise-prediction step to sigma = 0 has h = infinity); use final_sigmas_type 'sigma_min'`,
    );
  predictionOf(cfg, spec.prediction);
  return { ...r, spec, cfg };
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
  private pndm: DiffusersPndm | null = null;
  private pendingNoise: tf.Tensor | null = null;
  /** Inside `learnedDdpmStep`: the model output is already split from its variance channels. */
  private learnedSplit = false;
  /** The run's Brownian path (classes whose diffusers noise is a Brownian tree). */
  private brownian: BrownianNoise | null = null;

  private readonly resolved: ResolvedClass;
  /** The config the plan reads: `cfg`, plus `mu` of the last `setTimesteps`. */
  private planCfg: DiffusersConfig;

  constructor(resolved: ResolvedClass, options: CreateSchedulerOptions) {
    const { className, spec, cfg } = resolved;
    this.resolved = resolved;
    this.className = className;
    this.spec = spec;
    this.cfg = cfg;
    this.planCfg = cfg;
    try {
      this.schedule = spec.schedule
        ? spec.schedule(cfg)
        : 'beta_schedule' in cfg
          ? DiscreteSchedule.fromConfig(camel(cfg))
          : null;
    } catch (e) {
      throw new SchedulerConfigError(`${className}: ${(e as Error).message}`);
    }
    this.rng = Random.seed(options.seed ?? 0);
    this.checkFinite = options.checkFinite ?? true;
  }

  get timesteps(): number[] {
    return this.plan ? [...this.plan.timesteps] : [];
  }
  get ignoredKeys(): readonly string[] {
    return this.resolved.ignoredKeys;
  }
  get warnings(): readonly string[] {
    return this.resolved.warnings;
  }
  get sigmas(): number[] {
    return this.plan ? [...this.plan.sigmas] : [];
  }
  get initNoiseSigma(): number {
    if (this.plan) return this.plan.initNoiseSigma;
    if (this.spec.edm) return Math.sqrt((this.cfg.sigma_max as number) ** 2 + 1);
    if (this.spec.scaling === 've' && this.schedule) {
      // diffusers' Euler-family __init__: the largest sigma of the whole training table
      const table = this.schedule.withTerminalFloor().sigmas;
      const max = Math.fround(table[table.length - 1]!);
      return ['linspace', 'trailing'].includes(this.cfg.timestep_spacing as string)
        ? max
        : Math.sqrt(max * max + 1);
    }
    return 1;
  }
  get numInferenceSteps(): number | null {
    return this.n;
  }

  setTimesteps(n: number, options: SetTimestepsOptions = {}): void {
    // mu shifts the flow sigmas (use_flow_sigmas with use_dynamic_shifting); diffusers checks it as here
    const mu = options.mu;
    if (mu !== undefined && !('use_dynamic_shifting' in this.cfg))
      throw new SamplerError(`${this.className}.setTimesteps takes no mu (no dynamic shifting)`);
    if (mu !== undefined && !Number.isFinite(mu))
      throw new SamplerError(
        `${this.className}.setTimesteps: mu must be a finite number, got ${mu}`,
      );
    if (
      mu === undefined &&
      this.cfg.use_dynamic_shifting === true &&
      this.className === 'UniPCMultistepScheduler'
    )
      throw new SamplerError(
        `${this.className}: mu must be passed to setTimesteps when use_dynamic_shifting is true`,
      );
    if (
      mu !== undefined &&
      this.className === 'DPMSolverMultistepScheduler' &&
      !(this.cfg.use_dynamic_shifting === true && this.cfg.time_shift_type === 'exponential')
    )
      throw new SamplerError(
        `${this.className}: mu needs use_dynamic_shifting = true and time_shift_type = 'exponential'`,
      );
    this.planCfg = mu === undefined ? this.cfg : { ...this.cfg, [MU_KEY]: mu };
    const T = (this.cfg.num_train_timesteps as number) ?? 1000;
    if (!Number.isInteger(n) || n < 1)
      throw new SamplerError(`setTimesteps needs a positive integer number of steps, got ${n}`);
    if (this.schedule && n > T)
      throw new SamplerError(`setTimesteps(${n}): more steps than the ${T} training timesteps`);
    this.dispose();
    this.n = n;
    this.plan = this.spec.plan(this.planCfg, this.schedule, n, {});
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
    if (this.spec.edm) return tf.mul(x, edmPreconditioning(s, this.cfg.sigma_data as number).cIn);
    if (this.spec.scaling === 've') return tf.div(x, Math.sqrt(s * s + 1));
    return tf.clone(x);
  }

  /** The alpha that scales VP samples to VE ones (the VP embedding's for zero SNR's stand-in sigma). */
  private scaleAlpha(s: number): number {
    const alpha = this.levelFor(s).alpha;
    return alpha > 0 ? alpha : 1 / Math.sqrt(1 + s * s);
  }

  private toVE(x: tf.Tensor, s: number): tf.Tensor {
    if (this.spec.scaling === 've') return tf.clone(x);
    return tf.div(x, this.scaleAlpha(s));
  }

  private fromVE(x: tf.Tensor, s: number): tf.Tensor {
    if (this.spec.scaling === 've') return tf.clone(x);
    return tf.mul(x, this.scaleAlpha(s));
  }

  private start(sample: tf.Tensor, stepOptions: StepOptions, k: number): void {
    const plan = this.spec.plan(this.planCfg, this.schedule, this.n!, { ...stepOptions });
    this.plan = plan;
    const chain = plan.stepSigmas ? plan.stepSigmas[k]! : plan.sigmas;
    const def = getSampler(plan.sampler);
    const options = resolveSamplerOptions(def, plan.options);
    const scope = new RunScope();
    const x = scope.keep(tf.tidy(() => this.toVE(sample, chain[0]!)));
    const shape = x.shape;
    this.scope = scope;
    this.brownian = this.spec.brownian ? brownianNoise(this.rng) : null;
    this.program = def.fn(
      scope.context(
        () => shape,
        (s, sn, sh) => {
          if (this.pendingNoise) {
            const z = this.pendingNoise;
            this.pendingNoise = null;
            return z;
          }
          return this.brownian ? this.brownian(s, sn, sh) : this.rng.normal(sh);
        },
      ),
      x,
      chain,
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
      if (this.spec.edm) {
        const p = edmPreconditioning(s, this.cfg.sigma_data as number);
        const sign = this.cfg.prediction_type === 'v_prediction' ? -1 : 1;
        return tf.add(tf.mul(sample, p.cSkip), tf.mul(modelOutput, sign * p.cOut));
      }
      const level = this.levelFor(s);
      const xin = this.spec.scaling === 've' ? tf.mul(sample, level.alpha) : sample;
      return convertPrediction(
        modelOutput,
        predictionOf(this.cfg, this.spec.prediction),
        'x0',
        xin,
        level,
      );
    });
  }

  step(
    modelOutput: tf.Tensor,
    t: number,
    sample: tf.Tensor,
    options: StepOptions = {},
  ): StepOutput {
    const plan = this.requirePlan();
    const k = this.counter;
    checkStepArguments(this.className, modelOutput, sample, options, k, t);
    const learned =
      this.cfg.variance_type === 'learned' || this.cfg.variance_type === 'learned_range';
    if (learned && this.className === 'DDPMScheduler' && !this.learnedSplit)
      return this.learnedDdpmStep(modelOutput, t, sample, options);
    if (
      learned &&
      this.cfg.prediction_type === 'epsilon' &&
      modelOutput.rank >= 2 &&
      sample.rank === modelOutput.rank &&
      modelOutput.shape[1] === 2 * sample.shape[1]!
    ) {
      // DPM-Solver needs the mean only: diffusers drops a learned variance's channels (DeepFloyd IF),
      // model_output[:, :C] (it writes :3, the pixel models' C)
      const mean = tf.slice(modelOutput, 0, [-1, sample.shape[1]!]);
      try {
        return this.step(mean, t, sample, options);
      } finally {
        mean.dispose();
      }
    }
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
    const last = k === plan.timesteps.length - 1;
    const named: [string, tf.Tensor][] = [
      [`${this.className}: the model output at timestep ${t}`, modelOutput],
      [
        `${this.className}: the sample passed to step at timestep ${t}${k > 0 ? ` (the state after step ${k - 1})` : ''}`,
        sample,
      ],
    ];
    // One readback per step (as before): the model output and the incoming sample, which is the
    // previous step's prevSample; the last step also checks its own prevSample, in the same readback.
    if (this.checkFinite && !last) assertFiniteSync(named, k);
    if (plan.diffusersPndm) {
      const p = plan.diffusersPndm;
      this.pndm ??= new DiffusersPndm(
        this.schedule!,
        this.n!,
        plan.timesteps.slice(0, p.prkCalls),
        p.finalAlphaOne,
        String(this.cfg.prediction_type ?? 'epsilon'),
      );
      const [prevSample, predOriginalSample] = this.pndm.step(modelOutput, t, sample);
      this.counter++;
      if (this.checkFinite && last)
        assertFinalStepFinite(
          this.className,
          named,
          prevSample,
          [prevSample, predOriginalSample],
          t,
          k,
        );
      if (last) {
        // the run is over: free its history, as the program runs free theirs
        this.finished = true;
        this.pndm.dispose();
        this.pndm = null;
      }
      return { prevSample, predOriginalSample };
    }
    if (plan.stepSigmas) {
      this.releaseRun();
      this.start(sample, options, k);
    } else if (!this.program) this.start(sample, options, k);
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
    const x0 = this.toX0(modelOutput, sample, s);
    let predOriginalSample = x0;
    let denoised = x0;
    const thresholding = this.cfg.thresholding === true;
    if (!this.spec.noClip && (thresholding || this.cfg.clip_sample === true)) {
      const r = this.cfg.clip_sample_range as number;
      // diffusers: dynamic thresholding (Imagen) takes precedence over clip_sample; clipByValue(NaN)
      // is -r on wasm: keep NaN visible (to the finiteness check and the caller).
      predOriginalSample = thresholding
        ? dynamicThreshold(
            x0,
            this.cfg.dynamic_thresholding_ratio as number,
            this.cfg.sample_max_value as number,
          )
        : tf.tidy(() => tf.where(tf.isNaN(x0), x0, tf.clipByValue(x0, -r, r)));
      denoised = predOriginalSample;
      if (this.className === 'DDIMScheduler') {
        // diffusers' DDIM clips x0 but keeps the model's own eps (use_clipped_model_output = False):
        // x' = x0c + sigma_down eps. The program steps x + (sigma_down - sigma)(x - D) / sigma, so it
        // gets D = (x0c - q x0) / (1 - q), q = sigma_down / sigma.
        const next = plan.stepSigmas ? plan.stepSigmas[k]![1] : plan.sigmas[k + 1]!;
        const { sigmaDown } = ancestralStep(s, next, (this.plan!.options.eta as number) ?? 0);
        const q = sigmaDown / s;
        denoised = tf.tidy(() => tf.div(tf.sub(predOriginalSample, tf.mul(x0, q)), 1 - q));
      }
    }
    if (this.className === 'LCMScheduler') {
      // the consistency model's boundary condition (LCMScheduler.get_scalings_for_boundary_condition_
      // discrete, sigma_data 0.5): D = c_out x0 + c_skip x_t at the scaled integer timestep
      const st = t * (this.cfg.timestep_scaling as number);
      const cSkip = 0.25 / (st * st + 0.25);
      const cOut = st / Math.sqrt(st * st + 0.25);
      const prev = denoised;
      denoised = tf.tidy(() => tf.add(tf.mul(prev, cOut), tf.mul(sample, cSkip)));
      if (prev !== x0) prev.dispose();
      predOriginalSample = denoised;
    }
    scope.keep(denoised);
    if (denoised !== x0 && predOriginalSample !== x0) x0.dispose();
    if (denoised === predOriginalSample) predOriginalSample = tf.clone(denoised);
    if (options.noise) this.pendingNoise = tf.clone(options.noise);
    const final = this.advance(denoised);
    if (this.pendingNoise) {
      this.pendingNoise.dispose();
      this.pendingNoise = null;
    }
    this.counter++;
    let prevSample: tf.Tensor;
    if (final) {
      const sEnd = plan.stepSigmas ? plan.stepSigmas[k]![1] : plan.sigmas[plan.sigmas.length - 1]!;
      prevSample = tf.tidy(() => this.fromVE(final, sEnd));
      this.releaseRun();
      this.finished = !plan.stepSigmas || k === plan.timesteps.length - 1;
    } else {
      const r = this.request!;
      prevSample = tf.tidy(() => this.fromVE(r.x, r.sigma));
    }
    if (this.checkFinite && last)
      assertFinalStepFinite(
        this.className,
        named,
        prevSample,
        [prevSample, predOriginalSample],
        t,
        k,
      );
    return { prevSample, predOriginalSample };
  }

  /**
   * DDPM with a learned variance (DeepFloyd IF): the model's output holds the prediction and, in as many
   * more channels, the variance (diffusers splits it at the sample's channel count). The step is the
   * posterior mean of the prediction (the `ddpm` program) plus learnedVarianceStd(v) z, given to the
   * program as its noise rescaled by its own posterior sigma_up.
   */
  private learnedDdpmStep(
    modelOutput: tf.Tensor,
    t: number,
    sample: tf.Tensor,
    options: StepOptions,
  ): StepOutput {
    const c = sample.shape[1];
    if (sample.rank < 2 || modelOutput.rank !== sample.rank || modelOutput.shape[1] !== 2 * c!)
      throw new SamplerError(
        `${this.className} with variance_type ${JSON.stringify(this.cfg.variance_type)} needs a model output with twice the sample's channels (dimension 1), got [${modelOutput.shape}] for a sample [${sample.shape}]`,
        this.counter,
      );
    const plan = this.requirePlan();
    const k = this.counter;
    const [mean, v] = tf.split(modelOutput, 2, 1) as [tf.Tensor, tf.Tensor];
    let noise: tf.Tensor | undefined;
    try {
      const last = k === plan.timesteps.length - 1;
      if (k < plan.timesteps.length && (!last || plan.options.lastStepNoise !== false)) {
        const s = plan.modelSigmas[k]!;
        const next = plan.sigmas[k + 1]!;
        const [now, prev] = [this.levelFor(s), this.levelFor(next)];
        const z = options.noise ?? this.rng.normal(sample.shape);
        const std = learnedVarianceStd(
          v,
          now.alpha * now.alpha,
          prev.alpha * prev.alpha,
          this.cfg.variance_type as 'learned' | 'learned_range',
        );
        // the ddpm program adds sigma_up (its posterior std, VE) times this noise
        const sigmaUp = ancestralStep(s, next, 1).sigmaUp;
        noise = tf.tidy(() => tf.mul(z, tf.div(std, prev.alpha * sigmaUp)));
        std.dispose();
        if (z !== options.noise) z.dispose();
      }
      this.learnedSplit = true;
      return this.step(mean, t, sample, { ...options, ...(noise ? { noise } : {}) });
    } finally {
      this.learnedSplit = false;
      tf.dispose([mean, v, ...(noise ? [noise] : [])]);
    }
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
    return structuredClone(this.resolved.config);
  }

  private releaseRun(): void {
    this.program?.return(undefined as unknown as tf.Tensor);
    this.brownian?.dispose();
    this.brownian = null;
    this.scope?.disposeAll();
    this.scope = null;
    this.program = null;
    this.request = null;
  }

  dispose(): void {
    this.releaseRun();
    this.pndm?.dispose();
    this.pndm = null;
    this.counter = 0;
    this.finished = false;
  }
}

/**
 * A diffusers-compatible scheduler from a `scheduler_config.json` object (with `_class_name`), loaded as
 * diffusers' `from_config` loads it: keys the class does not take are ignored (one warning for those no
 * compatible class knows; `strict: true` throws instead), `_use_default_values` keys are dropped, every
 * value is validated (the validation `fromDiffusersConfig` of `@diffuse/schedules` shares) before
 * anything is allocated. Read files with `parseDiffusersJson` (diffusers writes bare `-Infinity`).
 *
 * Supported classes: DDPMScheduler, DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler,
 * EulerAncestralDiscreteScheduler, HeunDiscreteScheduler, LMSDiscreteScheduler, KDPM2DiscreteScheduler,
 * KDPM2AncestralDiscreteScheduler, DPMSolverMultistepScheduler, DPMSolverSinglestepScheduler,
 * UniPCMultistepScheduler, DEISMultistepScheduler, EDMEulerScheduler, EDMDPMSolverMultistepScheduler,
 * LCMScheduler, TCDScheduler, CosineDPMSolverMultistepScheduler, CogVideoXDDIMScheduler,
 * DPMSolverSDEScheduler,
 * FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler, DDPMWuerstchenScheduler,
 * MiniMaxH3Scheduler (`SCHEDULER_CLASS_NAMES`). Other classes and unimplemented option values throw
 * `SchedulerConfigError`. To swap classes use `fromConfig`.
 *
 * @example
 * const scheduler = createScheduler(parseDiffusersJson(readFileSync('scheduler/scheduler_config.json', 'utf8')));
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
  return fromConfig(config, {}, options);
}

/**
 * diffusers' `TargetClass.from_config(source.config, **overrides)`: the one way to swap scheduler
 * classes. `source` is a scheduler (its `toConfig()`) or a config object; `overrides._class_name` picks
 * the target class (default: the source's). Keys the source class only defaulted
 * (`_use_default_values`) are not carried over, so the target takes its own defaults; keys the target
 * does not take are ignored (diffusers' warnings); overrides apply last and must be options of the
 * target. Where diffusers raises on a swap, so does this.
 *
 * @example
 * const sd15 = createScheduler(parseDiffusersJson(pndmFileText)); // PNDMScheduler
 * const dpm = fromConfig(sd15, { _class_name: 'DPMSolverMultistepScheduler', use_karras_sigmas: true });
 */
export function fromConfig(
  source: Scheduler | DiffusersConfig,
  overrides: SchedulerConfigOverrides = {},
  options: CreateSchedulerOptions = {},
): Scheduler {
  const config = isScheduler(source) ? source.toConfig() : source;
  const resolved = resolveConfig(config, overrides, { strict: options.strict });
  for (const w of resolved.warnings) (options.onWarning ?? console.warn)(w);
  if (FLOW_CLASSES[resolved.className]) return new FlowScheduler(resolved, options);
  return new AdapterScheduler(resolved, options);
}

function isScheduler(x: unknown): x is Scheduler {
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof (x as Scheduler).toConfig === 'function' &&
    typeof (x as Scheduler).step === 'function'
  );
}

/** Every `_class_name` `createScheduler` accepts (the same set as `SCHEDULER_CLASS_NAMES`, tested). */
export const SCHEDULER_CLASSES: readonly string[] = [
  ...Object.keys(CLASSES),
  ...Object.keys(FLOW_CLASSES),
];
