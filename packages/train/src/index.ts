/**
 * `@diffuse/train`: train Diffuse denoisers. A seeded `Trainer` over any parameters and loss, Adam
 * with warm-up, cosine decay and gradient clipping, EMA hooks, progress events, periodic evaluation,
 * and crash-safe checkpoints (safetensors + JSON) that resume exactly.
 *
 * @packageDocumentation
 */
export {
  type CheckpointManifest,
  type LoadedCheckpoint,
  loadCheckpoint,
  MANIFEST,
  saveCheckpoint,
  weightsFileName,
} from './checkpoint.js';
export {
  type DiffusionBatch,
  type DiffusionDraw,
  type DiffusionLossOptions,
  diffusionDrawer,
  diffusionLoss,
  type FlowMatchingTrainingOptions,
  flowMatchingTrainingLoss,
  type TrainableDenoiser,
} from './diffusion.js';
export { CheckpointError, TrainError } from './errors.js';
export {
  energyDistance,
  frechetDistance,
  type GaussianStats,
  gaussianStats,
  sqrtmPsd,
} from './metrics.js';
export {
  Adam,
  type AdamConfig,
  type AdamOptions,
  adamConfig,
  clipByGlobalNorm,
  learningRateAt,
} from './optimizer.js';
export { ParallelGradients, type ParallelOptions, shardBounds } from './parallel.js';
export { ParallelDenoiser, type ParallelDenoiserOptions } from './parallel-denoiser.js';
export {
  type CheckpointStore,
  FileCheckpointStore,
  type FileSystem,
  MemoryCheckpointStore,
} from './store.js';
export {
  type BatchSource,
  type GradientSource,
  type LossAndGradients,
  localGradients,
  type ParameterAverage,
  Trainer,
  type TrainerOptions,
  type TrainProgress,
  type TrainSummary,
} from './trainer.js';
