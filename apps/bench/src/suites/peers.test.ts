import { describe, expect, it } from 'vitest';
import { peerSettings } from '../plan.js';
import { summarize } from '../stats.js';
import { bestSetting, settingLabel } from './peers.js';

describe('the PyTorch peer at its best', () => {
  it('measures torch threads 1 and 2 (and all cores) times OpenBLAS threads 1 and 2', () => {
    expect(peerSettings(2).map(settingLabel)).toEqual([
      'torch 1 thread, OPENBLAS_NUM_THREADS=1',
      'torch 1 thread, OPENBLAS_NUM_THREADS=2',
      'torch 2 threads, OPENBLAS_NUM_THREADS=1',
      'torch 2 threads, OPENBLAS_NUM_THREADS=2',
    ]);
    expect(peerSettings(1).map((s) => [s.torchThreads, s.openblasThreads])).toEqual([
      [1, 1],
      [1, 2],
    ]);
    expect(peerSettings(8).map((s) => s.torchThreads)).toEqual([1, 1, 2, 2, 8, 8]);
  });

  it('takes the setting with the lowest median, not the lowest single time', () => {
    const row = (t: number, b: number, samples: number[]) => ({
      torchThreads: t,
      openblasThreads: b,
      label: settingLabel({ torchThreads: t, openblasThreads: b }),
      stat: summarize(samples, 0),
    });
    const best = bestSetting([
      row(1, 1, [30, 31, 32]),
      row(1, 2, [5, 40, 41]), // the fastest single call, a slow median
      row(2, 1, [20, 21, 90]),
      row(2, 2, [25, 25, 25]),
    ]);
    expect(best.label).toBe('torch 2 threads, OPENBLAS_NUM_THREADS=1');
    expect(best.stat.median).toBe(21);
    expect(() => bestSetting([])).toThrow(RangeError);
  });
});
