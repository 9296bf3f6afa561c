/**
 * The one size budget: the caller's maxParams, the default, and the bound a weights file gives.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_PARAMS, MAX_PARAM_TENSORS, ParamTally, paramBudget } from './budget.js';
import { ModelConfigError } from './errors.js';

describe('paramBudget', () => {
  const cap = (n: number) => ({ maxParams: n, maxTensors: 100, source: 'the weights hold' });

  it('defaults to DEFAULT_MAX_PARAMS without weights, and to what the weights hold with them', () => {
    expect(paramBudget('mlp', {})).toEqual({
      maxParams: DEFAULT_MAX_PARAMS,
      maxTensors: MAX_PARAM_TENSORS,
      what: 'mlp',
    });
    // A real checkpoint larger than the default loads without options: its file is the evidence.
    expect(paramBudget('UNet2DConditionModel', {}, cap(2e9)).maxParams).toBe(2e9);
    expect(paramBudget('UNet2DConditionModel', {}, cap(2e9)).source).toBe('the weights hold');
    // A tiny file bounds a hostile config far below the default.
    expect(paramBudget('UNet2DModel', {}, cap(1000)).maxParams).toBe(1000);
  });

  it("the caller's maxParams is an upper bound that the weights can only lower", () => {
    expect(paramBudget('UNet2DModel', { maxParams: 5e8 }, cap(2e9)).maxParams).toBe(5e8);
    expect(paramBudget('UNet2DModel', { maxParams: 5e8 }, cap(1e6)).maxParams).toBe(1e6);
    expect(() => paramBudget('mlp', { maxParams: -1 })).toThrow(ModelConfigError);
  });

  it('the tally refuses as soon as the count passes the budget', () => {
    const tally = new ParamTally(paramBudget('mlp', { maxParams: 100 }));
    tally.add('a', [8, 8]);
    expect(() => tally.add('b', [8, 8])).toThrow(/maxParams/);
  });
});
