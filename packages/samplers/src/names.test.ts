import { describe, expect, it } from 'vitest';
import {
  BUILTIN_SAMPLER_NAMES,
  listSamplers,
  type SamplerName,
  SCHEDULER_CLASS_NAMES,
  SCHEDULER_CLASSES,
  type SchedulerClassName,
  type SchedulerConfigOverrides,
} from './index.js';

describe('sampler names as types', () => {
  it('BUILTIN_SAMPLER_NAMES (the SamplerNames keys) are exactly the registered built-ins, in order', () => {
    expect(listSamplers().map((s) => s.name)).toEqual([...BUILTIN_SAMPLER_NAMES]);
  });

  it('a typo is a compile error (checked by tsc: pnpm typecheck, and the consumer check)', () => {
    // @ts-expect-error: 'dpmpp_2mm' is not a sampler name
    const typo: SamplerName = 'dpmpp_2mm';
    const known: SamplerName = 'dpmpp_2m';
    expect([typo, known]).toHaveLength(2);
  });
});

describe('scheduler class names as types', () => {
  it('SCHEDULER_CLASS_NAMES are exactly the classes createScheduler implements', () => {
    expect([...SCHEDULER_CLASS_NAMES].sort()).toEqual([...SCHEDULER_CLASSES].sort());
  });

  it('a misspelled _class_name in fromConfig overrides is a compile error (checked by tsc)', () => {
    const ok: SchedulerConfigOverrides = {
      _class_name: 'UniPCMultistepScheduler',
      solver_order: 2,
    };
    // @ts-expect-error: 'DPMSolverMultiStepScheduler' (capital S) is not a scheduler class
    const typo: SchedulerConfigOverrides = { _class_name: 'DPMSolverMultiStepScheduler' };
    const name: SchedulerClassName = 'FlowMatchEulerDiscreteScheduler';
    expect([ok, typo, name]).toHaveLength(3);
  });
});
