/**
 * Sampler accuracy: error against the number of model evaluations (NFE) for every registered sampler,
 * driven by the exact denoiser of Gaussian mixtures (`GaussianMixture` from `@diffuse/models`), on the
 * Karras schedule (sigma 0.002 to 80, rho 7; Karras et al. 2022), the plot of DPM-Solver and EDM.
 *
 * - Against the exact probability-flow ODE solution: mean / max L2 between our end points and the
 *   exact ones from the same start noise. Mixture A (2-D, `reference-data/`): k-diffusion's `exact.A.end`
 *   for the 16 stored noise vectors (solved to ~1e-12). The higher-dimensional mixture: a Heun solve
 *   with many steps (its own error, estimated from a half-as-many-steps solve, is stored).
 * - Against the data distribution: sliced Wasserstein-2 and MMD^2 between the samples and fresh draws
 *   from the mixture, beside the floor of two independent data draws.
 * - Beside the reference implementations: every deterministic k-diffusion run of `reference-data/` with
 *   a sampler of the same name is re-run here on the same sigmas and noise.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Random } from '@diffuse/backend';
import { GaussianMixture, type GaussianMixtureSpec } from '@diffuse/models';
import {
  createScheduler,
  getSampler,
  listSamplers,
  type SampleOptions,
  type SamplerName,
  sample,
} from '@diffuse/samplers';
import { type BetaSchedule, DiscreteSchedule, predictionFromDiffusers } from '@diffuse/schedules';
import * as tf from '@tensorflow/tfjs-core';
import { recordBackend, useBackend } from '../backends.js';
import { medianDistance, mmd, rowL2, slicedWasserstein } from '../metrics.js';
import { refsDir } from '../paths.js';
import type {
  AccuracyCurve,
  AccuracySuite,
  MixtureRecord,
  ReferenceComparison,
} from '../results.js';
import { TimedDenoiser } from '../sampling.js';
import { type SuiteContext, since } from '../suite.js';

const SIGMA_MIN = 0.002;
const SIGMA_MAX = 80;
/** Rows used for the MMD (its cost is quadratic). */
const MMD_ROWS = 512;

interface MixtureCase {
  record: MixtureRecord;
  gm: GaussianMixture;
  /** Standard-normal start noise, samples x dim. */
  noise: Float32Array;
  /** Exact ODE end points of the first `exactRows` rows. */
  exact: Float64Array;
  exactRows: number;
  data: Float64Array;
  bandwidth: number;
}

interface KdRun {
  id: string;
  sampler: string;
  label: string;
  stochastic: boolean;
  kwargs: Record<string, unknown>;
  sigmas: number[] | null;
  num_model_calls: number;
  error_vs_exact?: { mean_l2: number; max_l2: number; reference?: string };
}

interface KdRefs {
  mixtures: { A: { dim: number; weights: number[]; means: number[][]; covs: number[][][] } };
  noise: { A: { data: number[][] } };
  exact: { A: { end: number[][] } };
  runs: KdRun[];
}

function loadKd(dir: string): KdRefs {
  return JSON.parse(readFileSync(resolve(dir, 'kdiffusion/trajectories.json'), 'utf8')) as KdRefs;
}

/** A deterministic higher-dimensional mixture: 4 components, full covariances. */
export function highDimMixture(d: number, seed: number): GaussianMixtureSpec {
  const rng = Random.seed(seed);
  const K = 4;
  const means = Array.from({ length: K }, () => Array.from(rng.normalArray(d), (v) => 1.5 * v));
  const covs = Array.from({ length: K }, () => {
    const b = rng.normalArray(d * d);
    return Array.from({ length: d }, (_, i) =>
      Array.from({ length: d }, (_, j) => {
        let s = 0;
        for (let k = 0; k < d; k++) s += b[i * d + k]! * b[j * d + k]!;
        return (0.1 * s) / d + (i === j ? 0.02 : 0);
      }),
    );
  });
  return { weights: [0.4, 0.3, 0.2, 0.1], means, covs };
}

