/**
 * Data parallelism over Node worker threads: each worker holds a replica of the denoiser on its own
 * tfjs engine (its own wasm instance, i.e. its own core) and computes the loss and gradients of one
 * shard of the batch; the coordinator (the `Trainer`'s thread) averages them and keeps the optimizer,
 * the master weights, the EMA and every random draw.
 */

import type { BackendName, Random } from '@diffuse/backend';
import { convertWeighting, uniformWeighting } from '@diffuse/losses';
import type { NetworkDenoiser } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import {
  type DiffusionBatch,
  type DiffusionDraw,
  type DiffusionLossOptions,
  diffusionDrawer,
} from './diffusion.js';
import { TrainError } from './errors.js';
import {
  checkPool,
  type PoolBackend,
  shardBounds,
  startWorkers,
  type WorkerHandle,
  writeWeights,
} from './parallel-pool.js';
import type { FromWorker, ShardInputs, ToWorker } from './parallel-protocol.js';
import { type ParamSlot, paramSlots } from './parallel-replica.js';
import type { GradientSource, LossAndGradients } from './trainer.js';

/** Options of `ParallelGradients.create`. */
export interface ParallelOptions {
  /** Worker threads, each with its own tfjs engine and one shard of every batch (default 2). */
  workers?: number;
  /** The workers' backend: `wasm` (default) or `cpu`. */
  backend?: PoolBackend;
  /** Terminates the workers when aborted; a step in flight then fails with a `TrainError`. */
  signal?: AbortSignal;
  /**
   * The worker script. Default: `parallel-worker.js` beside this module (the built package), or
   * `../dist/parallel-worker.js` when this module runs from `src/` (tests).
   */
  workerUrl?: URL;
}

export { shardBounds };

/** The gradient workers' names in errors. */
const NAMES = { role: 'gradient', owner: 'ParallelGradients' };

type Handle = WorkerHandle<ToWorker, FromWorker>;

/**
 * Gradients of the diffusion loss (`diffusionLoss`) computed by worker threads: data parallelism with
 * one tfjs engine, i.e. one wasm instance and one core, per worker. Give it to a `Trainer` as
 * `gradients` in place of `loss`.
 *
 * Each step the coordinator draws everything random for the FULL batch from the trainer's stream, in
 * `diffusionLoss`'s order (`diffusionDrawer`: conditioning dropout, noise levels lambda_i, noise
 * eps), evaluates the loss weights w(lambda_i), writes the master weights into a SharedArrayBuffer,
 * and sends worker k the rows of its shard S_k, with the weights scaled by its share |S_k| / n.
 * Worker k returns (|S_k| / n) L_k, L_k = mean_{i in S_k} l_i, and its gradient; the coordinator
 * sums them into the full-batch mean
 *
 *     L = sum_k (|S_k| / n) L_k,    grad L = sum_k (|S_k| / n) grad L_k
 *
 * (synchronous data-parallel SGD with gradient averaging: Dean et al. 2012, "Large scale distributed
 * deep networks"; `torch.nn.parallel.DistributedDataParallel` all-reduces the same mean). The step is
 * thus the single-thread step up to float32 summation order: with one seed, a parallel run follows
 * the single-thread run within float32 rounding (the tests check 5 Adam steps of an MLP and a U-Net).
 *
 * The model must be a network of `@diffuse/models` built from its config (`Mlp`, `UNet`): workers
 * rebuild it from `model.config`. Node only.
 *
 * @example
 * const model = new Mlp(mlpConfig({ dim: 2, width: 256, depth: 2 }), { seed: 0 });
 * const lossOptions = { sampler: uniformTimeSampler(new CosineSchedule()) };
 * const gradients = await ParallelGradients.create(model, lossOptions, { workers: 2 });
 * const trainer = new Trainer({ params: model.params, gradients, data: (rng) => toy.sample(4096, rng), seed: 0 });
 * await trainer.run(1000);
 * trainer.dispose(); // terminates the workers too
 */
