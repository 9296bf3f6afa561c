/**
 * Live training of an MLP denoiser on the chosen toy data, in the browser: `Mlp` from
 * `@diffuse/models`, the epsilon-prediction loss (`diffusionLoss` of `@diffuse/train` over
 * `denoisingLoss` of `@diffuse/losses`: Ho et al. 2020's "simple" loss, uniform weighting) with noise
 * levels drawn uniformly in logSNR, and the seeded `Trainer` (Adam with warm-up and clipping).
 */
import type { ToyBatch } from '@diffuse/data';
import { uniformLogSNRSampler } from '@diffuse/losses';
import { Mlp, mlpConfig } from '@diffuse/models';
import { diffusionLoss, Trainer } from '@diffuse/train';
import type uPlot from 'uplot';
import { reportStepTime } from './backend.js';
import type { PlaygroundData } from './data.js';
import { lineChart } from './plots.js';
import { act, button, el, labelled, number, row, section, select } from './ui.js';

/** The logSNR range trained on: covers the Karras sampling range sigma_VE in [0.002, 80] (logSNR = -2 ln sigma_VE). */
export const TRAIN_LOGSNR = { min: -9, max: 12.5 } as const;

export interface TrainSection {
  /** The trained model, or undefined before any training step. */
  model(): Mlp | undefined;
  /** Forgets the model (when the data set changes). */
  reset(): void;
}

export function mountTraining(getData: () => PlaygroundData, onTrained: () => void): TrainSection {
  const s = section(
    'train',
    '2. Train an MLP denoiser, live',
    'A residual MLP (SiLU, sinusoidal logSNR features) learns to predict the noise ε from x<sub>t</sub> = α x<sub>0</sub> + σ ε, with logSNR drawn uniformly in [−9, 12.5] and fresh data every step (the "simple" loss of Ho et al. 2020, Luo eq. 130). Every click trains that many more steps of Adam.',
  );
  const width = select('train-width', ['64', '128', '256'], '128');
  const steps = number('train-steps', 1, 20000, 400);
  const batch = number('train-batch', 8, 4096, 256);
  const lr = number('train-lr', 0, 1, 0.002);
  lr.step = '0.0005';
  const go = button('train-button', 'Train');
  const stop = button('train-stop', 'Stop');
  const reset = button('train-reset', 'Reset model');
  row(
    s,
    labelled('width', width),
    labelled('steps', steps),
    labelled('batch', batch),
    labelled('learning rate', lr),
    go,
    stop,
    reset,
  );
  const info = el(
    'div',
    { className: 'readout' },
    'step ',
    el('b', { id: 'train-step', textContent: '0' }),
    ', loss ',
    el('b', { id: 'loss-value', textContent: '–' }),
    ' ',
    el('span', { id: 'train-info' }),
  );
  s.append(info);
  const chartBox = el('div', { id: 'loss-chart' });
  s.append(chartBox);
  const chart: uPlot = lineChart(chartBox, {
    title: 'training loss (per step, and mean of the last 10)',
    xLabel: 'step',
    width: 640,
    series: [
      { label: 'loss', color: '#9ecae1' },
      { label: 'mean loss', color: '#08519c' },
    ],
  });

  let model: Mlp | undefined;
  let trainer: Trainer<ToyBatch> | undefined;
  let abort: AbortController | undefined;
  const hist = { step: [] as number[], loss: [] as number[], mean: [] as number[] };
  const lossEl = document.getElementById('loss-value')!;

  const forget = () => {
    model?.dispose();
    model = undefined;
    trainer = undefined;
    hist.step.length = hist.loss.length = hist.mean.length = 0;
    chart.setData([[], [], []]);
    document.getElementById('train-step')!.textContent = '0';
    lossEl.textContent = '–';
    lossEl.dataset.losses = '[]';
  };

  const ensure = (): Trainer<ToyBatch> => {
    if (trainer && model) return trainer;
    const d = getData();
    model = new Mlp(
      mlpConfig({ dim: 2, width: Number(width.value), depth: 3, prediction: 'epsilon' }),
      { seed: 1 },
    );
    const net = model;
    const sampler = uniformLogSNRSampler(TRAIN_LOGSNR.min, TRAIN_LOGSNR.max, {
      sampling: 'low-discrepancy',
    });
    trainer = new Trainer<ToyBatch>({
      params: net.params,
      data: (rng) => d.toy.sample(Number(batch.value), rng),
      loss: diffusionLoss(net, { sampler }),
      seed: 0,
      optimizer: { learningRate: Number(lr.value), warmupSteps: 50, clipNorm: 1 },
      logEvery: 10,
    });
    return trainer;
  };

  go.addEventListener(
    'click',
    () =>
      void act(s, async () => {
        const t = ensure();
        const start = t.step;
        abort = new AbortController();
        let last = performance.now();
        let lastStep = start;
        const onStep = () => {
          // Trainer.losses holds every step's loss; plot what arrived since the last draw.
          for (let k = hist.step.length; k < t.losses.length; k++) {
            hist.step.push(k + 1);
            hist.loss.push(t.losses[k]!);
            const tail = t.losses.slice(Math.max(0, k - 9), k + 1);
            hist.mean.push(tail.reduce((a, b) => a + b, 0) / tail.length);
          }
          chart.setData([hist.step, hist.loss, hist.mean]);
          const now = performance.now();
          if (t.step > lastStep)
            reportStepTime((now - last) / (t.step - lastStep), 'training step');
          last = now;
          lastStep = t.step;
          document.getElementById('train-step')!.textContent = String(t.step);
          lossEl.textContent = hist.mean.at(-1)!.toFixed(4);
          lossEl.dataset.losses = JSON.stringify(t.losses);
        };
        const total = start + Number(steps.value);
        // Run in chunks so the page repaints and the loss curve grows while training.
        while (t.step < total && !abort.signal.aborted) {
          await t.run(Math.min(total, t.step + 10), { signal: abort.signal });
          onStep();
          await new Promise((ok) => setTimeout(ok, 0));
        }
        document.getElementById('train-info')!.textContent =
          `(${model!.numParams} parameters, width ${width.value}, batch ${batch.value})`;
        onTrained();
      }),
  );
  stop.addEventListener('click', () => abort?.abort());
  reset.addEventListener('click', () => {
    abort?.abort();
    void act(s, async () => {
      forget();
      onTrained();
    });
  });
  width.addEventListener('change', () => reset.click());
  return {
    model: () => model,
    reset: () => {
      abort?.abort();
      void act(s, async () => forget());
    },
  };
}
