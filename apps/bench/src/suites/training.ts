/**
 * Training: ms per Adam step of the MLP denoiser and the U-Net on each Node backend.
 *
 * Every row is one `TrainingVariant`: a way of running the step, measured for each backend and model
 * it applies to. Today: `default` (the one-thread step `Trainer` of `@diffuse/train` takes), on wasm
 * `workers-2` (data-parallel gradients on 2 worker threads, `ParallelGradients`) and, on wasm for the
 * MLP, `no-wasm-transpose-fix` (the backend's explicit-transpose matMul fix removed, to
 * show what the fix buys; an ablation, never counted as Diffuse's time), and on wasm
 * `no-simd-kernels` (the backend's own SIMD kernels off; an ablation too). Adding a row, e.g. "Adam
 * step with N worker threads", is one more entry of `TRAINING_VARIANTS`:
 *
 * ```ts
 * const dataParallel: TrainingVariant = {
 *   id: 'workers-2',
 *   ablation: false,
 *   applies: (_ctx, backend) => backend === 'wasm',
 *   async measure(ctx, model, batch, onRepeat) {
 *     // any object with step(): Promise<loss> and dispose(); timeSteps does warm-up, repeats, leaks
 *     const r = await timeSteps(() => myParallelStep(model.spec, batch, 2, ctx.plan.seed), ctx.plan, onRepeat);
 *     return { ...r, workers: 2 };
 *   },
 * };
 * ```
 *
 * Rows that are not ablations compete for the peers ratio and the training goal (the fastest wins).
 */
import { useSimdKernels } from '@diffuse/backend';
import { wasmTransposeFixActive, withoutWasmTransposeFix } from '../backends.js';
import { timeSteps, timeTrainStep } from '../measure.js';
import { type BenchModel, createModel, type ModelName } from '../models.js';
import { sizesFor } from '../plan.js';
import type { TrainingRow, TrainingSuite } from '../results.js';
import type { Stat } from '../stats.js';
import { type SuiteContext, since } from '../suite.js';
import { createParallelTrainStep } from '../training-step.js';
import { MODELS, openBackend } from './throughput.js';

/** What a training variant measured. */
export interface VariantTiming {
  stat: Stat;
  leaked: number;
  /** Worker threads the step used (absent: the main thread only). */
  workers?: number;
  note?: string;
}

/** One row of the training table per backend and model it applies to. */
export interface TrainingVariant {
  /** results.json `variant` (lower case, dashes). */
  id: string;
  /** True for deliberately weakened configurations: shown, never counted as Diffuse's time. */
  ablation: boolean;
  /**
   * Whether the row runs for `backend` and `model`: true, false (not applicable, silently), or a
   * string saying why it is left out (it becomes a note).
   */
  applies(ctx: SuiteContext, backend: 'wasm' | 'cpu', model: ModelName): boolean | string;
  /** Times the step on the active backend (`model` is built with the plan's seed; do not dispose it). */
  measure(
    ctx: SuiteContext,
    model: BenchModel,
    batch: number,
    onRepeat: () => void,
  ): Promise<VariantTiming>;
}

/** One Adam step on the main thread: the `Trainer` step of `@diffuse/train`. */
export const oneThread: TrainingVariant = {
  id: 'default',
  ablation: false,
  applies: (ctx, backend, model) =>
    backend === 'cpu' && model === 'unet' && !ctx.plan.cpuUnetTraining
      ? 'unet on cpu: not timed (one Adam step takes minutes even at batch 1 in tfjs-backend-cpu; --cpu-unet-training runs it)'
      : true,
  measure: (ctx, model, batch, onRepeat) => timeTrainStep(model, batch, ctx.plan, onRepeat),
};

/** The MLP step on wasm with the backend's explicit-transpose matMul kernels removed (an ablation). */
export const withoutTransposeFix: TrainingVariant = {
  id: 'no-wasm-transpose-fix',
  ablation: true,
  applies: (ctx, backend, model) => {
    if (!ctx.plan.transposeFixComparison || backend !== 'wasm' || model !== 'mlp') return false;
    return wasmTransposeFixActive()
      ? true
      : 'wasm transpose fix comparison skipped: the original wasm matMul kernels could not be kept';
  },
  // Several times slower than the fixed step: two timed steps, no warm-up (the kernels are warm).
  measure: (ctx, model, batch, onRepeat) =>
    withoutWasmTransposeFix(() =>
      timeTrainStep(
        model,
        batch,
        { ...ctx.plan, warmup: 0, repeats: Math.min(2, ctx.plan.repeats) },
        onRepeat,
      ),
    ),
};

