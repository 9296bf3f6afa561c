/**
 * Timing statistics: every number the app reports is the median of several repeats, taken after
 * warm-up calls (JIT, kernel compilation, wasm memory growth), with the spread kept beside it.
 */

/** A timing summary in milliseconds. */
export interface Stat {
  /** Median of `samples` (the number the report shows). */
  median: number;
  min: number;
  max: number;
  /** Number of timed repeats (warm-up calls are not counted). */
  repeats: number;
  /** Untimed warm-up calls made before the repeats. */
  warmup: number;
  /** Every timed repeat, in order. */
  samples: number[];
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of an empty list');
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Summarises timed samples. */
export function summarize(samples: readonly number[], warmup: number): Stat {
  return {
    median: median(samples),
    min: Math.min(...samples),
    max: Math.max(...samples),
    repeats: samples.length,
    warmup,
    samples: [...samples],
  };
}

/** How many calls to make. */
export interface TimingPlan {
  warmup: number;
  repeats: number;
}

/**
 * Times `fn` (which must finish its work before it resolves: read the result back) `warmup` times
 * untimed, then `repeats` times timed, and returns the summary. `onRepeat` is told after each call.
 *
 * @example
 * const stat = await timeIt(async () => { const y = f(x); await y.data(); y.dispose(); }, { warmup: 1, repeats: 5 });
 */
export async function timeIt(
  fn: () => unknown | Promise<unknown>,
  plan: TimingPlan,
  onRepeat?: () => void,
): Promise<Stat> {
  if (plan.repeats < 1) throw new RangeError(`repeats must be >= 1, got ${plan.repeats}`);
  for (let i = 0; i < plan.warmup; i++) {
    await fn();
    onRepeat?.();
  }
  const samples: number[] = [];
  for (let i = 0; i < plan.repeats; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
    onRepeat?.();
  }
  return summarize(samples, plan.warmup);
}
