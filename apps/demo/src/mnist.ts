/**
 * Guidance on images: the class-conditional MNIST U-Net shipped in the repo. Pick a digit, move the
 * guidance scale, and see classifier-free guidance (the U-Net's learned null class) beside the
 * unconditional model; the shipped digit classifier, trained on clean digits, reads the samples.
 * (Classifier guidance needs a classifier of *noisy* digits, which the repo does not ship; the
 * 2-D section shows classifier guidance with the exact noisy classifier of the mixture.)
 */
import { classifierFreeGuidance } from '@diffuse/guidance';
import type { Denoiser, NoiseConditionalClassifier } from '@diffuse/models';
import { type SampleOptions, sampleSteps } from '@diffuse/samplers';
import { vpLevelFromLogSNR } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { reportStepTime } from './backend.js';
import { PlaneView } from './plots.js';
import { type LoadedModel, loadShipped, shippedModels } from './shipped.js';
import { act, button, el, labelled, nextFrame, number, range, row, section, select } from './ui.js';

function configOf(m: LoadedModel): {
  kind: string;
  numClasses?: number;
  imageShape?: number[];
  inputShape?: number[];
} {
  return m.model.config as unknown as { kind: string };
}

/** Runs a guided image sampler, drawing the current x0 estimate (`denoised`) every step. */
async function sampleImages(
  denoiser: Denoiser,
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
 * Share of `count` images the shipped classifier reads as `digit`. The classifier was trained on
 * clean digits (at logSNR 12), so it is evaluated there: a judge of the samples, not a guide.
 */
async function classAccuracy(
  scorer: LoadedModel,
  images: Float32Array,
  count: number,
  digit: number,
): Promise<number> {
  const c = scorer.model as unknown as NoiseConditionalClassifier;
  const inputShape = (scorer.model.config as { inputShape: number[] }).inputShape;
  const acc = tf.tidy(() => {
    const x = tf.tensor(images, [count, ...inputShape]);
    const logits = c.logits(x, vpLevelFromLogSNR(12));
    return tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), digit), 'float32'));
  });
  const v = (await acc.data())[0]!;
  acc.dispose();
  return v;
}

export function mountMnist(): void {
  const s = section(
    'mnist',
    '6. Guidance on MNIST digits',
    'The class-conditional U-Net trained in this repo (<code>packages/train/weights/</code>), sampled in your browser with DPM-Solver++ 2M from the same noise. Left: classifier-free guidance at scale s with its learned null class; right: the unconditional model (s = 0). Each frame shows the current estimate x̂<sub>0</sub>; the shipped digit classifier (trained on clean digits) reads the final samples. Classifier guidance needs a classifier of noisy digits, which is not shipped: section 5 shows it with the exact noisy classifier of the mixture.',
  );
  const entries = shippedModels();
  const info = el('div', { id: 'mnist-info', className: 'readout' });
  if (!entries.some((e) => (e.config as { kind?: string } | undefined)?.kind === 'unet')) {
    info.textContent = `No trained U-Net was shipped in this build (packages/train/weights/ holds ${entries.map((e) => e.name).join(', ') || 'nothing'}).`;
    s.append(info);
    s.dataset.available = 'false';
    return;
  }
  s.dataset.available = 'true';
  const digit = select(
    'mnist-class',
    Array.from({ length: 10 }, (_, i) => [String(i), String(i)] as [string, string]),
    '3',
  );
  const scale = range('mnist-scale', 0, 8, 0.5, 3);
  const scaleOut = el('b', { textContent: '3' });
  const steps = number('mnist-steps', 2, 100, 10);
  const n = number('mnist-n', 1, 64, 9);
  const go = button('mnist-button', 'Sample digits');
  row(
    s,
    labelled('digit', digit),
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
  s.append(panels, info);
  const cfgView = new PlaneView(panels, {
    id: 'mnist-cfg',
    size: 280,
    title: 'classifier-free guidance at scale s',
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
        const loaded = await Promise.all(entries.map(loadShipped));
        const unet = loaded.find(
          (m) => configOf(m).kind === 'unet' && (configOf(m).numClasses ?? 0) > 0,
        );
        if (!unet)
          throw new Error(
            `no class-conditional U-Net among the shipped models (${entries.map((e) => e.name).join(', ')})`,
          );
        const shape = configOf(unet).imageShape!;
        const size = shape.reduce((a, b) => a * b, 1);
        // A shipped digit classifier (on images or flattened images) scores the samples.
        const scorer = loaded.find(
          (m) =>
            configOf(m).kind === 'classifier' &&
            configOf(m).numClasses === configOf(unet).numClasses &&
            (configOf(m).inputShape ?? []).reduce((a, b) => a * b, 1) === size,
        );
        const net = unet.model as unknown as Denoiser;
        const count = Number(n.value);
        const d = Number(digit.value);
        const labels = tf.fill([count], d, 'int32');
        const sv = Number(scale.value);
        const out: string[] = [];
        try {
          for (const [view, scaleValue, what] of [
            [cfgView, sv, `classifier-free, s = ${sv}`],
            [uncondView, 0, 'unconditional, s = 0'],
          ] as const) {
            const res = await sampleImages(
              classifierFreeGuidance(net, { guidanceScale: scaleValue }),
              { steps: Number(steps.value), n: count, shape, labels, seed: 4 },
              view,
            );
            reportStepTime(res.msPerStep, 'U-Net guided step');
            let read = '';
            if (scorer) {
              const acc = await classAccuracy(scorer, res.images, count, d);
              view.canvas.dataset.accuracy = String(acc);
              read = `, ${Math.round(acc * count)}/${count} read as ${d} by ${scorer.entry.name}`;
            }
            view.caption(`${what}${read}`);
            out.push(`${what}: ${res.msPerStep.toFixed(0)} ms/step${read}`);
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
        }
      }),
  );
}
