/**
 * Seeded noise that is the same on every backend, in Node and in the browser.
 *
 * Numbers are generated in JavaScript with xoroshiro128+ from `pure-rand` (a maintained library),
 * turned into standard normals with Marsaglia's polar method, and only then uploaded as a float32
 * tensor. The backend never draws random numbers itself, so "same seed, same samples" holds whether
 * the tensor lands on wasm, cpu, webgl or webgpu.
 */
import * as tf from '@tensorflow/tfjs-core';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus, xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import { InvalidArgumentError } from './errors.js';

type JumpableRandomGenerator = ReturnType<typeof xoroshiro128plus>;

/** SplitMix32-style finaliser (Murmur3 fmix32): decorrelates the words that seed a child stream. */
function mix32(h: number): number {
  let x = h | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x | 0;
}

function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new InvalidArgumentError(`shape [${shape.join(', ')}] must hold non-negative integers`);
    }
    n *= d;
  }
  return n;
}

/**
 * A seeded random stream.
 *
 * @example
 * const rng = Random.seed(42);
 * const noise = rng.normal([16, 2]);          // float32 tensor, identical on every backend
 * const [a, b] = rng.fork(2);                  // independent child streams
 */
export class Random {
  private readonly gen: JumpableRandomGenerator;
  private spare: number | null = null;

  private constructor(gen: JumpableRandomGenerator) {
    this.gen = gen;
  }

  /** A stream from an integer seed (any safe integer; the low 32 bits and the high bits both count). */
  static seed(seed: number): Random {
    if (!Number.isSafeInteger(seed)) {
      throw new InvalidArgumentError(`seed must be a safe integer, got ${String(seed)}`);
    }
    const hi = Math.floor(seed / 2 ** 32);
    const gen = xoroshiro128plus(mix32(seed | 0) ^ mix32(hi + 0x9e3779b9));
    return new Random(gen);
  }

  /** The generator's state, for checkpoints; restore with `Random.fromState`. */
  state(): number[] {
    return [...this.gen.getState(), this.spare === null ? Number.NaN : this.spare];
  }

  /** Restores a stream saved with `state()`. */
  static fromState(state: readonly number[]): Random {
    if (state.length !== 5) throw new InvalidArgumentError('Random state must have 5 entries');
    const r = new Random(xoroshiro128plusFromState(state.slice(0, 4)));
    const spare = state[4]!;
    r.spare = Number.isNaN(spare) ? null : spare;
    return r;
  }

  /** A uniform number in [0, 1) with 53 random bits. */
  uniform01(): number {
    return uniformFloat64(this.gen);
  }

  /** One standard normal N(0, 1) draw (Marsaglia's polar method; pairs are cached). */
  standardNormal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    for (;;) {
      const u = 2 * this.uniform01() - 1;
      const v = 2 * this.uniform01() - 1;
      const s = u * u + v * v;
      if (s > 0 && s < 1) {
        const f = Math.sqrt((-2 * Math.log(s)) / s);
        this.spare = v * f;
        return u * f;
      }
    }
  }

  /** `n` standard normals as a Float32Array. */
  normalArray(n: number): Float32Array {
    const out = new Float32Array(sizeOf([n]));
    for (let i = 0; i < out.length; i++) out[i] = this.standardNormal();
    return out;
  }

  /** `n` uniforms in [lo, hi) as a Float32Array. */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(sizeOf([n]));
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * this.uniform01();
    return out;
  }

  /** A float32 tensor of standard normals, generated here and uploaded to the active backend. */
  normal(shape: readonly number[]): tf.Tensor {
    return tf.tensor(this.normalArray(sizeOf(shape)), [...shape], 'float32');
  }

  /** A float32 tensor of uniforms in [lo, hi). */
  uniform(shape: readonly number[], lo = 0, hi = 1): tf.Tensor {
    return tf.tensor(this.uniformArray(sizeOf(shape), lo, hi), [...shape], 'float32');
  }

  /** A float32 tensor of Rademacher signs (+1 or -1 with equal probability). */
  rademacher(shape: readonly number[]): tf.Tensor {
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = this.gen.next() < 0 ? -1 : 1;
    return tf.tensor(out, [...shape], 'float32');
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0)
      throw new InvalidArgumentError(`int(n) needs n >= 1, got ${String(n)}`);
    return Math.floor(this.uniform01() * n);
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const p = new Int32Array(sizeOf([n]));
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }

  /**
   * An independent child stream. The child is seeded from four fresh words of this stream passed
   * through a finaliser, so parent and child do not overlap in practice; this stream advances.
   */
  split(): Random {
    const words: number[] = [];
    for (let i = 0; i < 4; i++) words.push(mix32(this.gen.next() ^ Math.imul(i + 1, 0x9e3779b9)));
    if (!words.some((w) => w !== 0)) words[0] = 1; // xoroshiro's all-zero state is absorbing
    return new Random(xoroshiro128plusFromState(words));
  }

  /** `n` independent child streams (see `split`). */
  fork(n: number): Random[] {
    return Array.from({ length: sizeOf([n]) }, () => this.split());
  }
}
