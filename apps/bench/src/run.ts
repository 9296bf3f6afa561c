/**
 * Runs the planned suites in order (accuracy, throughput, training, peers), then writes
 * `<out>/<timestamp>/` with results.json (validated against the schema), REPORT.md and the SVG plots.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keepOriginalWasmMatMul } from './backends.js';
import { runBrowser } from './browser/runner.js';
import { computeGoals } from './goals.js';
import { machineInfo } from './machine.js';
import type { Plan, SuiteName } from './plan.js';
import type { Progress } from './progress.js';
import { renderPlots, renderReport } from './report/report.js';
import { formatSchemaErrors, type Results, SCHEMA_VERSION, validateResults } from './results.js';
import type { SuiteContext } from './suite.js';
import { runAccuracy } from './suites/accuracy.js';
import { runCheckpoints } from './suites/checkpoints.js';
import { runPeers } from './suites/peers.js';
import { runThroughput } from './suites/throughput.js';
import { runTraining } from './suites/training.js';

const RUNNERS: Record<SuiteName, (ctx: SuiteContext) => Promise<unknown>> = {
  accuracy: runAccuracy,
  throughput: runThroughput,
  checkpoints: (ctx: SuiteContext) => runCheckpoints(ctx),
  training: runTraining,
  peers: runPeers,
};

/** Runs every suite of `plan` and returns the results (nothing is written). */
export async function runBench(
  plan: Plan,
  progress: Progress,
  argv: string[] = [],
): Promise<Results> {
  const t0 = performance.now();
  const createdAt = new Date().toISOString();
  const machine = machineInfo();
  if (plan.transposeFixComparison) await keepOriginalWasmMatMul();
  const ctx: SuiteContext = { plan, progress, backends: [], results: {} };
  for (const name of plan.suites) {
    const t = performance.now();
    try {
      // biome-ignore lint/suspicious/noExplicitAny: each runner returns its own suite type.
      (ctx.results as any)[name] = await RUNNERS[name](ctx);
    } catch (e) {
      const base = {
        status: 'failed' as const,
        notes: [`suite crashed: ${(e as Error).stack ?? e}`],
        durationMs: performance.now() - t,
      };
      // A crashed suite is recorded with empty tables so the rest of the run still reports.
      const empty = {
        accuracy: { mixtures: [], curves: [], references: [] },
        throughput: { rows: [] },
        training: { rows: [] },
        peers: { torch: { available: false }, rows: [] },
        checkpoints: { rows: [] },
      }[name];
      // biome-ignore lint/suspicious/noExplicitAny: see above.
      (ctx.results as any)[name] = { ...base, ...empty };
    }
    progress.log(
      `${name}: ${(ctx.results[name] as { status: string }).status} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
    );
    // The browser backends run once, after Node's throughput and training, into the same tables.
    const lastNodeSuite = plan.suites.includes('training') ? 'training' : 'throughput';
    if (name === lastNodeSuite && plan.browserBackends.length > 0) await runBrowser(ctx);
  }
  return {
    schemaVersion: SCHEMA_VERSION,
    createdAt,
    argv,
    plan,
    machine,
    backends: ctx.backends,
    suites: ctx.results,
    goals: computeGoals(ctx.results),
    durationMs: performance.now() - t0,
  };
}

/** A folder name for a run started at `iso` (sortable, no colons). */
export function timestampDir(iso: string): string {
  return iso.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
}

/**
 * Writes results.json, REPORT.md and the plots under `<outRoot>/<timestamp>/` and returns that folder.
 * Throws when the results do not match the schema (after writing them, so they can be inspected).
 */
export function writeRun(results: Results, outRoot: string): { dir: string; files: string[] } {
  const dir = join(outRoot, timestampDir(results.createdAt));
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    files.push(name);
  };
  write('results.json', `${JSON.stringify(results, null, 2)}\n`);
  for (const [name, svg] of Object.entries(renderPlots(results))) write(name, svg);
  write('REPORT.md', renderReport(results));
  const errors = validateResults(JSON.parse(JSON.stringify(results)));
  if (errors.length > 0) {
    throw new Error(
      `results.json does not match schema/results.schema.json:\n${formatSchemaErrors(errors)}`,
    );
  }
  return { dir, files };
}