async function read64(t: tf.Tensor): Promise<Float64Array> {
  const v = await t.data();
  return Float64Array.from(v as Float32Array);
}

/** Runs one sampler with the mixture's exact x0 denoiser; returns the samples and the NFE used. */
async function run(
  gm: GaussianMixture,
  noise: tf.Tensor,
  options: Omit<SampleOptions, 'noise'>,
): Promise<{ x: Float64Array; nfe: number }> {
  const timed = new TimedDenoiser(gm.denoiser('x0'));
  const out = await sample(timed, { ...options, noise });
  const x = await read64(out);
  out.dispose();
  return { x, nfe: timed.calls };
}

const karras = (steps: number): Omit<SampleOptions, 'noise'> => ({
  schedule: 'karras',
  steps,
  sigmaMin: SIGMA_MIN,
  sigmaMax: SIGMA_MAX,
});

/** How a sampler's model evaluations depend on its step count, measured on short probe runs. */
export interface NfeModel {
  /** NFE = a * steps + b (fitted on 4 and 6 steps). */
  a: number;
  b: number;
  /** Set when the step count does not fix the NFE (adaptive step sizes): why. */
  adaptive?: string;
  /**
   * NFE of 1-, 2- and 3-step runs (index = steps; start-up steps make them differ from the line);
   * undefined where the run threw.
   */
  few: (number | undefined)[];
}

/**
 * NFE = a * steps + b for a sampler, measured on short runs at 4, 6 and 8 steps (past the start-up
 * steps of multistep methods such as PNDM, whose first steps take extra model calls), and the NFE of
 * 1, 2 and 3 steps measured directly. A sampler with
 * error tolerances (`rtol`/`atol` options), or whose NFE at 8 steps is off the line, is adaptive: its
 * tolerances, not the step count, set the NFE.
 */
async function nfeModel(gm: GaussianMixture, name: SamplerName, seed: number): Promise<NfeModel> {
  const noise = tf.randomNormal([2, gm.dim], 0, 1, 'float32', seed);
  try {
    const nfe = async (steps: number) =>
      (await run(gm, noise, { ...karras(steps), sampler: name, seed })).nfe;
    const [n4, n6, n8] = [await nfe(4), await nfe(6), await nfe(8)];
    const a = (n6 - n4) / 2;
    const b = n4 - 4 * a;
    const defaults = getSampler(name).defaults as Record<string, unknown>;
    const tolerances = ['rtol', 'atol'].filter((k) => k in defaults);
    if (tolerances.length > 0 || n8 !== a * 8 + b || a <= 0) {
      const tol = tolerances.map((k) => `${k} ${defaults[k]}`).join(', ');
      return {
        a,
        b,
        few: [],
        adaptive: `adaptive step size: ${tol ? `its error tolerances (${tol})` : 'its step-size control'} set the NFE, not the step count (${n4}, ${n6}, ${n8} evaluations at 4, 6, 8 steps on a 2-sample probe)`,
      };
    }
    const few: (number | undefined)[] = [undefined];
    for (const steps of [1, 2, 3]) {
      try {
        few.push(await nfe(steps));
      } catch {
        few.push(undefined); // e.g. samplers that need two positive noise levels
      }
    }
    return { a, b, few };
  } finally {
    noise.dispose();
  }
}

function drawData(gm: GaussianMixture, n: number, seed: number): Float64Array {
  return Float64Array.from(gm.sampleArray(n, Random.seed(seed)).x);
}

