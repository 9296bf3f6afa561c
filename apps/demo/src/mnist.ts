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
 * The judge `mnist-judge` (an `ImageClassifier` trained on digits the U-Net never saw, 98% on
 * held-out digits; the clean-digit `mnist-classifier` when no judge is shipped) reads the final
 * samples: the page says how many of them it reads as the digit asked for, and marks the others.
 * Beside the grid: what `diffuse-train eval-mnist` measured for this U-Net (its metrics file's
 * `sampleEvaluation`: 500 samples per mode, accuracy per digit, Fréchet distance and its floor).
 * Nothing here depends on a particular U-Net beyond its config (image shape, class count; the
 * prediction type and preconditioning are the model's own, through `loadModel`).
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
import * as tf from '@tensorflow/tfjs-core';
import { activeBackend, reportStepTime } from './backend.js';
import { type EvalSummary, evalSummary, readDigits } from './mnist-eval.js';
import { ortDenoiser, ortInfo } from './ort.js';
import { PlaneView } from './plots.js';
import { loadShipped, type ShippedEntry, shippedModels } from './shipped.js';
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
  /**
   * The judge: the image classifier `mnist-judge` (or another `image-classifier` of the same
   * digits), else a noise-conditional classifier trained on clean digits only (`mnist-classifier`).
   */
  scorer: ShippedEntry | undefined;
  /** The guide: a noise-conditional digit classifier (`mnist-noisy-classifier`). */
  guide: ShippedEntry | undefined;
} {
  const unet = entries.find(
    (e) => configOf(e).kind === 'unet' && (configOf(e).numClasses ?? 0) > 0,
  );
  if (!unet) return { unet, scorer: undefined, guide: undefined };
  const u = configOf(unet);
  const fits = (kind: string) => (e: ShippedEntry) =>
    configOf(e).kind === kind &&
    configOf(e).numClasses === u.numClasses &&
    size(configOf(e).inputShape) === size(u.imageShape);
  const judges = entries.filter(fits('image-classifier'));
  const classifiers = entries.filter(fits('classifier'));
  const clean = classifiers.filter((e) => accuracyByLogSNR(e) === undefined);
  return {
    unet,
    scorer:
      judges.find((e) => e.name === 'mnist-judge') ??
      judges[0] ??
      clean.find((e) => e.name === 'mnist-classifier') ??
      clean[0],
    guide: classifiers.find((e) => accuracyByLogSNR(e) !== undefined),
  };
}

const pct = (v: number, digits = 0) => `${(100 * v).toFixed(digits)}%`;

/**
 * The table of what `eval-mnist` measured for the shipped U-Net (`evalSummary` of its metrics
 * file): one row per mode with the share read as asked, per digit, and the Fréchet distance (and
 * its ratio to the floor); only the numbers the file has. The chosen digit's column is marked.
 */
function evalTable(e: EvalSummary, numClasses: number): HTMLElement {
  const wrap = el('div', { id: 'mnist-eval', className: 'eval' });
  const how = [
    e.perClass !== undefined ? `${e.perClass} samples per digit` : '',
    e.steps !== undefined ? `${e.steps} steps` : '',
    e.sampler ?? '',
    e.judge
      ? `read by ${e.judge}${e.judgeHeldOutAccuracy !== undefined ? ` (${pct(e.judgeHeldOutAccuracy, 1)} on held-out digits)` : ''}`
      : '',
  ].filter(Boolean);
  wrap.append(
    el('div', {
      className: 'readout',
      textContent: `As evaluated (diffuse-train eval-mnist${how.length ? `: ${how.join(', ')}` : ''})`,
      title: e.commands.join('\n'),
    }),
  );
  const digits = Array.from({ length: numClasses }, (_, d) => d);
  const table = el('table', { id: 'mnist-eval-table', className: 'small' });
  table.append(
    el(
      'tr',
      {},
      el('th', { textContent: 'samples', className: 'label' }),
      el('th', { textContent: 'as asked' }),
      ...digits.map((d) => el('th', { textContent: String(d), dataset: { digit: String(d) } })),
      el('th', { textContent: 'Fréchet' }),
      el('th', { textContent: '÷ floor' }),
    ),
  );
  for (const m of e.modes) {
    const uncond = m.method === 'unconditional';
    // Guided modes: per digit asked, the share read as it. Unconditional: the share of all samples
    // read as each digit (10% each when the model covers the digits evenly).
    const perDigit = uncond ? m.readAs : m.perClass;
    const spread =
      uncond && m.readAs
        ? `${(100 * Math.min(...m.readAs)).toFixed(1)}–${pct(Math.max(...m.readAs), 1)}`
        : '';
    table.append(
      el(
        'tr',
        { dataset: { mode: m.key } },
        el('td', { textContent: m.label, className: 'label' }),
        el('td', {
          textContent: m.accuracy !== undefined ? pct(m.accuracy, 1) : spread,
          dataset: m.accuracy !== undefined ? { accuracy: String(m.accuracy) } : {},
        }),
        ...digits.map((d) =>
          el('td', {
            textContent:
              perDigit?.[d] !== undefined ? (100 * perDigit[d]).toFixed(uncond ? 1 : 0) : '',
            dataset: { digit: String(d) },
          }),
        ),
        el('td', { textContent: m.frechet !== undefined ? m.frechet.toFixed(0) : '' }),
        el('td', {
          textContent: m.frechetOverFloor !== undefined ? m.frechetOverFloor.toFixed(2) : '',
        }),
      ),
    );
  }
  if (e.floor !== undefined) {
    table.append(
      el(
        'tr',
        { dataset: { mode: 'floor' } },
        el('td', { textContent: 'held-out digits (floor)', className: 'label' }),
        ...[...digits, -1].map(() => el('td')),
        el('td', { textContent: e.floor.toFixed(0) }),
        el('td', { textContent: '1' }),
      ),
    );
  }
  wrap.append(
    table,
    el('div', {
      className: 'note',
      textContent:
        'Per digit (%): of the samples asked for that digit, the share the judge reads as it; unconditional: of all its samples, the share read as each digit (10 each when the digits are covered evenly). Fréchet: the distance between Gaussian fits of the judge’s penultimate features of the samples and of held-out digits; its floor is that of held-out digits against other held-out digits.',
    }),
  );
  return wrap;
}

