/**
 * `@diffuse/schedules`: noise schedules for diffusion models, the forward process, and the one
 * module that converts between x0, epsilon, v and score predictions.
 *
 * @packageDocumentation
 */
export { ScheduleError } from './errors.js';
export {
  type NoiseLevel,
  type Scalar,
  logSNRFromLevel,
  sigmaVE,
  softplus,
  vpLevelFromLogSNR,
  vpLevelFromSigmaVE,
} from './noise-level.js';
export {
  PREDICTIONS,
  type Prediction,
  assertPrediction,
  convertPrediction,
  type EDMCoefficients,
  edmPreconditioning,
  edmPreconditioningTensor,
  predictionFromDiffusers,
  predictionToDiffusers,
  toEpsilon,
  toX0,
} from './parameterization.js';
export {
  BETA_SCHEDULES,
  type BetaSchedule,
  DiscreteSchedule,
  type DiscreteScheduleConfig,
  TERMINAL_ALPHA_CUMPROD_FLOOR,
  cosineBetas,
  linearBetas,
  rescaleZeroTerminalSNR,
  scaledLinearBetas,
  sigmoidBetas,
} from './discrete.js';
export {
  interp,
  numpyArange,
  numpyLinspace,
  roundHalfEven,
  torchLinspace,
  torchLinspaceFloat32,
} from './numeric.js';
export {
  type DiffusersFamily,
  type DiffusersSetTimestepsOptions,
  type DiffusersTimestepOptions,
  type DiffusersTimesteps,
  TIMESTEP_SPACINGS,
  type TimestepSpacing,
  diffusersSetTimesteps,
  diffusersTimesteps,
  exponentialSigmas,
  karrasSigmas,
  polyexponentialSigmas,
  uniformLogSNR,
  validateSigmas,
  validateTimesteps,
  vpSigmas,
} from './spacing.js';
export {
  BaseSchedule,
  type ContinuousSchedule,
  type ScheduleConfig,
  bisectDecreasing,
  expm1Tensor,
  readParams,
} from './continuous/schedule.js';
export { VPLinearSchedule, type VPLinearParams } from './continuous/vp-linear.js';
export { SubVPSchedule } from './continuous/sub-vp.js';
export { VEGeometricSchedule, type VEGeometricParams } from './continuous/ve.js';
export { CosineSchedule, type CosineParams } from './continuous/cosine.js';
export { LogSNRLinearSchedule, type LogSNRLinearParams } from './continuous/logsnr-linear.js';
export { EDMSchedule, type EDMParams } from './continuous/edm.js';
export { LearnedVDMSchedule, type LearnedVDMParams } from './continuous/learned-vdm.js';
export { type ScheduleFactory, createSchedule, listSchedules, registerSchedule } from './registry.js';
export {
  type Posterior,
  type Transition,
  addNoise,
  ddpmPosterior,
  posterior,
  posteriorMean,
  transition,
} from './forward.js';
export {
  DIFFUSERS_METADATA_FIELDS,
  DIFFUSERS_SCHEDULER_FIELDS,
  type DiffusersScheduleConfig,
  SCHEDULE_FIELDS,
  fromDiffusersConfig,
  toDiffusersConfig,
} from './diffusers-config.js';