async function buildMixtures(ctx: SuiteContext, notes: string[]): Promise<MixtureCase[]> {
  const { plan } = ctx;
  const n = plan.accuracy.samples;
  const out: MixtureCase[] = [];
  const finish = (
    id: string,
    gm: GaussianMixture,
    noise: Float32Array,
    exact: Float64Array,
    exactRows: number,
    reference: string,
  ) => {
    const data = drawData(gm, n, plan.seed + 11);
    const data2 = drawData(gm, n, plan.seed + 12);
    const bandwidth = medianDistance(data, gm.dim);
    const sub = (x: Float64Array) => x.subarray(0, Math.min(MMD_ROWS, n) * gm.dim);
    out.push({
      gm,
      noise,
      exact,
      exactRows,
      data,
      bandwidth,
      record: {
        id,
        dim: gm.dim,
        components: gm.numComponents,
        exactReference: reference,
        samples: n,
        floor: {
          slicedWasserstein: slicedWasserstein(
            data,
            data2,
            gm.dim,
            plan.accuracy.projections,
            plan.seed,
          ),
          mmd: mmd(sub(data), sub(data2), gm.dim, bandwidth),
        },
      },
    });
  };
  const dir = refsDir();
  if (dir === null) {
    notes.push(
      'reference-data/ not found (set DIFFUSE_REFS): mixture A and the reference comparisons are skipped',
    );
  } else {
    const kd = loadKd(dir);
    const A = kd.mixtures.A;
    const gm = new GaussianMixture({ weights: A.weights, means: A.means, covs: A.covs });
    const stored = kd.noise.A.data;
    const rest = Random.seed(plan.seed).normalArray(Math.max(0, n - stored.length) * A.dim);
    const noise = new Float32Array(n * A.dim);
    noise.set(stored.flat().slice(0, n * A.dim));
    if (n > stored.length) noise.set(rest, stored.length * A.dim);
    finish(
      'A (2-D, refs)',
      gm,
      noise,
      Float64Array.from(kd.exact.A.end.flat()),
      Math.min(stored.length, n),
      `k-diffusion refs exact.A.end (DOP853, rtol 1e-12) for the ${stored.length} stored noise vectors`,
    );
  }
  const d = plan.accuracy.highDim;
  const gm = new GaussianMixture(highDimMixture(d, plan.seed));
  const noise = Random.seed(plan.seed + 1).normalArray(n * d);
  const rows = Math.min(64, n);
  const refSteps = plan.preset === 'quick' ? 100 : plan.preset === 'full' ? 1000 : 400;
  ctx.progress.status(
    `accuracy: reference ODE solve of the ${d}-D mixture (Heun, ${refSteps} steps)`,
  );
  const start = tf.tensor2d(noise.subarray(0, rows * d), [rows, d]);
  const fine = await run(gm, start, { ...karras(refSteps), sampler: 'heun' });
  const half = await run(gm, start, { ...karras(refSteps / 2), sampler: 'heun' });
  start.dispose();
  // Heun is second order: the error of the fine solve is about |fine - half| / 3.
  const own = rowL2(fine.x, half.x, d, rows).maxL2 / 3;
  finish(
    `${d}-D, 4 components`,
    gm,
    noise,
    fine.x,
    rows,
    `Heun with ${refSteps} Karras steps (${fine.nfe} NFE) for the first ${rows} samples; its own error is about ${own.toExponential(1)} (max L2, from a ${refSteps / 2}-step solve)`,
  );
  return out;
}

