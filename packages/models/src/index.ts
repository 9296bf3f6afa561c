/**
 * `@diffuse/models`: one `Denoiser` interface, exact oracles for Gaussian and Gaussian-mixture data,
 * and trainable tfjs networks.
 *
 * @packageDocumentation
 */

export type { BudgetOptions } from './budget.js';
export type { AsyncDenoiser, Conditioning, Denoiser } from './denoiser.js';
export {
  type AutoencoderKLConfig,
  type ConfigOptions as DiffusersConfigOptions,
  DIFFUSERS_CLASSES,
  type DiffusersClassName,
  type DiffusersConfig,
  DOWN_BLOCKS,
  parseDiffusersConfig,
  type UNet2DConditionConfig,
  type UNet2DConfig,
  UP_BLOCKS,
} from './diffusers/config.js';
export {
  DiffusersDenoiser,
  type DiffusersDenoiserOptions,
  diffusersDenoiser,
  type PromptContext,
} from './diffusers/denoiser.js';
export {
  createDiffusersModel,
  type DiffusersBuildOptions,
  type DiffusersFiles,
  diffusersModelFromFiles,
  largestDiffusersActivation,
} from './diffusers/load.js';
export {
  type AddedCondKwargs,
  AutoencoderKL,
  type DiffusersModel,
  type LatentDistribution,
  UNet2DConditionModel,
  UNet2DModel,
  type UNetForwardInputs,
} from './diffusers/models.js';
export { Ema, type EmaOptions } from './ema.js';
export {
  DiffusersConfigError,
  DiffusersWeightsError,
  ModelConfigError,
  ModelError,
} from './errors.js';
export { GaussianMixture, type GaussianMixtureSpec, type Labels } from './gaussian-mixture.js';
export { symmetricEigen } from './linalg.js';
export {
  copyWeights,
  type LoadOptions,
  loadModel,
  type SavedModel,
  saveModel,
} from './model-io.js';
export {
  type ClassifierConfig,
  type CreateOptions,
  classifierConfig,
  createModel,
  DEFAULT_MAX_ACTIVATION_BYTES,
  DEFAULT_MAX_PARAMS,
  type EdmPreconditioningConfig,
  ImageClassifier,
  type ImageClassifierConfig,
  imageClassifierConfig,
  Mlp,
  type MlpConfig,
  Model,
  type ModelConfig,
  mlpConfig,
  modelParameterShapes,
  NetworkDenoiser,
  NoiseConditionalClassifier,
  UNet,
  type UNetConfig,
  unetConfig,
  validateModelConfig,
} from './networks.js';
export {
  loadTensors,
  MAX_HEADER_BYTES,
  type ParseOptions,
  parseSafetensors,
  type RawTensor,
  rawToTensor,
  SAFETENSORS_DTYPES,
  type SafetensorsDtype,
  SafetensorsError,
  type SafetensorsFile,
  saveTensors,
  serializeSafetensors,
  tensorToRaw,
} from './safetensors.js';
export {
  type EdmOptions,
  edmPreconditioned,
  logSNRTensor,
  type NoiseConditionalNetwork,
  withPrediction,
} from './wrappers.js';
