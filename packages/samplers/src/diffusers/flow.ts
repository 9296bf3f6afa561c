/**
 * diffusers' flow-matching scheduler classes: `FlowMatchEulerDiscreteScheduler` (SD 3.x, Flux-style
 * models; scheduling_flow_match_euler_discrete.py), `FlowMatchHeunDiscreteScheduler`
 * (scheduling_flow_match_heun_discrete.py: Heun's trapezoid in t, `flowStep` with two velocities) and
 * `MiniMaxH3Scheduler` (scheduling_minimax_h3.py),
 * on the flow path x_t = (1 - t) x0 + t eps with the velocity u = eps - x0 (`'flow'` of
 * `convertPrediction`). Their sigma schedules are reproduced in diffusers' float32 / float64 arithmetic.
 *
 * The update is one Euler step of the probability-flow ODE dx/dt = u, x' = x + (t' - t) u, which is the
 * DDIM step x' = (1 - t') x0 + t' eps (and the Euler step of every VE sampler in the VE view
 * x / (1 - t) at sigma = t / (1 - t); see flow.test.ts). It is written here in the flow coordinates
 * because diffusers' flow schedules start at t = 1, where the VE view is infinite.
 */
import { Random } from '@diffuse/backend';
import { convertPrediction, respaceSigmas } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { SamplerError, SchedulerConfigError } from '../errors.js';
import { flowStep } from '../helpers.js';
import { type DiffusersConfig, torchLinspace32 } from './classes.js';
import type { ResolvedDiffusersConfig } from './from-config.js';
import type {
  CreateSchedulerOptions,
  Scheduler,
  SetTimestepsOptions,
  StepOptions,
  StepOutput,
} from './scheduler.js';
import { assertFinalStepFinite, assertFiniteSync, checkStepArguments } from './step-checks.js';

const f32 = Math.fround;

/** What `setTimesteps` computes: model-call timesteps and the flow sigmas t (one more). */
interface FlowPlan {
  timesteps: number[];
  sigmas: number[];
}

interface FlowSpec {
  /** Class checks beyond the shared field validation (diffusers' `__init__` raises). */
  check(cfg: DiffusersConfig, className: string): void;
  plan(cfg: DiffusersConfig, n: number, mu: number | undefined, className: string): FlowPlan;
  /** x0 and the noise level t of model call k. */
  x0(
    modelOutput: tf.Tensor,
    sample: tf.Tensor,
    t: number,
    sigma: number,
    cfg: DiffusersConfig,
  ): tf.Tensor;
  /** The next state from the current one (diffusers' exact formula). */
  next(
    sample: tf.Tensor,
    modelOutput: tf.Tensor,
    x0: tf.Tensor,
    sigma: number,
    sigmaNext: number,
    noise: () => tf.Tensor,
    cfg: DiffusersConfig,
  ): tf.Tensor;
  stochastic(cfg: DiffusersConfig): boolean;
  /**
   * Heun classes: `sigmas` is diffusers' interleaved list (every inner level twice) and calls alternate
   * between the Euler predictor and the trapezoid corrector (`flowStep`); `next` is not used.
   */
  heun?: boolean;
  /** `scale_noise`: the noisy sample at model call k's level. */
  noisy(x0: tf.Tensor, noise: tf.Tensor, t: number, sigma: number): tf.Tensor;
}

/** numpy's `linspace(start, stop, num)` in float64. */
function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/**
 * Flux's `calculate_shift`: the dynamic-shifting exponent mu for an image of `imageSeqLen` latent tokens,
 * linear between (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift) of the config.
 *
 * @example
 * scheduler.setTimesteps(28, { mu: dynamicShiftMu(scheduler.toConfig(), 4096) });
 */
export function dynamicShiftMu(config: DiffusersConfig, imageSeqLen: number): number {
  const base = (config.base_image_seq_len as number) ?? 256;
  const max = (config.max_image_seq_len as number) ?? 4096;
  const b = (config.base_shift as number) ?? 0.5;
  const m = (config.max_shift as number) ?? 1.15;
  if (!(Number.isFinite(imageSeqLen) && imageSeqLen > 0) || max === base)
    throw new SchedulerConfigError(
      `dynamicShiftMu needs imageSeqLen > 0 and base_image_seq_len != max_image_seq_len, got ${imageSeqLen}, ${base}, ${max}`,
    );
  const slope = (m - b) / (max - base);
  return imageSeqLen * slope + b - slope * base;
}

