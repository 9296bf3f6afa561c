/**
 * Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis",
 * sec. 4 and Algorithm 2; Song et al. 2021, "Score-Based Generative Modeling through SDEs", sec. 5)
 * as a denoiser wrapper. By Bayes' rule the score of the class-conditional noisy marginal is
 *
 *     grad log p_t(x | y) = grad log p_t(x) + grad log p_t(y | x),
 *
 * and classifier guidance scales the classifier term by gamma:
 *
 *     score_guided = score + gamma grad_x log p_t(y | x_t)
 *     eps_guided   = eps - sigma gamma grad_x log p_t(y | x_t)      (eps = -sigma score)
 *
 * The gradient is taken through tfjs (`tf.grad`) from any differentiable noise-conditional classifier;
 * the shift is applied in epsilon space and converted back to the denoiser's declared prediction with
 * `@diffuse/schedules` (the one conversion module).
 *
 * The denoiser may be a `Denoiser` or an `AsyncDenoiser` (e.g. ONNX Runtime); the classifier stays a
 * tfjs model (its gradient is taken by tfjs autodiff). Both paths call the same `classifierGuided`.
 */
import type { AsyncDenoiser, Conditioning, Denoiser, GaussianMixture } from '@diffuse/models';
import {
  convertPrediction,
  type NoiseLevel,
  type Prediction,
  type Scalar,
  toEpsilon,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { type AnyDenoiser, assertAnyDenoiser, guidedDenoiser } from './any-denoiser.js';
import { GuidanceError } from './errors.js';
import {
  assertFinite,
  assertLabelTensor,
  assertOptionalBoolean,
  assertOptions,
  batchOf,
} from './validate.js';

/**
 * A differentiable noise-conditional classifier p_t(y | x_t): logits (or log-probabilities) of shape
 * [batch, numClasses] for a noisy sample x_t = alpha x0 + sigma eps at level (alpha, sigma).
 * Log-probabilities are logits whose logsumexp is 0, so either works. `@diffuse/models`'
 * `NoiseConditionalClassifier` network fits as it is; `mixtureClassifier` adapts the exact oracle.
 */
export interface ClassifierLike {
  readonly numClasses: number;
  logits(x: tf.Tensor, level: NoiseLevel<Scalar>): tf.Tensor;
}

/**
 * The exact classifier of a class-conditional Gaussian-mixture oracle:
 * log p_t(y | x) = logsumexp_{k: y_k = y}(log w_k + log N(x; alpha mu_k, C_k)) - log p_t(x)
 * (`GaussianMixture.classLogPosterior`). Inputs of image shape [batch, ...dims] are flattened to
 * [batch, d], so an image-shaped Gaussian oracle works too.
 *
 * @example
 * const classifier = mixtureClassifier(gm);
 * const guided = classifierGuidance(gm.denoiser('epsilon'), classifier, { scale: 2 });
 */
export function mixtureClassifier(gm: GaussianMixture): ClassifierLike {
  if (!(gm.numClasses > 0)) {
    throw new GuidanceError(
      'mixtureClassifier needs a class-conditional mixture (components with labels)',
    );
  }
  return {
    numClasses: gm.numClasses,
    logits: (x, level) =>
      tf.tidy(() =>
        gm.classLogPosterior(x.rank === 2 ? x : tf.reshape(x, [x.shape[0]!, -1]), level),
      ),
  };
}

/**
 * grad_x log p_t(y | x_t) for each example's label y, through tfjs autodiff:
 *
 *     log p_t(y | x) = logits_y(x) - logsumexp_c logits_c(x)
 *
 * summed over the batch before differentiating (examples are independent, so each row of the
 * gradient is that example's own). Shape of `x`.
 *
 * @example
 * const g = classifierGradient(classifier, x, { alpha: 0.8, sigma: 0.6 }, tf.tensor1d([0, 1], 'int32'));
 */
export function classifierGradient(
  classifier: ClassifierLike,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  labels: tf.Tensor,
): tf.Tensor {
  const batch = batchOf(x);
  assertLabelTensor('labels', labels, batch, classifier.numClasses);
  return tf.tidy(() => {
    const oneHot = tf.oneHot(labels, classifier.numClasses);
    const logProbOfLabels = (input: tf.Tensor): tf.Tensor => {
      const logits = classifier.logits(input, level);
      if (
        logits.rank !== 2 ||
        logits.shape[0] !== batch ||
        logits.shape[1] !== classifier.numClasses
      ) {
        throw new GuidanceError(
          `the classifier must return logits of shape [${batch}, ${classifier.numClasses}], got [${logits.shape.join(', ')}]`,
        );
      }
      return tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)));
    };
    return tf.grad(logProbOfLabels)(tf.cast(x, 'float32'));
  });
}

/**
 * The classifier-guided prediction from the unguided one: in epsilon space
 *
 *     eps' = eps - sigma gamma grad_x log p_t(y | x_t)        (eps = -sigma score)
 *
 * converted back to `prediction`. Pure: the one place both the synchronous and the asynchronous
 * wrapper compute the guidance term. Call it inside `tf.tidy`.
 */
