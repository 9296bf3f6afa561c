/**
 * Whole sampling runs for the throughput suite. A wrapper around the denoiser times every model call
 * and records live tensors and backend bytes at each one, so a run splits into time inside the model
 * and the sampler's own time (in Node's wasm and cpu backends kernels run synchronously, so the wall
 * time of `predict` is the model's compute).
 */
import type { AsyncDenoiser, Denoiser } from '@diffuse/models';
import { getSampler, sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import type { BenchModel } from './models.js';
import type { SamplingRecord } from './results.js';
import { median, timeIt } from './stats.js';
import type { SuiteContext } from './suite.js';

/**
 * What a timed denoiser records for each call it forwards (time inside the model, live tensors and
 * backend bytes at the call), shared by the synchronous and the asynchronous wrapper.
 */
abstract class CallRecorder<D extends Denoiser | AsyncDenoiser> {
  calls = 0;
  modelMs = 0;
  liveTensors: number[] = [];
  bytes: number[] = [];
  constructor(readonly inner: D) {}
  get prediction() {
    return this.inner.prediction;
  }
  get shape() {
    return this.inner.shape;
  }
  get numClasses() {
    return this.inner.numClasses;
  }
  reset(): void {
    this.calls = 0;
    this.modelMs = 0;
    this.liveTensors = [];
    this.bytes = [];
  }
  /** Records memory now; returns the call's start time. */
  protected begin(): number {
    const m = tf.memory();
    this.liveTensors.push(m.numTensors);
    this.bytes.push(m.numBytes);
    return performance.now();
  }
  protected end(t0: number): void {
    this.modelMs += performance.now() - t0;
    this.calls++;
  }
}

/** A denoiser that records the time and memory of each call it forwards. */
export class TimedDenoiser extends CallRecorder<Denoiser> implements Denoiser {
  predict(...args: Parameters<Denoiser['predict']>): tf.Tensor {
    const t0 = this.begin();
    const y = this.inner.predict(...args);
    this.end(t0);
    return y;
  }
}

/** The asynchronous twin of `TimedDenoiser`: times each awaited `predictAsync`. */
export class TimedAsyncDenoiser extends CallRecorder<AsyncDenoiser> implements AsyncDenoiser {
  async predictAsync(...args: Parameters<AsyncDenoiser['predictAsync']>): Promise<tf.Tensor> {
    const t0 = this.begin();
    const y = await this.inner.predictAsync(...args);
    this.end(t0);
    return y;
  }
}

/** The sampler of the throughput suite's sampling runs: DPM-Solver++(2M), one model call per step. */
export const THROUGHPUT_SAMPLER = 'dpmpp_2m';

/** Whether sampling runs can be measured in this build. */
export async function samplingAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    getSampler(THROUGHPUT_SAMPLER);
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

/** Measures whole sampling runs of `model` at `batch`. */
export async function measureSampling(
  model: BenchModel,
  batch: number,
  steps: number,
  ctx: SuiteContext,
): Promise<SamplingRecord> {
  const timed = model.asyncDenoiser
    ? new TimedAsyncDenoiser(model.asyncDenoiser)
    : new TimedDenoiser(model.denoiser);
  const xT = tf.randomNormal([batch, ...model.dataShape], 0, 1, 'float32', ctx.plan.seed + 1);
  const modelMs: number[] = [];
  const overheadMs: number[] = [];
  const before = tf.memory().numTensors;
  let nfe = 0;
  try {
    const msPerRun = await timeIt(async () => {
      timed.reset();
      const t0 = performance.now();
      const x0 = await sample(timed, {
        sampler: THROUGHPUT_SAMPLER,
        schedule: 'karras',
        steps,
        noise: xT,
        seed: ctx.plan.seed,
      });
      await x0.data();
      x0.dispose();
      const total = performance.now() - t0;
      modelMs.push(timed.modelMs / steps);
      overheadMs.push((total - timed.modelMs) / steps);
      nfe = timed.calls;
    }, ctx.plan);
    const m = median(modelMs.slice(ctx.plan.warmup));
    const o = median(overheadMs.slice(ctx.plan.warmup));
    return {
      sampler: `${THROUGHPUT_SAMPLER} (Karras schedule, default options)`,
      steps,
      nfe,
      msPerRun,
      samplesPerSecond: (batch * 1000) / msPerRun.median,
      modelMsPerStep: m,
      overheadMsPerStep: o,
      overheadFraction: o / (o + m),
      liveTensorsPerCall: timed.liveTensors,
      bytesPerCall: timed.bytes,
      leakedTensors: tf.memory().numTensors - before,
    };
  } finally {
    xT.dispose();
  }
}
