/**
 * diffusers' JSON dialect (Python's `json`: bare Infinity / -Infinity / NaN) against the real files of
 * `reference-data/real-configs/` (their `parsed` field is Python's own `json.loads`, non-finite numbers
 * written as strings), and the shared field validation.
 */
import { describe, expect, it } from 'vitest';
import {
  fromDiffusersConfig,
  parseDiffusersJson,
  ScheduleError,
  stringifyDiffusersJson,
  validateDiffusersFields,
} from './index.js';
import { loadRef } from './testing/refs.js';

interface RealConfig {
  id: string;
  raw: string;
  parsed: Record<string, unknown>;
  strict_json: boolean;
  variants?: { raw: string }[];
}
const NONFINITE: Record<string, number> = {
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
  NaN: Number.NaN,
};
const files = loadRef<{ configs: RealConfig[] }>('real-configs/configs.json').configs;
const python = (c: RealConfig) =>
  JSON.parse(JSON.stringify(c.parsed), (_k, v) =>
    typeof v === 'string' && v in NONFINITE ? NONFINITE[v] : v,
  ) as Record<string, unknown>;

describe('parseDiffusersJson', () => {
  it.each(files.map((c) => [c.id, c] as const))('%s reads as Python json.loads does', (_id, c) => {
    expect(parseDiffusersJson(c.raw)).toEqual(python(c));
  });

  it('reads the non-strict files JSON.parse rejects', () => {
    const nonStrict = files.filter((c) => !c.strict_json);
    expect(nonStrict.length).toBeGreaterThanOrEqual(1);
    for (const c of nonStrict) {
      expect(() => JSON.parse(c.raw)).toThrow(SyntaxError);
      expect((parseDiffusersJson(c.raw) as Record<string, unknown>).lambda_min_clipped).toBe(
        Number.NEGATIVE_INFINITY,
      );
    }
  });

  it('reads every variant (same config but for _diffusers_version, whitespace and key order)', () => {
    let n = 0;
    for (const c of files) {
      for (const v of c.variants ?? []) {
        const { _diffusers_version: _a, ...got } = parseDiffusersJson(v.raw) as Record<
          string,
          unknown
        >;
        const { _diffusers_version: _b, ...want } = python(c);
        expect(got, c.id).toEqual(want);
        n++;
      }
    }
    expect(n).toBeGreaterThan(20);
  });

  it('keeps the tokens inside strings, reads NaN and Infinity, and gives a typed error on bad JSON', () => {
    expect(parseDiffusersJson('{"a": "-Infinity NaN", "b": [NaN, Infinity, -Infinity]}')).toEqual({
      a: '-Infinity NaN',
      b: [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY],
    });
    expect(parseDiffusersJson('{"a\\"NaN": 1}')).toEqual({ 'a"NaN': 1 });
    expect(() => parseDiffusersJson('{"a": 1', 'scheduler_config.json')).toThrow(ScheduleError);
    expect(() => parseDiffusersJson('{"a": 1', 'scheduler_config.json')).toThrow(
      /scheduler_config.json is not valid JSON/,
    );
    expect(() => parseDiffusersJson('{"a": Infinityx}')).toThrow(ScheduleError);
  });

  it('stringifyDiffusersJson writes sorted keys and bare non-finite tokens that read back', () => {
    const c = { z: 1, lambda_min_clipped: Number.NEGATIVE_INFINITY, a: 'NaN', n: Number.NaN };
    const text = stringifyDiffusersJson(c);
    expect(text).toBe(
      '{\n  "a": "NaN",\n  "lambda_min_clipped": -Infinity,\n  "n": NaN,\n  "z": 1\n}\n',
    );
    expect(parseDiffusersJson(text)).toEqual(c);
  });
});

describe('validateDiffusersFields', () => {
  it.each([
    [{ beta_start: 0.02, beta_end: 0.0001 }, /beta_start \(0.02\) is above beta_end/],
    [{ beta_end: '0.012' }, /beta_end must be a finite number in \(0, 1\), got '0.012'/],
    [{ clip_sample: 'yes' }, /clip_sample must be a boolean, got 'yes'/],
    [{ clip_sample_range: -1 }, /clip_sample_range must be a finite number > 0, got -1/],
    [{ num_train_timesteps: 1e12 }, /num_train_timesteps must be an integer in \[2, 1000000\]/],
    [{ solver_order: 7 }, /solver_order must be an integer in \[1, 3\], got 7/],
    [{ shift: Number.NaN }, /shift must be a finite number > 0, got NaN/],
    [{ lambda_min_clipped: 'x' }, /lambda_min_clipped must be a number or null, got 'x'/],
    [{ disable_corrector: [1, -1] }, /disable_corrector must be an array of non-negative integers/],
    [null, /must be a JSON object, got null/],
  ])('rejects %j', (c, message) => {
    expect(() => validateDiffusersFields(c)).toThrow(ScheduleError);
    expect(() => validateDiffusersFields(c)).toThrow(message);
  });

  it("accepts every default of diffusers' scheduler signatures that carries a null", () => {
    expect(() =>
      validateDiffusersFields({
        noise_sampler_seed: null,
        variance_type: null,
        solver_p: null,
        shift_terminal: null,
        sigma_min: null,
        sigma_max: null,
        trained_betas: null,
        base_shift: null,
        max_shift: null,
        lambda_min_clipped: null,
      }),
    ).not.toThrow();
  });

  it('accepts every real file, and fromDiffusersConfig loads every beta-table file', () => {
    for (const c of files) {
      const json = parseDiffusersJson(c.raw) as Record<string, unknown>;
      expect(() => validateDiffusersFields(json), c.id).not.toThrow();
      if ('beta_start' in json || 'beta_schedule' in json)
        expect(() => fromDiffusersConfig(json, { onWarning: () => {} }), c.id).not.toThrow();
    }
  });

  it('fromDiffusersConfig refuses flow-matching files (no beta table) instead of a default linear one', () => {
    const flow = files.filter((c) => /FlowMatch|MiniMaxH3/.test(String(c.parsed._class_name)));
    expect(flow.length).toBeGreaterThan(0);
    for (const c of flow) {
      const json = parseDiffusersJson(c.raw);
      expect(() => fromDiffusersConfig(json, { onWarning: () => {} }), c.id).toThrow(ScheduleError);
      expect(() => fromDiffusersConfig(json, { onWarning: () => {} }), c.id).toThrow(
        /flow-matching/,
      );
    }
    const dpmFlow = { _class_name: 'DPMSolverMultistepScheduler', use_flow_sigmas: true };
    expect(() => fromDiffusersConfig(dpmFlow)).toThrow(/use_flow_sigmas: true is a flow-matching/);
  });
});
