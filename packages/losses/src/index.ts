/**
 * `@diffuse/losses`: diffusion training objectives in the unified view (Luo 2022; Kingma et al. 2021;
 * Kingma & Gao 2023): weighted denoising losses on any target with weightings written as functions
 * of logSNR, the VDM ELBO in discrete and continuous time, denoising score matching, conditional
 * flow matching, and
 * training-time samplers of the noise level.
 *
 * @packageDocumentation
 */
export {
  type DenoiserLike,
  type DenoisingLossOptions,
  denoisingLoss,
  denoisingScoreMatchingLoss,
  type LogSNRTensors,
  type Reduction,
  type WeightedMSEInput,
  weightedMSE,
} from './denoising-loss.js';
export {
  bitsPerDim,
  continuousDiffusionLoss,
  type DiffusionLossOptions,
  discreteDiffusionLoss,
  type ELBOTerms,
  gaussianReconstructionNLL,
  meanAndStandardError,
  negativeELBO,
  priorKL,
} from './elbo.js';
export { LossError } from './errors.js';
export {
  type FlowMatchingLossOptions,
  type FlowTimeSampling,
  flowMatchingLoss,
  flowTimes,
} from './flow-matching.js';
export { type VDMJointStepOptions, vdmJointStep } from './joint.js';
export {
  discreteTimestepSampler,
  edmLogNormalSampler,
  importanceSampler,
  type LogSNRSample,
  type LogSNRSampler,
  TIME_SAMPLINGS,
  type TimeSampling,
  uniformLogSNRSampler,
  uniformTimeSampler,
  uniformTimes,
} from './sampler.js';
export {
  type ContinuousSchedule,
  type DifferentiableLogSNRSchedule,
  isDifferentiableSchedule,
  type LogSNRSchedule,
} from './schedule.js';
export {
  convertWeighting,
  edmWeighting,
  effectiveWeighting,
  elboWeighting,
  likelihoodWeighting,
  logTargetFactor,
  minSNRWeighting,
  ncsnWeighting,
  snrWeighting,
  targetFactor,
  truncatedSNRWeighting,
  uniformWeighting,
  type Weighting,
  weightingValues,
} from './weighting.js';
