/**
 * The coordinator's side of a pool of Node worker threads, each holding a replica of a network of
 * `@diffuse/models` on its own tfjs engine (its own wasm instance, i.e. its own core). Shared by
 * `ParallelGradients` (training) and `ParallelDenoiser` (sampling): option checks, start-up, one
 * request at a time per worker, typed errors for failures, crashes and exits, termination, and the
 * master weights written to one SharedArrayBuffer that every worker reads.
 */

import type { BackendName } from '@diffuse/backend';
import type { NetworkDenoiser } from '@diffuse/models';
import type * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './errors.js';
import type { ParamSlot, WireError } from './parallel-replica.js';

type WorkerLike = import('node:worker_threads').Worker;

/** The pool's backends: those that run in a Node worker thread. */
export type PoolBackend = Extract<BackendName, 'wasm' | 'cpu'>;

/** How the errors of a pool name its workers and its owner. */
export interface PoolNames {
  /** What a worker is called in errors: `gradient` gives "gradient worker 0 failed: ...". */
  role: string;
  /** The public class that owns the pool, e.g. `ParallelGradients`. */
  owner: string;
}

/**
 * The rows of each shard: `n` split into `min(k, n)` contiguous runs [start, end) that differ in
 * size by at most one (the first `n mod k` get the extra row).
 *
 * @example
 * shardBounds(7, 3); // [[0, 3], [3, 5], [5, 7]]
 */
export function shardBounds(n: number, k: number): [number, number][] {
  const parts = Math.min(k, n);
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const rows = Math.floor(n / parts) + (i < n % parts ? 1 : 0);
    out.push([start, start + rows]);
    start += rows;
  }
  return out;
}

/** One worker thread and the request it is serving. */
export class WorkerHandle<In, Out extends { type: string }> {
  private pending: { resolve(m: Out): void; reject(e: Error): void } | null = null;
  private failure: Error | null = null;
  private closing = false;

  constructor(
    readonly index: number,
    readonly worker: WorkerLike,
    names: PoolNames,
  ) {
    const { role, owner } = names;
    worker.on('message', (m: Out) => {
      const p = this.settle();
      if (m.type === 'error') {
        const { error } = m as unknown as { error: WireError };
        const code = error.code !== undefined ? ` [${error.code}]` : '';
        p?.reject(
          new TrainError(`${role} worker ${index} failed: ${error.name}${code}: ${error.message}`),
        );
      } else p?.resolve(m);
    });
    worker.on('error', (e: Error) => {
      this.fail(
        new TrainError(`${role} worker ${index} crashed: ${e.name}: ${e.message}`, { cause: e }),
      );
    });
    worker.on('exit', (code: number) => {
      this.fail(
        new TrainError(
          this.closing
            ? `the ${role} workers were terminated (${owner} disposed or aborted)`
            : `${role} worker ${index} exited unexpectedly with code ${code}`,
        ),
      );
    });
  }

  private settle() {
    const p = this.pending;
    this.pending = null;
    this.worker.unref(); // an idle pool does not keep the process alive
    return p;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.settle()?.reject(this.failure);
  }

  /** Sends `m` and waits for the worker's answer. */
  request(m: In, transfer: ArrayBuffer[] = []): Promise<Out> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.pending !== null) return Promise.reject(new TrainError('a step is already running'));
    return new Promise<Out>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.ref();
      this.worker.postMessage(m, transfer);
    });
  }

  terminate(): Promise<number> {
    this.closing = true;
    return this.worker.terminate();
  }
}

/**
 * The worker script `name` (e.g. `parallel-worker.js`): beside this module (the built package), or
 * in `../dist/` when this module runs from `src/` (tests). Throws `TrainError` when neither exists.
 */
export async function defaultWorkerUrl(name: string, role: string): Promise<URL> {
  // Inside try: bundlers (esbuild --platform=browser) then leave these Node-only imports alone.
  let existsSync: typeof import('node:fs').existsSync;
  let fileURLToPath: typeof import('node:url').fileURLToPath;
  try {
    ({ existsSync } = await import('node:fs'));
    ({ fileURLToPath } = await import('node:url'));
  } catch (e) {
    throw new TrainError(`${role} workers need Node (node:fs, node:url)`, { cause: e });
  }
  const beside = new URL(`./${name}`, import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL(`../dist/${name}`, import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new TrainError(
    `the ${role} worker script is missing (looked for ${fileURLToPath(beside)}); build @diffuse/train`,
  );
}

/**
 * Checks the options every pool shares and that `model` is a network workers can rebuild from its
 * config (an `Mlp` or `UNet`); returns the worker count and backend. Throws `TrainError`.
 */
export function checkPool(
  owner: string,
  model: NetworkDenoiser,
  options: { workers?: number; backend?: PoolBackend },
): { workers: number; backend: PoolBackend } {
  const workers = options.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1) {
    throw new TrainError(`workers must be a positive integer, got ${workers}`);
  }
  const backend = options.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') {
    throw new TrainError(`the workers' backend must be 'wasm' or 'cpu', got '${String(backend)}'`);
  }
  const config = (model as { config?: { kind?: unknown } } | null)?.config;
  if (
    typeof model?.namedParams !== 'function' ||
    (config?.kind !== 'mlp' && config?.kind !== 'unet')
  ) {
    throw new TrainError(
      `${owner} needs an Mlp or UNet of @diffuse/models (workers rebuild it from model.config)`,
    );
  }
  return { workers, backend };
}

/**
 * Starts `workers` threads running `script` (`workerUrl`, else the built script of that name, see
 * `defaultWorkerUrl`) and sends each its `init(k)` message; resolves once every worker answered.
 * When a worker cannot start, terminates all of them and throws its `TrainError`.
 */
export async function startWorkers<In, Out extends { type: string }>(
  script: { name: string; workerUrl?: URL | undefined },
  workers: number,
  names: PoolNames,
  init: (k: number) => In,
  signal?: AbortSignal,
): Promise<WorkerHandle<In, Out>[]> {
  let threads: typeof import('node:worker_threads');
  try {
    threads = await import('node:worker_threads');
  } catch (e) {
    throw new TrainError(`${names.owner} needs Node worker threads (node:worker_threads)`, {
      cause: e,
    });
  }
  const url = script.workerUrl ?? (await defaultWorkerUrl(script.name, names.role));
  const handles: WorkerHandle<In, Out>[] = [];
  try {
    for (let i = 0; i < workers; i++) {
      handles.push(new WorkerHandle<In, Out>(i, new threads.Worker(url), names));
    }
    if (signal?.aborted) throw new TrainError('aborted before the workers started');
    const ready = await Promise.allSettled(handles.map((h, k) => h.request(init(k))));
    const failed = ready.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  } catch (e) {
    await Promise.all(handles.map((h) => h.terminate()));
    throw e;
  }
  return handles;
}

/**
 * Writes `params` (tensors in the slots' order and shapes) into the flat master buffer `master`
 * that the workers read: one readback per tensor.
 */
export async function writeWeights(
  params: readonly tf.Tensor[],
  slots: readonly ParamSlot[],
  master: Float32Array,
): Promise<void> {
  for (let i = 0; i < params.length; i++) {
    master.set(await params[i]!.data<'float32'>(), slots[i]!.offset);
  }
}
