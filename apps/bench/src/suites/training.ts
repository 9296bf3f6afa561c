/**
 * Training: ms per Adam step of the MLP denoiser and the U-Net on each Node backend. On wasm, the MLP
 * is also timed with the backend's explicit-transpose matMul fix removed, to show what the fix buys.
 */
import {
  recordBackend,
  useBackend,
  wasmTransposeFixActive,
  withoutWasmTransposeFix,
} from '../backends.js';
import { timeTrainStep } from '../measure.js';
import { type BenchModel, createModel } from '../models.js';
import { sizesFor } from '../plan.js';
import type { TrainingRow, TrainingSuite } from '../results.js';
import { type SuiteContext, since } from '../suite.js';
import { MODELS } from './throughput.js';

async function timeSteps(
  model: BenchModel,
  batch: number,
  ctx: SuiteContext,
  what: string,
  fewer = false,
) {
  // Without the fix a step is several times slower: two timed steps, no warm-up (the kernels are warm).
  const plan = fewer
    ? { ...ctx.plan, warmup: 0, repeats: Math.min(2, ctx.plan.repeats) }
    : ctx.plan;
  return timeTrainStep(model, batch, plan, () => ctx.progress.status(what));
}

export async function runTraining(ctx: SuiteContext): Promise<TrainingSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const rows: TrainingRow[] = [];
  const notes: string[] = [];
  const compare = plan.transposeFixComparison && plan.backends.includes('wasm');
  progress.plan(plan.backends.length * MODELS.length + (compare ? 1 : 0));
  for (const backend of plan.backends) {
    if (backend !== 'wasm' && backend !== 'cpu') continue;
    const rec = await useBackend(backend);
    recordBackend(ctx.backends, rec);
    if (!rec.available) {
      notes.push(`${backend}: unavailable (${rec.reason})`);
      continue;
    }
    const sizes = sizesFor(plan, backend);
    for (const name of MODELS) {
      const batch = name === 'mlp' ? sizes.mlpTrainBatch : sizes.unetTrainBatch;
      if (backend === 'cpu' && name === 'unet' && !plan.cpuUnetTraining) {
        notes.push(
          'unet on cpu: not timed (one Adam step takes minutes even at batch 1 in tfjs-backend-cpu; --cpu-unet-training runs it)',
        );
        progress.tick();
        continue;
      }
      const model = createModel(name, plan.seed);
      const base = {
        model: name,
        modelLabel: model.label,
        modelSource: model.source,
        params: model.params,
      };
      try {
        const { stat, leaked } = await timeSteps(
          model,
          batch,
          ctx,
          `training: ${name} Adam step on ${backend} (batch ${batch})`,
        );
        rows.push({
          ...base,
          backend,
          environment: 'node',
          batch,
          variant: 'default',
          msPerStep: stat,
          leakedTensors: leaked,
        });
        progress.tick();
        if (compare && backend === 'wasm' && name === 'mlp') {
          if (!wasmTransposeFixActive()) {
            notes.push(
              'wasm transpose fix comparison skipped: the original wasm matMul kernels could not be kept',
            );
          } else {
            const slow = await withoutWasmTransposeFix(() =>
              timeSteps(
                model,
                batch,
                ctx,
                `training: ${name} Adam step on wasm WITHOUT the transpose fix`,
                true,
              ),
            );
            rows.push({
              ...base,
              backend,
              environment: 'node',
              batch,
              variant: 'no-wasm-transpose-fix',
              msPerStep: slow.stat,
              leakedTensors: slow.leaked,
            });
          }
          progress.tick();
        }
      } catch (e) {
        notes.push(`${name} on ${backend} failed: ${(e as Error).message}`);
      } finally {
        model.dispose();
      }
    }
  }
  const expected =
    plan.backends.length * MODELS.length -
    (plan.backends.includes('cpu') && !plan.cpuUnetTraining ? 1 : 0);
  const main = rows.filter((r) => r.variant === 'default').length;
  const status =
    plan.backends.length === 0
      ? 'skipped'
      : main === 0
        ? 'failed'
        : main < expected
          ? 'partial'
          : 'ok';
  return { status, notes, durationMs: since(t0), rows };
}