/** shift t / (1 + (shift - 1) t) in float32 torch ops (the table of FlowMatchEuler's `__init__`). */
const shift32 = (shift: number, t: number) =>
  f32(f32(f32(shift) * t) / f32(1 + f32(f32(shift - 1) * t)));

const flowMatchEuler: FlowSpec = {
  check(cfg, className) {
    const n = ['use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas'].filter(
      (k) => cfg[k] === true,
    );
    if (n.length > 1)
      throw new SchedulerConfigError(
        `${className}: only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be used (got ${n.join(', ')})`,
      );
    if (cfg.time_shift_type !== 'exponential' && cfg.time_shift_type !== 'linear')
      throw new SchedulerConfigError(
        `${className}: time_shift_type must be 'exponential' or 'linear', got ${JSON.stringify(cfg.time_shift_type)}`,
      );
  },
  plan(cfg, n, mu, className) {
    const T = cfg.num_train_timesteps as number;
    const shift = cfg.shift as number;
    const dynamic = cfg.use_dynamic_shifting === true;
    if (dynamic && mu === undefined)
      throw new SamplerError(
        `${className}: mu must be passed to setTimesteps when use_dynamic_shifting is true (see dynamicShiftMu)`,
      );
    if (mu !== undefined && !Number.isFinite(mu))
      throw new SamplerError(`${className}: mu must be a finite number, got ${mu}`);
    // __init__: sigmas = t / T for t = T..1 (float32), shifted unless dynamic; their ends.
    const first = f32(f32(T) / T);
    const last = f32(f32(1) / T);
    const sigmaMax = dynamic ? first : shift32(shift, first);
    const sigmaMin = dynamic ? last : shift32(shift, last);
    // set_timesteps, in float64 (numpy)
    let s = npLinspace(sigmaMax * T, sigmaMin * T, n).map((t) => t / T);
    if (dynamic) {
      const m = mu as number;
      s =
        cfg.time_shift_type === 'linear'
          ? s.map((t) => m / (m + (1 / t - 1)))
          : s.map((t) => Math.exp(m) / (Math.exp(m) + (1 / t - 1)));
    } else {
      s = s.map((t) => (shift * t) / (1 + (shift - 1) * t));
    }
    const terminal = cfg.shift_terminal as number | null;
    if (terminal) {
      const scale = (1 - s[s.length - 1]!) / (1 - terminal);
      s = s.map((t) => 1 - (1 - t) / scale);
    }
    const lo = typeof cfg.sigma_min === 'number' ? cfg.sigma_min : s[s.length - 1]!;
    const hi = typeof cfg.sigma_max === 'number' ? cfg.sigma_max : s[0]!;
    const spacing =
      cfg.use_karras_sigmas === true
        ? 'karras'
        : cfg.use_exponential_sigmas === true
          ? 'exponential'
          : cfg.use_beta_sigmas === true
            ? 'beta'
            : undefined;
    if (spacing) s = Array.from(respaceSigmas(spacing, n, lo, hi));
    let sig = s.map(f32);
    let timesteps = sig.map((t) => f32(t * T));
    if (cfg.invert_sigmas === true) {
      sig = sig.map((t) => f32(1 - t));
      timesteps = sig.map((t) => f32(t * T));
      sig.push(1);
    } else sig.push(0);
    return { timesteps, sigmas: sig };
  },
  x0(modelOutput, sample, _t, sigma) {
    return convertPrediction(modelOutput, 'flow', 'x0', sample, { alpha: 1 - sigma, sigma });
  },
  next(sample, modelOutput, x0, sigma, sigmaNext, noise, cfg) {
    if (cfg.stochastic_sampling === true) {
      // x' = (1 - t') x0 + t' z: the forward process at t' from the predicted x0 (fresh noise)
      const z = noise();
      const next = tf.tidy(() => tf.add(tf.mul(x0, 1 - sigmaNext), tf.mul(z, sigmaNext)));
      z.dispose();
      return next;
    }
    return flowStep(sample, f32(sigmaNext - sigma), [modelOutput]);
  },
  stochastic: (cfg) => cfg.stochastic_sampling === true,
  noisy(x0, noise, _t, sigma) {
    return tf.tidy(() => tf.add(tf.mul(noise, sigma), tf.mul(x0, 1 - sigma)));
  },
};

