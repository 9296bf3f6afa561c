/**
 * Small SVG charts for the report, drawn with d3-scale (axes, ticks) and d3-shape (lines): a log-log
 * line chart (NFE against error) and a horizontal bar chart (ms per call). Output is a standalone
 * SVG string that renders on GitHub and in any browser.
 */
import { scaleBand, scaleLinear, scaleLog } from 'd3-scale';
import { line } from 'd3-shape';

/** Ten distinguishable colours (Tableau 10) and marker shapes, cycled over series. */
const COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];
const DASHES = ['', '6 3', '2 2', '8 3 2 3'];

export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!,
  );
}

const fmt = (v: number) =>
  Math.abs(v) >= 1000 || Math.abs(v) < 0.01 ? v.toExponential(0) : String(+v.toPrecision(3));

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Extra points drawn as crosses (e.g. reference numbers), labelled in the legend. */
  markers?: { name: string; points: { x: number; y: number; label?: string }[] };
  /** A horizontal reference line (e.g. a noise floor). */
  hline?: { y: number; label: string };
  width?: number;
  height?: number;
}

/** A log-log line chart. Points with non-positive coordinates are dropped (they have no log). */
export function logLogChart(o: LineChartOptions): string {
  const width = o.width ?? 760;
  const height = o.height ?? 460;
  const legendW = 200;
  const m = { top: 36, right: legendW + 16, bottom: 48, left: 70 };
  const ok = (p: { x: number; y: number }) =>
    p.x > 0 && p.y > 0 && Number.isFinite(p.x) && Number.isFinite(p.y);
  const series = o.series
    .map((s) => ({ ...s, points: s.points.filter(ok) }))
    .filter((s) => s.points.length > 0);
  const markers = (o.markers?.points ?? []).filter(ok);
  const all = [...series.flatMap((s) => s.points), ...markers];
  if (o.hline && o.hline.y > 0) all.push({ x: all[0]?.x ?? 1, y: o.hline.y });
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${m.left}" y="20" font-size="14" font-weight="bold">${escapeXml(o.title)}</text>`,
  );
  if (all.length === 0) {
    parts.push(
      `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`,
    );
    return parts.join('\n');
  }
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const x = scaleLog()
    .domain([Math.min(...xs) / 1.1, Math.max(...xs) * 1.1])
    .range([m.left, width - m.right]);
  const y = scaleLog()
    .domain([Math.min(...ys) / 1.5, Math.max(...ys) * 1.5])
    .range([height - m.bottom, m.top]);
  // Grid and axes.
  for (const t of x.ticks(6)) {
    const px = x(t);
    parts.push(
      `<line x1="${px}" x2="${px}" y1="${m.top}" y2="${height - m.bottom}" stroke="#eee"/>`,
    );
    parts.push(
      `<text x="${px}" y="${height - m.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  const yt = y.ticks(6);
  const yTicks =
    yt.length > 12
      ? yt.filter((t) => Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9)
      : yt;
  for (const t of yTicks) {
    const py = y(t);
    parts.push(
      `<line x1="${m.left}" x2="${width - m.right}" y1="${py}" y2="${py}" stroke="#eee"/>`,
    );
    parts.push(`<text x="${m.left - 6}" y="${py + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  parts.push(
    `<rect x="${m.left}" y="${m.top}" width="${width - m.left - m.right}" height="${height - m.top - m.bottom}" fill="none" stroke="#333"/>`,
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
    `<text transform="translate(16 ${(m.top + height - m.bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(o.yLabel)}</text>`,
  );
  if (o.hline && o.hline.y > 0) {
    const py = y(o.hline.y);
    parts.push(
      `<line x1="${m.left}" x2="${width - m.right}" y1="${py}" y2="${py}" stroke="#999" stroke-dasharray="4 4"/>`,
      `<text x="${width - m.right - 4}" y="${py - 4}" text-anchor="end" fill="#666">${escapeXml(o.hline.label)}</text>`,
    );
  }
  const path = line<{ x: number; y: number }>()
    .x((p) => x(p.x))
    .y((p) => y(p.y));
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const dash = DASHES[Math.floor(i / COLORS.length) % DASHES.length]!;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    parts.push(
      `<path d="${path(pts) ?? ''}" fill="none" stroke="${color}" stroke-width="1.8"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    for (const p of pts)
      parts.push(`<circle cx="${x(p.x)}" cy="${y(p.y)}" r="2.5" fill="${color}"/>`);
    const ly = m.top + 14 * i;
    parts.push(
      `<line x1="${width - legendW}" x2="${width - legendW + 18}" y1="${ly + 6}" y2="${ly + 6}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      `<text x="${width - legendW + 24}" y="${ly + 10}">${escapeXml(s.name)}</text>`,
    );
  });
  if (markers.length > 0 && o.markers) {
    for (const p of markers) {
      const px = x(p.x);
      const py = y(p.y);
      parts.push(
        `<path d="M${px - 4},${py - 4}L${px + 4},${py + 4}M${px - 4},${py + 4}L${px + 4},${py - 4}" stroke="#000" stroke-width="1.5"><title>${escapeXml(p.label ?? '')}</title></path>`,
      );
    }
    const ly = m.top + 14 * series.length + 4;
    parts.push(
      `<path d="M${width - legendW + 5},${ly + 2}L${width - legendW + 13},${ly + 10}M${width - legendW + 5},${ly + 10}L${width - legendW + 13},${ly + 2}" stroke="#000" stroke-width="1.5"/>`,
      `<text x="${width - legendW + 24}" y="${ly + 10}">${escapeXml(o.markers.name)}</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export interface Bar {
  label: string;
  value: number;
  /** Bars of the same group share a colour. */
  group: string;
}

/** A horizontal bar chart on a log axis (values spanning orders of magnitude, e.g. ms per call). */
export function barChart(o: {
  title: string;
  xLabel: string;
  bars: Bar[];
  width?: number;
}): string {
  const bars = o.bars.filter((b) => b.value > 0 && Number.isFinite(b.value));
  const width = o.width ?? 760;
  const rowH = 22;
  const m = { top: 36, right: 90, bottom: 44, left: 300 };
  const height = m.top + m.bottom + Math.max(1, bars.length) * rowH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${escapeXml(o.title)}</text>`,
  ];
  if (bars.length === 0) {
    parts.push(
      `<text x="${width / 2}" y="${height / 2}" text-anchor="middle">no data</text></svg>`,
    );
    return parts.join('\n');
  }
  const values = bars.map((b) => b.value);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const useLog = hi / lo > 20;
  const x = (
    useLog ? scaleLog().domain([lo / 2, hi * 1.2]) : scaleLinear().domain([0, hi * 1.1])
  ).range([m.left, width - m.right]);
  const y = scaleBand<number>()
    .domain(bars.map((_, i) => i))
    .range([m.top, height - m.bottom])
    .padding(0.2);
  const groups = [...new Set(bars.map((b) => b.group))];
  for (const t of x.ticks(5)) {
    parts.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${m.top}" y2="${height - m.bottom}" stroke="#eee"/>`,
    );
    parts.push(
      `<text x="${x(t)}" y="${height - m.bottom + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  const x0 = x.domain()[0]!;
  bars.forEach((b, i) => {
    const color = COLORS[groups.indexOf(b.group) % COLORS.length]!;
    const top = y(i)!;
    parts.push(
      `<rect x="${x(x0)}" y="${top}" width="${Math.max(1, x(b.value) - x(x0))}" height="${y.bandwidth()}" fill="${color}"/>`,
      `<text x="${m.left - 6}" y="${top + y.bandwidth() / 2 + 4}" text-anchor="end">${escapeXml(b.label)}</text>`,
      `<text x="${x(b.value) + 4}" y="${top + y.bandwidth() / 2 + 4}">${fmt(b.value)}</text>`,
    );
  });
  parts.push(
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 10}" text-anchor="middle">${escapeXml(o.xLabel)}${useLog ? ' (log scale)' : ''}</text>`,
    '</svg>',
  );
  return parts.join('\n');
}
