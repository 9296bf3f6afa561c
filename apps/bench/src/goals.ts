/**
 * Issue 9's performance goals, as ratios of numbers measured in the same run:
 *
 * - sampling in Node: ms per model call of the best Diffuse runtime (tfjs wasm/cpu or ONNX Runtime,
 *   through the `Denoiser` interface) over PyTorch CPU's forward pass, MLP and U-Net: at most 1.0;
 * - training in Node: ms per Adam step, best Diffuse configuration over PyTorch CPU: at most 2.0;
 * - the sampler's own time per step (outside the model) over the U-Net's time per step: under 5%.
 *
 * Only rows at the same batch as the PyTorch peer are compared. A missing peer or row makes a goal
 * `n/a` with the reason, never a failure of the run. The app reports; it asserts nothing.
 */
import type {
  GoalRow,
  GoalsRecord,
  PeersSuite,
  Results,
  ThroughputRow,
  TrainingRow,
} from './results.js';

export const GOALS_SOURCE =
  'issue 9 (fast paths): sampling ms per model call <= PyTorch CPU; Adam step <= 2x PyTorch CPU; sampler overhead < 5% of the U-Net time per step';

const SAMPLING_TARGET = { op: '<=', value: 1 } as const;
const TRAINING_TARGET = { op: '<=', value: 2 } as const;
const OVERHEAD_TARGET = { op: '<', value: 0.05 } as const;

/** How a Diffuse throughput row is named in the goals: the runtime and how it ran. */
export function runtimeName(row: Pick<ThroughputRow, 'backend' | 'runtime'>): string {
  if (row.runtime) return `${row.backend} (${row.runtime.threads} threads)`;
  return `tfjs-${row.backend}`;
}

/** How a Diffuse training row is named in the goals. */
export function trainingName(row: Pick<TrainingRow, 'backend' | 'variant' | 'workers'>): string {
  const extra = row.variant === 'default' ? '' : ` ${row.variant}`;
  return `tfjs-${row.backend}${extra}${row.workers ? ` (${row.workers} workers)` : ''}`;
}

function meets(value: number, t: { op: '<=' | '<'; value: number }): boolean {
  return t.op === '<=' ? value <= t.value : value < t.value;
}

/** Why no PyTorch number exists for the goals (null when the peer ran). */
function peerMissing(peers: PeersSuite | undefined): string | null {
  if (peers === undefined) return 'n/a: the peers suite did not run (add it to --suites)';
  if (!peers.torch.available)
    return `n/a: PyTorch peer unavailable (${peers.torch.install ?? 'install python3-torch'})`;
  if (peers.rows.length === 0)
    return `n/a: the PyTorch peer gave no numbers (${peers.status}: ${peers.notes.join('; ')})`;
  return null;
}

interface Candidate {
  what: string;
  ms: number;
}