/**
 * `FlowMatchHeunDiscreteScheduler` (scheduling_flow_match_heun_discrete.py): FlowMatchEuler's levels
 * (its `__init__` and `set_timesteps` take only `num_train_timesteps` and `shift`, the same formulas),
 * each inner level repeated: timesteps [t0, t1, t1, ..., t_{n-1}, t_{n-1}] (2n - 1 model calls),
 * sigmas [s0, s1, s1, ..., s_{n-1}, s_{n-1}, 0]. The step is Heun's method in flow time (`flowStep`, the
 * `flow_heun` sampler's step); the last step, to t = 0, is an Euler step.
 */
const flowMatchHeun: FlowSpec = {
  check() {},
  plan(cfg, n, mu, className) {
    if (mu !== undefined) throw new SamplerError(`${className}.setTimesteps takes no mu`);
    const base = flowMatchEuler.plan(
      {
        ...FLOW_EULER_PLAIN,
        num_train_timesteps: cfg.num_train_timesteps,
        shift: cfg.shift,
      },
      n,
      undefined,
      className,
    );
    const [ts, sg] = [base.timesteps, base.sigmas];
    return {
      timesteps: [ts[0]!, ...ts.slice(1).flatMap((t) => [t, t])],
      sigmas: [sg[0]!, ...sg.slice(1, -1).flatMap((v) => [v, v]), sg[sg.length - 1]!],
    };
  },
  x0(modelOutput, sample, _t, sigma) {
    return convertPrediction(modelOutput, 'flow', 'x0', sample, { alpha: 1 - sigma, sigma });
  },
  next() {
    throw new Error('internal: FlowMatchHeun steps through its Heun state');
  },
  stochastic: () => false,
  heun: true,
  noisy(x0, noise, _t, sigma) {
    return tf.tidy(() => tf.add(tf.mul(noise, sigma), tf.mul(x0, 1 - sigma)));
  },
};

/** FlowMatchEuler's options at their defaults, for the classes that share its plain schedule. */
const FLOW_EULER_PLAIN: DiffusersConfig = {
  use_dynamic_shifting: false,
  invert_sigmas: false,
  shift_terminal: null,
  use_karras_sigmas: false,
  use_exponential_sigmas: false,
  use_beta_sigmas: false,
  time_shift_type: 'exponential',
  stochastic_sampling: false,
};

const minimaxH3: FlowSpec = {
  check(cfg, className) {
    if (!((cfg.shift as number) > 0))
      throw new SchedulerConfigError(`${className}: shift must be positive, got ${cfg.shift}`);
  },
  plan(cfg, n, mu, className) {
    if (mu !== undefined) throw new SamplerError(`${className}.setTimesteps takes no mu`);
    if (n < 2)
      throw new SamplerError(
        `${className}: setTimesteps needs num_inference_steps >= 2 (the schedule ends at sigma 0), got ${n}`,
      );
    const shift = cfg.shift as number;
    const base = torchLinspace32(1, 0, n);
    const all = base.map((b) => shift32(shift, b));
    const sigmas = all.filter((v, i) => i === 0 || v !== all[i - 1]);
    return { timesteps: sigmas.slice(0, -1).map((v) => f32(1 - v)), sigmas };
  },
  x0(modelOutput, sample, t) {
    // diffusers: denoised = x + (1 - t) out, with out = x0 - eps (the data-ward velocity, -u)
    const s = f32(1 - t);
    return tf.tidy(() =>
      convertPrediction(tf.neg(modelOutput), 'flow', 'x0', sample, { alpha: 1 - s, sigma: s }),
    );
  },
  next(sample, _modelOutput, x0, sigma, sigmaNext) {
    const r = sigmaNext / sigma;
    return tf.tidy(() => tf.add(tf.mul(sample, r), tf.mul(x0, 1 - r)));
  },
  stochastic: () => false,
  noisy(x0, noise, t) {
    return tf.tidy(() => tf.add(tf.mul(x0, t), tf.mul(noise, 1 - t)));
  },
};

