/**
 * Synchronous and asynchronous denoisers behind one set of wrappers. Every guidance wrapper takes a
 * `Denoiser` (`predict`) or an `AsyncDenoiser` (`predictAsync`, e.g. ONNX Runtime); it returns the
 * same kind, so a sampler drives a guided ONNX model exactly as a guided tfjs one. The rule is the
 * samplers' rule: an object with `predictAsync` is asynchronous (even when it also has `predict`).
 *
 * The wrappers keep their math in pure tensor functions (the combination step) that both paths call;
 * only the model calls differ: `predict` inside one `tf.tidy`, or `await predictAsync` with the
 * intermediates disposed explicitly (a `tf.tidy` cannot span an `await`).
 */
import type { AsyncDenoiser, Conditioning, Denoiser } from '@diffuse/models';
import type { NoiseLevel, Scalar } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { GuidanceError } from './errors.js';

/** A synchronous `Denoiser` or an `AsyncDenoiser`: what every guidance wrapper accepts. */
export type AnyDenoiser = Denoiser | AsyncDenoiser;

/**
 * Whether `denoiser` is asynchronous: it has `predictAsync` (preferred when it offers both, as by
 * `sample` of `@diffuse/samplers`).
 *
 * @example
 * const guided = classifierFreeGuidance(model, { guidanceScale: 3 });
 * if (isAsyncDenoiser(guided)) await guided.predictAsync(x, level, cond);
 */
export function isAsyncDenoiser(denoiser: AnyDenoiser): denoiser is AsyncDenoiser {
  return typeof (denoiser as Partial<AsyncDenoiser>).predictAsync === 'function';
}

/** Throws a `GuidanceError` unless `denoiser` has `predict` or `predictAsync` (plain-JS callers). */
export function assertAnyDenoiser(
  name: string,
  denoiser: unknown,
): asserts denoiser is AnyDenoiser {
  const d = denoiser as Partial<Denoiser & AsyncDenoiser> | null | undefined;
  if (d == null || (typeof d.predict !== 'function' && typeof d.predictAsync !== 'function')) {
    throw new GuidanceError(
      `${name} must be a Denoiser (predict) or an AsyncDenoiser (predictAsync), got ${d === null ? 'null' : typeof d}`,
    );
  }
}

/** The fields a wrapper copies from the model it wraps: prediction, shape and numClasses. */
export function describeLike(
  denoiser: AnyDenoiser,
  numClasses = denoiser.numClasses,
): Pick<Denoiser, 'prediction' | 'shape' | 'numClasses'> {
  return {
    prediction: denoiser.prediction,
    ...(denoiser.shape !== undefined ? { shape: denoiser.shape } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
  };
}

/**
 * One model call of either kind, awaited: `predictAsync` when the model has it, else `predict`.
 * Checks that the promise resolved to a tensor (a `GuidanceError` otherwise).
 */
export async function predictAny(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond?: Conditioning,
): Promise<tf.Tensor> {
  if (!isAsyncDenoiser(denoiser)) return denoiser.predict(x, level, cond);
  const out = (await denoiser.predictAsync(x, level, cond)) as tf.Tensor | null | undefined;
  if (out == null || !Array.isArray(out.shape) || typeof out.dispose !== 'function') {
    throw new GuidanceError(
      `predictAsync resolved to ${out === null ? 'null' : typeof out}, not a tensor`,
    );
  }
  return out;
}

/**
 * Runs the pure `combine` step on tensors that arrived from awaited model calls, inside one
 * `tf.tidy`, and disposes those tensors afterwards (also when `combine` throws).
 */
export function combineOwned<T extends tf.TensorContainer>(
  owned: tf.Tensor[],
  combine: () => T,
): T {
  try {
    return tf.tidy(combine);
  } finally {
    tf.dispose(owned);
  }
}

/** The inputs of one model call. */
export interface ModelCall {
  x: tf.Tensor;
  level: NoiseLevel<Scalar>;
  cond?: Conditioning;
}

/** The tensors of a call's inputs (x, alpha, sigma and the conditioning tensors). */
function tensorsOf(call: ModelCall): tf.Tensor[] {
  const values: unknown[] = [call.x, call.level.alpha, call.level.sigma];
  if (call.cond !== undefined) values.push(...Object.values(call.cond));
  return values.filter((v): v is tf.Tensor => v instanceof tf.Tensor);
}

/**
 * The tensors in `calls` that are not among the caller's own inputs `borrowed`: the ones a wrapper
 * made (a doubled batch, null labels) and must dispose once the awaited model calls have settled.
 */
export function madeTensors(calls: readonly ModelCall[], borrowed: ModelCall): tf.Tensor[] {
  const theirs = new Set(tensorsOf(borrowed));
  const made = new Set<tf.Tensor>();
  for (const call of calls) for (const t of tensorsOf(call)) if (!theirs.has(t)) made.add(t);
  return [...made];
}

/**
 * Awaits the model calls one after the other (`models[k]` answers `calls[k]`) and returns their
 * predictions; on a failure the predictions so far are disposed before the error propagates.
 */
export async function predictAllAsync(
  models: readonly AnyDenoiser[],
  calls: readonly ModelCall[],
): Promise<tf.Tensor[]> {
  const outs: tf.Tensor[] = [];
  try {
    for (let k = 0; k < calls.length; k++) {
      const { x, level, cond } = calls[k]!;
      outs.push(await predictAny(models[k]!, x, level, cond));
    }
    return outs;
  } catch (e) {
    tf.dispose(outs);
    throw e;
  }
}

/**
 * `tf.tidy` for a function that returns model-call inputs (objects holding tensors next to numbers,
 * strings and booleans): the tensors it returns are kept, every other tensor it made is disposed.
 */
export function tidyCalls<T extends object>(fn: () => T): T {
  return tf.tidy(() => fn() as unknown as tf.TensorContainer) as unknown as T;
}