function classifierGuided(
  pred: tf.Tensor,
  prediction: Prediction,
  classifier: ClassifierLike,
  x: tf.Tensor,
  level: NoiseLevel<Scalar>,
  labels: tf.Tensor,
  gamma: number,
): tf.Tensor {
  const g = classifierGradient(classifier, x, level, labels);
  const eps = toEpsilon(pred, prediction, x, level);
  const guided = tf.sub(eps, tf.mul(tf.mul(level.sigma, gamma), g));
  return convertPrediction(guided, 'epsilon', prediction, x, level);
}

/** Options of `classifierGuidance`. */
export interface ClassifierGuidanceOptions {
  /** The guidance scale gamma (Dhariwal & Nichol's s): score + gamma grad log p(y | x). gamma = 1 is the exact conditional. */
  scale: number;
  /**
   * Pass `cond.labels` on to the denoiser as well (guiding a conditional model with a classifier).
   * Default false: the wrapped denoiser gets the conditioning without `labels` (it models p_t(x)).
   */
  conditionDenoiser?: boolean;
}

/**
 * Wraps a denoiser of p_t(x) into classifier guidance towards `cond.labels` (Dhariwal & Nichol 2021,
 * sec. 4.1; Song et al. 2021, sec. 5):
 *
 *     score_guided = score + gamma grad_x log p_t(y | x_t)   <=>   eps_guided = eps - sigma gamma grad_x log p_t(y | x_t)
 *
 * The result predicts what `denoiser` predicts, so any sampler can use it. With the exact classifier
 * of a mixture and gamma = 1 it is the class-conditional denoiser. A `Denoiser` gives a `Denoiser`;
 * an `AsyncDenoiser` (e.g. ONNX Runtime's `onnxDenoiserAsync`) gives an `AsyncDenoiser` whose
 * prediction is awaited and then guided by the same tfjs gradient of the (tfjs) classifier.
 *
 * @example
 * const guided = classifierGuidance(gm.denoiser('epsilon'), mixtureClassifier(gm), { scale: 3 });
 * const eps = guided.predict(x, { alpha: 0.8, sigma: 0.6 }, { labels: tf.tensor1d([1, 1], 'int32') });
 * // An ONNX Runtime denoiser with a tfjs classifier:
 * const fast = classifierGuidance(await onnxDenoiserAsync(unet), noisyClassifier, { scale: 3 });
 * const x0 = await sample(fast, { steps: 30, batch: 16, seed: 1, cond: { labels } });
 */
export function classifierGuidance(
  denoiser: AsyncDenoiser,
  classifier: ClassifierLike,
  options: ClassifierGuidanceOptions,
): AsyncDenoiser;
export function classifierGuidance(
  denoiser: Denoiser,
  classifier: ClassifierLike,
  options: ClassifierGuidanceOptions,
): Denoiser;
export function classifierGuidance(
  denoiser: AnyDenoiser,
  classifier: ClassifierLike,
  options: ClassifierGuidanceOptions,
): AnyDenoiser;
export function classifierGuidance(
  denoiser: AnyDenoiser,
  classifier: ClassifierLike,
  options: ClassifierGuidanceOptions,
): AnyDenoiser {
  assertAnyDenoiser('denoiser', denoiser);
  assertOptions('classifierGuidance', options, ['scale', 'conditionDenoiser']);
  assertFinite('scale (gamma)', options.scale);
  assertOptionalBoolean('conditionDenoiser', options.conditionDenoiser);
  const c = classifier as Partial<ClassifierLike> | null;
  if (c === null || typeof c !== 'object' || typeof c.logits !== 'function') {
    throw new GuidanceError(
      `the classifier must have logits(x, level) and numClasses, got ${c === null ? 'null' : typeof c}`,
    );
  }
  if (!Number.isInteger(classifier.numClasses) || classifier.numClasses < 1) {
    throw new GuidanceError(
      `the classifier must declare numClasses >= 1, got ${String(classifier.numClasses)}`,
    );
  }
  const gamma = options.scale;
  const conditionDenoiser = options.conditionDenoiser ?? false;
  const prediction = denoiser.prediction;

  const described = { prediction, shape: denoiser.shape, numClasses: classifier.numClasses };
  return guidedDenoiser([denoiser], described, (x, level, cond) => {
    const labels = cond?.labels;
    if (labels === undefined) {
      throw new GuidanceError(
        'classifier guidance needs cond.labels (int32 [batch]): the classes to guide towards',
      );
    }
    assertLabelTensor('cond.labels', labels, batchOf(x), classifier.numClasses);
    let inner: Conditioning = cond!;
    if (!conditionDenoiser) {
      const { labels: _dropped, ...rest } = cond!;
      inner = rest;
    }
    return {
      calls: [{ x, level, cond: inner }],
      combine: ([pred]) =>
        gamma === 0
          ? pred!
          : classifierGuided(pred!, prediction, classifier, x, level, labels, gamma),
    };
  });
}