/** Marks the column of digit `d` in the evaluation table. */
function markDigit(table: HTMLElement | null, d: number): void {
  for (const c of table?.querySelectorAll<HTMLElement>('[data-digit]') ?? []) {
    c.classList.toggle('chosen', c.dataset.digit === String(d));
  }
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
    "The class-conditional U-Net trained in this repo (<code>packages/train/weights/</code>), sampled in your browser with DPM-Solver++ 2M (x̂<sub>0</sub> clipped to [-1, 1]) from the same noise. Left: the chosen guidance at scale s. <b>Classifier-free</b>: ε<sub>u</sub> + s (ε<sub>c</sub> − ε<sub>u</sub>) with the U-Net's learned null class. <b>Classifier guidance</b>: ε<sub>u</sub> − σ s ∇<sub>x</sub> log p<sub>φ</sub>(y | x<sub>t</sub>), the unconditional U-Net steered by the gradient of <code>mnist-noisy-classifier</code>, a classifier trained on noisy digits at every noise level. Right: the unconditional model (s = 0). Each frame shows the current estimate x̂<sub>0</sub>. The judge <code>mnist-judge</code>, a digit classifier trained on digits the U-Net never saw, reads the final samples: those it reads as another digit are framed in red with that digit. Beside them: what <code>diffuse-train eval-mnist</code> measured for this U-Net with the same judge.",
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
  // 16 images in 20 steps: the grid of issue 20 and the step count of the shipped evaluation.
  const steps = number('mnist-steps', 2, 100, 20);
  const n = number('mnist-n', 1, 64, 16);
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
  const evaluation = evalSummary(found.unet.metrics);
  if (evaluation) {
    panels.append(evalTable(evaluation, numClasses));
    const table = panels.querySelector<HTMLElement>('#mnist-eval-table');
    markDigit(table, Number(digit.value));
    digit.addEventListener('change', () => markDigit(table, Number(digit.value)));
  } else {
    panels.append(
      el('div', {
        id: 'mnist-eval',
        className: 'readout',
        textContent: `${found.unet.name}.metrics.json has no sample evaluation (diffuse-train eval-mnist)`,
      }),
    );
  }

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
              const classes = await readDigits(scorer.model, res.images, count);
              const right = classes.filter((c) => c === d).length;
              const isGuided = view === guidedView;
              view.canvas.dataset.accuracy = String(right / count);
              view.canvas.dataset.read = String(right);
              view.canvas.dataset.classes = classes.join(' ');
              view.canvas.dataset.judge = scorer.entry.name;
              // Guided: the samples read as another digit, framed with what the judge reads.
              // Unconditional: every sample with its reading (the spread over digits).
              view.marks(
                Array.from(classes, (c) => (isGuided && c === d ? '' : String(c))),
                count,
                shape[0]!,
                shape[1]!,
                isGuided ? { color: '#d00', framed: true } : { color: '#1f77b4', framed: false },
              );
              read = isGuided
                ? `: the judge (${scorer.entry.name}) reads ${right} of ${count} as ${d}`
                : `: the judge (${scorer.entry.name}) reads them as ${[...new Set(classes)].sort((a, b) => a - b).join(', ')}`;
            } else {
              for (const k of ['accuracy', 'read', 'classes', 'judge'])
                delete view.canvas.dataset[k];
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
