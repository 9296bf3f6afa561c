/**
 * The fixed split of the `mnist` package's 10,000 digits between the models trained on them, so that
 * the judge that scores a generator's samples never saw the generator's training digits and both are
 * measured on digits neither saw.
 *
 * The split is by the digit's index i in `loadMnist()` (all ten digits, the package's order: every
 * zero, then every one, ...): the role of digit i is fixed by i mod 10, so each part holds about the
 * same share of every class.
 *
 * | part | i mod 10 | digits | trains |
 * | --- | --- | --- | --- |
 * | `heldOut` | 0 | 1,000 | nothing: accuracy of the judge, reference of the Fréchet distance |
 * | `judge` | 1, 2, 3, 4 | 4,000 | the scoring classifier (`diffuse-train mnist-judge`) |
 * | `generator` | 5, 6, 7, 8, 9 | 5,000 | the U-Net (`diffuse-train mnist`) |
 */
import { DataError } from './errors.js';
import type { ArrayDataset } from './mnist.js';

/** Which residues of the index mod 10 each part of `splitMnist` takes. */
export const MNIST_SPLIT = {
  heldOut: [0],
  judge: [1, 2, 3, 4],
  generator: [5, 6, 7, 8, 9],
} as const;

/** A part of `MNIST_SPLIT`. */
export type MnistPart = keyof typeof MNIST_SPLIT;

/**
 * The examples of `ds` at `indices`, in that order (copies; `ds` is unchanged).
 *
 * @example
 * const firstTen = subset(await loadMnist(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
 */
export function subset(ds: ArrayDataset, indices: readonly number[]): ArrayDataset {
  const px = ds.shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(indices.length * px);
  const labels = new Int32Array(indices.length);
  indices.forEach((j, i) => {
    if (!Number.isInteger(j) || j < 0 || j >= ds.count) {
      throw new DataError(`subset index ${j} is outside [0, ${ds.count})`);
    }
    x.set(ds.x.subarray(j * px, (j + 1) * px), i * px);
    labels[i] = ds.labels[j]!;
  });
  return { x, labels, count: indices.length, shape: [...ds.shape], numClasses: ds.numClasses };
}

/**
 * The indices of `MNIST_SPLIT`'s part `part` among `count` digits.
 *
 * @example
 * mnistSplitIndices('heldOut', 10_000); // [0, 10, 20, ..., 9990]
 */
export function mnistSplitIndices(part: MnistPart, count: number): number[] {
  const residues: readonly number[] = MNIST_SPLIT[part];
  if (residues === undefined) {
    throw new DataError(
      `unknown MNIST split part '${String(part)}'; expected ${Object.keys(MNIST_SPLIT).join(', ')}`,
    );
  }
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (residues.includes(i % 10)) out.push(i);
  return out;
}

/**
 * Splits the full `loadMnist()` data set into the three disjoint parts of `MNIST_SPLIT`.
 *
 * @example
 * const { generator, judge, heldOut } = splitMnist(await loadMnist()); // 5,000 / 4,000 / 1,000
 */
export function splitMnist(ds: ArrayDataset): Record<MnistPart, ArrayDataset> {
  if (ds.count !== 10_000) {
    throw new DataError(
      `splitMnist expects all 10,000 digits of loadMnist() (no 'digits' option), got ${ds.count}`,
    );
  }
  return {
    generator: subset(ds, mnistSplitIndices('generator', ds.count)),
    judge: subset(ds, mnistSplitIndices('judge', ds.count)),
    heldOut: subset(ds, mnistSplitIndices('heldOut', ds.count)),
  };
}
