/**
 * Tensor bookkeeping for one sampling run: every tensor the sampler or its driver creates is
 * registered here, so a finished, failed or aborted run frees everything except its result.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SamplerContext } from './types.js';

/** Draws N(0, I) noise shaped like the state for the move from sigma to sigmaNext. */
export type NoiseSource = (sigma: number, sigmaNext: number, shape: readonly number[]) => tf.Tensor;

export class RunScope {
  private readonly owned = new Set<tf.Tensor>();

  keep<T extends tf.Tensor>(t: T): T {
    this.owned.add(t);
    return t;
  }

  free(...ts: (tf.Tensor | undefined | null)[]): void {
    for (const t of ts) {
      if (t && this.owned.delete(t)) t.dispose();
    }
  }

  /** Frees everything still registered except `keep` (which is handed to the caller). */
  disposeAll(keep?: tf.Tensor): void {
    for (const t of this.owned) if (t !== keep) t.dispose();
    this.owned.clear();
  }

  /** The `SamplerContext` a sampler program sees; noise comes from `source`, shaped like `shape`. */
  context(shape: () => readonly number[], source: NoiseSource): SamplerContext {
    return {
      noise: (sigma, sigmaNext) => this.keep(source(sigma, sigmaNext, shape())),
      keep: (t) => this.keep(t),
      tidy: (fn) => this.keep(tf.tidy(fn)),
      free: (...ts) => this.free(...ts),
    };
  }
}
