/**
 * Guidance on images: the class-conditional MNIST U-Net shipped in the repo. Pick a digit, a method
 * and a guidance scale, and compare the guided samples with the unconditional model (the U-Net's
 * learned null class) from the same noise:
 *
 * - classifier-free guidance (Ho & Salimans 2022, eq. 6): eps_u + s (eps_c - eps_u), both branches
 *   from the U-Net (`classifierFreeGuidance`);
 * - classifier guidance (Dhariwal & Nichol 2021, sec. 4): eps_u - sigma s grad_x log p_phi(y | x_t),
 *   the U-Net's unconditional prediction shifted by the gradient of the shipped *noise-conditional*
 *   classifier `mnist-noisy-classifier` (trained on x_t at every noise level; `classifierGuidance`).
 *
 * The shipped clean-digit classifier `mnist-classifier` (trained at one clean level only) is the
 * judge: it reads the final samples, and its share of samples read as the chosen digit is shown.
 * Nothing here depends on a particular U-Net beyond its config: image shape and class count.
 */
import {
  type AnyDenoiser,
  type ClassifierLike,
  classifierFreeGuidance,
  classifierGuidance,
  sampleClipping,
} from '@diffuse/guidance';
import type { Denoiser, NoiseConditionalClassifier } from '@diffuse/models';
import { type SampleOptions, sampleSteps } from '@diffuse/samplers';
import { vpLevelFromLogSNR } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { activeBackend, reportStepTime } from './backend.js';
import { ortDenoiser, ortInfo } from './ort.js';
import { PlaneView } from './plots.js';
import { type LoadedModel, loadShipped, type ShippedEntry, shippedModels } from './shipped.js';
import { act, button, el, labelled, nextFrame, number, range, row, section, select } from './ui.js';

type Method = 'cfg' | 'classifier';
/** Who runs the U-Net: ONNX Runtime Web (inference only) or tfjs on the backend picked above. */
type Runtime = 'onnx' | 'tfjs';

interface ConfigView {
  kind?: string;
  numClasses?: number;
  imageShape?: number[];
  inputShape?: number[];
}

function configOf(e: ShippedEntry): ConfigView {
  return (e.config ?? {}) as ConfigView;
}

const size = (shape: readonly number[] | undefined) => (shape ?? []).reduce((a, b) => a * b, 1);

/**
 * A classifier trained across noise levels carries its held-out accuracy per logSNR in its metrics
 * (`diffuse-train mnist-noisy-classifier`); a clean-level one does not.
 */
function accuracyByLogSNR(e: ShippedEntry): { logSNR: number; accuracy: number }[] | undefined {
  const t = e.metrics?.testAccuracyByLogSNR;
  return Array.isArray(t) ? (t as { logSNR: number; accuracy: number }[]) : undefined;
}

/** The shipped models the section uses, found by their configs (and metrics). */
export function mnistModels(entries: ShippedEntry[] = shippedModels()): {
  unet: ShippedEntry | undefined;
  /** The judge: a digit classifier trained on clean digits (`mnist-classifier`). */
  scorer: ShippedEntry | undefined;
  /** The guide: a noise-conditional digit classifier (`mnist-noisy-classifier`). */
  guide: ShippedEntry | undefined;
} {
  const unet = entries.find(
    (e) => configOf(e).kind === 'unet' && (configOf(e).numClasses ?? 0) > 0,
  );
  if (!unet) return { unet, scorer: undefined, guide: undefined };
  const u = configOf(unet);
  const fits = (e: ShippedEntry) =>
    configOf(e).kind === 'classifier' &&
    configOf(e).numClasses === u.numClasses &&
    size(configOf(e).inputShape) === size(u.imageShape);
  const classifiers = entries.filter(fits);
  const clean = classifiers.filter((e) => accuracyByLogSNR(e) === undefined);
  return {
    unet,
    scorer: clean.find((e) => e.name === 'mnist-classifier') ?? clean[0],
    guide: classifiers.find((e) => accuracyByLogSNR(e) !== undefined),
  };
}

