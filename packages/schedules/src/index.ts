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
  edmPreconditioning,
  predictionFromDiffusers,
  predictionToDiffusers,
  toEpsilon,
  toX0,
} from './parameterization.js';
