/**
 * Pieces the CLI's recipes share: backend set-up, the wall-clock budget, writing results, and
 * `runRecipe`, the one training run every command is (progress, checkpoints, resume, results).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type BackendName, initBackend } from '@diffuse/backend';
import type { Ema, Model, NetworkDenoiser } from '@diffuse/models';
import { saveModelFiles } from '@diffuse/models/node';
import { type DiffusionBatch, type DiffusionLossOptions, diffusionLoss } from '../diffusion.js';
import type { AdamOptions } from '../optimizer.js';
import { ParallelGradients } from '../parallel.js';
import { FileCheckpointStore } from '../store.js';
import { Trainer, type TrainerOptions, type TrainSummary } from '../trainer.js';
import { terminalProgress } from './progress.js';

/** Options every training command takes. */
export interface CommonOptions {
  /** Output base path: writes `<out>.safetensors`, `<out>.json` and `<out>.metrics.json`. */
  out: string;
  /** Checkpoint directory (resumed when it holds a checkpoint). */
  checkpoints: string;
  steps: number;
  /** Wall-clock budget in minutes: stops (after a checkpoint) when it runs out. */
  minutes: number;
  seed: number;
  backend: BackendName;
  batchSize: number;
  learningRate: number;
  /** Gradient worker threads (0: compute gradients on the main thread). */
  workers: number;
}

export async function setUp(backend: BackendName): Promise<void> {
  const info = await initBackend(backend);
  console.log(`backend ${info.name} (simd ${info.simd}, threads ${info.threads})`);
}

/**
 * The trainer's loss, on the main thread (`workers` 0) or as `ParallelGradients` over `workers`
 * threads (same steps for one seed, within float32 rounding; the trainer disposes the workers).
 */
export async function gradientsFor(
  model: NetworkDenoiser,
  loss: DiffusionLossOptions,
  o: Pick<CommonOptions, 'workers' | 'backend'>,
): Promise<Pick<TrainerOptions<DiffusionBatch>, 'loss' | 'gradients'>> {
  if (o.workers === 0) return { loss: diffusionLoss(model, loss) };
  if (o.backend !== 'wasm' && o.backend !== 'cpu') {
    throw new Error(`--workers needs --backend wasm or cpu, got ${o.backend}`);
  }
  const gradients = await ParallelGradients.create(model, loss, {
    workers: o.workers,
    backend: o.backend,
  });
  console.log(`${gradients.workers} gradient worker threads (${gradients.backend})`);
  return { gradients };
}

/** An abort signal that fires after `minutes` (none when not finite). */
export function budget(minutes: number): AbortSignal | undefined {
  return Number.isFinite(minutes) && minutes > 0
    ? AbortSignal.timeout(minutes * 60_000)
    : undefined;
}

/**
 * Saves `model` as `<out>.safetensors` + `<out>.json` (its EMA weights, marked `weights: ema` in the
 * safetensors metadata, when `ema` is given; else its own), and `<out>.metrics.json`.
 */
export async function writeResults(
  model: Model,
  ema: Ema | null,
  out: string,
  metrics: Record<string, unknown>,
): Promise<void> {
  await mkdir(dirname(out), { recursive: true });
  ema?.swap();
  try {
    await saveModelFiles(model, out, ema ? { weights: 'ema' } : {});
  } finally {
    ema?.swap();
  }
  await writeFile(`${out}.metrics.json`, `${JSON.stringify(metrics, null, 2)}\n`);
  console.log(`wrote ${out}.safetensors, ${out}.json, ${out}.metrics.json`);
}

/** The command line that made a result, for its metrics file and README. */
export function commandLine(): string {
  return ['diffuse-train', ...process.argv.slice(2)].join(' ');
}

/** What a metrics file can record about the training run itself (`Recipe.record` picks). */
export interface RunRecord {
  /** The command line (`commandLine()`). */
  command: string;
  /** Steps trained in all, counting those restored from a checkpoint. */
  steps: number;
  /** Steps asked for (`--steps`): more than `steps` when the budget ran out. */
  plannedSteps: number;
  batchSize: number;
  /** Mean training loss of the last (up to) 100 steps, restored ones included. */
  meanLossLast100: number;
  /** Wall-clock seconds of this invocation's training (not of earlier, resumed-from runs). */
  secondsThisRun: number;
  /** Number of scalar parameters of the model. */
  parameters: number;
}

/** Every `RunRecord` field, in the order metrics files list them (`Recipe.record`'s default). */
export const RUN_RECORD_FIELDS: readonly (keyof RunRecord)[] = [
  'command',
  'steps',
  'plannedSteps',
  'batchSize',
  'meanLossLast100',
  'secondsThisRun',
  'parameters',
];

/** A finished training run, as `runRecipe` hands it to `Recipe.results` and returns it. */
export interface RecipeRun {
  record: RunRecord;
  /** Every step's loss, restored ones included. */
  losses: readonly number[];
  summary: TrainSummary;
}

