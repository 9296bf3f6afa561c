/**
 * Peers: the same MLP and U-Net forward passes and Adam steps in PyTorch on CPU, measured in the same
 * run by `python/torch_peer.py`, and reported as ratios beside ours (ours / torch). A missing peer
 * is reported with how to install it; it never fails the run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { recordBackend, useBackend } from '../backends.js';
import { runtimeName, trainingName } from '../goals.js';
import { createModel } from '../models.js';
import { PYTHON_PEER } from '../paths.js';
import type { PeerSetting } from '../plan.js';
import type { PeerRow, PeerSettingRow, PeersSuite, Results } from '../results.js';
import { summarize } from '../stats.js';
import { type SuiteContext, since } from '../suite.js';
import { MODELS } from './throughput.js';

export const TORCH_INSTALL =
  'apt-get install python3-torch libopenblas0-pthread (Debian/Ubuntu; the BLAS package makes torch use an optimised BLAS), or pip install torch';

const script = PYTHON_PEER;

/** The first interpreter of `candidates` that imports torch, with its version; null when none does. */
export function findTorch(candidates: string[]): { python: string; version: string } | null {
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.status === 0 && r.stdout.trim() !== '') return { python, version: r.stdout.trim() };
  }
  return null;
}

interface PeerTask {
  model: 'mlp' | 'unet';
  task: 'forward' | 'train';
  batch: number;
  spec: Record<string, unknown>;
  paramsOurs: number;
}

interface PeerOutput {
  torch: string;
  threads: number;
  python: string;
  blas: string;
  rows: {
    model: 'mlp' | 'unet';
    task: 'forward' | 'train';
    batch: number;
    params: number;
    samples: number[];
  }[];
}

/**
 * PyTorch at its best for one task: the setting with the lowest median (the first of equals, in
 * the plan's order).
 *
 * @example
 * bestSetting(rows).label; // 'torch 2 threads, OPENBLAS_NUM_THREADS=1'
 */
export function bestSetting(all: readonly PeerSettingRow[]): PeerSettingRow {
  if (all.length === 0) throw new RangeError('bestSetting of no settings');
  return all.reduce((b, r) => (r.stat.median < b.stat.median ? r : b));
}

/** How a thread setting reads in tables and Goals. */
export function settingLabel(s: PeerSetting): string {
  return `torch ${s.torchThreads} thread${s.torchThreads === 1 ? '' : 's'}, OPENBLAS_NUM_THREADS=${s.openblasThreads}`;
}

/**
 * OpenBLAS variables of this environment that change its kernels (some machines set
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE to work around old OpenBLAS bugs): passed through unchanged
 * and recorded beside the numbers.
 */
function openblasEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE', 'OMP_NUM_THREADS']) {
    const v = process.env[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

function runPython(python: string, job: unknown, setting: PeerSetting): Promise<PeerOutput> {
  return new Promise((resolve, reject) => {
    // OpenBLAS reads its thread count once, when it loads: one process per setting.
    const env = {
      ...process.env,
      OPENBLAS_NUM_THREADS: String(setting.openblasThreads),
      OMP_NUM_THREADS: String(setting.torchThreads),
    };
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(
          new Error(
            `${python} ${script} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`,
          ),
        );
        return;
      }
      try {
        resolve(JSON.parse(out) as PeerOutput);
      } catch {
        reject(new Error(`the torch peer printed no JSON: ${out.slice(0, 200)}`));
      }
    });
    child.stdin.end(JSON.stringify(job));
  });
}

/**
 * Our median at the same model, task and batch: the fastest Node row measured (every runtime for
 * forward passes, tfjs-wasm/cpu or ONNX; every training row that is not an ablation for Adam steps).
 */
function ours(results: Results['suites'], t: PeerTask): { backend: string; ms: number } | null {
  const cands: { backend: string; ms: number }[] = [];
  if (t.task === 'forward') {
    for (const r of results.throughput?.rows ?? []) {
      if (r.model === t.model && r.batch === t.batch && r.environment === 'node')
        cands.push({ backend: runtimeName(r), ms: r.msPerCall.median });
    }
  } else {
    for (const r of results.training?.rows ?? []) {
      if (r.model === t.model && r.batch === t.batch && r.environment === 'node' && !r.ablation) {
        cands.push({ backend: trainingName(r), ms: r.msPerStep.median });
      }
    }
  }
  cands.sort((a, b) => a.ms - b.ms);
  return cands[0] ?? null;
}