/**
 * A classifier of flattened digits (input [784]) seen as one of images [28, 28, 1]: `logits`
 * reshapes x to the classifier's input shape, so its gradient comes back in image shape.
 */
export function onImages(clf: NoiseConditionalClassifier): ClassifierLike {
  const inputShape = clf.config.inputShape;
  return {
    numClasses: clf.numClasses,
    logits: (x, level) =>
      tf.tidy(() => clf.logits(tf.reshape(x, [x.shape[0]!, ...inputShape]), level)),
  };
}

/** Runs a guided image sampler, drawing the current x0 estimate (`denoised`) every step. */
async function sampleImages(
  denoiser: AnyDenoiser,
  opts: { steps: number; n: number; shape: number[]; labels: tf.Tensor; seed: number },
  view: PlaneView,
): Promise<{ msPerStep: number; images: Float32Array }> {
  const [h, w] = opts.shape as [number, number, number];
  const plan: SampleOptions = {
    schedule: 'karras',
    sigmaMin: 0.002,
    sigmaMax: 80,
    sampler: 'dpmpp_2m',
    steps: opts.steps,
  };
  const it = sampleSteps(denoiser, {
    ...plan,
    shape: [opts.n, ...opts.shape],
    seed: opts.seed,
    cond: { labels: opts.labels },
  });
  let busy = 0;
  let steps = 0;
  for (;;) {
    const t0 = performance.now();
    const r = await it.next();
    busy += performance.now() - t0;
    if (r.done) {
      const images = Float32Array.from(await r.value.data());
      r.value.dispose();
      view.images(images, opts.n, h, w);
      return { msPerStep: busy / Math.max(1, steps), images };
    }
    steps = r.value.steps;
    view.images(await r.value.denoised.data(), opts.n, h, w);
    view.caption(`step ${r.value.i + 1} / ${r.value.steps} (showing the current x̂0)`);
    await nextFrame();
  }
}

/**
 * Share of `count` images the shipped clean-digit classifier reads as `digit`. It was trained on
 * clean digits (at logSNR 12), so it is evaluated there: a judge of the samples, not a guide.
 */
async function classAccuracy(
  scorer: LoadedModel,
  images: Float32Array,
  count: number,
  digit: number,
): Promise<number> {
  const c = scorer.model as unknown as NoiseConditionalClassifier;
  const acc = tf.tidy(() => {
    const x = tf.clipByValue(tf.tensor(images, [count, ...c.config.inputShape]), -1, 1);
    const logits = c.logits(x, vpLevelFromLogSNR(12));
    return tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), digit), 'float32'));
  });
  const v = (await acc.data())[0]!;
  acc.dispose();
  return v;
}

/**
 * min, max and mean of the samples (shown on the canvas for the tests: a NaN would show here, and
 * the mean compares runtimes run from the same noise).
 */
function extent(images: Float32Array): { min: number; max: number; mean: number } {
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const v of images) {
    if (Number.isNaN(v)) return { min: Number.NaN, max: Number.NaN, mean: Number.NaN };
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, max, mean: sum / Math.max(1, images.length) };
}

