/**
 * Sampling: any registered sampler of `@diffuse/samplers`, any step count, from the exact oracle or
 * the MLP trained above, with the reverse trajectories animated step by step (`sampleSteps`); and a
 * side-by-side comparison of samplers at an equal number of model evaluations (NFE).
 */
import { Random } from '@diffuse/backend';
import type { Denoiser } from '@diffuse/models';
import { getSampler, listSamplers, type SampleOptions, sampleSteps } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import type uPlot from 'uplot';
import { reportStepTime } from './backend.js';
import type { PlaygroundData } from './data.js';
import { lineChart, PALETTE, PlaneView } from './plots.js';
import { act, button, el, labelled, nextFrame, number, row, section, select } from './ui.js';

/** NFE budgets of the sweep. */
const SWEEP_NFE = [4, 6, 10, 16, 24] as const;

/** The noise levels every run here uses: Karras et al.'s rho = 7 spacing of sigma_VE in [0.002, 80]. */
const PLAN = { schedule: 'karras', sigmaMin: 0.002, sigmaMax: 80 } as const satisfies SampleOptions;

export interface RunResult {
  /** Final samples, flat [n*2]. */
  samples: Float32Array;
  /** VP-scaled states x_t = x_VE / sqrt(1 + sigma^2) at every step, then the samples. */
  path: Float32Array[];
  nfe: number;
  steps: number;
  msPerStep: number;
}

/** Wraps a denoiser so its calls are counted (the NFE). */
function counted(d: Denoiser): { denoiser: Denoiser; calls: () => number } {
  let n = 0;
  return {
    denoiser: {
      prediction: d.prediction,
      ...(d.shape !== undefined ? { shape: d.shape } : {}),
      ...(d.numClasses !== undefined ? { numClasses: d.numClasses } : {}),
      predict: (x, level, cond) => {
        n++;
        return d.predict(x, level, cond);
      },
    },
    calls: () => n,
  };
}

/**
 * Runs `sampler` and records its path; `onStep` may draw (its time is not counted in ms/step).
 */
export async function runSampler(
  denoiser: Denoiser,
  opts: {
    /** A registered sampler's name (from the page's pickers). */
    sampler: string;
    steps: number;
    n: number;
    seed: number;
    cond?: SampleOptions['cond'];
  },
  onStep?: (path: Float32Array[], i: number, steps: number) => Promise<void>,
): Promise<RunResult> {
  const c = counted(denoiser);
  const it = sampleSteps(c.denoiser, {
    ...PLAN,
    sampler: getSampler(opts.sampler).name,
    steps: opts.steps,
    shape: [opts.n, 2],
    seed: opts.seed,
    cond: opts.cond,
  });
  const path: Float32Array[] = [];
  let busy = 0;
  let steps = 0;
  for (;;) {
    const t0 = performance.now();
    const r = await it.next();
    busy += performance.now() - t0;
    if (r.done) {
      const samples = Float32Array.from(await r.value.data());
      r.value.dispose();
      path.push(samples);
      if (onStep) await onStep(path, steps, steps);
      return { samples, path, nfe: c.calls(), steps, msPerStep: busy / Math.max(1, steps) };
    }
    const info = r.value;
    steps = info.steps;
    const vp = tf.tidy(() => tf.mul(info.x, 1 / Math.sqrt(1 + info.sigma * info.sigma)));
    path.push(Float32Array.from(await vp.data()));
    vp.dispose();
    if (onStep) await onStep(path, info.i, info.steps);
  }
}

/** A zero denoiser: lets us count a sampler's model calls for a step count without real work. */
const NULL_DENOISER: Denoiser = { prediction: 'x0', predict: (x) => tf.zerosLike(x) };

/** The most steps whose NFE does not exceed `nfe` for this sampler (at least 1), and that NFE. */
export async function stepsForNfe(
  sampler: string,
  nfe: number,
): Promise<{ steps: number; nfe: number }> {
  for (let steps = nfe; steps >= 1; steps--) {
    const c = counted(NULL_DENOISER);
    const it = sampleSteps(c.denoiser, {
      ...PLAN,
      sampler: getSampler(sampler).name,
      steps,
      shape: [1, 2],
      seed: 0,
      checkFinite: false,
    });
    for (let r = await it.next(); ; r = await it.next()) {
      if (r.done) {
        r.value.dispose();
        break;
      }
    }
    if (c.calls() <= nfe) return { steps, nfe: c.calls() };
  }
  return { steps: 1, nfe: Number.NaN };
}

