/**
 * Guidance on images: the class-conditional MNIST U-Net shipped in the repo. Pick a digit, move the
 * guidance scale, and see classifier-free guidance (the U-Net's learned null class) beside
 * classifier guidance (a noise-conditional classifier's gradient), when a classifier is shipped.
 */
import { classifierFreeGuidance, classifierGuidance } from '@diffuse/guidance';
import type { Denoiser, NoiseConditionalClassifier } from '@diffuse/models';
import { type SampleOptions, sampleSteps } from '@diffuse/samplers';
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

export function mountMnist(): void {
  const s = section(
    'mnist',
    '6. Guidance on MNIST digits',
    'The class-conditional U-Net trained in this repo (<code>packages/train/weights/</code>), sampled in your browser with DPM-Solver++ 2M. Left: classifier-free guidance with its learned null class; right: classifier guidance with the shipped noise-conditional classifier (when one is shipped). Each frame shows the current estimate x̂<sub>0</sub>.',
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
    title: 'classifier-free guidance',
  });
  const clsView = new PlaneView(panels, {
    id: 'mnist-classifier',
    size: 280,
    title: 'classifier guidance',
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
        const classifier = loaded.find(
          (m) =>
            configOf(m).kind === 'classifier' &&
            (configOf(m).inputShape ?? []).join() === shape.join(),
        );
        const net = unet.model as unknown as Denoiser;
        const count = Number(n.value);
        const labels = tf.fill([count], Number(digit.value), 'int32');
        const sv = Number(scale.value);
        const out: string[] = [];
        try {
          const cfg = await sampleImages(
            classifierFreeGuidance(net, { guidanceScale: sv }),
            { steps: Number(steps.value), n: count, shape, labels, seed: 4 },
            cfgView,
          );
          cfgView.caption(`classifier-free, s = ${sv}`);
          out.push(`classifier-free: ${cfg.msPerStep.toFixed(0)} ms/step`);
          reportStepTime(cfg.msPerStep, 'U-Net CFG step');
          if (classifier) {
            const c = classifier.model as unknown as NoiseConditionalClassifier;
            const res = await sampleImages(
              classifierGuidance(net, c, { scale: sv }),
              { steps: Number(steps.value), n: count, shape, labels, seed: 4 },
              clsView,
            );
            clsView.caption(`classifier guidance, s = ${sv}`);
            out.push(`classifier: ${res.msPerStep.toFixed(0)} ms/step`);
          } else {
            clsView.clear();
            clsView.caption('no noise-conditional MNIST classifier is shipped');
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
