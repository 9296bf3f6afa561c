/** Sampler accuracy against exact Gaussian-mixture oracles (filled in as @diffuse/samplers lands). */
import type { AccuracySuite } from '../results.js';
import type { SuiteContext } from '../suite.js';

export async function runAccuracy(_ctx: SuiteContext): Promise<AccuracySuite> {
  return {
    status: 'skipped',
    notes: ['@diffuse/samplers is not available yet'],
    durationMs: 0,
    mixtures: [],
    curves: [],
    references: [],
  };
}
