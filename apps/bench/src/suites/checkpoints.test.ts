/**
 * The checkpoints suite end to end on a small UNet2DModel config (the reference DDPM-like layout):
 * a random diffusers folder is written, loaded by loadDiffusersModel, timed on tfjs-wasm and ONNX
 * Runtime, and the rows fit the results schema and the report. The real config's parameter count is
 * diffusers' 35,746,307.
 */
import { createDiffusersModel, parseDiffusersConfig } from '@diffuse/models';
import { describe, expect, it } from 'vitest';
import { computeGoals } from '../goals.js';
import { machineInfo } from '../machine.js';
import { resolvePlan } from '../plan.js';
import { createProgress } from '../progress.js';
import { renderReport } from '../report/report.js';
import { formatSchemaErrors, type Results, SCHEMA_VERSION, validateResults } from '../results.js';
import { DDPM_CIFAR10_CONFIG, runCheckpoints } from './checkpoints.js';

const TINY = {
  ...DDPM_CIFAR10_CONFIG,
  block_out_channels: [16, 32],
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D'],
  up_block_types: ['AttnUpBlock2D', 'UpBlock2D'],
  norm_num_groups: 8,
  sample_size: 16,
  layers_per_block: 1,
};

describe('checkpoints suite', () => {
  it("google/ddpm-cifar10-32's config has diffusers' 35,746,307 parameters", () => {
    const m = createDiffusersModel(parseDiffusersConfig(DDPM_CIFAR10_CONFIG));
    expect(m.numParameters).toBe(35_746_307);
    m.dispose();
  });

  it('writes, loads and times a random checkpoint on wasm and onnx; rows fit the schema and the report', async () => {
    const plan = resolvePlan({ quick: true, suites: ['checkpoints'], backends: ['wasm', 'onnx'] });
    const ctx = { plan, progress: createProgress(false, () => {}), backends: [], results: {} };
    const suite = await runCheckpoints(ctx, TINY, [1, 2]);
    expect(suite.status).toBe('ok');
    expect(suite.rows.map((r) => `${r.backend}/${r.batch}`)).toEqual([
      'wasm/1',
      'wasm/2',
      'onnx/1',
      'onnx/2',
    ]);
    for (const r of suite.rows) {
      expect(r.params).toBe(createDiffusersModel(parseDiffusersConfig(TINY)).numParameters);
      expect(r.loadMs).toBeGreaterThan(0);
      expect(r.msPerCall.median).toBeGreaterThan(0);
      expect(r.leakedTensors).toBe(0);
    }
    const doc: Results = {
      schemaVersion: SCHEMA_VERSION,
      createdAt: new Date(0).toISOString(),
      argv: ['--suites', 'checkpoints'],
      plan,
      machine: machineInfo(),
      backends: ctx.backends,
      suites: { checkpoints: suite },
      goals: computeGoals({}),
      durationMs: 1,
    };
    expect(formatSchemaErrors(validateResults(JSON.parse(JSON.stringify(doc))))).toBe('');
    expect(renderReport(doc)).toContain('## Checkpoints');
  }, 120_000);
});