/** Mean log p_0(x) under the oracle (a kernel density estimate for the non-mixture data sets). */
export async function meanLogLikelihood(d: PlaygroundData, samples: Float32Array): Promise<number> {
  const lp = tf.tidy(() =>
    tf.mean(
      d.oracle.logProb(tf.tensor2d(samples, [samples.length / 2, 2]), { alpha: 1, sigma: 0.05 }),
    ),
  );
  const v = (await lp.data())[0]!;
  lp.dispose();
  return v;
}

/** Reference values of the same measure: fresh data (seed 99) and standard-normal noise. */
export async function logLikelihoodBaselines(
  d: PlaygroundData,
  n = 512,
): Promise<{ data: number; noise: number }> {
  const fresh = d.toy.sample(n, Random.seed(99));
  const dataLL = await meanLogLikelihood(d, (await fresh.x.data()) as Float32Array);
  tf.dispose([fresh.x, fresh.labels]);
  return { data: dataLL, noise: await meanLogLikelihood(d, Random.seed(98).normalArray(2 * n)) };
}

export interface SamplingSection {
  redrawIdle(): void;
}

export function mountSampling(
  getData: () => PlaygroundData,
  getModel: () => Denoiser | undefined,
): SamplingSection {
  const samplers = listSamplers();
  const names = samplers.map((d) => d.name);
  // ---- single sampler, animated
  const s = section(
    'sample',
    '3. Sample: the reverse process',
    "Start from pure noise and run any registered sampler; lines are the trajectories of x<sub>t</sub> (shown variance-preserving: x<sub>t</sub> = α x<sub>0</sub> + σ ε), from the noise at σ<sub>VE</sub> = 80 down to data (Karras et al.'s noise levels). The oracle is the exact denoiser of the data; the MLP is the one trained in section 2.",
  );
  const model = select(
    'sample-model',
    [
      ['oracle', 'exact oracle'],
      ['mlp', 'trained MLP'],
    ],
    'oracle',
  );
  const sampler = select('sampler-select', names, 'dpmpp_2m');
  for (const o of Array.from(sampler.options))
    o.title = samplers.find((d) => d.name === o.value)?.description ?? '';
  const steps = number('sample-steps', 1, 500, 20);
  const n = number('sample-n', 1, 4096, 512);
  const go = button('sample-button', 'Sample');
  row(
    s,
    labelled('model', model),
    labelled('sampler', sampler),
    labelled('steps', steps),
    labelled('samples', n),
    go,
  );
  const desc = el('div', { className: 'intro', id: 'sampler-description' });
  s.append(desc);
  const showDesc = () => {
    const d = samplers.find((x) => x.name === sampler.value);
    desc.textContent = d ? `${d.description} (${d.reference})` : '';
  };
  sampler.addEventListener('change', showDesc);
  showDesc();
  const panels = el('div', { className: 'panels' });
  s.append(panels);
  const view = new PlaneView(panels, {
    id: 'sample-canvas',
    size: 380,
    extent: 3.5,
    title: 'samples',
  });
  const info = el('div', { id: 'sample-info', className: 'readout' });
  s.append(info);

  const denoiserFor = (which: string): Denoiser => {
    if (which === 'mlp') {
      const m = getModel();
      if (!m) throw new Error('train the MLP in section 2 first (or sample from the exact oracle)');
      return m;
    }
    return getData().oracle.denoiser('x0');
  };

  go.addEventListener(
    'click',
    () =>
      void act(s, async () => {
        const d = getData();
        const res = await runSampler(
          denoiserFor(model.value),
          { sampler: sampler.value, steps: Number(steps.value), n: Number(n.value), seed: 1 },
          async (path, i, total) => {
            view.clear();
            view.points(d.points, { color: '#ccc', radius: 1.2, alpha: 0.6 });
            view.trajectories(path, { maxLines: 80, color: '#555' });
            view.points(path.at(-1)!, { color: PALETTE[1]!, radius: 1.6 });
            view.caption(i < total ? `step ${i + 1} / ${total}` : `done: ${total} steps`);
            await nextFrame();
          },
        );
        reportStepTime(res.msPerStep, `${sampler.value} step`);
        const ll = await meanLogLikelihood(d, res.samples);
        const base = await logLikelihoodBaselines(d);
        info.textContent = `${sampler.value}: ${res.steps} steps, NFE ${res.nfe}, ${res.msPerStep.toFixed(1)} ms/step; mean log p(x) under the oracle: samples ${ll.toFixed(2)} (fresh data ${base.data.toFixed(2)}, N(0, I) noise ${base.noise.toFixed(2)})`;
        info.dataset.loglikData = String(base.data);
        info.dataset.loglikNoise = String(base.noise);
        info.dataset.nfe = String(res.nfe);
        info.dataset.ms = String(res.msPerStep);
        info.dataset.loglik = String(ll);
      }),
  );

  // ---- comparison at equal NFE
  const c = section(
    'compare',
    '3b. Samplers side by side at equal NFE',
    'Every sampler gets the same budget of model evaluations (NFE) and the same initial noise; higher-order and multistep solvers spend it better. Each panel says how many steps fit the budget, and the mean log-density of its samples under the oracle (higher is closer to the data).',
  );
  const nfe = number('compare-nfe', 2, 200, 10);
  const picks = [
    select('compare-a', names, 'euler'),
    select('compare-b', names, 'heun'),
    select('compare-c', names, 'dpmpp_2m'),
    select('compare-d', names, 'unipc'),
  ];
  const goCmp = button('compare-button', 'Compare');
  const goSweep = button('compare-sweep', 'Sweep NFE');
  goSweep.title = `mean log p(x) of each sampler's samples at NFE ${SWEEP_NFE.join(', ')}`;
  row(c, labelled('NFE', nfe), ...picks, goCmp, goSweep);
  const cmpPanels = el('div', { className: 'panels' });
  c.append(cmpPanels);
  const views = picks.map(
    (_, k) =>
      new PlaneView(cmpPanels, { id: `compare-canvas-${k}`, size: 240, extent: 3.5, title: '' }),
  );
  const table = el('table', { id: 'compare-table', className: 'small' });
  c.append(table);
  const sweepBox = el('div', { id: 'compare-sweep-chart' });
  c.append(sweepBox);
  let sweepChart: uPlot | undefined;
  goSweep.addEventListener(
    'click',
    () =>
      void act(c, async () => {
        const d = getData();
        const den = denoiserFor(model.value);
        const names = picks.map((p) => p.value);
        const curves: number[][] = names.map(() => []);
        const floor = (await logLikelihoodBaselines(d)).noise;
        for (const [k, name] of names.entries()) {
          for (const budget of SWEEP_NFE) {
            const fit = await stepsForNfe(name, budget);
            const res = await runSampler(den, {
              sampler: name,
              steps: fit.steps,
              n: Number(n.value),
              seed: 1,
            });
            // Clipped at N(0, I) noise's value, so one failed run does not flatten the other curves.
            curves[k]!.push(Math.max(floor, await meanLogLikelihood(d, res.samples)));
            await nextFrame();
          }
        }
        sweepChart?.destroy();
        sweepChart = lineChart(sweepBox, {
          title:
            'mean log p(x) of the samples under the oracle against NFE (higher is better; floor: N(0, I) noise)',
          xLabel: 'NFE',
          width: 640,
          series: names.map((name, k) => ({ label: name, color: PALETTE[k % PALETTE.length]! })),
        });
        sweepChart.setData([[...SWEEP_NFE], ...curves] as uPlot.AlignedData);
        sweepBox.dataset.curves = JSON.stringify(
          Object.fromEntries(names.map((name, k) => [name, curves[k]])),
        );
      }),
  );
  goCmp.addEventListener(
    'click',
    () =>
      void act(c, async () => {
        const d = getData();
        const den = denoiserFor(model.value);
        const rows: string[][] = [['sampler', 'steps', 'NFE', 'ms/step', 'mean log p(x)']];
        for (const [k, pick] of picks.entries()) {
          const budget = await stepsForNfe(pick.value, Number(nfe.value));
          const res = await runSampler(den, {
            sampler: pick.value,
            steps: budget.steps,
            n: Number(n.value),
            seed: 1,
          });
          const ll = await meanLogLikelihood(d, res.samples);
          const v = views[k]!;
          v.clear();
          v.points(d.points, { color: '#ccc', radius: 1.2, alpha: 0.6 });
          v.trajectories(res.path, { maxLines: 40, color: '#777' });
          v.points(res.samples, { color: PALETTE[k % PALETTE.length]!, radius: 1.6 });
          v.caption(`${pick.value}: ${res.steps} steps, NFE ${res.nfe}, log p ${ll.toFixed(2)}`);
          rows.push([
            pick.value,
            String(res.steps),
            String(res.nfe),
            res.msPerStep.toFixed(1),
            ll.toFixed(3),
          ]);
          reportStepTime(res.msPerStep, `${pick.value} step`);
          await nextFrame();
        }
        table.replaceChildren(
          ...rows.map((r, i) =>
            el('tr', {}, ...r.map((x) => el(i === 0 ? 'th' : 'td', { textContent: x }))),
          ),
        );
      }),
  );

  return {
    redrawIdle: () => {
      view.clear();
      view.points(getData().points, { color: '#ccc', radius: 1.2, alpha: 0.6 });
    },
  };
}
