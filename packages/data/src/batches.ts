/**
 * A seeded shuffling batch iterator over an in-memory data set, whose position can be saved and
 * restored exactly (for checkpoints that resume training on the same batches).
 */

import { Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { DataError } from './errors.js';
import type { ArrayDataset } from './mnist.js';

/** One batch: examples [batchSize, ...shape] (float32) and their labels [batchSize] (int32). */
export interface Batch {
  x: tf.Tensor;
  labels: tf.Tensor1D;
}

/** Options of `ShuffledBatches`. */
export interface ShuffledBatchesOptions {
  /** Examples per batch. */
  batchSize: number;
  /** Seed of the shuffling stream (or pass `rng`). */
  seed?: number;
  /** A stream to shuffle with instead of `seed` (the iterator keeps and advances it). */
  rng?: Random;
  /**
   * Drop the last incomplete batch of each epoch (default true, so every batch has `batchSize`
   * examples and a compiled training step sees one shape).
   */
  dropLast?: boolean;
}

/** Where a `ShuffledBatches` stands: plain JSON, for checkpoints. */
export interface ShuffledBatchesState {
  /** The shuffling stream's state before it drew this epoch's permutation. */
  epochRng: number[];
  /** Epochs completed. */
  epoch: number;
  /** Position in this epoch's permutation. */
  cursor: number;
  batchSize: number;
  dropLast: boolean;
  /** Size of the data set, checked on restore. */
  count: number;
}

/**
 * Endless seeded mini-batches: each epoch visits every example once in a fresh uniformly random
 * order (Fisher-Yates, drawn from the seeded stream), then the next epoch starts.
 *
 * @example
 * const mnist = await loadMnist();
 * const batches = new ShuffledBatches(mnist, { batchSize: 128, seed: 7 });
 * const { x, labels } = batches.next();       // x: [128, 28, 28, 1]
 * const saved = batches.state();              // JSON; later: ShuffledBatches.restore(mnist, saved)
 * x.dispose(); labels.dispose();
 */
export class ShuffledBatches {
  readonly dataset: ArrayDataset;
  readonly batchSize: number;
  readonly dropLast: boolean;
  private rng: Random;
  private epochRng: number[];
  private order: Int32Array;
  private cursor = 0;
  private epochsDone = 0;
  private readonly exampleSize: number;

  constructor(dataset: ArrayDataset, options: ShuffledBatchesOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new DataError(`batchSize must be a positive integer, got ${batchSize}`);
    }
    if (dataset.count < 1) throw new DataError('cannot batch an empty data set');
    this.dropLast = options.dropLast ?? true;
    if (this.dropLast && batchSize > dataset.count) {
      throw new DataError(
        `batchSize ${batchSize} is larger than the data set (${dataset.count} examples) with dropLast`,
      );
    }
    this.exampleSize = dataset.shape.reduce((a, b) => a * b, 1);
    if (
      dataset.x.length !== dataset.count * this.exampleSize ||
      dataset.labels.length !== dataset.count
    ) {
      throw new DataError(
        `data set arrays do not match count ${dataset.count} and shape [${dataset.shape.join(', ')}]`,
      );
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    if (options.rng !== undefined) this.rng = options.rng;
    else if (options.seed !== undefined) this.rng = Random.seed(options.seed);
    else throw new DataError('ShuffledBatches needs a seed or an rng');
    this.epochRng = this.rng.state();
    this.order = this.rng.permutation(dataset.count);
  }

  /** Restores an iterator saved with `state()` over the same data set. */
  static restore(dataset: ArrayDataset, state: ShuffledBatchesState): ShuffledBatches {
    if (state === null || typeof state !== 'object')
      throw new DataError(`a saved iterator state must be an object, got ${String(state)}`);
    if (!Number.isSafeInteger(state.epoch) || state.epoch < 0)
      throw new DataError(`saved epoch ${String(state.epoch)} is not an integer >= 0`);
    if (typeof state.dropLast !== 'boolean')
      throw new DataError(`saved dropLast ${String(state.dropLast)} is not a boolean`);
    if (
      !Array.isArray(state.epochRng) ||
      !state.epochRng.every((v, i) =>
        i < 4 ? Number.isSafeInteger(v) : v === null || typeof v === 'number',
      )
    )
      throw new DataError('saved epochRng is not a Random state');
    if (state.count !== dataset.count) {
      throw new DataError(
        `the saved iterator is over ${state.count} examples but this data set has ${dataset.count}`,
      );
    }
    const it = new ShuffledBatches(dataset, {
      batchSize: state.batchSize,
      dropLast: state.dropLast,
      rng: Random.fromState(state.epochRng),
    });
    if (!Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor > dataset.count) {
      throw new DataError(`saved cursor ${state.cursor} is out of range`);
    }
    it.cursor = state.cursor;
    it.epochsDone = state.epoch;
    return it;
  }

  /** The iterator's position, as JSON. */
  state(): ShuffledBatchesState {
    return {
      epochRng: [...this.epochRng],
      epoch: this.epochsDone,
      cursor: this.cursor,
      batchSize: this.batchSize,
      dropLast: this.dropLast,
      count: this.dataset.count,
    };
  }

  /** Epochs completed so far. */
  get epoch(): number {
    return this.epochsDone;
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.count / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  private nextEpoch(): void {
    this.epochsDone++;
    this.epochRng = this.rng.state();
    this.order = this.rng.permutation(this.dataset.count);
    this.cursor = 0;
  }

  /** The indices of the next batch (advances the iterator). */
  nextIndices(): Int32Array {
    const remaining = this.dataset.count - this.cursor;
    if (remaining === 0 || (this.dropLast && remaining < this.batchSize)) this.nextEpoch();
    const size = Math.min(this.batchSize, this.dataset.count - this.cursor);
    const idx = this.order.slice(this.cursor, this.cursor + size);
    this.cursor += size;
    return idx;
  }

  /** The next batch as tensors the caller owns. */
  next(): Batch {
    const idx = this.nextIndices();
    const s = this.exampleSize;
    const x = new Float32Array(idx.length * s);
    const labels = new Int32Array(idx.length);
    for (let i = 0; i < idx.length; i++) {
      const j = idx[i]!;
      x.set(this.dataset.x.subarray(j * s, (j + 1) * s), i * s);
      labels[i] = this.dataset.labels[j]!;
    }
    return {
      x: tf.tensor(x, [idx.length, ...this.dataset.shape], 'float32'),
      labels: tf.tensor1d(labels, 'int32'),
    };
  }
}