/**
 * The step on wasm with `@diffuse/backend`'s own SIMD kernels turned off (`useSimdKernels(false)`:
 * GroupNorm, Adam, conv2d and matMul take the paths they replace), to show what they buy; an
 * ablation. Main thread only.
 */
export const withoutSimdKernels: TrainingVariant = {
  id: 'no-simd-kernels',
  ablation: true,
  applies: (ctx, backend) => ctx.plan.simdKernelsComparison && backend === 'wasm',
  // Slower than the default step: two timed steps after one warm-up step without the kernels.
  async measure(ctx, model, batch, onRepeat) {
    useSimdKernels(false);
    try {
      return await timeTrainStep(
        model,
        batch,
        { ...ctx.plan, warmup: 1, repeats: Math.min(2, ctx.plan.repeats) },
        onRepeat,
      );
    } finally {
      useSimdKernels(true);
    }
  },
};

/**
 * The step with data-parallel gradients on 2 worker threads (`ParallelGradients` of
 * `@diffuse/train`), on wasm: tfjs-wasm is single-threaded in Node, so this is how training uses both
 * cores. Counted as Diffuse's time (not an ablation): the fastest row wins the training goal.
 */
export const twoWorkers: TrainingVariant = {
  id: 'workers-2',
  ablation: false,
  applies: (_ctx, backend) => backend === 'wasm',
  async measure(ctx, model, batch, onRepeat) {
    const r = await timeSteps(
      () => createParallelTrainStep(model, batch, ctx.plan.seed, 2),
      ctx.plan,
      onRepeat,
    );
    return { ...r, workers: 2 };
  },
};

/** The rows of the training suite, in table order. */
export const TRAINING_VARIANTS: TrainingVariant[] = [
  oneThread,
  twoWorkers,
  withoutTransposeFix,
  withoutSimdKernels,
];

export async function runTraining(
  ctx: SuiteContext,
  variants: TrainingVariant[] = TRAINING_VARIANTS,
): Promise<TrainingSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const rows: TrainingRow[] = [];
  const notes: string[] = [];
  const note = (n: string) => {
    if (!notes.includes(n)) notes.push(n);
  };
  const tfBackends = plan.backends.filter((b): b is 'wasm' | 'cpu' => b === 'wasm' || b === 'cpu');
  const inference = plan.backends.filter((b) => b.startsWith('onnx'));
  if (inference.length > 0) note(`${inference.join(', ')}: inference only (no training rows)`);
  progress.plan(tfBackends.length * MODELS.length * variants.length);
  let expected = 0;
  for (const backend of tfBackends) {
    const opened = await openBackend(backend, ctx, notes);
    if (opened === null || opened === 'not-installed') {
      for (let i = 0; i < MODELS.length * variants.length; i++) progress.tick();
      continue;
    }
    const sizes = sizesFor(plan, backend);
    for (const name of MODELS) {
      const batch = name === 'mlp' ? sizes.mlpTrainBatch : sizes.unetTrainBatch;
      const todo = variants.filter((v) => {
        const a = v.applies(ctx, backend, name);
        if (typeof a === 'string') note(a);
        if (a !== true) progress.tick();
        return a === true;
      });
      if (todo.some((v) => v.id === 'default')) expected++;
      if (todo.length === 0) continue;
      const model = createModel(name, plan.seed);
      const base = {
        model: name,
        modelLabel: model.label,
        modelSource: model.source,
        params: model.params,
        backend,
        environment: 'node' as const,
        batch,
      };
      try {
        for (const v of todo) {
          const what = `training: ${name} Adam step on ${backend} (${v.id}, batch ${batch})`;
          try {
            const t = await v.measure(ctx, model, batch, () => progress.status(what));
            rows.push({
              ...base,
              variant: v.id,
              ablation: v.ablation,
              ...(t.workers !== undefined ? { workers: t.workers } : {}),
              ...(t.note !== undefined ? { note: t.note } : {}),
              msPerStep: t.stat,
              leakedTensors: t.leaked,
            });
          } catch (e) {
            notes.push(`${name} on ${backend} (${v.id}) failed: ${(e as Error).message}`);
          }
          progress.tick();
        }
      } finally {
        model.dispose();
      }
    }
  }
  const main = rows.filter((r) => r.variant === 'default').length;
  const status =
    tfBackends.length === 0
      ? 'skipped'
      : main === 0
        ? 'failed'
        : main < expected
          ? 'partial'
          : 'ok';
  return { status, notes, durationMs: since(t0), rows };
}
