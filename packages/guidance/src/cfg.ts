/**
 * Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6) as a
 * denoiser wrapper, with guidance rescale (Lin et al. 2023, sec. 3.4), a guidance interval
 * (Kynkäänniemi et al. 2024), negative conditioning, and both branches in one batched forward pass.
 *
 * The guided prediction combines a conditional prediction c and an unconditional one u:
 *
 *     guided = u + s (c - u) = (1 + w) c - w u,     s = 1 + w
 *
 * `s` is diffusers' `guidance_scale` (s = 1: conditional, s = 0: unconditional); `w` is the paper's
 * guidance weight (w = 0: conditional). The weights sum to one, so the combination is the same in
 * x0, epsilon, v or score space (the conversions in `@diffuse/schedules` are affine in the prediction
 * for a fixed x_t and level): it is computed in the denoiser's declared prediction.
 *
 * The wrapper takes a `Denoiser` or an `AsyncDenoiser` (e.g. ONNX Runtime) and returns the same kind;
 * both paths build the same model inputs and call the same pure combination (`guidedPrediction`).
 */
import type { AsyncDenoiser, Conditioning, Denoiser } from '@diffuse/models';
import {
  assertPrediction,
  convertPrediction,
  type NoiseLevel,
  type Prediction,
  type Scalar,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import {
  type AnyDenoiser,
  assertAnyDenoiser,
  type GuidedStep,
  guidedDenoiser,
  isAsyncDenoiser,
  type ModelCall,
  runStep,
  runStepAsync,
} from './any-denoiser.js';
import { GuidanceError } from './errors.js';
import {
  assertFinite,
  assertInRange,
  assertLabel,
  assertLabelTensor,
  assertOptionalBoolean,
  assertOptions,
  batchOf,
} from './validate.js';

/**
 * diffusers' `guidance_scale` s from the paper's weight w (Ho & Salimans 2022, eq. 6): s = 1 + w.
 *
 * @example
 * guidanceScaleFromWeight(0.3); // 1.3
 */
export function guidanceScaleFromWeight(w: number): number {
  assertFinite('w', w);
  return 1 + w;
}

/**
 * The paper's guidance weight w from diffusers' `guidance_scale` s: w = s - 1.
 *
 * @example
 * weightFromGuidanceScale(7.5); // 6.5
 */
export function weightFromGuidanceScale(guidanceScale: number): number {
  assertFinite('guidanceScale', guidanceScale);
  return guidanceScale - 1;
}

/**
 * The classifier-free guidance combination u + s (c - u) (diffusers' `guidance_scale` s; the paper's
 * (1 + w) c - w u with w = s - 1). Evaluated as c + w (c - u), so s = 1 returns c bit for bit.
 * Pure: works on predictions of any one type. A bare number is diffusers' `guidance_scale`; pass
 * `{ w }` for the paper's weight or `{ guidanceScale }` to say so explicitly.
 *
 * @example
 * const guided = cfgCombine(epsCond, epsUncond, 7.5);                  // diffusers: u + 7.5 (c - u)
 * const same = cfgCombine(epsCond, epsUncond, { guidanceScale: 7.5 });
 * const paper = cfgCombine(epsCond, epsUncond, { w: 1 });             // Ho & Salimans: 2c - u
 */
export function cfgCombine(
  cond: tf.Tensor,
  uncond: tf.Tensor,
  guidanceScale: number | GuidanceScale,
): tf.Tensor {
  const s = typeof guidanceScale === 'number' ? guidanceScale : resolveGuidanceScale(guidanceScale);
  assertFinite('guidanceScale', s);
  return tf.tidy(() => tf.add(cond, tf.mul(s - 1, tf.sub(cond, uncond))));
}

/** Standard deviation of each example over all non-batch axes, shape [batch, 1, ..., 1]. */
function perExampleStd(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const axes = Array.from({ length: t.rank - 1 }, (_, i) => i + 1);
    return tf.sqrt(tf.moments(t, axes, true).variance);
  });
}

