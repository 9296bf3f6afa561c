/**
 * Every run in reference-data/diffusers/trajectories.json stores the resolved diffusers config and the
 * timesteps / sigmas its scheduler produced: parse each config with fromDiffusersConfig (so the
 * schedule/scheduler field split covers all these schedulers) and rebuild its set_timesteps.
 */
import { describe, expect, it } from 'vitest';
import { type DiffusersFamily, diffusersSetTimesteps, fromDiffusersConfig } from './index.js';
import { loadRef } from './testing/refs.js';

interface Run {
  id: string;
  scheduler: string;
  num_inference_steps: number;
  config: Record<string, unknown>;
  timesteps: number[];
  sigmas?: number[] | null;
}
const runs = loadRef<{ runs: Run[] }>('diffusers/trajectories.json').runs;

const FAMILY: Record<string, DiffusersFamily> = {
  DDIMScheduler: 'ddim',
  DDPMScheduler: 'ddim',
  EulerDiscreteScheduler: 'euler',
  EulerAncestralDiscreteScheduler: 'euler',
  LMSDiscreteScheduler: 'euler',
  DPMSolverMultistepScheduler: 'dpmsolver',
  UniPCMultistepScheduler: 'dpmsolver',
  DEISMultistepScheduler: 'dpmsolver',
};
// DEIS always ends on the table's smallest sigma (it has no final_sigmas_type field).
const FINAL_DEFAULT: Record<string, 'zero' | 'sigma_min'> = { DEISMultistepScheduler: 'sigma_min' };

describe('trajectories.json configs', () => {
  it('every config parses, with the scheduler fields passed through', () => {
    for (const run of runs) {
      const cfg = fromDiffusersConfig(run.config);
      expect(cfg.prediction).toBe(
        { epsilon: 'epsilon', v_prediction: 'v', sample: 'x0' }[
          run.config.prediction_type as string
        ] ?? 'epsilon',
      );
    }
  });

  // Heun and PNDM repeat timesteps per model call: the scheduler adapters' concern, not the spacing's.
  const spaced = runs.filter((r) => FAMILY[r.scheduler] !== undefined);
  it.each(spaced.map((r) => [r.id, r] as const))('%s: set_timesteps', (_id, run) => {
    const cfg = fromDiffusersConfig(run.config);
    const family = FAMILY[run.scheduler]!;
    const f = cfg.schedulerFields;
    const out = diffusersSetTimesteps(cfg.schedule, {
      numInferenceSteps: run.num_inference_steps,
      spacing: cfg.timestepSpacing,
      stepsOffset: cfg.stepsOffset,
      family,
      useKarrasSigmas: f.use_karras_sigmas === true,
      finalSigmasType:
        (f.final_sigmas_type as 'zero' | 'sigma_min' | undefined) ??
        FINAL_DEFAULT[run.scheduler] ??
        'zero',
    });
    const karrasEuler = family === 'euler' && f.use_karras_sigmas === true;
    expect(out.timesteps.length).toBe(run.timesteps.length);
    for (const [i, t] of out.timesteps.entries()) {
      expect(Math.abs(t - run.timesteps[i]!)).toBeLessThanOrEqual(karrasEuler ? 1e-4 : 0);
    }
    if (run.sigmas) expect(Array.from(out.sigmas!)).toEqual(run.sigmas);
  });
});
