/**
 * `@diffuse/samplers`: every sampler written once against noise levels and a `Denoiser`, with two
 * faces: the functional `sample(denoiser, options)` (k-diffusion style) and diffusers-compatible
 * scheduler objects (`createScheduler(config)`), which are thin adapters over the same programs.
 *
 * @packageDocumentation
 */

export { type BrownianNoise, brownianNoise } from './brownian.js';
export type { DiffusersConfig, SchedulerConfigOverrides } from './diffusers/classes.js';
export { dynamicShiftMu } from './diffusers/flow.js';
export { type ResolvedDiffusersConfig, resolveDiffusersConfig } from './diffusers/from-config.js';
export {
  type CreateSchedulerOptions,
  createScheduler,
  fromConfig,
  type ResolvedClass,
  resolveConfig,
  SCHEDULER_CLASSES,
  type Scheduler,
  type SetTimestepsOptions,
  type StepOptions,
  type StepOutput,
} from './diffusers/scheduler.js';
export {
  NonFiniteError,
  SamplerError,
  SamplingAbortedError,
  SchedulerConfigError,
} from './errors.js';
export {
  addNoise,
  ancestralStep,
  axpy,
  churnGamma,
  dynamicThreshold,
  flowStep,
  flowVelocity,
  lagrangeIntegral,
  learnedVarianceStd,
  lincomb,
  lmsCoefficients,
  phi2,
  phi3,
  toD,
} from './helpers.js';
export {
  type LogLikelihoodOptions,
  type LogLikelihoodResult,
  logLikelihood,
} from './likelihood.js';
export {
  BUILTIN_SAMPLER_NAMES,
  type BuiltinSamplerName,
  type SamplerName,
  type SamplerNames,
  SCHEDULER_CLASS_NAMES,
  type SchedulerClassName,
} from './names.js';
export { type Dopri5Options, dopri5, type OdeRhs } from './ode.js';
export { getSampler, listSamplers, registerSampler, resolveSamplerOptions } from './registry.js';
export { type NoiseSource, RunScope } from './run.js';
export {
  assertFinite,
  checkSampleOptions,
  denoiseVE,
  EMBEDDINGS,
  type Embedding,
  invert,
  invertSteps,
  resolvePlan,
  type SampleOptions,
  type SampleResult,
  type SamplingPlan,
  type StepInfo,
  sample,
  sampleSteps,
  sampleWithInfo,
} from './sample.js';
export * from './samplers/ancestral.js';
export * from './samplers/deis.js';
export * from './samplers/dpm-fast.js';
export * from './samplers/dpm-solver-multistep.js';
export * from './samplers/dpm-solver-singlestep.js';
export * from './samplers/dpm2.js';
export * from './samplers/dpmpp-singlestep.js';
export * from './samplers/euler.js';
export * from './samplers/flow-heun.js';
export * from './samplers/heun.js';
export * from './samplers/lms.js';
export * from './samplers/ode.js';
export * from './samplers/pndm.js';
export * from './samplers/score-sde.js';
export * from './samplers/unipc.js';
export {
  type DenoiseRequest,
  denoise,
  type OptionRule,
  type ReadRequest,
  type SamplerContext,
  type SamplerDefinition,
  type SamplerFn,
  type SamplerOptions,
  type SamplerOptionValue,
  type SamplerProgram,
  type SamplerResume,
  type SamplerYield,
  type StepEvent,
  stepEvent,
} from './types.js';