export function mountMnist(): void {
  const s = section(
    'mnist',
    '6. Guidance on MNIST digits',
    "The class-conditional U-Net trained in this repo (<code>packages/train/weights/</code>), sampled in your browser with DPM-Solver++ 2M (x̂<sub>0</sub> clipped to [-1, 1]) from the same noise. Left: the chosen guidance at scale s. <b>Classifier-free</b>: ε<sub>u</sub> + s (ε<sub>c</sub> − ε<sub>u</sub>) with the U-Net's learned null class. <b>Classifier guidance</b>: ε<sub>u</sub> − σ s ∇<sub>x</sub> log p<sub>φ</sub>(y | x<sub>t</sub>), the unconditional U-Net steered by the gradient of <code>mnist-noisy-classifier</code>, a classifier trained on noisy digits at every noise level. Right: the unconditional model (s = 0). Each frame shows the current estimate x̂<sub>0</sub>; the clean-digit classifier <code>mnist-classifier</code> (trained on clean digits only, a judge rather than a guide) reads the final samples.",
  );
  const entries = shippedModels();
  const info = el('div', { id: 'mnist-info', className: 'readout' });
  const found = mnistModels(entries);
  if (!found.unet) {
    info.textContent = `No trained U-Net was shipped in this build (packages/train/weights/ holds ${entries.map((e) => e.name).join(', ') || 'nothing'}).`;
    s.append(info);
    s.dataset.available = 'false';
    return;
  }
  s.dataset.available = 'true';
  s.dataset.classifierGuidance = found.guide ? 'true' : 'false';
  const numClasses = configOf(found.unet).numClasses!;
  const digit = select(
    'mnist-class',
    Array.from({ length: numClasses }, (_, i) => [String(i), String(i)] as [string, string]),
    '3',
  );
  const method = select(
    'mnist-method',
    [
      ['cfg', 'classifier-free'],
      ['classifier', 'classifier guidance'],
    ],
    'cfg',
  );
  if (!found.guide) {
    const opt = method.querySelector<HTMLOptionElement>('option[value="classifier"]')!;
    opt.disabled = true;
    opt.textContent = 'classifier guidance (no noise-conditional classifier shipped)';
  }
  const ort = ortInfo();
  const runtime = select(
    'mnist-runtime',
    [
      [
        'onnx',
        `ONNX Runtime Web (${ort.threads} thread${ort.threads > 1 ? 's' : ''}${ort.crossOriginIsolated ? '' : ': page not cross-origin isolated'})`,
      ],
      ['tfjs', 'tfjs (the backend picked above)'],
    ],
    'tfjs',
  );
  runtime.title =
    'ONNX Runtime Web runs the U-Net for classifier-free guidance and the unconditional panel; classifier guidance needs the gradient of the classifier, so it always runs on tfjs';
  const scale = range('mnist-scale', 0, 8, 0.5, 3);
  const scaleOut = el('b', { id: 'mnist-scale-value', textContent: '3' });
  const steps = number('mnist-steps', 2, 100, 10);
  const n = number('mnist-n', 1, 64, 9);
  const go = button('mnist-button', 'Sample digits');
  row(
    s,
    labelled('digit', digit),
    labelled('method', method),
    labelled('runtime', runtime),
    labelled('scale s', scale),
    scaleOut,
    labelled('steps', steps),
    labelled('images', n),
    go,
  );
  scale.addEventListener('input', () => {
    scaleOut.textContent = scale.value;
  });
  const panels = el('div', { className: 'panels' });
  const guideInfo = el('div', { id: 'mnist-guide-info', className: 'readout' });
  if (found.guide) {
    const table = accuracyByLogSNR(found.guide)!
      .map((r) => `logSNR ${r.logSNR}: ${(100 * r.accuracy).toFixed(1)}%`)
      .join(', ');
    guideInfo.textContent = `guide ${found.guide.name}: held-out accuracy on noisy digits ${table}`;
  }
  s.append(panels, info, guideInfo);
  const guidedView = new PlaneView(panels, {
    id: 'mnist-cfg',
    size: 280,
    title: 'guided at scale s',
  });
  const uncondView = new PlaneView(panels, {
    id: 'mnist-uncond',
    size: 280,
    title: 'unconditional (s = 0, the null class)',
  });

  go.addEventListener(
    'click',
    () =>
      void act(s, async () => {
        info.textContent = 'loading the shipped models…';
        const m = method.value as Method;
        if (m === 'classifier' && !found.guide) {
          throw new Error(
            'classifier guidance needs a noise-conditional digit classifier in packages/train/weights/ (diffuse-train mnist-noisy-classifier)',
          );
        }
        const [unet, scorer, guide] = await Promise.all([
          loadShipped(found.unet!),
          found.scorer ? loadShipped(found.scorer) : undefined,
          m === 'classifier' ? loadShipped(found.guide!) : undefined,
        ]);
        const shape = configOf(unet.entry).imageShape!;
        const tfNet = unet.model as unknown as Denoiser;
        const rt = runtime.value as Runtime;
        // ONNX Runtime Web computes the U-Net (exported once in the page); guidance, sampler and
        // clipping stay the same tfjs code. Classifier guidance differentiates a tfjs classifier, so
        // its guided branch keeps the tfjs U-Net.
        const net: AnyDenoiser = rt === 'onnx' ? await ortDenoiser(tfNet) : tfNet;
        const runsOn = (onnx: boolean) =>
          onnx
            ? `ONNX Runtime Web, ${ortInfo().threads} thread(s)`
            : `tfjs ${activeBackend()?.name ?? '?'}`;
        const count = Number(n.value);
        const d = Number(digit.value);
        const sv = Number(scale.value);
        if (!Number.isFinite(sv) || sv < 0)
          throw new Error(`scale must be >= 0, got ${scale.value}`);
        const labels = tf.fill([count], d, 'int32');
        // The unconditional model is the U-Net at its learned null class (label numClasses): what
        // classifier-free guidance at s = 0 returns, at half its cost (one branch, not two).
        const nullLabels = tf.fill([count], numClasses, 'int32');
        const guided: AnyDenoiser =
          m === 'cfg'
            ? classifierFreeGuidance(net, { guidanceScale: sv })
            : classifierGuidance(
                tfNet,
                onImages(guide!.model as unknown as NoiseConditionalClassifier),
                {
                  scale: sv,
                },
              );
        const what =
          m === 'cfg'
            ? `classifier-free, s = ${sv}`
            : `classifier guidance (${guide!.entry.name}), s = ${sv}`;
        const out: string[] = [];
        try {
          for (const [view, denoiser, cls, caption, timing, onOrt] of [
            [
              guidedView,
              guided,
              labels,
              what,
              m === 'cfg' ? 'U-Net cfg step' : 'U-Net classifier-guided step',
              m === 'cfg' && rt === 'onnx',
            ],
            [uncondView, net, nullLabels, 'unconditional, s = 0', 'U-Net step', rt === 'onnx'],
          ] as const) {
            const res = await sampleImages(
              sampleClipping(denoiser),
              { steps: Number(steps.value), n: count, shape, labels: cls, seed: 4 },
              view,
            );
            reportStepTime(res.msPerStep, `${timing}${onOrt ? ' (ONNX Runtime Web)' : ''}`);
            const { min, max, mean } = extent(res.images);
            view.canvas.dataset.method = view === guidedView ? m : 'unconditional';
            view.canvas.dataset.ms = String(res.msPerStep);
            view.canvas.dataset.runtime = onOrt ? 'onnx' : 'tfjs';
            view.canvas.dataset.min = String(min);
            view.canvas.dataset.max = String(max);
            view.canvas.dataset.mean = String(mean);
            if (Number.isNaN(min)) throw new Error(`${caption}: the samples contain NaN`);
            let read = '';
            if (scorer) {
              const acc = await classAccuracy(scorer, res.images, count, d);
              view.canvas.dataset.accuracy = String(acc);
              read = `, ${Math.round(acc * count)}/${count} read as ${d} by ${scorer.entry.name}`;
            } else {
              delete view.canvas.dataset.accuracy;
            }
            view.caption(`${caption}${read}`);
            out.push(
              `${caption}: ${res.msPerStep.toFixed(0)} ms/step on ${runsOn(onOrt)}, batch ${view === guidedView && m === 'cfg' ? 2 * count : count} per model call${read}`,
            );
          }
          const trained = unet.entry.metrics;
          const facts = trained
            ? Object.entries({
                ...trained,
                ...((trained.metrics as Record<string, unknown>) ?? {}),
              })
                .filter(([, v]) => typeof v === 'number')
                .map(([k, v]) => `${k} ${Number(v).toPrecision(3)}`)
                .join(', ')
            : '';
          info.textContent = `${unet.entry.name}: ${out.join('; ')}${facts ? ` (as trained: ${facts})` : ''}`;
        } finally {
          labels.dispose();
          nullLabels.dispose();
        }
      }),
  );
}
