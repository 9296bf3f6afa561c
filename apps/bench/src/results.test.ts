import { describe, expect, it } from 'vitest';
import { computeGoals } from './goals.js';
import { machineInfo } from './machine.js';
import { resolvePlan } from './plan.js';
import { type Results, SCHEMA_VERSION, validateResults } from './results.js';
import { summarize } from './stats.js';

function minimal(): Results {
  return {
    schemaVersion: SCHEMA_VERSION,
    createdAt: new Date(0).toISOString(),
    argv: ['--quick'],
    plan: resolvePlan({ quick: true }),
    machine: machineInfo(),
    backends: [
      {
        name: 'wasm',
        environment: 'node',
        available: true,
        simd: true,
        threads: 1,
        float32: true,
        simdKernels: true,
      },
    ],
    suites: {
      training: {
        status: 'ok',
        notes: [],
        durationMs: 1,
        rows: [
          {
            model: 'mlp',
            modelLabel: 'MLP',
            modelSource: 'package',
            params: 10,
            backend: 'wasm',
            environment: 'node',
            batch: 4,
            variant: 'default',
            ablation: false,
            msPerStep: summarize([1, 2, 3], 1),
            leakedTensors: 0,
          },
        ],
      },
    },
    goals: computeGoals({}),
    durationMs: 5,
  };
}

describe('results schema', () => {
  it('accepts a well-formed document', () => {
    expect(validateResults(JSON.parse(JSON.stringify(minimal())))).toEqual([]);
  });

  it('rejects missing fields, unknown fields, NaN timings and bad enums', () => {
    const noMachine = JSON.parse(JSON.stringify(minimal()));
    delete noMachine.machine;
    expect(
      validateResults(noMachine)
        .map((e) => e.message)
        .join(),
    ).toMatch(/machine/);

    const extra = JSON.parse(JSON.stringify(minimal()));
    extra.suites.speed = {};
    expect(validateResults(extra).length).toBeGreaterThan(0);

    const nan = minimal();
    nan.suites.training!.rows[0]!.msPerStep.median = Number.NaN; // JSON turns NaN into null
    const errors = validateResults(JSON.parse(JSON.stringify(nan)));
    expect(errors.some((e) => e.instancePath === '/suites/training/rows/0/msPerStep/median')).toBe(
      true,
    );

    const source = JSON.parse(JSON.stringify(minimal()));
    source.suites.training.rows[0].modelSource = 'guess';
    expect(validateResults(source).length).toBeGreaterThan(0);
  });
});