export class ParallelGradients implements GradientSource<DiffusionBatch> {
  /** Worker threads in use. */
  readonly workers: number;
  /** The workers' backend. */
  readonly backend: BackendName;
  private readonly handles: Handle[];
  /** Each worker's gradients (shared buffers the workers write). */
  private readonly grads: Float32Array[];
  private readonly slots: ParamSlot[];
  private readonly master: Float32Array;
  private readonly draw: (batch: DiffusionBatch, rng: Random) => DiffusionDraw;
  private readonly model: NetworkDenoiser;
  private readonly options: DiffusionLossOptions;
  private nextId = 0;
  /**
   * Where the last `compute` spent its time (ms): `prepare` on the coordinator (draws, loss weights,
   * weights to the shared buffer, shard copies), `workers` until the slowest worker answered,
   * `reduce` averaging the shard gradients into tensors. For benchmarks; null before the first step.
   */
  lastTimings: { prepareMs: number; workersMs: number; reduceMs: number } | null = null;
  private closed: Promise<void> | null = null;

  private constructor(
    model: NetworkDenoiser,
    options: DiffusionLossOptions,
    handles: Handle[],
    grads: Float32Array[],
    slots: ParamSlot[],
    master: Float32Array,
    backend: BackendName,
  ) {
    this.model = model;
    this.options = options;
    this.handles = handles;
    this.grads = grads;
    this.slots = slots;
    this.master = master;
    this.backend = backend;
    this.workers = handles.length;
    this.draw = diffusionDrawer(model, options);
  }

  /**
   * Starts `options.workers` worker threads, builds the model replica in each, and resolves once all
   * are ready. Throws `TrainError` when a worker cannot start (and stops the others).
   *
   * @example
   * const gradients = await ParallelGradients.create(unet, { sampler, condDropout: 0.1 }, { workers: 2 });
   */
  static async create(
    model: NetworkDenoiser,
    lossOptions: DiffusionLossOptions,
    options: ParallelOptions = {},
  ): Promise<ParallelGradients> {
    const { workers, backend } = checkPool('ParallelGradients', model, options);
    diffusionDrawer(model, lossOptions); // validates the loss options here, not in a worker
    const slots = paramSlots(model);
    const total = slots.reduce((n, s) => n + s.size, 0);
    const shared = new SharedArrayBuffer(4 * total);
    const grads = Array.from({ length: workers }, () => new SharedArrayBuffer(4 * total));
    const reduction = lossOptions.reduction ?? 'mean';
    const handles = await startWorkers<ToWorker, FromWorker>(
      { name: 'parallel-worker.js', workerUrl: options.workerUrl },
      workers,
      NAMES,
      (k) => ({
        type: 'init',
        backend,
        config: JSON.parse(JSON.stringify(model.config)),
        slots,
        params: shared,
        grads: grads[k]!,
        reduction,
      }),
      options.signal,
    );
    const pg = new ParallelGradients(
      model,
      lossOptions,
      handles,
      grads.map((g) => new Float32Array(g)),
      slots,
      new Float32Array(shared),
      backend,
    );
    options.signal?.addEventListener('abort', () => void pg.dispose(), { once: true });
    return pg;
  }

  /** True once `dispose` ran (or the abort signal fired). */
  get disposed(): boolean {
    return this.closed !== null;
  }