/**
 * Guidance rescale (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
 * sec. 3.4 and Algorithm 2; diffusers' `rescale_noise_cfg`):
 *
 *     rescaled = guided * std(cond) / std(guided)
 *     out      = phi * rescaled + (1 - phi) * guided
 *
 * with std over all axes but the batch axis. phi = 0 leaves the guided prediction unchanged; the
 * paper recommends phi = 0.7. Where std(guided) = 0 the guided prediction is returned unchanged.
 *
 * @example
 * const out = rescaleGuidance(guided, epsCond, 0.7);
 */
export function rescaleGuidance(guided: tf.Tensor, cond: tf.Tensor, phi: number): tf.Tensor {
  assertInRange('rescale (phi)', phi, 0, 1);
  return tf.tidy(() => {
    const stdCond = perExampleStd(cond);
    const stdGuided = perExampleStd(guided);
    const positive = tf.greater(stdGuided, 0);
    const ratio = tf.where(
      positive,
      tf.div(stdCond, tf.where(positive, stdGuided, tf.onesLike(stdGuided))),
      tf.onesLike(stdGuided),
    );
    const factor = tf.add(tf.mul(phi, ratio), 1 - phi);
    return tf.mul(guided, factor);
  });
}

/** Noise levels sigma / alpha (EDM's sigma) inside which guidance is applied: (sigmaLo, sigmaHi]. */
export interface GuidanceInterval {
  /** Lower end, exclusive (default 0). */
  sigmaLo?: number;
  /** Upper end, inclusive (default +Infinity). */
  sigmaHi?: number;
}

/**
 * Options of `classifierFreeGuidance`. Give exactly one of `guidanceScale` and `w` (both, or neither,
 * is a `GuidanceError`); they are two names for one number, s = 1 + w:
 *
 * | you want                    | guidanceScale | w   |
 * | --------------------------- | ------------- | --- |
 * | the conditional model       | 1             | 0   |
 * | 2c - u (the paper's w = 1)  | 2             | 1   |
 * | Stable Diffusion's default  | 7.5           | 6.5 |
 *
 * @example
 * classifierFreeGuidance(unet, { guidanceScale: 7.5 }); // diffusers' guidance_scale
 * classifierFreeGuidance(unet, { w: 6.5 });             // the same guidance, in the paper's w
 */
export interface ClassifierFreeGuidanceOptions {
  /** diffusers' `guidance_scale` s: guided = u + s (c - u). s = 1 is the conditional model. */
  guidanceScale?: number;
  /** The paper's guidance weight w (Ho & Salimans 2022, eq. 6): guided = (1 + w) c - w u. w = 0 is conditional. */
  w?: number;
  /**
   * The label that means "no condition" to a model trained with label dropout (a learned null class).
   * Default: `denoiser.numClasses` (the `Denoiser` convention). Ignored with `unconditional` or `negativeLabels`.
   */
  nullLabel?: number;
  /**
   * Negative conditioning: the unconditional branch is evaluated at these labels instead of the null
   * label, so samples are pushed away from them: guided = n + s (c - n). A number (the whole batch)
   * or an int32 tensor [batch]. Not combinable with `unconditional`.
   */
  negativeLabels?: number | tf.Tensor;
  /**
   * A separate unconditional denoiser (for example an oracle's marginal, or a smaller model as in
   * autoguidance). It is called with the conditioning minus `labels`; this costs a second forward pass.
   * It may be an `AsyncDenoiser`; the guided denoiser is then asynchronous.
   */
  unconditional?: AnyDenoiser;
  /**
   * Evaluate both branches in one forward pass of twice the batch (default true, as diffusers). false:
   * two passes of the original batch (half the peak memory for a large network).
   */
  batchBranches?: boolean;
  /** Guidance rescale phi in [0, 1] (Lin et al. 2023, sec. 3.4). Default 0 (off). */
  rescale?: number;
  /** The prediction space in which std is measured for the rescale. Default: the denoiser's own (as diffusers). */
  rescaleSpace?: Prediction;
  /**
   * Apply guidance only while sigma / alpha lies in (sigmaLo, sigmaHi] (Kynkäänniemi et al. 2024,
   * "Applying Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion
   * Models", sec. 3); outside it the conditional prediction is returned (s = 1), and with a numeric
   * noise level only one forward pass is made.
   */
  interval?: GuidanceInterval;
}

