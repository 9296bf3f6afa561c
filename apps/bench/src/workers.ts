/**
 * Both cores for sampling with tfjs in Node (issue 9, item 2): the bench's network with its forward
 * pass data-parallel on worker threads (`ParallelDenoiser` of `@diffuse/train`: one tfjs-wasm engine
 * per thread, contiguous shards of each call's batch, the outputs gathered into one tensor), called
 * as the `AsyncDenoiser` that `sample` awaits. A model call therefore includes the readback of x on
 * the main thread, the shards' transfer to the workers and the upload of the gathered output.
 */
import { ParallelDenoiser } from '@diffuse/train';
import type { BenchModel } from './models.js';

/** The Node runtime name of the rows: tfjs-wasm on 2 worker threads. */
export const WORKERS_BACKEND = 'wasm-workers-2';
/** Worker threads of that runtime. */
export const WORKERS = 2;

/**
 * `model` with `ParallelDenoiser` on `workers` threads as its `asyncDenoiser` (what the throughput
 * suite calls); `denoiser` stays the tfjs model. The workers start here (before timing); disposing
 * the result terminates them, the tfjs network stays with `model`.
 */
export async function workersBenchModel(model: BenchModel, workers = WORKERS): Promise<BenchModel> {
  const asyncDenoiser = await ParallelDenoiser.create(model.net, { workers, backend: 'wasm' });
  return {
    ...model,
    label: `${model.label}, forward data-parallel on ${workers} worker threads (tfjs-wasm each)`,
    asyncDenoiser,
    dispose: () => {
      void asyncDenoiser.dispose();
    },
  };
}
