/** What every suite receives and returns. */
import type { Plan } from './plan.js';
import type { Progress } from './progress.js';
import type { BackendRecord, Results } from './results.js';

export interface SuiteContext {
  plan: Plan;
  progress: Progress;
  /** Backends seen so far (suites add what they initialise). */
  backends: BackendRecord[];
  /** Results of the suites that ran before (peers compares against throughput and training). */
  results: Results['suites'];
}

/** Milliseconds since `t0` (a `performance.now()` reading). */
export function since(t0: number): number {
  return performance.now() - t0;
}
