import { describe, expect, it } from 'vitest';
import {
  DiscreteSchedule,
  diffusersSetTimesteps,
  fromDiffusersConfig,
  ScheduleError,
  toDiffusersConfig,
} from './index.js';
import { loadRef } from './testing/refs.js';

// Real configs as published on the Hugging Face Hub.
const sd15 = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};
const sd21 = {
  _class_name: 'DDIMScheduler',
  _diffusers_version: '0.8.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'v_prediction',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};
const sdxl = {
  _class_name: 'EulerDiscreteScheduler',
  _diffusers_version: '0.19.0.dev0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  interpolation_type: 'linear',
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  sample_max_value: 1.0,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  trained_betas: null,
  use_karras_sigmas: false,
};

describe('fromDiffusersConfig', () => {
  it('reads Stable Diffusion configs and reproduces the reference tables', () => {
    const ref = loadRef<{ schedules: { name: string; alphas_cumprod: number[] }[] }>(
      'diffusers/schedules.json',
    ).schedules.find((s) => s.name === 'scaled_linear')!;
    for (const json of [sd15, sd21, sdxl]) {
      const c = fromDiffusersConfig(json);
      expect(Array.from(c.schedule.alphasCumprod)).toEqual(ref.alphas_cumprod);
      expect(c.stepsOffset).toBe(1);
      expect(c.timestepSpacing).toBe('leading');
      expect(c.metadata._class_name).toBe(json._class_name);
    }
    expect(fromDiffusersConfig(sd21).prediction).toBe('v');
    expect(fromDiffusersConfig(sd15).prediction).toBe('epsilon');
    // scheduler fields are passed through untouched for the scheduler adapters
    expect(fromDiffusersConfig(sdxl).schedulerFields).toEqual({
      clip_sample: false,
      interpolation_type: 'linear',
      sample_max_value: 1.0,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      use_karras_sigmas: false,
    });
  });

  it('feeds set_timesteps: SD 1.5 with 10 DDIM steps is leading + offset 1', () => {
    const c = fromDiffusersConfig(sd15);
    const { timesteps } = diffusersSetTimesteps(c.schedule, {
      numInferenceSteps: 10,
      spacing: c.timestepSpacing,
      stepsOffset: c.stepsOffset,
    });
    expect(Array.from(timesteps)).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  });

  it('defaults follow diffusers (T = 1000, linear 1e-4..0.02, leading, epsilon)', () => {
    const c = fromDiffusersConfig({});
    expect(c.schedule.betas[0]).toBe(Math.fround(1e-4));
    expect(c.schedule.betas[999]).toBe(Math.fround(0.02));
    expect(c.timestepSpacing).toBe('leading');
    expect(c.prediction).toBe('epsilon');
  });

  it('trained betas and zero-terminal-SNR', () => {
    const c = fromDiffusersConfig({ num_train_timesteps: 3, trained_betas: [0.1, 0.2, 0.3] });
    expect(Array.from(c.schedule.betas)).toEqual([0.1, 0.2, 0.3].map(Math.fround));
    const z = fromDiffusersConfig({
      ...sdxl,
      rescale_betas_zero_snr: true,
      timestep_spacing: 'trailing',
    });
    expect(z.schedule.alphasCumprod[999]).toBe(0);
  });

  it('round-trips through toDiffusersConfig', () => {
    for (const json of [
      sd15,
      sd21,
      sdxl,
      { num_train_timesteps: 4, trained_betas: [0.1, 0.2, 0.3, 0.4] },
    ]) {
      const c = fromDiffusersConfig(json);
      const out = toDiffusersConfig(c);
      for (const [k, v] of Object.entries(json)) expect(out[k], k).toEqual(v);
      const again = fromDiffusersConfig(out);
      expect(Array.from(again.schedule.alphasCumprod)).toEqual(
        Array.from(c.schedule.alphasCumprod),
      );
      expect(again.prediction).toBe(c.prediction);
    }
    const v = toDiffusersConfig({
      schedule: DiscreteSchedule.fromConfig({ betaSchedule: 'squaredcos_cap_v2' }),
      timestepSpacing: 'trailing',
      prediction: 'v',
    });
    expect(v).toMatchObject({
      beta_schedule: 'squaredcos_cap_v2',
      timestep_spacing: 'trailing',
      prediction_type: 'v_prediction',
    });
  });

  it.each([
    [
      { num_train_timesteps: 5, trained_betas: [0.1, 0.2] },
      /trained_betas has 2 entries but num_train_timesteps is 5/,
    ],
    [{ beta_start: 0.02, beta_end: 0.0001 }, /beta_start \(0.02\) is above beta_end \(0.0001\)/],
    [{ beta_start: 0 }, /beta_start must be a finite number in \(0, 1\), got 0/],
    [
      { num_train_timesteps: 2, trained_betas: [0.5, 1.5] },
      /trained_betas\[1\] = 1.5 is outside \(0, 1\)/,
    ],
    [
      { num_train_timesteps: '1000' },
      /num_train_timesteps must be an integer in \[2, 1000000\], got '1000'/,
    ],
    [
      { num_train_timesteps: 1e12 },
      /num_train_timesteps must be an integer in \[2, 1000000\], got 1000000000000/,
    ],
    [{ beta_start: '0.00085' }, /beta_start must be a finite number in \(0, 1\), got '0.00085'/],
    [{ clip_sample: 'yes' }, /clip_sample must be a boolean, got 'yes'/],
    [{ clip_sample_range: -1 }, /clip_sample_range must be a finite number > 0, got -1/],
    [{ beta_schedule: 'quadratic' }, /beta_schedule 'quadratic' is not supported/],
    [{ timestep_spacing: 'middle' }, /timestep_spacing 'middle' is not supported/],
    [{ steps_offset: -1 }, /steps_offset must be an integer in \[0, 1000000\], got -1/],
    [{ steps_offset: 1000 }, /steps_offset must be in \[0, num_train_timesteps\)/],
    [{ prediction_type: 'flow' }, /unknown diffusers prediction_type 'flow'/],
    [{ rescale_betas_zero_snr: 'yes' }, /rescale_betas_zero_snr must be a boolean, got 'yes'/],
    [{ trained_betas: 'none' }, /trained_betas must be null or an array of numbers/],
    [[1, 2], /must be a JSON object, got an array of 2/],
    [null, /must be a JSON object, got null/],
    [
      { ...sd15, beta_scheduel: 'linear' },
      /unknown diffusers scheduler config field 'beta_scheduel'/,
      true,
    ],
  ])('bad config %# -> typed error naming the field', (json, message, strict = false) => {
    expect(() => fromDiffusersConfig(json, { strict })).toThrow(ScheduleError);
    expect(() => fromDiffusersConfig(json, { strict })).toThrow(message);
  });

  it('ignores fields no scheduler reads, with one warning naming them (strict mode throws)', () => {
    const warnings: string[] = [];
    const c = fromDiffusersConfig(
      { ...sd15, timestep_values: null, tensor_format: 'pt' },
      { onWarning: (m) => warnings.push(m) },
    );
    expect(c.ignoredFields).toEqual({ timestep_values: null, tensor_format: 'pt' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/'timestep_values' \(null\), 'tensor_format' \('pt'\)/);
  });
});
