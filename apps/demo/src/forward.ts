/**
 * Forward process: x_t = alpha_t x0 + sigma_t eps (Luo 2022, eq. 69-70), on the chosen data set and
 * schedule, with alpha, sigma and logSNR = 2 log(alpha / sigma) plotted against t.
 */
import { Random } from '@diffuse/backend';
import { addNoise, logSNRFromLevel, type NoiseLevel } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type uPlot from 'uplot';
import { DATASETS, type PlaygroundData } from './data.js';
import { lineChart, PlaneView } from './plots.js';
import { type DemoSchedule, SCHEDULES, scheduleCurves } from './schedule.js';
import { act, button, el, labelled, nextFrame, range, row, section, select } from './ui.js';

export interface ForwardSection {
  schedule(): DemoSchedule;
  onDatasetChange(cb: (name: string) => void): void;
  redraw(): Promise<void>;
}

/** x_t = alpha x0 + sigma eps (`addNoise`) for the points, with fixed noise (seed 7) so the slider moves each point along one line. */
export async function noisy(
  points: Float32Array,
  n: number,
  level: NoiseLevel<number>,
  seed = 7,
): Promise<Float32Array> {
  const eps = Random.seed(seed).normalArray(n * 2);
  const out = tf.tidy(() => addNoise(tf.tensor2d(points, [n, 2]), tf.tensor2d(eps, [n, 2]), level));
  const arr = Float32Array.from(await out.data());
  out.dispose();
  return arr;
}

export function mountForward(getData: () => PlaygroundData): ForwardSection {
  const s = section(
    'forward',
    '1. Forward process',
    'Pick a data set and drag <i>t</i>: each point moves along x<sub>t</sub> = α<sub>t</sub> x<sub>0</sub> + σ<sub>t</sub> ε with its own fixed ε. The chart shows the schedule: α, σ and logSNR = 2 log(α/σ).',
  );
  const dataset = select('dataset-select', DATASETS, 'two-moons');
  const schedSel = select(
    'schedule-select',
    SCHEDULES.map((x) => x.name),
  );
  const t = range('forward-t', 0, 1, 0.01, 0.3);
  const readout = el('span', { id: 'forward-level', className: 'readout' });
  const play = button('forward-play', 'Play 0 → 1');
  row(
    s,
    labelled('data', dataset),
    labelled('schedule', schedSel),
    labelled('t', t),
    play,
    readout,
  );
  const panels = el('div', { className: 'panels' });
  s.append(panels);
  const view = new PlaneView(panels, {
    id: 'forward-canvas',
    size: 300,
    extent: 3.5,
    title: 'x_t (colour: class)',
  });
  const chartBox = el('div', { id: 'schedule-chart' });
  panels.append(chartBox);
  let chart: uPlot | undefined;

  const schedule = () => SCHEDULES.find((x) => x.name === schedSel.value) ?? SCHEDULES[0]!;

  const drawChart = () => {
    const c = scheduleCurves(schedule());
    if (
      chart &&
      chart.root.querySelector('.u-title')?.textContent !== `schedule: ${schedule().name}`
    ) {
      chart.destroy();
      chart = undefined;
    }
    if (!chart) {
      chart = lineChart(chartBox, {
        title: `schedule: ${schedule().name}`,
        xLabel: 't',
        series: [
          { label: 'alpha', color: '#1f77b4' },
          { label: 'sigma', color: '#d62728' },
          { label: 'logSNR', color: '#2ca02c', scale: 'y2' },
        ],
      });
    }
    chart.setData([c.t, c.alpha, c.sigma, c.logSNR]);
  };

  const redraw = () =>
    act(s, async () => {
      const d = getData();
      const tv = Number(t.value);
      const level = schedule().level(tv);
      const xt = await noisy(d.points, d.n, level);
      // Variance-exploding schedules grow x_t without bound: draw x_t / sqrt(alpha^2 + sigma^2) then.
      const shrink = schedule().variancePreserving ? 1 : 1 / Math.hypot(level.alpha, level.sigma);
      if (shrink !== 1) for (let i = 0; i < xt.length; i++) xt[i] = xt[i]! * shrink;
      view.clear();
      view.points(xt, { labels: d.labels });
      readout.textContent = `α = ${level.alpha.toFixed(3)}, σ = ${level.sigma.toFixed(3)}, logSNR = ${logSNRFromLevel(level).toFixed(2)}`;
      view.caption(
        `x_t at t = ${tv.toFixed(2)} (${d.n} points of ${d.name}; colour: class)${shrink !== 1 ? `, drawn times ${shrink.toPrecision(2)} (VE)` : ''}`,
      );
    });

  const datasetCbs: ((name: string) => void)[] = [];
  dataset.addEventListener('change', () => {
    for (const cb of datasetCbs) cb(dataset.value);
  });
  t.addEventListener('input', () => void redraw());
  let playing = false;
  play.addEventListener('click', async () => {
    if (playing) return;
    playing = true;
    for (let k = 0; k <= 50; k++) {
      t.value = String(k / 50);
      await redraw();
      await nextFrame();
    }
    playing = false;
  });
  schedSel.addEventListener('change', () => {
    drawChart();
    void redraw();
  });
  drawChart();
  return { schedule, onDatasetChange: (cb) => datasetCbs.push(cb), redraw };
}