/** What differs between the CLI's training commands; `runRecipe` does the rest. */
export interface Recipe<B> {
  /** Progress label (`[label] step ...` lines, the bar's title). */
  label: string;
  /** Off a terminal, a progress line every this many steps (default 100). */
  lineEvery?: number;
  /** The network trained (its `params`); its config goes into every checkpoint. `runRecipe` disposes it. */
  model: Model;
  /** Parameter EMA: updated every step, checkpointed, and the weights saved. `runRecipe` disposes it. */
  ema?: Ema;
  data: TrainerOptions<B>['data'];
  /** The loss on the main thread, or a gradient source (`gradientsFor`); the trainer disposes it. */
  objective: Pick<TrainerOptions<B>, 'loss' | 'gradients'>;
  /**
   * Adam options over the commands' shared schedule: peak learning rate `--lr`, cosine decay over
   * `--steps` (`{ learningRate: o.learningRate, decay: 'cosine', totalSteps: o.steps }`).
   */
  optimizer: AdamOptions;
  evaluate?: TrainerOptions<B>['evaluate'];
  /** Checkpoint every this many steps (and when the run stops). */
  checkpointEvery: number;
  /** Which `RunRecord` fields the metrics file starts with, in this order (default: all). */
  record?: readonly (keyof RunRecord)[];
  /**
   * The command's own results, written after the record fields: called once training stops, with the
   * EMA weights in place when there is an EMA (the weights that are saved).
   */
  results?: (run: RecipeRun) => Record<string, unknown> | Promise<Record<string, unknown>>;
}

/** Mean of the last (up to) `n` values. */
function meanOfLast(values: readonly number[], n: number): number {
  return values.slice(-n).reduce((a, b) => a + b, 0) / Math.min(n, values.length);
}

/**
 * Runs one training command: a `Trainer` over `recipe` with terminal progress, a
 * `FileCheckpointStore` at `o.checkpoints` (checkpoints carry `{ model: config, command }`), resumed
 * when it holds a checkpoint, trained to `o.steps` within the `o.minutes` budget; then the recipe's
 * results, and `writeResults` of the model (EMA weights when there is an EMA) with the metrics file
 * `{ ...record fields, ...results }`. Disposes the trainer, the EMA and the model, also on failure.
 * A run stopped by the budget and started again continues exactly (the Trainer's resume guarantee).
 *
 * @example
 * const model = new Mlp(mlpConfig({ dim: 2, width: 64, depth: 2, embedDim: 32 }), { seed: o.seed });
 * await runRecipe(o, {
 *   label: 'moons',
 *   model,
 *   data: (rng) => twoMoons().sample(o.batchSize, rng),
 *   objective: await gradientsFor(model, { sampler: uniformTimeSampler(new CosineSchedule()) }, o),
 *   optimizer: { warmupSteps: 100, clipNorm: 1 },
 *   checkpointEvery: 500,
 * });
 */
export async function runRecipe<B>(o: CommonOptions, recipe: Recipe<B>): Promise<RecipeRun> {
  const { model, ema } = recipe;
  const progress = terminalProgress(
    recipe.label,
    recipe.lineEvery !== undefined ? { lineEvery: recipe.lineEvery } : {},
  );
  let trainer: Trainer<B> | undefined;
  try {
    const store = await FileCheckpointStore.open(o.checkpoints);
    trainer = new Trainer<B>({
      params: model.params,
      data: recipe.data,
      ...recipe.objective,
      seed: o.seed,
      optimizer: {
        learningRate: o.learningRate,
        decay: 'cosine',
        totalSteps: o.steps,
        ...recipe.optimizer,
      },
      ...(ema !== undefined ? { ema } : {}),
      ...(recipe.evaluate !== undefined ? { evaluate: recipe.evaluate } : {}),
      checkpoint: {
        store,
        every: recipe.checkpointEvery,
        extra: () => ({ model: model.config, command: commandLine() }),
      },
      onProgress: progress.onProgress,
    });
    const resumed = await trainer.restore();
    if (resumed !== null) console.log(`resumed from step ${resumed}`);
    const signal = budget(o.minutes);
    const summary = await trainer.run(o.steps, signal ? { signal } : {});
    progress.stop();
    const run: RecipeRun = {
      record: {
        command: commandLine(),
        steps: summary.step,
        plannedSteps: o.steps,
        batchSize: o.batchSize,
        meanLossLast100: meanOfLast(trainer.losses, 100),
        secondsThisRun: summary.seconds,
        parameters: model.numParams,
      },
      losses: [...trainer.losses],
      summary,
    };
    let results: Record<string, unknown> = {};
    if (recipe.results !== undefined) {
      ema?.swap();
      try {
        results = await recipe.results(run);
      } finally {
        ema?.swap();
      }
    }
    const fields = recipe.record ?? RUN_RECORD_FIELDS;
    await writeResults(model, ema ?? null, o.out, {
      ...Object.fromEntries(fields.map((k) => [k, run.record[k]])),
      ...results,
    });
    return run;
  } finally {
    progress.stop();
    // the trainer owns the gradient source; without a trainer nobody else would free its workers
    if (trainer !== undefined) trainer.dispose();
    else recipe.objective.gradients?.dispose?.();
    ema?.dispose();
    model.dispose();
  }
}
