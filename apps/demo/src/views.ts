/**
 * The paper's central equivalence (Luo 2022, sec. 2.4, eq. 133-151): at one noise level, the
 * posterior mean x0, the noise epsilon and the score grad log p_t carry the same information,
 *
 *     x_t = alpha x0_hat + sigma eps_hat,      score = -eps_hat / sigma = (alpha x0_hat - x_t) / sigma^2.
 *
 * For the same noisy points this section draws all three for the exact oracle and for the trained
 * model, converts each back to x0 through `convertPrediction` (the toolkit's one conversion module),
 * and prints how far apart the three routes land.
 */
import type { Denoiser } from '@diffuse/models';
import {
  convertPrediction,
  logSNRFromLevel,
  type NoiseLevel,
  vpLevelFromLogSNR,
} from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import type { PlaygroundData } from './data.js';
import { noisy } from './forward.js';
import { PlaneView } from './plots.js';
import type { DemoSchedule } from './schedule.js';
import { act, el, labelled, range, row, section } from './ui.js';

const SHOWN = 96;

interface Triple {
  x0: Float32Array;
  eps: Float32Array;
  score: Float32Array;
  /** max |x0 - x0(eps)| and max |x0 - x0(score)| after converting back. */
  gapEps: number;
  gapScore: number;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

/** The three predictions of `predict` (any declared parameterization) for points x at `level`. */
async function triple(
  x: tf.Tensor,
  level: NoiseLevel<number>,
  denoiser: Denoiser,
): Promise<Triple> {
  const out = tf.tidy(() => {
    const raw = denoiser.predict(x, level);
    const x0 = convertPrediction(raw, denoiser.prediction, 'x0', x, level);
    const eps = convertPrediction(raw, denoiser.prediction, 'epsilon', x, level);
    const score = convertPrediction(raw, denoiser.prediction, 'score', x, level);
    const back1 = convertPrediction(eps, 'epsilon', 'x0', x, level);
    const back2 = convertPrediction(score, 'score', 'x0', x, level);
    return [x0, eps, score, tf.max(tf.abs(tf.sub(x0, back1))), tf.max(tf.abs(tf.sub(x0, back2)))];
  });
  const [x0, eps, score, g1, g2] = out as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const r = {
    x0: await read(x0),
    eps: await read(eps),
    score: await read(score),
    gapEps: (await g1.data())[0]!,
    gapScore: (await g2.data())[0]!,
  };
  tf.dispose(out);
  return r;
}

/** The oracle computed directly by its three methods (not through conversion). */
async function oracleTriple(
  x: tf.Tensor,
  level: NoiseLevel<number>,
  d: PlaygroundData,
): Promise<Triple> {
  const out = tf.tidy(() => {
    const x0 = d.oracle.x0(x, level);
    const eps = d.oracle.epsilon(x, level);
    const score = d.oracle.score(x, level);
    const back1 = convertPrediction(eps, 'epsilon', 'x0', x, level);
    const back2 = convertPrediction(score, 'score', 'x0', x, level);
    return [x0, eps, score, tf.max(tf.abs(tf.sub(x0, back1))), tf.max(tf.abs(tf.sub(x0, back2)))];
  });
  const [x0, eps, score, g1, g2] = out as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
  const r = {
    x0: await read(x0),
    eps: await read(eps),
    score: await read(score),
    gapEps: (await g1.data())[0]!,
    gapScore: (await g2.data())[0]!,
  };
  tf.dispose(out);
  return r;
}

export interface ViewsSection {
  redraw(): Promise<void>;
}

export function mountViews(
  getData: () => PlaygroundData,
  schedule: () => DemoSchedule,
  model: () => Denoiser | undefined,
): ViewsSection {
  const s = section(
    'views',
    '4. Three equivalent views: x0, epsilon, score',
    'At one noise level, the same noisy points x<sub>t</sub> (grey) with the predicted clean point x̂<sub>0</sub>, the predicted noise ε̂ and the score ∇log p<sub>t</sub> = −ε̂/σ (drawn times σ², so it ends at α x̂<sub>0</sub>; ε̂ is drawn times −σ, landing on the same spot). Top: the exact oracle; bottom: the MLP trained in section 2, whose ε-prediction is converted to the other two.',
  );
  const t = range('views-t', 0.02, 0.98, 0.01, 0.4);
  const readout = el('span', { id: 'views-level', className: 'readout' });
  row(s, labelled('t', t), readout);
  const top = el('div', { className: 'panels' });
  const bottom = el('div', { className: 'panels' });
  s.append(top, bottom);
  const size = 240;
  const o = {
    x0: new PlaneView(top, { id: 'view-x0-oracle', size, extent: 3.5, title: 'oracle: x̂0' }),
    eps: new PlaneView(top, { id: 'view-eps-oracle', size, extent: 3.5, title: 'oracle: −σ ε̂' }),
    score: new PlaneView(top, {
      id: 'view-score-oracle',
      size,
      extent: 3.5,
      title: 'oracle: σ² score',
    }),
  };
  const m = {
    x0: new PlaneView(bottom, { id: 'view-x0-model', size, extent: 3.5, title: 'trained MLP: x̂0' }),
    eps: new PlaneView(bottom, {
      id: 'view-eps-model',
      size,
      extent: 3.5,
      title: 'trained MLP: −σ ε̂',
    }),
    score: new PlaneView(bottom, {
      id: 'view-score-model',
      size,
      extent: 3.5,
      title: 'trained MLP: σ² score',
    }),
  };
  const table = el('table', { id: 'views-table', className: 'small' });
  s.append(table);

  const draw = (views: typeof o, xt: Float32Array, r: Triple, level: NoiseLevel<number>) => {
    for (const v of Object.values(views)) {
      v.clear();
      v.points(xt, { color: '#999', radius: 1.5 });
    }
    const toX0 = new Float32Array(xt.length);
    for (let i = 0; i < xt.length; i++) toX0[i] = r.x0[i]! - xt[i]!;
    views.x0.arrows(xt, toX0, { color: '#1f77b4' });
    views.x0.points(r.x0, { color: '#1f77b4', radius: 2 });
    views.eps.arrows(xt, r.eps, { scale: -level.sigma, color: '#d62728' });
    views.score.arrows(xt, r.score, { scale: level.sigma * level.sigma, color: '#2ca02c' });
  };

  const redraw = () =>
    act(s, async () => {
      const d = getData();
      const tv = Number(t.value);
      // The same noise level in variance-preserving form (equal logSNR), so VE schedules draw on the same plane.
      const level = vpLevelFromLogSNR(logSNRFromLevel(schedule().level(tv)));
      readout.textContent = `α = ${level.alpha.toFixed(3)}, σ = ${level.sigma.toFixed(3)}, logSNR = ${logSNRFromLevel(level).toFixed(2)}`;
      const n = Math.min(SHOWN, d.n);
      const xt = await noisy(d.points.subarray(0, 2 * n), n, level, 11);
      const x = tf.tensor2d(xt, [n, 2]);
      try {
        const ro = await oracleTriple(x, level, d);
        draw(o, xt, ro, level);
        const rows: string[][] = [
          ['', 'max |x̂0 − x̂0(ε̂)|', 'max |x̂0 − x̂0(score)|', 'RMS x̂0 vs oracle'],
          [
            d.exactOracle ? 'exact oracle' : 'oracle (empirical data)',
            ro.gapEps.toExponential(1),
            ro.gapScore.toExponential(1),
            '0',
          ],
        ];
        const net = model();
        if (net) {
          const rm = await triple(x, level, net);
          draw(m, xt, rm, level);
          m.x0.caption('trained MLP: x̂0');
          m.eps.caption('trained MLP: −σ ε̂');
          m.score.caption('trained MLP: σ² score');
          let se = 0;
          for (let i = 0; i < rm.x0.length; i++) se += (rm.x0[i]! - ro.x0[i]!) ** 2;
          rows.push([
            'trained MLP',
            rm.gapEps.toExponential(1),
            rm.gapScore.toExponential(1),
            Math.sqrt(se / n).toFixed(3),
          ]);
        } else {
          for (const v of Object.values(m)) {
            v.clear();
            v.caption('train the MLP in section 2 first');
          }
        }
        table.replaceChildren(
          ...rows.map((r, i) =>
            el('tr', {}, ...r.map((c) => el(i === 0 ? 'th' : 'td', { textContent: c }))),
          ),
        );
      } finally {
        x.dispose();
      }
    });
  t.addEventListener('input', () => void redraw());
  return { redraw };
}