function camel(k: string): string {
  return k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

async function kdiffusionComparisons(
  ctx: SuiteContext,
  mix: MixtureCase,
  notes: string[],
): Promise<ReferenceComparison[]> {
  const dir = refsDir();
  if (dir === null) return [];
  const kd = loadKd(dir);
  const out: ReferenceComparison[] = [];
  const noise = tf.tensor2d(mix.noise.subarray(0, mix.exactRows * mix.gm.dim), [
    mix.exactRows,
    mix.gm.dim,
  ]);
  const skipped = new Set<string>();
  try {
    for (const r of kd.runs) {
      const err = r.error_vs_exact;
      if (r.stochastic || err === undefined || err.reference !== undefined || r.sigmas === null)
        continue;
      const name = r.sampler.replace(/^sample_/, '');
      let def: ReturnType<typeof getSampler>;
      try {
        def = getSampler(name);
      } catch {
        skipped.add(name);
        continue;
      }
      const samplerOptions: Record<string, number | string | boolean> = {};
      const unknown = Object.keys(r.kwargs).filter((k) => !(camel(k) in def.defaults));
      if (unknown.length > 0) {
        skipped.add(`${r.label} (options ${unknown.join(', ')})`);
        continue;
      }
      for (const [k, v] of Object.entries(r.kwargs))
        samplerOptions[camel(k)] = v as number | string | boolean;
      ctx.progress.status(`accuracy: k-diffusion reference ${r.id}`);
      let mine: ReferenceComparison['mine'] = null;
      let note: string | undefined;
      try {
        const res = await run(mix.gm, noise, {
          sampler: def.name,
          sigmas: r.sigmas,
          samplerOptions,
          seed: ctx.plan.seed,
        });
        mine = rowL2(res.x, mix.exact, mix.gm.dim, mix.exactRows);
        if (res.nfe !== r.num_model_calls)
          note = `NFE differs: ours ${res.nfe}, k-diffusion ${r.num_model_calls}`;
      } catch (e) {
        note = `failed: ${(e as Error).message}`;
      }
      out.push({
        id: r.id,
        source: 'k-diffusion',
        ours: `${name}${Object.keys(samplerOptions).length ? ` ${JSON.stringify(samplerOptions)}` : ''}`,
        nfe: r.num_model_calls,
        theirs: { meanL2: err.mean_l2, maxL2: err.max_l2 },
        mine,
        ...(note ? { note } : {}),
      });
    }
  } finally {
    noise.dispose();
  }
  if (skipped.size > 0)
    notes.push(
      `k-diffusion reference runs without a matching sampler here: ${[...skipped].join(', ')}`,
    );
  return out;
}

interface DiffusersRun {
  id: string;
  scheduler: string;
  num_inference_steps: number;
  num_model_calls: number;
  config: Record<string, unknown> & {
    beta_schedule: BetaSchedule;
    beta_start: number;
    beta_end: number;
    prediction_type: string;
  };
  step_kwargs: Record<string, number>;
  x_init: number[][];
  exact_ref?: string;
  error_vs_exact?: { at_sigma: number; mean_l2: number; max_l2: number };
}

interface DiffusersExact {
  id: string;
  final: number[][];
  checkpoints: { sigma: number; x_vp: number[][] }[];
}

/** Samples of these classes are VE-scaled (x_ve = x_vp sqrt(1 + sigma^2)); the rest VP-scaled. */
const VE_SAMPLE = /^(Euler|EulerAncestral|Heun|LMS|KDPM2)/;

/**
 * Every deterministic diffusers run of the refs with `error_vs_exact`, re-run through
 * `createScheduler` with the same config, timesteps and start noise, driven by the mixture oracle in
 * diffusers' loop (scale_model_input, model, step), and measured against the same exact solution.
 */
/**
 * The reference files store Python's non-finite floats as strings ("-inf", "inf", "nan": JSON has no
 * such numbers); diffusers reads them as floats, e.g. `lambda_min_clipped = float('-inf')`.
 */
function pythonFloats(config: Record<string, unknown>): Record<string, unknown> {
  const map: Record<string, number> = { inf: Infinity, '-inf': -Infinity, nan: Number.NaN };
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [k, typeof v === 'string' && v in map ? map[v] : v]),
  );
}