/** The resolved, validated settings. */
interface CfgSettings {
  scale: number;
  phi: number;
  rescaleSpace: Prediction;
  sigmaLo: number;
  sigmaHi: number;
}

const CFG_KEYS = [
  'guidanceScale',
  'w',
  'nullLabel',
  'negativeLabels',
  'unconditional',
  'batchBranches',
  'rescale',
  'rescaleSpace',
  'interval',
] as const;

/**
 * The one guidance scale of a call, from exactly one of the two conventions: diffusers'
 * `guidanceScale` s (s = 1: conditional) or the paper's `w` (w = 0: conditional; s = 1 + w). Both, or
 * neither, is a `GuidanceError`: a number alone would be ambiguous (w = 1 is s = 2).
 *
 * @example
 * resolveGuidanceScale({ guidanceScale: 7.5 }); // 7.5
 * resolveGuidanceScale({ w: 1 });               // 2: Ho & Salimans' w = 1 is 2c - u
 * resolveGuidanceScale({ w: 1, guidanceScale: 2 }); // throws GuidanceError
 */
export function resolveGuidanceScale(scale: GuidanceScale): number {
  const { guidanceScale, w } = (scale ?? {}) as { guidanceScale?: unknown; w?: unknown };
  if (guidanceScale !== undefined && w !== undefined) {
    throw new GuidanceError(
      `give exactly one of guidanceScale and w, not both: guidanceScale = ${String(guidanceScale)} (diffusers: u + s (c - u), s = 1 is conditional) and w = ${String(w)} (Ho & Salimans: (1 + w) c - w u, w = 0 is conditional)`,
    );
  }
  if (guidanceScale === undefined && w === undefined) {
    throw new GuidanceError(
      'give exactly one of guidanceScale (diffusers: u + s (c - u)) and w (the paper: (1 + w) c - w u, w = s - 1)',
    );
  }
  if (guidanceScale !== undefined) {
    assertFinite('guidanceScale', guidanceScale);
    return guidanceScale;
  }
  return guidanceScaleFromWeight(w as number);
}

/** A guidance scale in exactly one convention (see `resolveGuidanceScale`). */
export type GuidanceScale =
  | { guidanceScale: number; w?: never }
  | { w: number; guidanceScale?: never };

function resolveSettings(
  denoiser: AnyDenoiser,
  options: ClassifierFreeGuidanceOptions,
): CfgSettings {
  assertOptions('classifierFreeGuidance', options, CFG_KEYS);
  const scale = resolveGuidanceScale(options as GuidanceScale);
  assertOptionalBoolean('batchBranches', options.batchBranches);
  if (options.nullLabel !== undefined) assertLabel('nullLabel', options.nullLabel, undefined);
  const neg = options.negativeLabels;
  if (neg !== undefined && typeof neg !== 'number' && !(neg instanceof tf.Tensor)) {
    throw new GuidanceError(
      `negativeLabels must be a label or an int32 tensor [batch], got ${Array.isArray(neg) ? 'an array' : typeof neg}`,
    );
  }
  const iv = options.interval;
  if (iv !== undefined) assertOptions('interval', iv, ['sigmaLo', 'sigmaHi']);
  const phi = options.rescale ?? 0;
  assertInRange('rescale (phi)', phi, 0, 1);
  const rescaleSpace = options.rescaleSpace ?? denoiser.prediction;
  try {
    assertPrediction(rescaleSpace);
  } catch (e) {
    throw new GuidanceError(`rescaleSpace: ${(e as Error).message}`);
  }
  const sigmaLo = options.interval?.sigmaLo ?? 0;
  const sigmaHi = options.interval?.sigmaHi ?? Number.POSITIVE_INFINITY;
  if (
    typeof sigmaLo !== 'number' ||
    typeof sigmaHi !== 'number' ||
    Number.isNaN(sigmaLo) ||
    Number.isNaN(sigmaHi) ||
    sigmaLo < 0 ||
    !(sigmaHi > sigmaLo)
  ) {
    throw new GuidanceError(
      `interval must satisfy 0 <= sigmaLo < sigmaHi, got (${sigmaLo}, ${sigmaHi}]`,
    );
  }
  return { scale, phi, rescaleSpace, sigmaLo, sigmaHi };
}

