/**
 * Synchronous and asynchronous denoisers behind one set of wrappers. Every guidance wrapper takes a
 * `Denoiser` (`predict`) or an `AsyncDenoiser` (`predictAsync`, e.g. ONNX Runtime); it returns the
 * same kind, so a sampler drives a guided ONNX model exactly as a guided tfjs one. The rule is the
 * samplers' rule: an object with `predictAsync` is asynchronous (even when it also has `predict`).
 *
 * A wrapper is written once, as a `GuidedStep` per call: the model calls it needs and a pure tensor
 * function that combines their predictions (the guidance math). Two small drivers run it: `runStep`
 * calls `predict` inside one `tf.tidy`; `runStepAsync` awaits `predictAsync` and disposes what it
 * made explicitly (a `tf.tidy` cannot span an `await`). Both make the same tensor ops in the same
 * order, so a model and its asynchronous adapter give bit-identical results.
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

/** The inputs of one model call. */
export interface ModelCall {
  x: tf.Tensor;
  level: NoiseLevel<Scalar>;
  cond?: Conditioning;
}

/** What one call of a wrapper computes: a tensor, or a few (`predictPair`'s [c, u]). */
export type StepResult = tf.Tensor | tf.Tensor[];

/**
 * One evaluation of a guidance wrapper: the model calls it needs (`calls[k]` is answered by the
 * driver's `models[k]`) and the pure step that combines their predictions. `combine` runs inside
 * `tf.tidy` and may use the predictions and the caller's inputs, but not tensors made for `calls`
 * (the asynchronous driver disposes those once the model calls have settled).
 */
export interface GuidedStep<T extends StepResult = tf.Tensor> {
  calls: ModelCall[];
  combine(predictions: tf.Tensor[]): T;
}

/**
 * The synchronous driver: builds the step, calls `models[k].predict` on each call and combines, all
 * inside one `tf.tidy`. Input checks in `build` throw before any model call.
 */
export function runStep<T extends StepResult>(
  models: readonly Denoiser[],
  build: () => GuidedStep<T>,
): T {
  return tf.tidy(() => {
    const step = build();
    const predictions = step.calls.map(({ x, level, cond }, k) =>
      models[k]!.predict(x, level, cond),
    );
    return step.combine(predictions);
  });
}

/** The tensors of a call's inputs (x, alpha, sigma and the conditioning tensors). */
function tensorsOf(call: ModelCall): tf.Tensor[] {
  const values: unknown[] = [call.x, call.level.alpha, call.level.sigma];
  if (call.cond !== undefined) values.push(...Object.values(call.cond));
  return values.filter((v): v is tf.Tensor => v instanceof tf.Tensor);
}

/**
 * One model call of either kind, awaited: `predictAsync` when the model has it, else `predict`.
 * Checks that the promise resolved to a tensor (a `GuidanceError` otherwise).
 */
async function predictAny(denoiser: AnyDenoiser, call: ModelCall): Promise<tf.Tensor> {
  const { x, level, cond } = call;
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
 * The asynchronous driver: builds the step's calls inside a `tf.tidy` (keeping only the call
 * inputs), awaits `models[k]` on each call in turn (either kind of model), disposes the inputs it made
 * (a doubled batch, null labels; never the caller's `borrowed` tensors), then combines inside a
 * `tf.tidy` and disposes the predictions, unless `combine` returns one of them as it is. On a failure
 * everything made so far is disposed before the error propagates.
 */
export async function runStepAsync<T extends StepResult>(
  models: readonly AnyDenoiser[],
  borrowed: ModelCall,
  build: () => GuidedStep<T>,
): Promise<T> {
  let step: GuidedStep<T> | undefined;
  const calls = tf.tidy(() => {
    step = build();
    return step.calls as unknown as tf.TensorContainer;
  }) as unknown as ModelCall[];
  const theirs = new Set(tensorsOf(borrowed));
  const made = [...new Set(calls.flatMap(tensorsOf))].filter((t) => !theirs.has(t));
  const predictions: tf.Tensor[] = [];
  try {
    for (let k = 0; k < calls.length; k++)
      predictions.push(await predictAny(models[k]!, calls[k]!));
  } catch (e) {
    tf.dispose(predictions);
    throw e;
  } finally {
    tf.dispose(made);
  }
  let result: T | undefined;
  try {
    result = tf.tidy(() => step!.combine(predictions));
    return result;
  } finally {
    const kept = new Set(Array.isArray(result) ? result : [result]);
    tf.dispose(predictions.filter((p) => !kept.has(p)));
  }
}

/**
 * A guidance wrapper over `models` (the wrapped model first; `models[k]` answers call k of each step),
 * described by `described` (prediction, shape, numClasses): a `Denoiser` when every model is
 * synchronous, else an `AsyncDenoiser`. `build` checks one call's inputs and returns its `GuidedStep`:
 *
 *     guided(x, level, cond) = combine(models[0](calls[0]), models[1](calls[1]), ...)
 *
 * This is how every wrapper of this package is written, so a new guidance method written this way
 * runs on tfjs models and on asynchronous runtimes (ONNX Runtime) alike, bit-identically.
 *
 * @example
 * // Score scaling: eps' = k eps, on either kind of model.
 * const scaled = guidedDenoiser([model], model, (x, level, cond) => ({
 *   calls: [{ x, level, cond }],
 *   combine: ([eps]) => tf.mul(eps!, 1.1),
 * }));
 */
export function guidedDenoiser(
  models: readonly Denoiser[],
  described: Pick<Denoiser, 'prediction' | 'shape' | 'numClasses'>,
  build: (x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) => GuidedStep,
): Denoiser;
export function guidedDenoiser(
  models: readonly AnyDenoiser[],
  described: Pick<Denoiser, 'prediction' | 'shape' | 'numClasses'>,
  build: (x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) => GuidedStep,
): AnyDenoiser;
export function guidedDenoiser(
  models: readonly AnyDenoiser[],
  described: Pick<Denoiser, 'prediction' | 'shape' | 'numClasses'>,
  build: (x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) => GuidedStep,
): AnyDenoiser {
  if (!Array.isArray(models) || models.length === 0) {
    throw new GuidanceError('guidedDenoiser needs at least one model');
  }
  models.forEach((m, k) => {
    assertAnyDenoiser(`models[${k}]`, m);
  });
  const info = {
    prediction: described.prediction,
    ...(described.shape !== undefined ? { shape: described.shape } : {}),
    ...(described.numClasses !== undefined ? { numClasses: described.numClasses } : {}),
  };
  if (models.some(isAsyncDenoiser)) {
    return {
      ...info,
      predictAsync: (x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) =>
        runStepAsync(models, { x, level, ...(cond ? { cond } : {}) }, () => build(x, level, cond)),
    } satisfies AsyncDenoiser;
  }
  const sync = models as readonly Denoiser[];
  return {
    ...info,
    predict: (x: tf.Tensor, level: NoiseLevel<Scalar>, cond?: Conditioning) =>
      runStep(sync, () => build(x, level, cond)),
  } satisfies Denoiser;
}
