/**
 * `@diffuse/schedules`: noise schedules for diffusion models, the forward process, and the one
 * module that converts between x0, epsilon, v and score predictions.
 *
 * @packageDocumentation
 */

export { type CosineParams, CosineSchedule } from './continuous/cosine.js';
export { type EDMParams, EDMSchedule } from './continuous/edm.js';
export { type LearnedVDMParams, LearnedVDMSchedule } from './continuous/learned-vdm.js';
export { type LogSNRLinearParams, LogSNRLinearSchedule } from './continuous/logsnr-linear.js';
export { type RectifiedFlowParams, RectifiedFlowSchedule } from './continuous/rectified-flow.js';
export {
  BaseSchedule,
  bisectDecreasing,
  type ContinuousSchedule,
  expm1Tensor,
  readParams,
  type ScheduleConfig,
} from './continuous/schedule.js';
export { SubVPSchedule } from './continuous/sub-vp.js';
export { type VEGeometricParams, VEGeometricSchedule } from './continuous/ve.js';
export { type VPLinearParams, VPLinearSchedule } from './continuous/vp-linear.js';
export {
  DIFFUSERS_METADATA_FIELDS,
  DIFFUSERS_SCHEDULER_FIELDS,
  type DiffusersScheduleConfig,
  type FromDiffusersConfigOptions,
  fromDiffusersConfig,
  SCHEDULE_FIELDS,
  toDiffusersConfig,
} from './diffusers-config.js';
export {
  DIFFUSERS_FIELD_RULES,
  describeValue,
  MAX_TRAIN_TIMESTEPS,
  parseDiffusersJson,
  stringifyDiffusersJson,
  validateDiffusersFields,
} from './diffusers-json.js';
export {
  BETA_SCHEDULES,
  type BetaSchedule,
  cosineBetas,
  DiscreteSchedule,
  type DiscreteScheduleConfig,
  linearBetas,
  rescaleZeroTerminalSNR,
  scaledLinearBetas,
  sigmoidBetas,
  TERMINAL_ALPHA_CUMPROD_FLOOR,
} from './discrete.js';
export { ScheduleError } from './errors.js';
export {
  addNoise,
  ddpmPosterior,
  type Posterior,
  posterior,
  posteriorMean,
  type Transition,
  transition,
} from './forward.js';
export {
  BUILTIN_SCHEDULE_NAMES,
  type BuiltinScheduleName,
  type ScheduleName,
  type ScheduleNames,
} from './names.js';
export {
  logSNRFromLevel,
  type NoiseLevel,
  type Scalar,
  sigmaVE,
  softplus,
  vpLevelFromLogSNR,
  vpLevelFromLogSNRTensor,
  vpLevelFromSigmaVE,
} from './noise-level.js';
export {
  betaQuantile,
  interp,
  numpyArange,
  numpyLinspace,
  regularizedIncompleteBeta,
  roundHalfEven,
  torchLinspace,
  torchLinspaceFloat32,
} from './numeric.js';
export {
  assertPrediction,
  convertPrediction,
  type EDMCoefficients,
  edmPreconditioning,
  edmPreconditioningTensor,
  PREDICTIONS,
  type Prediction,
  predictionFromDiffusers,
  predictionToDiffusers,
  toEpsilon,
  toX0,
} from './parameterization.js';
export {
  createSchedule,
  listSchedules,
  registerSchedule,
  type ScheduleFactory,
} from './registry.js';
export {
  betaSigmas,
  type DiffusersFamily,
  type DiffusersSetTimestepsOptions,
  type DiffusersSigmaSpacing,
  type DiffusersTimestepOptions,
  type DiffusersTimesteps,
  diffusersSetTimesteps,
  diffusersTimesteps,
  exponentialSigmas,
  karrasSigmas,
  polyexponentialSigmas,
  respaceSigmas,
  TIMESTEP_SPACINGS,
  type TimestepSpacing,
  uniformLogSNR,
  uniformLogSNRTimes,
  validateSigmas,
  validateTimesteps,
  vpSigmas,
} from './spacing.js';