/** Duplicates a batched tensor along axis 0; tensors that do not carry the batch pass through. */
function doubleBatch(v: Scalar, batch: number): Scalar {
  if (typeof v === 'number' || v.rank === 0 || v.shape[0] !== batch) return v;
  return tf.concat([v, v], 0);
}

/**
 * The inputs of the one batched pass of both branches: x concatenated with itself, `labels` for the
 * first half and `uncondLabels` for the second, per-example levels and batched conditioning duplicated.
 */
function pairCall(
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond: Conditioning,
  uncondLabels: tf.Tensor,
): ModelCall {
  const batch = batchOf(x);
  const cond2: Conditioning = {};
  for (const [key, value] of Object.entries(cond)) {
    cond2[key] = value instanceof tf.Tensor ? doubleBatch(value, batch) : value;
  }
  cond2.labels = tf.concat([cond.labels!, uncondLabels], 0);
  const level2 = {
    alpha: doubleBatch(level.alpha, batch),
    sigma: doubleBatch(level.sigma, batch),
  };
  return { x: tf.concat([x, x], 0), level: level2, cond: cond2 };
}

/** The batched pass's output split back into [conditional, unconditional]. */
function splitPair(out: tf.Tensor): [tf.Tensor, tf.Tensor] {
  return tf.split(out, 2, 0) as [tf.Tensor, tf.Tensor];
}

/**
 * Evaluates the conditional and the unconditional branch in ONE forward pass: the batch is
 * concatenated with itself, the first half gets `labels`, the second `uncondLabels`, and the result
 * is split back. Other conditioning tensors that carry the batch axis are duplicated alongside.
 * Returns [conditional, unconditional], each [batch, ...]; with an `AsyncDenoiser`, a promise of them.
 *
 *     [c; u] = D([x; x], [level; level], [labels; uncondLabels])
 *
 * @example
 * const [c, u] = predictPair(unet, x, { alpha: 0.8, sigma: 0.6 }, { labels }, tf.fill([4], 10, 'int32'));
 * const [c2, u2] = await predictPair(onnxUnet, x, { alpha: 0.8, sigma: 0.6 }, { labels }, nullLabels);
 */
export function predictPair(
  denoiser: AsyncDenoiser,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond: Conditioning,
  uncondLabels: tf.Tensor,
): Promise<[tf.Tensor, tf.Tensor]>;
export function predictPair(
  denoiser: Denoiser,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond: Conditioning,
  uncondLabels: tf.Tensor,
): [tf.Tensor, tf.Tensor];
export function predictPair(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond: Conditioning,
  uncondLabels: tf.Tensor,
): [tf.Tensor, tf.Tensor] | Promise<[tf.Tensor, tf.Tensor]>;
export function predictPair(
  denoiser: AnyDenoiser,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  cond: Conditioning,
  uncondLabels: tf.Tensor,
): [tf.Tensor, tf.Tensor] | Promise<[tf.Tensor, tf.Tensor]> {
  assertAnyDenoiser('denoiser', denoiser);
  batchOf(x);
  if (!(cond?.labels instanceof tf.Tensor) || !(uncondLabels instanceof tf.Tensor)) {
    throw new GuidanceError(
      'predictPair needs cond.labels and uncondLabels (int32 tensors [batch])',
    );
  }
  const build = (): GuidedStep<[tf.Tensor, tf.Tensor]> => ({
    calls: [pairCall(x, level, cond, uncondLabels)],
    combine: ([out]) => splitPair(out!),
  });
  if (isAsyncDenoiser(denoiser)) return runStepAsync([denoiser], { x, level, cond }, build);
  return runStep([denoiser], build);
}

