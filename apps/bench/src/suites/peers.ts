/**
 * Peers: the same MLP and U-Net forward passes and Adam steps in PyTorch on CPU, measured in the same
 * run by `python/torch_peer.py`, and reported as ratios beside ours (ours / torch). A missing peer
 * is reported with how to install it; it never fails the run.
 */
import { spawn, spawnSync } from 'node:child_process';
import os from 'node:os';
import { recordBackend, useBackend } from '../backends.js';
import { runtimeName, trainingName } from '../goals.js';
import { createModel } from '../models.js';
import { PYTHON_PEER } from '../paths.js';
import type { PeerRow, PeersSuite, Results } from '../results.js';
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

function runPython(python: string, job: unknown): Promise<PeerOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [script], { stdio: ['pipe', 'pipe', 'pipe'] });
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
  const threads = os.availableParallelism?.() ?? os.cpus().length;
  progress.status(`peers: PyTorch ${found.version} on ${threads} threads`);
  let out: PeerOutput;
  try {
    out = await runPython(found.python, {
      threads,
      warmup: plan.warmup,
      repeats: plan.repeats,
      seed: plan.seed,
      tasks: tasks.map(({ paramsOurs: _p, ...t }) => t),
    });
  } catch (e) {
    notes.push(`the PyTorch peer failed: ${(e as Error).message}`);
    progress.tick();
    return {
      status: 'failed',
      notes,
      durationMs: since(t0),
      torch: { available: true, version: found.version, python: found.python },
      rows: [],
    };
  }
  if (/libblas\.so|\/blas\//.test(out.blas) && !/openblas|mkl|blis|atlas/i.test(out.blas)) {
    notes.push(
      `PyTorch loaded the reference BLAS (${out.blas}), which is many times slower than an optimised one; install libopenblas0-pthread for representative peer numbers`,
    );
  }
  const rows: PeerRow[] = out.rows.map((r, i) => {
    const t = tasks[i]!;
    const o = ours(ctx.results, t);
    const torch = summarize(r.samples, plan.warmup);
    return {
      model: r.model,
      task: r.task,
      batch: r.batch,
      paramsTorch: r.params,
      paramsOurs: t.paramsOurs,
      torch,
      oursBackend: o?.backend ?? null,
      oursMs: o?.ms ?? null,
      ratio: o === null ? null : o.ms / torch.median,
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
    status: tasks.length < MODELS.length * 2 || missing ? 'partial' : 'ok',
    notes,
    durationMs: since(t0),
    torch: {
      available: true,
      version: out.torch,
      threads: out.threads,
      python: found.python,
      blas: out.blas,
    },
    rows,
  };
}