async function diffusersComparisons(
  ctx: SuiteContext,
  notes: string[],
): Promise<ReferenceComparison[]> {
  const dir = refsDir();
  if (dir === null) return [];
  const traj = JSON.parse(readFileSync(resolve(dir, 'diffusers/trajectories.json'), 'utf8')) as {
    mixture: { weights: number[]; means: number[][]; covariances: number[][][] };
    runs: DiffusersRun[];
  };
  const exact = JSON.parse(readFileSync(resolve(dir, 'diffusers/exact.json'), 'utf8')) as {
    entries: DiffusersExact[];
  };
  const m = traj.mixture;
  const gm = new GaussianMixture({ weights: m.weights, means: m.means, covs: m.covariances });
  const out: ReferenceComparison[] = [];
  const skipped: string[] = [];
  for (const run of traj.runs) {
    const err = run.error_vs_exact;
    if (err === undefined || run.exact_ref === undefined) continue;
    const ref = exact.entries.find((e) => e.id === run.exact_ref);
    let target: number[][] | undefined = ref?.final;
    if (err.at_sigma > 0) {
      target = VE_SAMPLE.test(run.scheduler)
        ? undefined
        : ref?.checkpoints.find((c) => Math.abs(c.sigma - err.at_sigma) <= 1e-6 * err.at_sigma)
            ?.x_vp;
    }
    if (target === undefined) {
      skipped.push(`${run.id} (no exact point at sigma ${err.at_sigma})`);
      continue;
    }
    ctx.progress.status(`accuracy: diffusers reference ${run.id}`);
    let mine: ReferenceComparison['mine'] = null;
    let note: string | undefined;
    let nfe = 0;
    const tensors: tf.Tensor[] = [];
    try {
      const scheduler = createScheduler(
        { _class_name: run.scheduler, ...pythonFloats(run.config) },
        { seed: ctx.plan.seed },
      );
      scheduler.setTimesteps(run.num_inference_steps);
      const schedule = DiscreteSchedule.fromConfig({
        betaSchedule: run.config.beta_schedule,
        betaStart: run.config.beta_start,
        betaEnd: run.config.beta_end,
      });
      const model = gm.denoiser(predictionFromDiffusers(run.config.prediction_type));
      let x = tf.tensor(run.x_init);
      for (const t of scheduler.timesteps) {
        const xin = scheduler.scaleModelInput(x, t);
        const y = model.predict(xin, schedule.levelAt(t));
        nfe++;
        const { prevSample, predOriginalSample } = scheduler.step(y, t, x, run.step_kwargs);
        tf.dispose([x, xin, y, predOriginalSample]);
        x = prevSample;
      }
      tensors.push(x);
      scheduler.dispose();
      mine = rowL2(await x.data(), target.flat(), gm.dim, target.length);
      if (nfe !== run.num_model_calls)
        note = `NFE differs: ours ${nfe}, diffusers ${run.num_model_calls}`;
    } catch (e) {
      note = `failed: ${(e as Error).message}`;
    } finally {
      tf.dispose(tensors);
    }
    out.push({
      id: run.id,
      source: 'diffusers',
      ours: `createScheduler(${run.scheduler})${err.at_sigma > 0 ? `, at sigma ${err.at_sigma.toPrecision(3)}` : ''}`,
      nfe: run.num_model_calls,
      theirs: { meanL2: err.mean_l2, maxL2: err.max_l2 },
      mine,
      ...(note ? { note } : {}),
    });
  }
  if (skipped.length > 0)
    notes.push(`diffusers reference runs not compared: ${skipped.join(', ')}`);
  return out;
}