/**
 * 1 where sigma / alpha lies in (lo, hi], else 0: a number for numeric levels (and, with
 * `perExample` false, 1 for tensor levels: "maybe inside"), or a float tensor broadcasting like the level.
 */
function insideInterval(
  level: NoiseLevel<Scalar>,
  lo: number,
  hi: number,
  perExample: boolean,
): number | tf.Tensor {
  const { alpha, sigma } = level;
  if (typeof alpha === 'number' && typeof sigma === 'number') {
    const s = sigma / alpha;
    return s > lo && s <= hi ? 1 : 0;
  }
  if (!perExample || (lo === 0 && hi === Number.POSITIVE_INFINITY)) return 1;
  return tf.tidy(() => {
    const s = tf.div(sigma, alpha);
    return tf.cast(tf.logicalAnd(tf.greater(s, lo), tf.lessEqual(s, hi)), 'float32');
  });
}

/**
 * The guided prediction from the two branches, in the denoiser's `prediction` space: the combination
 * u + s (c - u), then guidance rescale (measured in `settings.rescaleSpace`), then the interval blend
 * c + inside (guided - c) for per-example levels. Pure: the one place both the synchronous and the
 * asynchronous wrapper compute the guidance math. Call it inside `tf.tidy`.
 */
function guidedPrediction(
  c: tf.Tensor,
  u: tf.Tensor,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  settings: CfgSettings,
  prediction: Prediction,
): tf.Tensor {
  const inside = insideInterval(level, settings.sigmaLo, settings.sigmaHi, true);
  let guided = cfgCombine(c, u, settings.scale);
  if (settings.phi !== 0) {
    const space = settings.rescaleSpace;
    if (space === prediction) {
      guided = rescaleGuidance(guided, c, settings.phi);
    } else {
      const g = convertPrediction(guided, prediction, space, x, level);
      const cs = convertPrediction(c, prediction, space, x, level);
      guided = convertPrediction(rescaleGuidance(g, cs, settings.phi), space, prediction, x, level);
    }
  }
  return inside === 1 ? guided : tf.add(c, tf.mul(inside, tf.sub(guided, c)));
}

/**
 * Wraps a class-conditional denoiser into a classifier-free guided one (Ho & Salimans 2022, eq. 6):
 *
 *     guided = u + s (c - u) = (1 + w) c - w u
 *
 * with c = D(x, level, labels) and u = D(x, level, null label) evaluated in one batched forward pass
 * (or u from a separate `unconditional` denoiser, or at `negativeLabels` for negative conditioning),
 * optional guidance rescale (Lin et al. 2023, sec. 3.4) and a guidance interval (Kynkäänniemi et al. 2024).
 * The result is a denoiser of the same prediction type, so any sampler can use it; the labels come
 * from `cond.labels` (int32 [batch]) at each call.
 *
 * A `Denoiser` gives a `Denoiser` (`predict`); an `AsyncDenoiser` (`predictAsync`, e.g. ONNX
 * Runtime's `onnxDenoiserAsync`), as `denoiser` or as `unconditional`, gives an `AsyncDenoiser` with
 * the same model inputs (one batched call) and the same combination, so both give the same numbers.
 *
 * Reference implementation: diffusers' `StableDiffusionPipeline.__call__` (`guidance_scale`,
 * `guidance_rescale`), EDM2's `guidance_interval`.
 *
 * @example
 * const guided = classifierFreeGuidance(unet, { guidanceScale: 4, rescale: 0.7 });
 * const x0 = await sample(guided, { shape: [16, 28, 28, 1], cond: { labels: tf.tensor1d(digits, 'int32') } });
 * // The same guidance over ONNX Runtime: an AsyncDenoiser in, an AsyncDenoiser out.
 * const fast = classifierFreeGuidance(await onnxDenoiserAsync(unet), { guidanceScale: 4, rescale: 0.7 });
 * const x1 = await sample(fast, { shape: [16, 28, 28, 1], cond: { labels: tf.tensor1d(digits, 'int32') } });
 */
