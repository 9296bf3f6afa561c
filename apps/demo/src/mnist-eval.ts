/**
 * The MNIST section's numbers, without the DOM (tested in Node): what the shipped U-Net's metrics
 * file says about its samples (`sampleEvaluation`, written by `diffuse-train eval-mnist`), and the
 * judge reading images in the page.
 *
 * The metrics file is read defensively: every field may be absent (an older U-Net, a partial
 * evaluation, a future mode), and what is there is shown.
 */
import { ImageClassifier, type Model, NoiseConditionalClassifier } from '@diffuse/models';
import { vpLevelFromLogSNR } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';

/** One way of sampling that `eval-mnist` measured (one key of `sampleEvaluation`). */
export interface EvalMode {
  /** The key in the metrics file: `guidance3`, `classifierGuidance3`, `unconditional`, ... */
  key: string;
  /** What it is, in words: `classifier-free, s = 3`. */
  label: string;
  method: 'cfg' | 'classifier' | 'unconditional' | 'other';
  /** The guidance scale, when the key names one. */
  scale?: number;
  /** Share of all samples the judge reads as the digit asked for. */
  accuracy?: number;
  /** Per digit asked for: the share of its samples read as it. */
  perClass?: number[];
  /** Share of all samples read as each digit (for unconditional samples: the spread over digits). */
  readAs?: number[];
  /** Fréchet distance of the judge's features of the samples to those of held-out digits. */
  frechet?: number;
  /** `frechet` over the floor (two halves of the held-out digits). */
  frechetOverFloor?: number;
}

/** The evaluation of a shipped U-Net as the page shows it; absent fields stay absent. */
export interface EvalSummary {
  judge?: string;
  judgeHeldOutAccuracy?: number;
  /** Samples per digit of each mode. */
  perClass?: number;
  steps?: number;
  sampler?: string;
  /** The Fréchet floor: held-out digits against held-out digits. */
  floor?: number;
  /** The command(s) that measured it. */
  commands: string[];
  modes: EvalMode[];
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const numArray = (v: unknown): number[] | undefined =>
  Array.isArray(v) && v.length > 0 && v.every(isNum) ? v : undefined;

/**
 * Names a mode key of `eval-mnist`: `guidance<s>` (classifier-free at scale s),
 * `classifierGuidance<s>` (classifier guidance of the null-class model at scale s),
 * `conditionalClassifierGuidance<s>` (the class-conditional model, classifier-guided as well),
 * `unconditional` (the null class); any other key is shown as it is.
 *
 * @example
 * modeOf('guidance3'); // { label: 'classifier-free, s = 3', method: 'cfg', scale: 3 }
 */
export function modeOf(key: string): Pick<EvalMode, 'label' | 'method' | 'scale'> {
  if (key === 'unconditional') return { label: 'unconditional', method: 'unconditional' };
  const m = /^(guidance|classifierGuidance|conditionalClassifierGuidance)(\d+(?:\.\d+)?)$/.exec(
    key,
  );
  if (!m) return { label: key, method: 'other' };
  const scale = Number(m[2]);
  if (m[1] === 'guidance') return { label: `classifier-free, s = ${scale}`, method: 'cfg', scale };
  return m[1] === 'classifierGuidance'
    ? { label: `classifier guidance, s = ${scale}`, method: 'classifier', scale }
    : { label: `conditional + classifier guidance, s = ${scale}`, method: 'classifier', scale };
}

const ORDER: Record<EvalMode['method'], number> = {
  cfg: 0,
  classifier: 1,
  unconditional: 2,
  other: 3,
};

/**
 * The `sampleEvaluation` of a U-Net's metrics file (`<name>.metrics.json`), or undefined when it
 * has none. Modes are the object-valued keys carrying at least one number the page shows;
 * classifier-free first (largest scale first), then classifier guidance, then unconditional.
 *
 * @example
 * const e = evalSummary(unet.entry.metrics);
 * e?.modes.find((m) => m.key === 'guidance3')?.accuracy; // 0.966
 */
export function evalSummary(metrics: unknown): EvalSummary | undefined {
  const ev = isObj(metrics) ? metrics.sampleEvaluation : undefined;
  if (!isObj(ev)) return undefined;
  const modes: EvalMode[] = [];
  for (const [key, v] of Object.entries(ev)) {
    if (!isObj(v) || key === 'frechet') continue;
    const mode: EvalMode = { key, ...modeOf(key) };
    if (isNum(v.accuracy)) mode.accuracy = v.accuracy;
    const perClass = numArray(v.perClass);
    if (perClass) mode.perClass = perClass;
    const readAs = numArray(v.readAs);
    if (readAs) mode.readAs = readAs;
    if (isNum(v.frechet)) mode.frechet = v.frechet;
    if (isNum(v.frechetOverFloor)) mode.frechetOverFloor = v.frechetOverFloor;
    const shown = [mode.accuracy, mode.perClass, mode.readAs, mode.frechet];
    if (shown.some((x) => x !== undefined)) modes.push(mode);
  }
  modes.sort((a, b) => ORDER[a.method] - ORDER[b.method] || (b.scale ?? 0) - (a.scale ?? 0));
  const out: EvalSummary = { commands: [], modes };
  if (typeof ev.judge === 'string') out.judge = ev.judge.split('/').pop()!;
  if (isNum(ev.judgeHeldOutAccuracy)) out.judgeHeldOutAccuracy = ev.judgeHeldOutAccuracy;
  if (isNum(ev.perClass)) out.perClass = ev.perClass;
  if (isNum(ev.steps)) out.steps = ev.steps;
  if (typeof ev.sampler === 'string') out.sampler = ev.sampler;
  if (isObj(ev.frechet) && isNum(ev.frechet.floor)) out.floor = ev.frechet.floor;
  const cmds = Array.isArray(ev.commands) ? ev.commands : [ev.command];
  out.commands = cmds.filter((c): c is string => typeof c === 'string');
  return out;
}

/**
 * The class a digit classifier reads in each of `count` images (pixels in [-1, 1], clipped there
 * first). An `ImageClassifier` (the judge, `mnist-judge`) reads them as they are; a
 * `NoiseConditionalClassifier` trained on clean digits (`mnist-classifier`) at its clean level,
 * logSNR 12.
 *
 * @example
 * const classes = await readDigits(judge, images, 16); // Int32Array of 16 digits
 */
export async function readDigits(
  classifier: Model,
  images: Float32Array,
  count: number,
): Promise<Int32Array> {
  let read: (x: tf.Tensor) => tf.Tensor;
  if (classifier instanceof ImageClassifier) {
    read = (x) => classifier.logits(x);
  } else if (classifier instanceof NoiseConditionalClassifier) {
    read = (x) => classifier.logits(x, vpLevelFromLogSNR(12));
  } else {
    throw new Error(
      `a digit classifier must be an image-classifier or a classifier, got ${classifier.constructor.name}`,
    );
  }
  const inputShape = classifier.config.inputShape;
  const classes = tf.tidy(() => {
    const x = tf.clipByValue(tf.tensor(images, [count, ...inputShape]), -1, 1);
    return tf.cast(tf.argMax(read(x), 1), 'int32');
  });
  const out = Int32Array.from(await classes.data());
  classes.dispose();
  return out;
}
