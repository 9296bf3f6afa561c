/**
 * Exponential moving average of weights (Polyak averaging; used by DDPM, Ho et al. 2020 appendix B,
 * with decay 0.9999): after each optimiser step
 *
 *     shadow <- decay * shadow + (1 - decay) * param.
 *
 * Evaluate or sample with the averaged weights by `swap()` (twice to return) or `copyTo(model)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ModelError } from './errors.js';

/** Options of `Ema`. */
export interface EmaOptions {
  /** Default decay of `update()` (default 0.999). */
  decay?: number;
  /**
   * Warm-up as in TensorFlow's ExponentialMovingAverage(num_updates): the decay used when n updates
   * have already been made is min(decay, (1 + n) / (10 + n)). Default false.
   */
  warmup?: boolean;
}

/**
 * Shadow copies of a parameter list, updated as an exponential moving average.
 *
 * @example
 * const ema = new Ema(net.params, { decay: 0.999 });
 * // after each optimizer.applyGradients(...)
 * ema.update();
 * ema.swap(); const x = sample(net); ema.swap(); // sample with the averaged weights
 */
export class Ema {
  readonly shadow: tf.Variable[];
  readonly decay: number;
  readonly warmup: boolean;
  /** Number of `update()` calls so far. */
  updates = 0;

  constructor(
    private readonly params: readonly tf.Variable[],
    options: EmaOptions = {},
  ) {
    if (options === null || typeof options !== 'object')
      throw new ModelError(`Ema options must be an object, got ${String(options)}`);
    if (options.warmup !== undefined && typeof options.warmup !== 'boolean')
      throw new ModelError(`Ema warmup must be a boolean, got ${String(options.warmup)}`);
    this.decay = options.decay ?? 0.999;
    this.warmup = options.warmup ?? false;
    checkDecay(this.decay);
    this.shadow = params.map((p) => tf.variable(p, false));
  }

  /** The decay the next update uses. */
  nextDecay(decay = this.decay): number {
    return this.warmup ? Math.min(decay, (1 + this.updates) / (10 + this.updates)) : decay;
  }

  /** shadow <- d shadow + (1 - d) param, d = `nextDecay(decay)`. */
  update(decay = this.decay): void {
    checkDecay(decay);
    const d = this.nextDecay(decay);
    tf.tidy(() => {
      this.shadow.forEach((s, i) => {
        s.assign(tf.add(tf.mul(s, d), tf.mul(this.params[i]!, 1 - d)));
      });
    });
    this.updates++;
  }

  /** Exchanges the values of the parameters and the shadow (call again to undo). */
  swap(): void {
    this.params.forEach((p, i) => {
      const s = this.shadow[i]!;
      const tmp = tf.clone(p);
      p.assign(s);
      s.assign(tmp);
      tmp.dispose();
    });
  }

  /** Writes the averaged weights into another parameter list of the same shapes (e.g. a model copy). */
  copyTo(target: readonly tf.Variable[]): void {
    if (
      target.length !== this.shadow.length ||
      target.some((t, i) => !tf.util.arraysEqual(t.shape, this.shadow[i]!.shape))
    ) {
      throw new ModelError('Ema.copyTo: the target parameters do not match the averaged ones');
    }
    target.forEach((t, i) => {
      t.assign(this.shadow[i]!);
    });
  }

  /** Frees the shadow copies. */
  dispose(): void {
    for (const s of this.shadow) s.dispose();
  }
}

function checkDecay(d: number): void {
  if (!(d >= 0 && d <= 1)) throw new ModelError(`EMA decay must be in [0, 1], got ${d}`);
}