export function classifierFreeGuidance(
  denoiser: AsyncDenoiser,
  options: ClassifierFreeGuidanceOptions,
): AsyncDenoiser;
export function classifierFreeGuidance(
  denoiser: Denoiser,
  options: ClassifierFreeGuidanceOptions & { unconditional: AsyncDenoiser },
): AsyncDenoiser;
export function classifierFreeGuidance(
  denoiser: Denoiser,
  options: ClassifierFreeGuidanceOptions & { unconditional?: Denoiser },
): Denoiser;
export function classifierFreeGuidance(
  denoiser: AnyDenoiser,
  options: ClassifierFreeGuidanceOptions,
): AnyDenoiser;
export function classifierFreeGuidance(
  denoiser: AnyDenoiser,
  options: ClassifierFreeGuidanceOptions,
): AnyDenoiser {
  assertAnyDenoiser('denoiser', denoiser);
  const settings = resolveSettings(denoiser, options);
  const { unconditional, negativeLabels } = options;
  if (unconditional !== undefined) assertAnyDenoiser('unconditional', unconditional);
  if (unconditional !== undefined && negativeLabels !== undefined) {
    throw new GuidanceError(
      'negativeLabels and unconditional cannot be combined: the negative branch needs the conditional model',
    );
  }
  if (unconditional !== undefined && unconditional.prediction !== denoiser.prediction) {
    throw new GuidanceError(
      `the unconditional denoiser predicts '${unconditional.prediction}' but the conditional one '${denoiser.prediction}'; wrap one so both agree`,
    );
  }
  const numClasses = denoiser.numClasses;
  const nullLabel = options.nullLabel ?? numClasses;
  if (unconditional === undefined && negativeLabels === undefined) {
    if (nullLabel === undefined) {
      throw new GuidanceError(
        'the denoiser declares no numClasses, so there is no null label: pass nullLabel, negativeLabels or an unconditional denoiser',
      );
    }
    assertLabel('nullLabel', nullLabel, undefined);
  }
  if (typeof negativeLabels === 'number') assertLabel('negativeLabels', negativeLabels, numClasses);
  const prediction = denoiser.prediction;

  function unconditionalLabels(batch: number): tf.Tensor {
    if (negativeLabels instanceof tf.Tensor) {
      assertLabelTensor('negativeLabels', negativeLabels, batch, numClasses);
      return tf.clone(negativeLabels);
    }
    return tf.fill([batch], negativeLabels ?? nullLabel!, 'int32');
  }

  // Call k of a step is answered by models[k]: the conditional model, then the unconditional one.
  const models: AnyDenoiser[] = [denoiser, unconditional ?? denoiser];
  const pair = unconditional === undefined && options.batchBranches !== false;
  const described = { prediction, shape: denoiser.shape, numClasses };
  return guidedDenoiser(models, described, (x, level, cond) => {
    const batch = batchOf(x);
    if (cond?.labels === undefined) {
      throw new GuidanceError(
        'classifier-free guidance needs cond.labels (int32 [batch]) at every call',
      );
    }
    assertLabelTensor('cond.labels', cond.labels, batch, numClasses);
    if (insideInterval(level, settings.sigmaLo, settings.sigmaHi, false) === 0) {
      return { calls: [{ x, level, cond }], combine: ([c]) => c! }; // outside: conditional only
    }
    let calls: ModelCall[];
    if (unconditional !== undefined) {
      const { labels: _dropped, ...rest } = cond;
      calls = [
        { x, level, cond },
        { x, level, cond: rest },
      ];
    } else if (pair) {
      calls = [pairCall(x, level, cond, unconditionalLabels(batch))];
    } else {
      calls = [
        { x, level, cond },
        { x, level, cond: { ...cond, labels: unconditionalLabels(batch) } },
      ];
    }
    return {
      calls,
      combine: (outs) => {
        const [c, u] = pair ? splitPair(outs[0]!) : [outs[0]!, outs[1]!];
        return guidedPrediction(c, u, x, level, settings, prediction);
      },
    };
  });
}
