import { describe, expect, it } from 'vitest';
import { median, summarize, timeIt } from './stats.js';

describe('stats', () => {
  it('takes the median of odd and even counts without reordering the input', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
  });

  it('summarises and times: warm-up calls are made but not counted', async () => {
    expect(summarize([3, 1, 2], 1)).toEqual({
      median: 2,
      min: 1,
      max: 3,
      repeats: 3,
      warmup: 1,
      samples: [3, 1, 2],
    });
    let calls = 0;
    const s = await timeIt(
      async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 5));
      },
      { warmup: 2, repeats: 3 },
    );
    expect(calls).toBe(5);
    expect(s.repeats).toBe(3);
    expect(s.samples).toHaveLength(3);
    expect(s.median).toBeGreaterThanOrEqual(4);
  });
});