export async function runAccuracy(ctx: SuiteContext): Promise<AccuracySuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const notes: string[] = [];
  const rec = await useBackend('wasm');
  recordBackend(ctx.backends, rec);
  if (!rec.available) {
    const cpu = await useBackend('cpu');
    recordBackend(ctx.backends, cpu);
    notes.push(`wasm unavailable (${rec.reason}); accuracy measured on cpu`);
  }
  let samplers = listSamplers();
  if (plan.accuracy.samplers.length > 0) {
    for (const s of plan.accuracy.samplers) getSampler(s); // throws, naming the registered ones
    samplers = samplers.filter((s) => plan.accuracy.samplers.includes(s.name));
  }
  const mixtures = await buildMixtures(ctx, notes);
  progress.plan(mixtures.length * samplers.length * plan.accuracy.nfe.length + 1);
  const curves: AccuracyCurve[] = [];
  for (const mix of mixtures) {
    const { gm, record } = mix;
    const d = gm.dim;
    const n = record.samples;
    const noise = tf.tensor2d(mix.noise, [n, d]);
    try {
      for (const def of samplers) {
        const curve: AccuracyCurve = {
          mixture: record.id,
          sampler: def.name,
          stochastic: def.stochastic,
          points: [],
        };
        curves.push(curve);
        try {
          // Samplers with an `nfe` option (dpm_fast) take the budget itself; the others get a step count.
          const budget = 'nfe' in (def.defaults as Record<string, unknown>);
          const { a, b, adaptive, few } = budget
            ? { a: 1, b: 0, adaptive: undefined, few: [] }
            : await nfeModel(gm, def.name, plan.seed);
          const runAt = (steps: number) =>
            run(gm, noise, {
              ...karras(budget ? Math.max(2, steps) : steps),
              sampler: def.name,
              seed: plan.seed + 3,
              ...(budget ? { samplerOptions: { nfe: steps } } : {}),
            });
          const unreachable = (nfeRequested: number, reason: string) => {
            curve.unreachable ??= [];
            curve.unreachable.push({ nfeRequested, reason });
          };
          const seen = new Map<number, number>(); // steps -> NFE target measured with them
          for (const target of plan.accuracy.nfe) {
            progress.tick(`accuracy: ${record.id}, ${def.name}, NFE ${target}`);
            if (adaptive !== undefined) {
              unreachable(target, adaptive);
              continue;
            }
            let steps = Math.floor((target - b) / a);
            // The line holds from 4 steps on; below, use the measured NFE of 1-3 steps (start-up).
            if (!budget && steps < 4) {
              const fit = [1, 2, 3].filter((k) => few[k] !== undefined && few[k]! <= target);
              steps = fit.length > 0 ? Math.max(...fit) : 0;
            }
            if (steps < 1) {
              unreachable(
                target,
                few[1] !== undefined
                  ? `1 step already takes ${few[1]} model evaluations (NFE = ${a} x steps + ${b} from 4 steps on)`
                  : `NFE = ${a} x steps + ${b} (measured from 4 steps on), so the fewest it can make is about ${a + b}`,
              );
              continue;
            }
            const again = (s: number) =>
              seen.has(s)
                ? `no step count gives an NFE between NFE ${seen.get(s)} (already measured with ${s} steps) and ${target}`
                : undefined;
            if (again(steps)) {
              unreachable(target, again(steps)!);
              continue;
            }
            let res = await runAt(steps);
            // Start-up steps of multistep methods (or a final denoising call) can cost more than
            // the linear model says: step back.
            while (res.nfe > target && steps > 1 && !seen.has(steps - 1)) {
              steps--;
              res = await runAt(steps);
            }
            if (res.nfe > target) {
              unreachable(
                target,
                `its start-up steps cost extra evaluations: ${steps} ${budget ? 'as its nfe option' : 'step(s)'} already take ${res.nfe}`,
              );
              continue;
            }
            if (again(steps)) {
              unreachable(target, again(steps)!);
              continue;
            }
            seen.set(steps, target);
            const sub = (x: Float64Array) => x.subarray(0, Math.min(MMD_ROWS, n) * d);
            curve.points.push({
              nfeRequested: target,
              nfe: res.nfe,
              steps,
              ...rowL2(res.x, mix.exact, d, mix.exactRows),
              slicedWasserstein: slicedWasserstein(
                res.x,
                mix.data,
                d,
                plan.accuracy.projections,
                plan.seed,
              ),
              mmd: mmd(sub(res.x), sub(mix.data), d, mix.bandwidth),
            });
          }
        } catch (e) {
          curve.error = (e as Error).message;
        }
      }
    } finally {
      noise.dispose();
    }
  }
  const references = mixtures[0]?.record.id.startsWith('A')
    ? await kdiffusionComparisons(ctx, mixtures[0], notes)
    : [];
  try {
    references.unshift(...(await diffusersComparisons(ctx, notes)));
  } catch (e) {
    notes.push(`diffusers comparisons failed: ${(e as Error).message}`);
  }
  progress.tick();
  notes.push(
    `schedule: Karras (sigma ${SIGMA_MIN} to ${SIGMA_MAX}, rho 7, then 0); steps per NFE target from each sampler's measured NFE per step; stochastic samplers are compared with the ODE end points too, but only their distance to the data is meaningful`,
  );
  const failed = curves.filter((c) => c.error);
  const status = curves.length === 0 ? 'failed' : failed.length > 0 ? 'partial' : 'ok';
  return {
    status,
    notes,
    durationMs: since(t0),
    mixtures: mixtures.map((m) => m.record),
    curves,
    references,
  };
}