/** The flow-matching classes `createScheduler` accepts. */
export const FLOW_CLASSES: Record<string, FlowSpec> = {
  FlowMatchEulerDiscreteScheduler: flowMatchEuler,
  FlowMatchHeunDiscreteScheduler: flowMatchHeun,
  MiniMaxH3Scheduler: minimaxH3,
};

/** A diffusers flow-matching scheduler (see the module comment). */
export class FlowScheduler implements Scheduler {
  readonly className: string;
  private readonly spec: FlowSpec;
  private readonly cfg: DiffusersConfig;
  private readonly resolved: ResolvedDiffusersConfig;
  private readonly rng: Random;
  private readonly checkFinite: boolean;
  private plan: FlowPlan | null = null;
  private counter = 0;
  /** A Heun class between the two calls of a step: the step's start, first velocity and dt. */
  private heunState: { sample: tf.Tensor; u: tf.Tensor; dt: number } | null = null;

  constructor(resolved: ResolvedDiffusersConfig, options: CreateSchedulerOptions) {
    this.className = resolved.className;
    this.spec = FLOW_CLASSES[resolved.className]!;
    this.cfg = { ...resolved.init };
    this.resolved = resolved;
    this.spec.check(this.cfg, this.className);
    this.rng = Random.seed(options.seed ?? 0);
    this.checkFinite = options.checkFinite ?? true;
  }

  get timesteps(): number[] {
    return this.plan ? [...this.plan.timesteps] : [];
  }
  get sigmas(): number[] {
    return this.plan ? [...this.plan.sigmas] : [];
  }
  /** diffusers' flow classes have no `init_noise_sigma`: the run starts from the noise itself. */
  get initNoiseSigma(): number {
    return 1;
  }
  get numInferenceSteps(): number | null {
    return this.plan ? this.plan.timesteps.length : null;
  }
  get ignoredKeys(): readonly string[] {
    return this.resolved.ignoredKeys;
  }
  get warnings(): readonly string[] {
    return this.resolved.warnings;
  }

  setTimesteps(n: number, options: SetTimestepsOptions = {}): void {
    if (!Number.isInteger(n) || n < 1 || n > 100_000)
      throw new SamplerError(
        `setTimesteps needs an integer number of steps in [1, 100000], got ${n}`,
      );
    this.plan = this.spec.plan(this.cfg, n, options.mu, this.className);
    this.counter = 0;
    this.releaseHeun();
  }

  private requirePlan(): FlowPlan {
    if (!this.plan)
      throw new SamplerError(`${this.className}: call setTimesteps(n) before using the scheduler`);
    return this.plan;
  }

  scaleModelInput(x: tf.Tensor, t: number): tf.Tensor {
    const ts = this.requirePlan().timesteps;
    if (!ts.includes(t))
      throw new SamplerError(
        `${this.className}: timestep ${t} is not one of the scheduler's timesteps`,
      );
    return tf.clone(x);
  }