export async function runPeers(ctx: SuiteContext): Promise<PeersSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const notes: string[] = [];
  progress.plan(1);
  progress.status('peers: looking for PyTorch');
  const found = findTorch(plan.python);
  if (found === null) {
    notes.push(
      `PyTorch peer missing: no ${plan.python.join(' or ')} could import torch. Install it with: ${TORCH_INSTALL}`,
    );
    progress.tick();
    return {
      status: 'skipped',
      notes,
      durationMs: since(t0),
      torch: { available: false, install: TORCH_INSTALL },
      rows: [],
    };
  }
  // Model specs and parameter counts come from our own models, so the peer builds the same networks.
  const rec = await useBackend(
    plan.backends.includes('wasm') || plan.backends.length === 0 ? 'wasm' : 'cpu',
  );
  recordBackend(ctx.backends, rec);
  const tasks: PeerTask[] = [];
  for (const name of MODELS) {
    const m = createModel(name, plan.seed);
    const fwd = name === 'mlp' ? plan.sizes.mlpBatch : plan.sizes.unetBatch;
    const trn = name === 'mlp' ? plan.sizes.mlpTrainBatch : plan.sizes.unetTrainBatch;
    tasks.push({ model: name, task: 'forward', batch: fwd, spec: m.spec, paramsOurs: m.params });
    tasks.push({ model: name, task: 'train', batch: trn, spec: m.spec, paramsOurs: m.params });
    m.dispose();
  }
  const settings = plan.peer.settings;
  progress.status(
    `peers: PyTorch ${found.version}, ${settings.length} thread settings x ${plan.peer.repeats} repeats`,
  );
  // Per setting: the peer's rows, in task order.
  const perSetting: { setting: PeerSetting; out: PeerOutput }[] = [];
  for (const setting of settings) {
    try {
      const out = await runPython(
        found.python,
        {
          threads: setting.torchThreads,
          warmup: plan.peer.warmup,
          repeats: plan.peer.repeats,
          seed: plan.seed,
          tasks: tasks.map(({ paramsOurs: _p, ...t }) => t),
        },
        setting,
      );
      perSetting.push({ setting, out });
    } catch (e) {
      notes.push(`the PyTorch peer failed at ${settingLabel(setting)}: ${(e as Error).message}`);
    }
  }
  const first = perSetting[0]?.out;
  if (first === undefined) {
    progress.tick();
    return {
      status: 'failed',
      notes,
      durationMs: since(t0),
      torch: { available: true, version: found.version, python: found.python },
      rows: [],
    };
  }
  if (/libblas\.so|\/blas\//.test(first.blas) && !/openblas|mkl|blis|atlas/i.test(first.blas)) {
    notes.push(
      `PyTorch loaded the reference BLAS (${first.blas}), which is many times slower than an optimised one; install libopenblas0-pthread for representative peer numbers`,
    );
  }
  const rows: PeerRow[] = tasks.map((t, i) => {
    const all: PeerSettingRow[] = perSetting.map(({ setting, out }) => ({
      ...setting,
      label: settingLabel(setting),
      stat: summarize(out.rows[i]!.samples, plan.peer.warmup),
    }));
    const best = bestSetting(all);
    const o = ours(ctx.results, t);
    return {
      model: t.model,
      task: t.task,
      batch: t.batch,
      paramsTorch: first.rows[i]!.params,
      paramsOurs: t.paramsOurs,
      torch: best.stat,
      setting: best.label,
      settings: all,
      oursBackend: o?.backend ?? null,
      oursMs: o?.ms ?? null,
      ratio: o === null ? null : o.ms / best.stat.median,
    };
  });
  for (const r of rows) {
    if (r.paramsTorch !== r.paramsOurs) {
      notes.push(
        `${r.model}: parameter counts differ (ours ${r.paramsOurs}, torch ${r.paramsTorch}): the peer is not the same network`,
      );
    }
  }
  progress.tick();
  const missing = rows.some((r) => r.ratio === null);
  if (missing)
    notes.push(
      'some ratios are missing: run the throughput and training suites in the same run to compare',
    );
  return {
    status:
      tasks.length < MODELS.length * 2 || missing || perSetting.length < settings.length
        ? 'partial'
        : 'ok',
    notes,
    durationMs: since(t0),
    torch: {
      available: true,
      version: first.torch,
      python: found.python,
      blas: first.blas,
      settings: perSetting.map(({ setting }) => ({ ...setting, label: settingLabel(setting) })),
      env: openblasEnv(),
    },
    rows,
  };
}
