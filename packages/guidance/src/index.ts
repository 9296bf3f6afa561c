/**
 * `@diffuse/guidance`: guidance as denoiser wrappers. Each takes a `Denoiser` and returns a
 * `Denoiser`, or takes an `AsyncDenoiser` (e.g. ONNX Runtime) and returns an `AsyncDenoiser`, so any
 * sampler works with any guidance on any runtime:
 *
 * - `classifierFreeGuidance`: u + s (c - u) in one batched forward pass, diffusers' `guidanceScale` or
 *   the paper's `w`, guidance rescale, a guidance interval, negative labels.
 * - `classifierGuidance`: score + gamma grad log p_t(y | x_t) from any differentiable classifier
 *   (`mixtureClassifier` gives the exact one of a Gaussian-mixture oracle).
 * - `dynamicThresholding`, `sampleClipping`, `withX0Transform`: x0 post-processing (Imagen).
 * - `repaint`: inpainting by known-region replacement with resampling (RePaint).
 *
 * @packageDocumentation
 */

export {
  type AnyDenoiser,
  type GuidedStep,
  guidedDenoiser,
  isAsyncDenoiser,
  type ModelCall,
  type StepResult,
} from './any-denoiser.js';
export {
  type ClassifierFreeGuidanceOptions,
  cfgCombine,
  classifierFreeGuidance,
  type GuidanceInterval,
  type GuidanceScale,
  guidanceScaleFromWeight,
  predictPair,
  rescaleGuidance,
  resolveGuidanceScale,
  weightFromGuidanceScale,
} from './cfg.js';
export {
  type ClassifierGuidanceOptions,
  type ClassifierLike,
  classifierGradient,
  classifierGuidance,
  mixtureClassifier,
} from './classifier.js';
export { GuidanceError } from './errors.js';
export { type RepaintOptions, type RepaintProgress, renoise, repaint } from './repaint.js';
export {
  REPAINT_MAX_WALK,
  type RepaintScheduleOptions,
  repaintWalk,
} from './repaint-schedule.js';
export {
  type ClipOptions,
  type DynamicThresholdOptions,
  dynamicThreshold,
  dynamicThresholding,
  perExampleQuantile,
  sampleClipping,
  withX0Transform,
  type X0Transform,
} from './threshold.js';
