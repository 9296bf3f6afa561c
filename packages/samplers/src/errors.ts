import { DiffuseError } from '@diffuse/backend';

/**
 * A sampler was given invalid input or produced an invalid state. `step` is the sampler step
 * (0-based) where it happened, when known.
 *
 * @example
 * try { await sample(denoiser, { steps: 0 }); } catch (e) { if (e instanceof SamplerError) console.error(e.message); }
 */
export class SamplerError extends DiffuseError {
  readonly step: number | undefined;
  constructor(message: string, step?: number, code = 'SAMPLER_ERROR') {
    super(code, step === undefined ? message : `step ${step}: ${message}`);
    this.step = step;
  }
}

/** A model output (or the state after a step) held NaN or infinity. */
export class NonFiniteError extends SamplerError {
  constructor(what: string, step: number | undefined) {
    super(`${what} contains NaN or infinity`, step, 'NON_FINITE');
  }
}

/** Sampling was cancelled through its `AbortSignal`. */
export class SamplingAbortedError extends SamplerError {
  constructor(step: number | undefined) {
    super('sampling was aborted', step, 'ABORTED');
  }
}

/** A diffusers scheduler config could not be understood (unknown `_class_name`, option or value). */
export class SchedulerConfigError extends DiffuseError {
  constructor(message: string) {
    super('SCHEDULER_CONFIG', message);
  }
}
