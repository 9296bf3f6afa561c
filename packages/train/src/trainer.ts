/**
 * A trainer over any model, schedule and loss: the model is a list of `tf.Variable`s and the loss a
 * function of a batch (which closes over the model, the noise schedule and the weighting). Seeded,
 * Adam with warm-up and clipping, optional EMA, progress events, periodic evaluation, and atomic
 * checkpoints that resume bit for bit.
 */

import { DiffuseError, InvalidArgumentError, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { type CheckpointManifest, loadCheckpoint, MANIFEST, saveCheckpoint } from './checkpoint.js';
import { CheckpointError, TrainError } from './errors.js';
import { Adam, type AdamConfig, type AdamOptions } from './optimizer.js';
import type { CheckpointStore } from './store.js';

/** Where batches come from. `next` may draw from `rng` (fresh toy samples) or keep its own state. */
export interface BatchSource<B> {
  /** The next batch; the trainer disposes every tensor in it after the step. */
  next(rng: Random): B;
  /** JSON position of the source, saved in checkpoints (for sources with their own state). */
  state?(): unknown;
  /** Restores a position saved with `state()`. */
  restore?(state: unknown): void;
}

/**
 * An average of the parameters kept beside them, updated after every optimizer step and saved with
 * checkpoints: `Ema` of `@diffuse/models` fits as it is.
 */
export interface ParameterAverage {
  /** Folds the current parameters into the average (called after each optimizer step). */
  update(): void;
  /** The averaged copies, one per parameter, in parameter order. */
  readonly shadow: readonly tf.Variable[];
  /** Updates made so far (restored from checkpoints: EMA warm-up depends on it). */
  updates?: number;
}

/** What a trainer reports as it goes. */
export interface TrainProgress {
  kind: 'step' | 'eval' | 'checkpoint';
  /** Steps done. */
  step: number;
  /** The step `run` is heading to. */
  totalSteps: number;
  /** Loss of the last step. */
  loss: number;
  /** Mean loss over the last `logEvery` steps. */
  meanLoss: number;
  /** Global gradient norm of the last step, before clipping. */
  gradNorm: number;
  /** Learning rate of the last step. */
  learningRate: number;
  /** Steps per second over this `run` call. */
  stepsPerSecond: number;
  /** Evaluation metrics (kind 'eval'). */
  metrics?: Record<string, number>;
}

/** The loss of one batch and its gradients, one per parameter in parameter order. */
export interface LossAndGradients {
  /** The batch loss (a scalar the trainer disposes). */
  loss: tf.Scalar;
  /** d loss / d params[i]; `undefined` where the loss does not depend on a parameter (an error). */
  grads: (tf.Tensor | undefined)[];
}

/**
 * Where a trainer's gradients come from: `localGradients` (tfjs autodiff on this thread, what
 * `loss` gives) or `ParallelGradients` (worker threads, one data shard each). Sources draw all
 * randomness from `rng` in the same order, so every source gives the same step for the same seed.
 */
export interface GradientSource<B> {
  /** Loss and gradients of `batch` at the current values of `params`. */
  compute(batch: B, rng: Random, params: readonly tf.Variable[]): Promise<LossAndGradients>;
  /** Frees what the source holds (`Trainer.dispose` calls it: the trainer owns its source). */
  dispose?(): void;
}

/**
 * The gradient source of a loss function: tfjs autodiff (`tf.variableGrads`) on this thread.
 *
 * @example
 * const source = localGradients((batch, rng) => denoisingLoss(model, batch.x, { rng, sampler }));
 * const { loss, grads } = await source.compute(batch, rng, model.params);
 */
export function localGradients<B>(loss: (batch: B, rng: Random) => tf.Scalar): GradientSource<B> {
  return {
    async compute(batch, rng, params) {
      const { value, grads } = tf.variableGrads(() => loss(batch, rng), params as tf.Variable[]);
      return { loss: value, grads: params.map((p) => grads[p.name]) };
    },
  };
}

/** Options of `Trainer`. */
export interface TrainerOptions<B> {
  /** The trainable parameters (e.g. `model.params`). Their order is their identity in checkpoints. */
  params: readonly tf.Variable[];
  /** The training loss of a batch, a scalar; draw noise and noise levels from `rng`. */
  loss?: (batch: B, rng: Random) => tf.Scalar;
  /**
   * Instead of `loss`: where gradients come from, e.g. `ParallelGradients` (worker threads). The
   * trainer owns it and disposes it in `dispose()`.
   */
  gradients?: GradientSource<B>;
  /** Batches: a `BatchSource`, or a function of the trainer's seeded stream. */
  data: BatchSource<B> | ((rng: Random) => B);
  /** Seed of the trainer's stream (noise, noise levels, toy data). */
  seed: number;
  /** Adam, warm-up, decay and clipping. */
  optimizer?: AdamOptions;
  /** An EMA of the parameters, updated after every step and checkpointed. */
  ema?: ParameterAverage;
  /** Calls `fn` every `every` steps (and at the end of `run`); its metrics go to progress events. */
  evaluate?: {
    every: number;
    fn: (trainer: Trainer<B>) => Record<string, number> | Promise<Record<string, number>>;
  };
  /** Saves a checkpoint every `every` steps (and at the end of `run`). */
  checkpoint?: {
    store: CheckpointStore;
    every: number;
    keep?: number;
    extra?: () => Record<string, unknown>;
  };
  /** Progress callback; step events come every `logEvery` steps (default 10). */
  onProgress?: (p: TrainProgress) => void;
  logEvery?: number;
}

/** What `run` returns. */
export interface TrainSummary {
  step: number;
  /** Mean loss over the last `logEvery` steps. */
  meanLoss: number;
  /** Metrics of the last evaluation, if any. */
  metrics?: Record<string, number>;
  seconds: number;
}

/** What `Trainer.save` puts in a checkpoint's `state`, checked field by field on restore. */
interface TrainerState {
  rng: (number | null)[];
  data: unknown;
  params: { name: string; shape: number[] }[];
  evaluations: { step: number; metrics: Record<string, number> }[];
  emaUpdates: number | null;
}

/** A checkpoint's `state`, each field checked (a manifest is untrusted input like any file). */
function checkState(state: Record<string, unknown>, weights: string): TrainerState {
  const bad = (field: string, what: string) =>
    new CheckpointError(`${MANIFEST} (with ${weights}): state.${field} ${what}`);
  const { rng, params, evaluations, emaUpdates } = state;
  const rngEntry = (v: unknown, i: number) =>
    i < 4 ? Number.isSafeInteger(v) : v === null || (typeof v === 'number' && Number.isFinite(v));
  if (!Array.isArray(rng) || rng.length !== 5 || !rng.every(rngEntry))
    throw bad('rng', 'must be a Random state: 4 integers, then a number or null');
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (
    !Array.isArray(params) ||
    !params.every(
      (p) =>
        isObject(p) &&
        Array.isArray(p.shape) &&
        p.shape.every((d: unknown) => Number.isSafeInteger(d)),
    )
  )
    throw bad('params', 'must be an array of { name, shape }');
  if (
    evaluations !== undefined &&
    (!Array.isArray(evaluations) ||
      !evaluations.every((e) => isObject(e) && Number.isSafeInteger(e.step) && isObject(e.metrics)))
  )
    throw bad('evaluations', 'must be an array of { step, metrics }');
  if (
    emaUpdates !== undefined &&
    emaUpdates !== null &&
    !(Number.isSafeInteger(emaUpdates) && (emaUpdates as number) >= 0)
  )
    throw bad('emaUpdates', 'must be an integer >= 0 or null');
  return {
    rng: rng as (number | null)[],
    data: state.data,
    params: params as TrainerState['params'],
    evaluations: (evaluations ?? []) as TrainerState['evaluations'],
    emaUpdates: (emaUpdates ?? null) as number | null,
  };
}

function isSource<B>(d: BatchSource<B> | ((rng: Random) => B)): d is BatchSource<B> {
  return typeof d === 'object' && d !== null && typeof (d as BatchSource<B>).next === 'function';
}

/**
 * Trains `params` by minimising `loss` with Adam.
 *
 * Each step: draw a batch, compute loss and gradients (`tf.variableGrads`), check the loss is finite,
 * clip the gradients by global norm, take an Adam step at the warmed-up learning rate, update the
 * EMA. Everything random comes from the seeded stream, so two runs with one seed give the same
 * losses, and a run resumed from a checkpoint continues exactly as if it had not stopped.
 *
 * @example
 * const trainer = new Trainer({
 *   params: model.params,
 *   data: (rng) => twoMoons().sample(256, rng),
 *   loss: (batch, rng) => denoisingLoss(model, batch.x, rng),
 *   seed: 0,
 *   optimizer: { learningRate: 2e-3, warmupSteps: 100, clipNorm: 1 },
 *   checkpoint: { store: await FileCheckpointStore.open('runs/moons'), every: 500 },
 *   onProgress: (p) => console.log(p.step, p.meanLoss),
 * });
 * await trainer.restore();          // continues a previous run, if the store has one
 * await trainer.run(5000);
 */
export class Trainer<B = unknown> {
  readonly params: readonly tf.Variable[];
  readonly optimizer: Adam;
  /** Loss of every step taken (index = step - 1). */
  readonly losses: number[] = [];
  /** Every evaluation's metrics, with its step. */
  readonly evaluations: { step: number; metrics: Record<string, number> }[] = [];
  private rng: Random;
  private readonly options: TrainerOptions<B>;
  private readonly source: BatchSource<B>;
  private readonly gradients: GradientSource<B>;
  private lastGradNorm = Number.NaN;
  private lastLearningRate = Number.NaN;

  constructor(options: TrainerOptions<B>) {
    if (options.params.length === 0)
      throw new InvalidArgumentError('Trainer needs at least one parameter');
    for (const [name, every] of [
      ['evaluate.every', options.evaluate?.every],
      ['checkpoint.every', options.checkpoint?.every],
      ['logEvery', options.logEvery],
    ] as const) {
      if (every !== undefined && !(Number.isInteger(every) && every >= 1)) {
        throw new InvalidArgumentError(`${name} must be a positive integer, got ${every}`);
      }
    }
    if ((options.loss === undefined) === (options.gradients === undefined)) {
      throw new InvalidArgumentError('Trainer needs exactly one of `loss` and `gradients`');
    }
    this.options = options;
    this.gradients = options.gradients ?? localGradients(options.loss!);
    this.params = [...options.params];
    this.optimizer = new Adam(this.params, options.optimizer);
    this.rng = Random.seed(options.seed);
    const d = options.data;
    this.source = isSource(d) ? d : { next: d };
  }

  /** Steps taken. */
  get step(): number {
    return this.optimizer.step;
  }

  /** The optimizer configuration in force. */
  get optimizerConfig(): AdamConfig {
    return this.optimizer.config;
  }

  /**
   * One training step. Returns the loss and the gradient norm (before clipping).
   *
   * @example
   * const { loss } = await trainer.trainStep();
   */
  async trainStep(): Promise<{ loss: number; gradNorm: number }> {
    const batch = this.source.next(this.rng);
    let value: tf.Scalar;
    let ordered: (tf.Tensor | undefined)[];
    try {
      ({ loss: value, grads: ordered } = await this.gradients.compute(
        batch,
        this.rng,
        this.params,
      ));
    } finally {
      tf.dispose(batch as unknown as tf.TensorContainer);
    }
    try {
      const loss = (await value.data())[0]!;
      if (!Number.isFinite(loss)) {
        throw new TrainError(
          `the loss is ${loss} at step ${this.step + 1}; lower the learning rate, clip gradients or check the data`,
        );
      }
      if (ordered.some((g) => g === undefined)) {
        const missing = this.params.filter((_, i) => ordered[i] === undefined).map((p) => p.name);
        throw new TrainError(`the loss does not depend on parameter(s) ${missing.join(', ')}`);
      }
      this.lastLearningRate = this.optimizer.nextLearningRate;
      const norm = this.optimizer.apply(ordered as tf.Tensor[]);
      const gradNorm = (await norm.data())[0]!;
      norm.dispose();
      if (!Number.isFinite(gradNorm)) {
        throw new TrainError(`the gradient norm is ${gradNorm} at step ${this.step}`);
      }
      this.options.ema?.update();
      this.lastGradNorm = gradNorm;
      this.losses.push(loss);
      return { loss, gradNorm };
    } finally {
      tf.dispose([value, ...ordered.filter((g) => g !== undefined)]);
    }
  }

  private meanLoss(n: number): number {
    const tail = this.losses.slice(-n);
    return tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
  }

  /** Runs the evaluation callback now and records its metrics. */
  async evaluate(): Promise<Record<string, number> | undefined> {
    const ev = this.options.evaluate;
    if (ev === undefined) return undefined;
    const metrics = await ev.fn(this);
    this.evaluations.push({ step: this.step, metrics });
    return metrics;
  }

  /**
   * Trains until `totalSteps` steps have been taken (counting steps restored from a checkpoint).
   * Stops early, after saving a checkpoint, when `signal` is aborted.
   */
  async run(totalSteps: number, options: { signal?: AbortSignal } = {}): Promise<TrainSummary> {
    if (!Number.isInteger(totalSteps) || totalSteps < 0) {
      throw new InvalidArgumentError(
        `totalSteps must be a non-negative integer, got ${totalSteps}`,
      );
    }
    const logEvery = this.options.logEvery ?? 10;
    const start = Date.now();
    const firstStep = this.step;
    let metrics: Record<string, number> | undefined;
    const emit = (kind: TrainProgress['kind'], extra: Partial<TrainProgress> = {}) => {
      const seconds = (Date.now() - start) / 1000;
      this.options.onProgress?.({
        kind,
        step: this.step,
        totalSteps,
        loss: this.losses.at(-1) ?? Number.NaN,
        meanLoss: this.meanLoss(logEvery),
        gradNorm: this.lastGradNorm,
        learningRate: this.lastLearningRate,
        stepsPerSecond: seconds > 0 ? (this.step - firstStep) / seconds : 0,
        ...extra,
      });
    };
    const ev = this.options.evaluate;
    const ck = this.options.checkpoint;
    while (this.step < totalSteps && options.signal?.aborted !== true) {
      await this.trainStep();
      const s = this.step;
      if (s % logEvery === 0 || s === totalSteps) emit('step');
      if (ev !== undefined && s % ev.every === 0) {
        metrics = await this.evaluate();
        if (metrics !== undefined) emit('eval', { metrics });
      }
      if (ck !== undefined && s % ck.every === 0) {
        await this.save();
        emit('checkpoint');
      }
    }
    if (ev !== undefined && this.evaluations.at(-1)?.step !== this.step) {
      metrics = await this.evaluate();
      if (metrics !== undefined) emit('eval', { metrics });
    }
    if (ck !== undefined && this.step > firstStep && this.step % ck.every !== 0) {
      await this.save();
      emit('checkpoint');
    }
    return {
      step: this.step,
      meanLoss: this.meanLoss(logEvery),
      ...(metrics !== undefined ? { metrics } : {}),
      seconds: (Date.now() - start) / 1000,
    };
  }

  /** Everything a checkpoint stores, as named tensors (not copies: do not dispose). */
  private checkpointTensors(): Record<string, tf.Tensor> {
    const out: Record<string, tf.Tensor> = {};
    this.params.forEach((p, i) => {
      out[`param/${i}`] = p;
    });
    for (const [k, t] of Object.entries(this.optimizer.stateTensors())) out[`adam/${k}`] = t;
    this.options.ema?.shadow.forEach((t, i) => {
      out[`ema/${i}`] = t;
    });
    return out;
  }

  /**
   * Saves a checkpoint to the configured store now (atomically; see `saveCheckpoint`).
   *
   * @example
   * await trainer.save();
   */
  async save(): Promise<CheckpointManifest> {
    const ck = this.options.checkpoint;
    if (ck === undefined)
      throw new TrainError('this trainer has no checkpoint store (options.checkpoint)');
    const losses = tf.tensor1d(Float32Array.from(this.losses), 'float32');
    try {
      return await saveCheckpoint(
        ck.store,
        this.step,
        { ...this.checkpointTensors(), losses },
        {
          // JSON has no NaN: the Random state's 'no cached normal' NaN is stored as null
          rng: this.rng.state().map((v) => (Number.isNaN(v) ? null : v)),
          data: this.source.state?.() ?? null,
          optimizer: this.optimizer.config,
          seed: this.options.seed,
          params: this.params.map((p) => ({ name: p.name, shape: p.shape })),
          evaluations: this.evaluations,
          emaUpdates: this.options.ema?.updates ?? null,
          ...(ck.extra?.() ?? {}),
        },
        ck.keep !== undefined ? { keep: ck.keep } : {},
      );
    } finally {
      losses.dispose();
    }
  }

  /**
   * Restores the latest checkpoint of the configured store, if there is one: parameters, Adam
   * moments and step, EMA, RNG and data-iterator state, loss history. Returns the restored step, or
   * null when the store is empty.
   *
   * @example
   * const step = await trainer.restore(); // null: fresh start
   */
  async restore(): Promise<number | null> {
    const ck = this.options.checkpoint;
    if (ck === undefined)
      throw new TrainError('this trainer has no checkpoint store (options.checkpoint)');
    const loaded = await loadCheckpoint(ck.store);
    if (loaded === null) return null;
    const { manifest, tensors } = loaded;
    try {
      // Everything is checked before anything changes: a rejected checkpoint leaves the trainer as
      // it was (parameters, moments, EMA, RNG, data position, history).
      const state = checkState(manifest.state, manifest.weights);
      if (state.params.length !== this.params.length) {
        throw new TrainError(
          `the checkpoint holds ${state.params.length} parameters but this trainer has ${this.params.length}`,
        );
      }
      const floatOfShape = (t: tf.Tensor | undefined, shape: number[]) =>
        t !== undefined && t.dtype === 'float32' && tf.util.arraysEqual(t.shape, shape);
      this.params.forEach((p, i) => {
        const t = tensors.get(`param/${i}`);
        if (!floatOfShape(t, p.shape)) {
          throw new TrainError(
            `checkpoint parameter ${i} is ${t ? `${t.dtype} [${t.shape}]` : 'missing'} but ${p.name} is float32 [${p.shape}]`,
          );
        }
      });
      const adam: Record<string, tf.Tensor> = {};
      const ema: Record<string, tf.Tensor> = {};
      for (const [k, t] of tensors) {
        if (k.startsWith('adam/')) adam[k.slice(5)] = t;
        if (k.startsWith('ema/')) ema[k.slice(4)] = t;
      }
      this.optimizer.checkState(adam);
      const avg = this.options.ema;
      avg?.shadow.forEach((s, i) => {
        if (!floatOfShape(ema[String(i)], s.shape)) {
          throw new TrainError(
            `the checkpoint has no float32 EMA weights of shape [${s.shape}] for parameter ${i}`,
          );
        }
      });
      const losses = tensors.get('losses');
      if (losses !== undefined && (losses.rank !== 1 || losses.dtype !== 'float32'))
        throw new CheckpointError(
          `${manifest.weights}: 'losses' must be a float32 vector, got ${losses.dtype} [${losses.shape}]`,
        );
      let rng: Random;
      try {
        rng = Random.fromState(state.rng.map((v) => v ?? Number.NaN));
      } catch (e) {
        throw new CheckpointError(
          `${MANIFEST}: state.rng is not a Random state: ${(e as Error).message}`,
          { cause: e },
        );
      }
      const lossValues = losses === undefined ? new Float32Array(0) : await losses.data();
      if (this.source.restore !== undefined) {
        try {
          this.source.restore(state.data);
        } catch (e) {
          if (e instanceof DiffuseError) throw e;
          throw new CheckpointError(
            `${MANIFEST}: the data iterator could not be restored from state.data: ${(e as Error).message}`,
            { cause: e },
          );
        }
      }
      // committed: nothing below can fail
      this.params.forEach((p, i) => {
        p.assign(tensors.get(`param/${i}`)!);
      });
      this.optimizer.loadState(manifest.step, adam);
      avg?.shadow.forEach((s, i) => {
        s.assign(ema[String(i)]!);
      });
      if (avg !== undefined && typeof state.emaUpdates === 'number') avg.updates = state.emaUpdates;
      this.rng = rng;
      this.losses.length = 0;
      for (const v of lossValues) this.losses.push(v); // no spread: a long run has millions
      this.evaluations.length = 0;
      this.evaluations.push(...state.evaluations);
      return manifest.step;
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  }

  /** Frees the optimizer state and the gradient source (the parameters belong to the model). */
  dispose(): void {
    this.optimizer.dispose();
    this.gradients.dispose?.();
  }
}
