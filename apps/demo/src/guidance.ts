/**
 * Guidance on a class-conditional 2-D mixture: pick a class, move the guidance scale, and compare
 * classifier-free guidance (Ho & Salimans 2022: eps_u + s (eps_c - eps_u)) with classifier guidance
 * (Dhariwal & Nichol 2021: score + s grad log p_t(y | x_t)), both from `@diffuse/guidance`, both
 * run by the same sampler from the same noise. At s = 1 both are the exact conditional model; at
 * s = 0 both are unconditional; above 1 samples are pushed away from the other classes.
 *
 * The class accuracy printed under each panel is measured with the exact posterior p(y | x) of the
 * data's mixture (its classLogPosterior at a small noise level).
 */
import { Random } from '@diffuse/backend';
import { toyDistribution } from '@diffuse/data';
import { classifierFreeGuidance, classifierGuidance, mixtureClassifier } from '@diffuse/guidance';
import type { Denoiser, GaussianMixture } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { reportStepTime } from './backend.js';
import { PlaneView } from './plots.js';
import { runSampler } from './sampling.js';
import { loadShipped, shippedModels } from './shipped.js';
import { act, button, el, labelled, nextFrame, number, range, row, section, select } from './ui.js';

/** A class-conditional 2-D model the section can guide. */
export interface GuidedModel {
  name: string;
  /** The exact mixture the model describes (for the exact classifier, accuracy and the data drawn behind). */
  mixture: GaussianMixture;
  /** The class-conditional denoiser (null label = numClasses means unconditional). */
  denoiser: Denoiser;
  /** The unconditional denoiser classifier guidance starts from. */
  unconditional: Denoiser;
}

/** The exact oracle of the eight-Gaussians toy: 8 classes, one per component. */
export function oracleGuidedModel(): GuidedModel {
  const toy = toyDistribution('eight-gaussians') as unknown as { mixture: GaussianMixture };
  const d = toy.mixture.denoiser('epsilon');
  return {
    name: 'exact oracle (eight Gaussians)',
    mixture: toy.mixture,
    denoiser: d,
    unconditional: d,
  };
}

/**
 * The class-conditional MLP trained on eight Gaussians by `diffuse-train mixture` and shipped in
 * `packages/train/weights/`: classifier-free guidance uses its learned null class; classifier
 * guidance starts from the same network without labels (the null class: its unconditional model)
 * and adds the exact mixture classifier's gradient.
 */
export async function shippedGuidedModels(): Promise<GuidedModel[]> {
  const out: GuidedModel[] = [];
  const mixture = (toyDistribution('eight-gaussians') as unknown as { mixture: GaussianMixture })
    .mixture;
  for (const entry of shippedModels()) {
    const c = entry.config as { kind?: string; dim?: number; numClasses?: number } | undefined;
    if (c?.kind !== 'mlp' || c.dim !== 2 || c.numClasses !== mixture.numClasses) continue;
    const loaded = await loadShipped(entry);
    const net = loaded.model as unknown as Denoiser;
    out.push({ name: `trained MLP (${entry.name})`, mixture, denoiser: net, unconditional: net });
  }
  return out;
}

/** Fraction of samples whose most probable class under the exact posterior is `cls`. */
async function accuracy(
  mixture: GaussianMixture,
  samples: Float32Array,
  cls: number,
): Promise<number> {
  const acc = tf.tidy(() => {
    const logp = mixture.classLogPosterior(tf.tensor2d(samples, [samples.length / 2, 2]), {
      alpha: 1,
      sigma: 0.01,
    });
    return tf.mean(tf.cast(tf.equal(tf.argMax(logp, 1), cls), 'float32'));
  });
  const v = (await acc.data())[0]!;
  acc.dispose();
  return v;
}

