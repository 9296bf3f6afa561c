import { describe, expect, it } from 'vitest';
import { barChart, escapeXml, logLogChart } from './svg.js';

const circles = (svg: string) =>
  [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map(
    (m) => [Number(m[1]), Number(m[2])] as const,
  );

describe('svg charts', () => {
  it('places points on log axes: x grows to the right, y grows upward, equal ratios give equal steps', () => {
    const svg = logLogChart({
      title: 'a < b',
      xLabel: 'NFE',
      yLabel: 'error',
      series: [
        {
          name: 's',
          points: [
            { x: 10, y: 0.1 },
            { x: 100, y: 0.01 },
            { x: 1000, y: 0.001 },
            { x: -1, y: 1 },
          ],
        },
      ],
    });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('a &lt; b');
    const c = circles(svg);
    expect(c).toHaveLength(3); // the point with x <= 0 has no log and is dropped
    expect(c[1]![0]).toBeGreaterThan(c[0]![0]);
    expect(c[1]![1]).toBeGreaterThan(c[0]![1]); // smaller y is lower on the page (larger SVG y)
    expect(c[2]![0] - c[1]![0]).toBeCloseTo(c[1]![0] - c[0]![0], 6);
    expect(c[2]![1] - c[1]![1]).toBeCloseTo(c[1]![1] - c[0]![1], 6);
  });

  it('draws one bar per positive value and says when there is no data', () => {
    const svg = barChart({
      title: 't',
      xLabel: 'ms',
      bars: [
        { label: 'a', value: 2, group: 'g' },
        { label: 'b', value: 0, group: 'g' },
      ],
    });
    expect(svg.match(/<rect x=/g)).toHaveLength(1);
    expect(barChart({ title: 't', xLabel: 'ms', bars: [] })).toContain('no data');
    expect(escapeXml(`"&'`)).toBe('&quot;&amp;&apos;');
  });
});