function compare(
  id: GoalRow['id'],
  goal: string,
  model: 'mlp' | 'unet',
  task: 'forward' | 'train',
  candidates: (batch: number) => Candidate[],
  peers: PeersSuite | undefined,
  target: GoalRow['target'],
): GoalRow {
  const base = { id, goal, model, target };
  const missing = peerMissing(peers);
  const peer = peers?.rows.find((r) => r.model === model && r.task === task);
  if (missing !== null || peer === undefined) {
    return {
      ...base,
      batch: null,
      ours: null,
      reference: null,
      value: null,
      status: 'n/a',
      note: missing ?? `n/a: the PyTorch peer has no ${model} ${task} row`,
    };
  }
  const batch = peer.batch;
  const t = peers!.torch;
  // PyTorch at its best: the thread setting with the lowest median for this task.
  const n = peer.settings?.length ?? 0;
  const reference = {
    what: `PyTorch${t.version ? ` ${t.version}` : ''} CPU, ${peer.setting ?? `${t.threads ?? '?'} threads`}${n > 1 ? ` (best of ${n} thread settings)` : ''}`,
    ms: peer.torch.median,
  };
  const cands = candidates(batch).sort((a, b) => a.ms - b.ms);
  const best = cands[0];
  if (best === undefined) {
    return {
      ...base,
      batch,
      ours: null,
      reference,
      value: null,
      status: 'n/a',
      note: `n/a: no Diffuse ${task === 'forward' ? 'forward' : 'training'} row at batch ${batch} in this run`,
    };
  }
  const value = best.ms / reference.ms;
  const others = cands.slice(1).map((c) => `${c.what} ${fmt(c.ms)} ms`);
  return {
    ...base,
    batch,
    ours: best,
    reference,
    value,
    status: meets(value, target) ? 'pass' : 'fail',
    ...(others.length > 0 ? { note: `others: ${others.join(', ')}` } : {}),
  };
}

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** The sampler-overhead goal: the U-Net sampling run whose model is fastest (the strictest case). */
function overheadGoal(rows: ThroughputRow[]): GoalRow {
  const base = {
    id: 'sampler-overhead-unet' as const,
    goal: "sampler's own time per step / U-Net time per step (inside a real sample() run)",
    model: 'unet' as const,
    target: OVERHEAD_TARGET,
  };
  const runs = rows
    .filter((r) => r.model === 'unet' && r.environment === 'node' && r.sampling)
    .sort((a, b) => a.sampling!.modelMsPerStep - b.sampling!.modelMsPerStep);
  const best = runs[0];
  if (best === undefined) {
    return {
      ...base,
      batch: null,
      ours: null,
      reference: null,
      value: null,
      status: 'n/a',
      note: 'n/a: no U-Net sampling run in this run (the throughput suite measures it on wasm and onnx)',
    };
  }
  const s = best.sampling!;
  const value = s.overheadMsPerStep / s.modelMsPerStep;
  const others = runs
    .slice(1)
    .map(
      (r) =>
        `${runtimeName(r)} ${((100 * r.sampling!.overheadMsPerStep) / r.sampling!.modelMsPerStep).toFixed(1)}% (${fmt(r.sampling!.overheadMsPerStep)} of ${fmt(r.sampling!.modelMsPerStep)} ms)`,
    );
  return {
    ...base,
    batch: best.batch,
    ours: {
      what: `${s.sampler.split(' ')[0]} own time/step, ${runtimeName(best)}`,
      ms: s.overheadMsPerStep,
    },
    reference: { what: `U-Net time/step, ${runtimeName(best)}`, ms: s.modelMsPerStep },
    value,
    status: meets(value, OVERHEAD_TARGET) ? 'pass' : 'fail',
    note: [
      'fastest U-Net runtime (the strictest case)',
      ...(others.length > 0 ? [`others: ${others.join(', ')}`] : []),
    ].join('; '),
  };
}

/**
 * The goals table of a run, from its suites (pure: re-computable from a stored results.json).
 *
 * @example
 * const goals = computeGoals(results.suites);
 * for (const g of goals.rows) console.log(g.id, g.value, g.status);
 */
export function computeGoals(suites: Results['suites']): GoalsRecord {
  const thr = (suites.throughput?.rows ?? []).filter((r) => r.environment === 'node');
  const trn = (suites.training?.rows ?? []).filter((r) => r.environment === 'node' && !r.ablation);
  const forward = (model: 'mlp' | 'unet') => (batch: number) =>
    thr
      .filter((r) => r.model === model && r.batch === batch)
      .map((r) => ({ what: runtimeName(r), ms: r.msPerCall.median }));
  const train = (model: 'mlp' | 'unet') => (batch: number) =>
    trn
      .filter((r) => r.model === model && r.batch === batch)
      .map((r) => ({ what: trainingName(r), ms: r.msPerStep.median }));
  const sampling =
    'sampling: ms per model call (Denoiser.predict), best Diffuse runtime / PyTorch CPU forward';
  const training = 'training: ms per Adam step, best Diffuse configuration / PyTorch CPU';
  const { peers } = suites;
  return {
    source: GOALS_SOURCE,
    rows: [
      compare('sampling-mlp', sampling, 'mlp', 'forward', forward('mlp'), peers, SAMPLING_TARGET),
      compare(
        'sampling-unet',
        sampling,
        'unet',
        'forward',
        forward('unet'),
        peers,
        SAMPLING_TARGET,
      ),
      compare('training-mlp', training, 'mlp', 'train', train('mlp'), peers, TRAINING_TARGET),
      compare('training-unet', training, 'unet', 'train', train('unet'), peers, TRAINING_TARGET),
      overheadGoal(thr),
    ],
  };
}