  /**
   * Loss and gradients of `batch` at the current `params` (the master weights, in the model's
   * parameter order), averaged over the workers' shards.
   *
   * @example
   * const { loss, grads } = await gradients.compute({ x }, rng, model.params);
   */
  async compute(
    batch: DiffusionBatch,
    rng: Random,
    params: readonly tf.Variable[],
  ): Promise<LossAndGradients> {
    if (this.closed !== null) throw new TrainError('ParallelGradients was disposed');
    this.checkParams(params);
    const t0 = performance.now();
    const n = batch.x.shape[0]!;
    const d = this.draw(batch, rng);
    let shards: ShardInputs[];
    try {
      const weights = await this.weights(d, n);
      const x = await batch.x.data<'float32'>();
      const noise = await d.noise.data<'float32'>();
      const labels = d.labels !== undefined ? Int32Array.from(await d.labels.data()) : undefined;
      await writeWeights(params, this.slots, this.master);
      const row = n === 0 ? 0 : x.length / n;
      shards = shardBounds(n, this.workers).map(([a, b]) => ({
        x: Float32Array.from(x.subarray(a * row, b * row)),
        shape: [b - a, ...batch.x.shape.slice(1)],
        noise: Float32Array.from(noise.subarray(a * row, b * row)),
        logSNR: Float64Array.from(d.levels.logSNR.subarray(a, b)),
        // (|S_k| / n) w_i: the worker's loss and gradient come out already weighted by its share
        weights: weights.slice(a, b).map((w) => (w * (b - a)) / n),
        ...(labels !== undefined ? { labels: labels.slice(a, b) } : {}),
      }));
    } finally {
      tf.dispose([d.noise, ...(d.labels !== undefined ? [d.labels] : [])]);
    }
    if (this.closed !== null) throw new TrainError('ParallelGradients was disposed');
    const id = this.nextId++;
    const t1 = performance.now();
    const answers = await Promise.allSettled(
      shards.map((shard, k) =>
        this.handles[k]!.request({ type: 'step', id, shard }, [
          shard.x.buffer as ArrayBuffer,
          shard.noise.buffer as ArrayBuffer,
          shard.logSNR.buffer as ArrayBuffer,
          shard.weights.buffer as ArrayBuffer,
          ...(shard.labels !== undefined ? [shard.labels.buffer as ArrayBuffer] : []),
        ]),
      ),
    );
    const failed = answers.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const t2 = performance.now();
    let loss = 0;
    for (const r of answers) loss += (r as PromiseFulfilledResult<{ loss: number }>).value.loss;
    // sum_k of the workers' share-weighted gradients: copies into the backend and one add per worker
    const grads = tf.tidy(() =>
      this.slots.map((slot) => {
        const part = (k: number) =>
          tf.tensor(
            this.grads[k]!.subarray(slot.offset, slot.offset + slot.size),
            slot.shape,
            'float32',
          );
        if (shards.length === 0) return tf.zeros(slot.shape, 'float32');
        let g = part(0);
        for (let k = 1; k < shards.length; k++) g = tf.add(g, part(k));
        return g;
      }),
    );
    this.lastTimings = { prepareMs: t1 - t0, workersMs: t2 - t1, reduceMs: performance.now() - t2 };
    return { loss: tf.scalar(loss, 'float32'), grads };
  }

  /** w(lambda_i) on the model's prediction space, as `diffusionLoss` evaluates it for the batch. */
  private async weights(d: DiffusionDraw, n: number): Promise<Float32Array> {
    const w = convertWeighting(
      this.options.weighting ?? uniformWeighting('epsilon'),
      this.model.prediction,
    );
    const { logSNR, density } = d.levels;
    if (w.needsDensity && density === undefined) {
      throw new TrainError(
        `the ${w.name} weighting needs the density p(lambda) of each example; use a LogSNRSampler that reports it`,
      );
    }
    const values = tf.tidy(() =>
      tf.reshape(
        tf.broadcastTo(
          w.weight(
            tf.tensor1d(Float32Array.from(logSNR)),
            density === undefined ? undefined : tf.tensor1d(Float32Array.from(density)),
          ),
          [n],
        ),
        [n],
      ),
    );
    try {
      return Float32Array.from(await values.data<'float32'>());
    } finally {
      values.dispose();
    }
  }

  private checkParams(params: readonly tf.Variable[]): void {
    if (
      params.length !== this.slots.length ||
      params.some((p, i) => !tf.util.arraysEqual(p.shape, this.slots[i]!.shape))
    ) {
      throw new TrainError(
        `ParallelGradients got ${params.length} parameters that are not the model's ${this.slots.length} (pass model.params, in order)`,
      );
    }
  }

  /**
   * Terminates the worker threads (a step in flight fails with a `TrainError`). Idempotent; resolves
   * once every worker has exited.
   *
   * @example
   * await gradients.dispose();
   */
  dispose(): Promise<void> {
    this.closed ??= Promise.all(this.handles.map((h) => h.terminate())).then(() => undefined);
    return this.closed;
  }
}
