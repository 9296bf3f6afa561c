/**
 * The protocol every sampler is written in.
 *
 * A sampler is a generator function in the style of k-diffusion's `sampling.py`: it receives the
 * VE-scaled state x = x_t / alpha (k-diffusion's and EDM's view, x = x0 + sigma eps), the decreasing
 * VE noise levels `sigmas` (sigma = sigma_t / alpha_t), a context for noise and tensor bookkeeping,
 * and its options. Whenever it needs the denoiser it `yield`s a {@link DenoiseRequest} and receives
 * D(x; sigma) = E[x0 | x] back; after each step's first model call it yields a {@link StepEvent}
 * (k-diffusion's `callback`). The driver decides where denoised values come from: `sample()` calls a
 * `Denoiser`, the diffusers-style schedulers feed the model output passed to `step()`. So each
 * algorithm exists once and serves both faces.
 */

import type * as tf from '@tensorflow/tfjs-core';
import type { SamplerName } from './names.js';

/** The sampler asks for D(x; sigma). `x` is VE-scaled and belongs to the sampler. */
export interface DenoiseRequest {
  readonly kind: 'denoise';
  readonly x: tf.Tensor;
  readonly sigma: number;
  /** The sampler step this model call belongs to. */
  readonly step: number;
}

/** One sampler step began (k-diffusion's `callback`): state `x` at `sigmaHat` and its denoised value. */
export interface StepEvent {
  readonly kind: 'step';
  readonly i: number;
  readonly sigma: number;
  readonly sigmaHat: number;
  readonly x: tf.Tensor;
  readonly denoised: tf.Tensor;
}

/** The sampler needs the values of a (small) tensor, e.g. an error norm to accept or reject a step. */
export interface ReadRequest {
  readonly kind: 'read';
  readonly tensor: tf.Tensor;
}

export type SamplerYield = DenoiseRequest | StepEvent | ReadRequest;

/** What the driver resumes a program with: a denoised tensor, read values, or nothing. */
export type SamplerResume = tf.Tensor | Float32Array | undefined;

/** What a sampler function returns: a generator that ends with the final VE-scaled sample. */
export type SamplerProgram = Generator<SamplerYield, tf.Tensor, SamplerResume>;

/** What a sampler may ask of its driver besides denoised values. */
export interface SamplerContext {
  /**
   * A fresh N(0, I) tensor shaped like the state, for the move from `sigma` to `sigmaNext`
   * (k-diffusion's `noise_sampler(sigma, sigma_next)`). Every call is one noise request.
   */
  noise(sigma: number, sigmaNext: number): tf.Tensor;
  /** Registers `t` as owned by this run (the driver frees whatever is left at the end) and returns it. */
  keep<T extends tf.Tensor>(t: T): T;
  /** `tf.tidy(fn)`, kept. */
  tidy(fn: () => tf.Tensor): tf.Tensor;
  /** Frees tensors the sampler no longer needs. */
  free(...ts: (tf.Tensor | undefined | null)[]): void;
}

/** Option values a sampler accepts (numbers, strings, booleans, number arrays). */
export type SamplerOptionValue = number | string | boolean | readonly number[] | undefined;
export type SamplerOptions = Record<string, SamplerOptionValue>;

/** A sampler function: `(ctx, x, sigmas, options) => program`. */
export type SamplerFn<O extends SamplerOptions = SamplerOptions> = (
  ctx: SamplerContext,
  x: tf.Tensor,
  sigmas: readonly number[],
  options: O,
) => SamplerProgram;

/**
 * The valid values of one sampler option, checked by `resolveSamplerOptions` before a run allocates
 * anything. Numbers are always finite (unless the default itself is infinite) and never NaN.
 */
export interface OptionRule {
  /** Inclusive lower bound. */
  readonly min?: number;
  /** Exclusive lower bound. */
  readonly above?: number;
  /** Inclusive upper bound. */
  readonly max?: number;
  /** The number must be an integer (for arrays: every entry). */
  readonly integer?: boolean;
  /** The accepted strings. */
  readonly oneOf?: readonly string[];
}

/** A registered sampler: the function, its defaults and what the conformance suite should expect. */
export interface SamplerDefinition<O extends SamplerOptions = SamplerOptions> {
  /** Registry name, e.g. `dpmpp_2m`. */
  readonly name: SamplerName;
  /** One line for tables and UIs. */
  readonly description: string;
  /** The paper (section / algorithm) and reference implementation. */
  readonly reference: string;
  readonly fn: SamplerFn<O>;
  /** Every option with its default; other keys are rejected. */
  readonly defaults: O;
  /** Valid values per option (ranges, integers, accepted strings); checked before the run starts. */
  readonly rules?: { readonly [K in keyof O]?: OptionRule };
  /** Whether it injects noise with its default options. */
  readonly stochastic: boolean;
  /** Global order of convergence on the probability-flow ODE (deterministic samplers), for the conformance suite. */
  readonly order?: number;
  /** Options the conformance suite uses instead of the defaults (e.g. fewer inner steps, to keep it fast). */
  readonly conformance?: {
    readonly samplerOptions?: Partial<O>;
    /** False when the output is not an affine map of the noise (e.g. step sizes that depend on norms). */
    readonly affine?: boolean;
  };
}

/** Asks the driver for D(x; sigma) during step i: `const d = yield* denoise(x, sigma, i)`. */
export function* denoise(
  x: tf.Tensor,
  sigma: number,
  i: number,
): Generator<SamplerYield, tf.Tensor, SamplerResume> {
  const d = yield { kind: 'denoise', x, sigma, step: i };
  if (d === undefined || d instanceof Float32Array) {
    throw new TypeError('sampler driver resumed a denoise request without a tensor');
  }
  return d;
}

/** Asks the driver for the values of `tensor` (one readback): `const [err] = yield* read(errTensor)`. */
export function* read(tensor: tf.Tensor): Generator<SamplerYield, Float32Array, SamplerResume> {
  const v = yield { kind: 'read', tensor };
  if (!(v instanceof Float32Array))
    throw new TypeError('sampler driver resumed a read request without values');
  return v;
}

/** The callback event of step i. */
export function stepEvent(
  i: number,
  sigma: number,
  sigmaHat: number,
  x: tf.Tensor,
  denoised: tf.Tensor,
): StepEvent {
  return { kind: 'step', i, sigma, sigmaHat, x, denoised };
}