export function mountGuidance(models: () => GuidedModel[]): { refresh(): void } {
  const s = section(
    'guidance',
    '5. Guidance: classifier-free against classifier',
    'Pick a class and move the guidance scale s. Left: classifier-free guidance, ε̂ = ε̂(x, ∅) + s (ε̂(x, y) − ε̂(x, ∅)). Right: classifier guidance, ∇log p(x) + s ∇log p(y | x), with the exact noisy classifier p<sub>t</sub>(y | x) of the mixture. s = 0 is unconditional, s = 1 the exact conditional; larger s trades diversity for class fidelity. Same sampler (DPM-Solver++ 2M), same noise.',
  );
  const modelSel = select('guide-model', []);
  const cls = select('guide-class', []);
  const scale = range('guide-scale', 0, 10, 0.5, 3);
  const scaleOut = el('b', { id: 'guide-scale-value', textContent: '3' });
  const steps = number('guide-steps', 2, 200, 20);
  const n = number('guide-n', 8, 4096, 384);
  const go = button('guide-button', 'Sample');
  row(
    s,
    labelled('model', modelSel),
    labelled('class', cls),
    labelled('scale s', scale),
    scaleOut,
    labelled('steps', steps),
    labelled('samples', n),
    go,
  );
  const panels = el('div', { className: 'panels' });
  s.append(panels);
  const cfgView = new PlaneView(panels, {
    id: 'guide-cfg',
    size: 320,
    extent: 3,
    title: 'classifier-free guidance',
  });
  const clsView = new PlaneView(panels, {
    id: 'guide-classifier',
    size: 320,
    extent: 3,
    title: 'classifier guidance',
  });
  const info = el('div', { id: 'guide-info', className: 'readout' });
  s.append(info);

  const current = () => models().find((m) => m.name === modelSel.value) ?? models()[0]!;
  const refresh = () => {
    const names = models().map((m) => m.name);
    const keep = modelSel.value;
    modelSel.replaceChildren(...names.map((x) => el('option', { value: x, textContent: x })));
    if (names.includes(keep)) modelSel.value = keep;
    const k = current().mixture.numClasses;
    const keepCls = cls.value;
    cls.replaceChildren(
      ...Array.from({ length: k }, (_, i) =>
        el('option', { value: String(i), textContent: `class ${i}` }),
      ),
    );
    if (keepCls !== '' && Number(keepCls) < k) cls.value = keepCls;
  };
  refresh();
  modelSel.addEventListener('change', refresh);

  const runOnce = () =>
    act(s, async () => {
      const m = current();
      const y = Number(cls.value);
      const sv = Number(scale.value);
      const count = Number(n.value);
      const labels = tf.fill([count], y, 'int32');
      const data = m.mixture.sampleArray(1024, Random.seed(5));
      try {
        const methods: [PlaneView, Denoiser, string][] = [
          [cfgView, classifierFreeGuidance(m.denoiser, { guidanceScale: sv }), 'cfg'],
          [
            clsView,
            classifierGuidance(m.unconditional, mixtureClassifier(m.mixture), { scale: sv }),
            'classifier',
          ],
        ];
        const out: string[] = [];
        for (const [view, den, key] of methods) {
          const res = await runSampler(den, {
            sampler: 'dpmpp_2m',
            steps: Number(steps.value),
            n: count,
            seed: 3,
            cond: { labels },
          });
          const acc = await accuracy(m.mixture, res.samples, y);
          view.clear();
          view.points(data.x, { labels: data.classes, radius: 1, alpha: 0.25 });
          view.points(res.samples, { color: '#111', radius: 1.5, alpha: 0.8 });
          view.caption(
            `${key === 'cfg' ? 'classifier-free' : 'classifier'} guidance, s = ${sv}: ${(100 * acc).toFixed(1)}% of samples in class ${y}`,
          );
          view.canvas.dataset.accuracy = String(acc);
          out.push(
            `${key}: ${(100 * acc).toFixed(1)}% in class ${y}, ${res.msPerStep.toFixed(1)} ms/step (NFE ${res.nfe})`,
          );
          reportStepTime(res.msPerStep, `guided ${key} step`);
          await nextFrame();
        }
        info.textContent = out.join('; ');
      } finally {
        labels.dispose();
      }
    });

  go.addEventListener('click', () => void runOnce());
  scale.addEventListener('input', () => {
    scaleOut.textContent = scale.value;
  });
  // Re-sample when the slider is released or the class changes (not on every pixel of a drag).
  scale.addEventListener('change', () => void runOnce());
  cls.addEventListener('change', () => void runOnce());
  return { refresh };
}
