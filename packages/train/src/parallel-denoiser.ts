/**
 * Sampling on every core in Node: a network's forward pass, data-parallel over worker threads, behind
 * the `AsyncDenoiser` interface the samplers of `@diffuse/samplers` await.
 */

import type { BackendName } from '@diffuse/backend';
import type { AsyncDenoiser, Conditioning, NetworkDenoiser } from '@diffuse/models';
import type { NoiseLevel, Prediction, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';
import type {
  FromDenoiserWorker,
  PredictShard,
  ToDenoiserWorker,
  WireCondValue,
  WireScalar,
  WireTensor,
} from './parallel-denoiser-protocol.js';
import {
  checkPool,
  type PoolBackend,
  shardBounds,
  startWorkers,
  type WorkerHandle,
  writeWeights,
} from './parallel-pool.js';
import { type ParamSlot, paramSlots } from './parallel-replica.js';

/** Options of `ParallelDenoiser.create`. */
export interface ParallelDenoiserOptions {
  /** Worker threads, each with its own tfjs engine and one shard of every call's batch (default 2). */
  workers?: number;
  /** The workers' backend: `wasm` (default) or `cpu`. */
  backend?: PoolBackend;
  /** Terminates the workers when aborted; a call in flight then fails with a `TrainError`. */
  signal?: AbortSignal;
  /**
   * The worker script. Default: `parallel-denoiser-worker.js` beside this module (the built
   * package), or `../dist/parallel-denoiser-worker.js` when this module runs from `src/` (tests).
   */
  workerUrl?: URL;
}

/** The denoiser workers' names in errors. */
const NAMES = { role: 'denoiser', owner: 'ParallelDenoiser' };

type Handle = WorkerHandle<ToDenoiserWorker, FromDenoiserWorker>;

const noop = () => {};

/** A tensor read back, and whether it is cut by rows (one row per example) or sent whole. */
interface Read {
  t: tf.Tensor;
  rows: boolean;
}

/**
 * A network of `@diffuse/models` (`Mlp`, `UNet`) whose forward pass runs data-parallel on Node worker
 * threads, one tfjs engine (one wasm instance, i.e. one core) per worker: an `AsyncDenoiser` to give
 * `sample`, `sampleSteps` or `invert` of `@diffuse/samplers` in place of the network.
 *
 * Each call splits the batch x_t = alpha x_0 + sigma eps into contiguous shards S_k (`shardBounds`),
 * worker k evaluates its replica D_theta on its rows, with the rows of every per-example input (a
 * noise level given per example, class labels, any tensor of the conditioning whose first axis is
 * the batch) and the whole of every shared one (a level given for the whole batch), and writes
 * D_theta(x_t[S_k]; alpha, sigma, c[S_k]) into rows S_k of one shared output:
 *
 *     D(x_t)[i] = D_theta(x_t[S_k]; ...)[i - start_k]   for i in S_k.
 *
 * The network treats every example on its own (no batch statistics: GroupNorm normalises within an
 * example), so this is the one-thread forward pass, row for row: data parallelism as in
 * `torch.nn.DataParallel`'s forward (scatter the batch, replicate the module, gather the outputs).
 * Measured agreement with the main-thread `predict` on wasm: identical in float32 for the MLP and the
 * U-Net, and whole `sample()` runs agree to 1e-6 relative (the tests' tolerance; README "Both cores").
 *
 * Per call the coordinator reads x (and any tensor level or conditioning) back once, to ship rows
 * to the workers, and uploads the output once; calls are answered one at a time, in order. The
 * replicas are built from `model.config` and the model's weights at `create`; `setWeights` loads
 * others (e.g. an EMA's `shadow`) into every worker. Node only.
 *
 * @example
 * const model = new Mlp(mlpConfig({ dim: 2 }), { seed: 0 }); // trained, or weights loaded
 * const denoiser = await ParallelDenoiser.create(model, { workers: 2 });
 * const x = await sample(denoiser, { sampler: 'dpmpp_2m', steps: 20, batch: 4096, seed: 1 });
 * await denoiser.dispose(); // terminates the workers
 */
export class ParallelDenoiser implements AsyncDenoiser {
  /** What `predictAsync` returns: the network's declared prediction. */
  readonly prediction: Prediction;
  /** The shape of one example. */
  readonly shape: readonly number[];
  /** Number of classes of a class-conditional network (its null class is `numClasses`). */
  readonly numClasses?: number;
  /** Worker threads in use. */
  readonly workers: number;
  /** The workers' backend. */
  readonly backend: BackendName;
  /**
   * Where the last call spent its time (ms): `prepareMs` on the coordinator (readback of the inputs,
   * shard copies), `workersMs` until the slowest worker answered, `assembleMs` uploading the output.
   * For benchmarks; null before the first call.
   */
  lastTimings: { prepareMs: number; workersMs: number; assembleMs: number } | null = null;
  private readonly model: NetworkDenoiser;
  private readonly handles: Handle[];
  private readonly slots: ParamSlot[];
  private readonly master: Float32Array;
  private nextId = 0;
  /** The end of the queue of calls (one at a time, in order). */
  private tail: Promise<void> = Promise.resolve();
  private closed: Promise<void> | null = null;

  private constructor(
    model: NetworkDenoiser,
    handles: Handle[],
    slots: ParamSlot[],
    master: Float32Array,
    backend: BackendName,
  ) {
    this.model = model;
    this.prediction = model.prediction;
    this.shape = [...model.shape];
    if (model.numClasses !== undefined) this.numClasses = model.numClasses;
    this.handles = handles;
    this.slots = slots;
    this.master = master;
    this.backend = backend;
    this.workers = handles.length;
  }

  /**
   * Starts `options.workers` worker threads, builds a replica of `model` (from `model.config`, with
   * its current weights) in each, and resolves once all are ready. Throws `TrainError` when the
   * model is not an `Mlp` or `UNet`, the options are invalid, or a worker cannot start (the others
   * are then stopped).
   *
   * @example
   * const denoiser = await ParallelDenoiser.create(unet, { workers: 2, backend: 'wasm' });
   */
  static async create(
    model: NetworkDenoiser,
    options: ParallelDenoiserOptions = {},
  ): Promise<ParallelDenoiser> {
    const { workers, backend } = checkPool('ParallelDenoiser', model, options);
    const slots = paramSlots(model);
    const shared = new SharedArrayBuffer(4 * slots.reduce((n, s) => n + s.size, 0));
    const master = new Float32Array(shared);
    await writeWeights(model.params, slots, master);
    const handles = await startWorkers<ToDenoiserWorker, FromDenoiserWorker>(
      { name: 'parallel-denoiser-worker.js', workerUrl: options.workerUrl },
      workers,
      NAMES,
      () => ({
        type: 'init',
        backend,
        config: JSON.parse(JSON.stringify(model.config)),
        slots,
        params: shared,
      }),
      options.signal,
    );
    const pd = new ParallelDenoiser(model, handles, slots, master, backend);
    options.signal?.addEventListener('abort', () => void pd.dispose(), { once: true });
    return pd;
  }

  /** True once `dispose` ran (or the abort signal fired). */
  get disposed(): boolean {
    return this.closed !== null;
  }

  /**
   * The network's prediction for `x` (x_t, VP-scaled: alpha x_0 + sigma eps) at `level`, computed by
   * the workers, one shard of rows each: a new tensor shaped like `x`. Rejects with `TrainError` when
   * a worker fails (naming it and its error), crashes or exits, or after `dispose`.
   *
   * @example
   * const eps = await denoiser.predictAsync(x, { alpha: 0.8, sigma: 0.6 }, { labels });
   */
  predictAsync(x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning): Promise<tf.Tensor> {
    return this.enqueue(() => this.predictNow(x, level, cond));
  }

  /**
   * Loads `weights` (tensors in the order and shapes of the model's `params`; default: the model's
   * current `params`) into every worker's replica, for the calls that follow: e.g. an EMA's
   * `shadow`, or the model's weights after more training. Keep the tensors until it resolves.
   *
   * @example
   * await denoiser.setWeights(ema.shadow); // sample with the averaged weights
   */
  setWeights(weights: readonly tf.Tensor[] = this.model.params): Promise<void> {
    if (
      weights.length !== this.slots.length ||
      weights.some((w, i) => !tf.util.arraysEqual(w.shape, this.slots[i]!.shape))
    ) {
      return Promise.reject(
        new TrainError(
          `setWeights got ${weights.length} tensors that are not the model's ${this.slots.length} parameters (their order and shapes)`,
        ),
      );
    }
    return this.enqueue(async () => {
      await writeWeights(weights, this.slots, this.master);
      await this.all(this.handles.map((h) => h.request({ type: 'weights', id: this.nextId++ })));
    });
  }

  /**
   * Terminates the worker threads (a call in flight fails with a `TrainError`). Idempotent; resolves
   * once every worker has exited. The model given to `create` stays the caller's.
   *
   * @example
   * await denoiser.dispose();
   */
  dispose(): Promise<void> {
    this.closed ??= Promise.all(this.handles.map((h) => h.terminate())).then(noop);
    return this.closed;
  }

  /** Runs `task` after every earlier call has settled. */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      if (this.closed !== null) throw new TrainError('ParallelDenoiser was disposed');
      return task();
    });
    this.tail = run.then(noop, noop);
    return run;
  }

  /** Waits for every request; rethrows the first failure (a `TrainError`). */
  private async all<T>(requests: Promise<T>[]): Promise<T[]> {
    const answers = await Promise.allSettled(requests);
    const failed = answers.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    return answers.map((r) => (r as PromiseFulfilledResult<T>).value);
  }

  private async predictNow(
    x: tf.Tensor,
    level: NoiseLevel<Scalar>,
    cond: Conditioning | undefined,
  ): Promise<tf.Tensor> {
    this.checkInput(x);
    const t0 = performance.now();
    const n = x.shape[0]!;
    if (n === 0) return tf.zeros(x.shape);
    const alpha = perExample('alpha', level.alpha, n);
    const sigma = perExample('sigma', level.sigma, n);
    const condKeys: string[] = [];
    const condReads: Read[] = [];
    const plain: Record<string, WireCondValue> = {};
    for (const [key, v] of Object.entries(cond ?? {})) {
      if (v === undefined) continue;
      if (isTensor(v)) {
        condKeys.push(key);
        condReads.push({ t: v, rows: v.rank >= 1 && v.shape[0] === n });
      } else plain[key] = v;
    }
    const reads = [alpha, sigma, ...condReads];
    for (const r of reads) {
      if (r !== null && !['float32', 'int32', 'bool'].includes(r.t.dtype)) {
        throw new TrainError(`ParallelDenoiser cannot ship a ${r.t.dtype} tensor to its workers`);
      }
    }
    // the one readback of the call: everything the workers need
    const [xs, ...values] = await Promise.all([
      x.data<'float32'>(),
      ...reads.map((r) => (r === null ? null : r.t.data())),
    ]);
    const wire = (k: number, a: number, b: number): WireTensor => {
      const r = reads[k]!;
      const v = values[k] as WireTensor['values'];
      const dtype = r.t.dtype as WireTensor['dtype'];
      if (!r.rows) return { values: v, shape: [...r.t.shape], dtype };
      const row = r.t.size / n;
      return { values: v.slice(a * row, b * row), shape: [b - a, ...r.t.shape.slice(1)], dtype };
    };
    const row = x.size / n;
    const out = new SharedArrayBuffer(4 * x.size);
    const bounds = shardBounds(n, this.workers);
    const shards: PredictShard[] = bounds.map(([a, b]) => {
      const scalar = (k: number, v: Scalar): WireScalar =>
        typeof v === 'number' ? v : wire(k, a, b);
      const c: Record<string, WireCondValue> = { ...plain };
      condKeys.forEach((key, j) => {
        c[key] = wire(2 + j, a, b);
      });
      return {
        x: (xs as Float32Array).slice(a * row, b * row),
        shape: [b - a, ...x.shape.slice(1)],
        alpha: scalar(0, level.alpha),
        sigma: scalar(1, level.sigma),
        ...(cond !== undefined ? { cond: c } : {}),
        out,
        offset: a * row,
      };
    });
    if (this.closed !== null) throw new TrainError('ParallelDenoiser was disposed');
    const id = this.nextId++;
    const t1 = performance.now();
    await this.all(
      shards.map((shard, k) =>
        this.handles[k]!.request({ type: 'predict', id, shard }, [shard.x.buffer as ArrayBuffer]),
      ),
    );
    const t2 = performance.now();
    const y = tf.tensor(new Float32Array(out), x.shape, 'float32');
    this.lastTimings = {
      prepareMs: t1 - t0,
      workersMs: t2 - t1,
      assembleMs: performance.now() - t2,
    };
    return y;
  }

  private checkInput(x: tf.Tensor): void {
    const shape = this.shape;
    if (!isTensor(x) || x.rank !== shape.length + 1 || shape.some((d, i) => x.shape[i + 1] !== d)) {
      const got = isTensor(x) ? `[${x.shape.join(', ')}]` : String(x);
      throw new TrainError(
        `ParallelDenoiser (${this.model.config.kind}) expects x of shape [batch, ${shape.join(', ')}], got ${got}`,
      );
    }
    if (x.dtype !== 'float32') {
      throw new TrainError(`ParallelDenoiser expects float32 x, got ${x.dtype}`);
    }
  }
}

/** A tfjs tensor (by its shape, not `instanceof`: an app may hold another copy of tfjs-core). */
function isTensor(v: unknown): v is tf.Tensor {
  const t = v as tf.Tensor | null;
  return (
    typeof t === 'object' && t !== null && Array.isArray(t.shape) && typeof t.data === 'function'
  );
}

/**
 * How a noise-level component travels: null for a number (sent as is); a tensor of one element is
 * shared by the batch (sent whole); one with the batch on its first axis ([batch, 1, ...]) is cut
 * by rows. Anything else is a `TrainError`.
 */
function perExample(name: string, v: Scalar, n: number): Read | null {
  if (typeof v === 'number') return null;
  if (!isTensor(v)) {
    throw new TrainError(`level.${name} must be a number or a tensor, got ${String(v)}`);
  }
  if (v.size === 1) return { t: v, rows: false };
  if (v.rank >= 1 && v.shape[0] === n && v.size === n) return { t: v, rows: true };
  throw new TrainError(
    `level.${name} has shape [${v.shape.join(', ')}]: give one level for the batch (a number or one element) or one per example ([${n}, 1, ...])`,
  );
}