  step(
    modelOutput: tf.Tensor,
    t: number,
    sample: tf.Tensor,
    options: StepOptions = {},
  ): StepOutput {
    const plan = this.requirePlan();
    checkStepArguments(this.className, modelOutput, sample, options, this.counter, t);
    for (const key of Object.keys(options)) {
      if (key !== 'noise')
        throw new SamplerError(`${this.className}.step has no option '${key}'`, this.counter);
    }
    const k = this.counter;
    if (k >= plan.timesteps.length) {
      throw new SamplerError(
        `${this.className}: step called ${k + 1} times but there are ${plan.timesteps.length} timesteps; call setTimesteps again`,
        k,
      );
    }
    if (t !== plan.timesteps[k])
      throw new SamplerError(
        `${this.className}: expected timestep ${plan.timesteps[k]}, got ${t}`,
        k,
      );
    const same = (a: readonly number[], b: readonly number[]) =>
      a.length === b.length && a.every((d, j) => d === b[j]);
    if (!same(modelOutput.shape, sample.shape))
      throw new SamplerError(
        `model output shape [${modelOutput.shape}] differs from sample shape [${sample.shape}]`,
        k,
      );
    if (options.noise && !same(options.noise.shape, sample.shape))
      throw new SamplerError(
        `noise shape [${options.noise.shape}] differs from sample shape [${sample.shape}]`,
        k,
      );
    const last = k === plan.timesteps.length - 1;
    const named: [string, tf.Tensor][] = [
      [`${this.className}: the model output at timestep ${t}`, modelOutput],
      [
        `${this.className}: the sample passed to step at timestep ${t}${k > 0 ? ` (the state after step ${k - 1})` : ''}`,
        sample,
      ],
    ];
    // One readback per step; the last step also checks the prevSample it returns.
    if (this.checkFinite && !last) assertFiniteSync(named, k);
    const sigma = plan.sigmas[k]!;
    const sigmaNext = plan.sigmas[k + 1]!;
    const x0 = this.spec.x0(modelOutput, sample, t, sigma, this.cfg);
    const noise = () => (options.noise ? tf.clone(options.noise) : this.rng.normal(sample.shape));
    let prevSample: tf.Tensor;
    try {
      prevSample = this.spec.heun
        ? this.heunStep(modelOutput, sample, sigma, sigmaNext, last)
        : this.spec.next(sample, modelOutput, x0, sigma, sigmaNext, noise, this.cfg);
    } catch (e) {
      x0.dispose();
      throw e;
    }
    this.counter++;
    if (this.checkFinite && last)
      assertFinalStepFinite(this.className, named, prevSample, [prevSample, x0], t, k);
    return { prevSample, predOriginalSample: x0 };
  }

  /**
   * One call of a Heun class (diffusers' `state_in_first_order` switch): the first call of a step is the
   * Euler predictor from `sigma` to `sigmaNext` (kept: the step's start, velocity and dt); the second
   * call, at the predicted state, completes the trapezoid from the kept start.
   */
  private heunStep(
    u: tf.Tensor,
    sample: tf.Tensor,
    sigma: number,
    sigmaNext: number,
    last: boolean,
  ): tf.Tensor {
    const first = this.heunState;
    if (first === null) {
      const dt = f32(sigmaNext - sigma);
      const next = flowStep(sample, dt, [u]);
      if (!last)
        this.heunState = { sample: tf.keep(tf.clone(sample)), u: tf.keep(tf.clone(u)), dt };
      return next;
    }
    const next = flowStep(first.sample, first.dt, [first.u, u]);
    this.releaseHeun();
    return next;
  }

  private releaseHeun(): void {
    if (this.heunState) tf.dispose([this.heunState.sample, this.heunState.u]);
    this.heunState = null;
  }

  addNoise(x0: tf.Tensor, noise: tf.Tensor, t: number | readonly number[]): tf.Tensor {
    const plan = this.requirePlan();
    const ts = typeof t === 'number' ? [t] : [...t];
    const sig = ts.map((ti) => {
      const k = plan.timesteps.indexOf(ti);
      if (k < 0) throw new SamplerError(`${this.className}.addNoise: unknown timestep ${ti}`);
      return plan.sigmas[k]!;
    });
    if (ts.length === 1) return this.spec.noisy(x0, noise, ts[0]!, sig[0]!);
    return tf.tidy(() =>
      tf.concat(
        ts.map((ti, i) => this.spec.noisy(tf.slice(x0, i, 1), tf.slice(noise, i, 1), ti, sig[i]!)),
        0,
      ),
    );
  }

  toConfig(): DiffusersConfig {
    return structuredClone(this.resolved.config);
  }

  dispose(): void {
    this.counter = 0;
    this.releaseHeun();
  }
}
