/**
 * Sampler names as types: `sample(d, { sampler: 'dpmpp_2m' })` autocompletes the built-in names and a
 * typo (`'dpmpp_2mm'`) fails to compile. A sampler you register yourself joins them by declaration
 * merging, next to its `registerSampler` call:
 *
 * @example
 * declare module '@diffuse/samplers' {
 *   interface SamplerNames {
 *     my_euler: true;
 *   }
 * }
 * registerSampler({ name: 'my_euler', ... });
 * await sample(denoiser, { sampler: 'my_euler', steps: 10, shape: [4, 2] });
 */

/** The built-in samplers' names, in registration order (`pnpm new sampler` adds one). */
export const BUILTIN_SAMPLER_NAMES = [
  'euler',
  'heun',
  'dpm_2',
  'lms',
  'euler_ancestral',
  'dpm_2_ancestral',
  'dpmpp_2s_ancestral',
  'dpmpp_sde',
  'dpmpp_2m',
  'dpmpp_3m',
  'dpmpp_2m_sde',
  'dpmpp_3m_sde',
  'dpm_solver_multistep',
  'dpm_solver_singlestep',
  'ddim',
  'ddpm',
  'deis',
  'unipc',
  'pndm',
  'plms',
  'annealed_langevin',
  'euler_maruyama_ve',
  'euler_maruyama_vp',
  'pc',
  'ode_dopri5',
  'dpm_fast',
  'dpm_adaptive',
  'flow_heun',
  // new sampler names above this line
] as const;

/** A built-in sampler's name. */
export type BuiltinSamplerName = (typeof BUILTIN_SAMPLER_NAMES)[number];

/**
 * Every sampler name `sample` accepts, as the keys of this interface: the built-ins, plus the names
 * your modules add by declaration merging (see the module comment).
 */
export interface SamplerNames extends Record<BuiltinSamplerName, true> {}

/** A sampler name: a key of `SamplerNames`. */
export type SamplerName = keyof SamplerNames & string;

/**
 * The diffusers scheduler classes `createScheduler` / `fromConfig` implement, as `_class_name` values.
 * `fromConfig(s, { _class_name: 'DPMSolverMultistepScheduler' })` autocompletes them and a typo
 * (`'DPMSolverMultiStepScheduler'`) fails to compile. A config parsed from a file is untyped JSON and
 * is checked at run time instead (`SchedulerConfigError` lists the supported classes).
 */
export const SCHEDULER_CLASS_NAMES = [
  'DDIMScheduler',
  'DDPMScheduler',
  'PNDMScheduler',
  'EulerDiscreteScheduler',
  'EulerAncestralDiscreteScheduler',
  'LMSDiscreteScheduler',
  'HeunDiscreteScheduler',
  'KDPM2DiscreteScheduler',
  'KDPM2AncestralDiscreteScheduler',
  'DPMSolverMultistepScheduler',
  'DPMSolverSinglestepScheduler',
  'UniPCMultistepScheduler',
  'DEISMultistepScheduler',
  'EDMEulerScheduler',
  'EDMDPMSolverMultistepScheduler',
  'LCMScheduler',
  'DDPMWuerstchenScheduler',
  'FlowMatchEulerDiscreteScheduler',
  'MiniMaxH3Scheduler',
  'FlowMatchHeunDiscreteScheduler',
  'TCDScheduler',
  'CosineDPMSolverMultistepScheduler',
  'CogVideoXDDIMScheduler',
  'DPMSolverSDEScheduler',
] as const;

/** A diffusers scheduler class this package implements (a `_class_name`). */
export type SchedulerClassName = (typeof SCHEDULER_CLASS_NAMES)[number];
