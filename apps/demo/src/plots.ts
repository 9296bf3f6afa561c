/**
 * Drawing: line charts through uPlot (schedule, loss curve), and a small canvas view of 2-D points,
 * trajectories and vector fields (thousands of points redrawn every animation frame, which a
 * general charting library does not do cheaply).
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** Colours of classes / series, readable on white. */
export const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
];

export interface LineSeries {
  label: string;
  color: string;
  /** Which y-axis: the left one ('y') or a second one on the right ('y2'). */
  scale?: 'y' | 'y2';
}

/** A uPlot line chart in `parent` with x values and one or more series. */
export function lineChart(
  parent: HTMLElement,
  opts: {
    title: string;
    xLabel: string;
    series: LineSeries[];
    width?: number;
    height?: number;
    logY?: boolean;
  },
): uPlot {
  const hasY2 = opts.series.some((s) => s.scale === 'y2');
  const axes: uPlot.Axis[] = [{ label: opts.xLabel }, { scale: 'y' }];
  if (hasY2) axes.push({ scale: 'y2', side: 1, grid: { show: false } });
  return new uPlot(
    {
      title: opts.title,
      width: opts.width ?? 420,
      height: opts.height ?? 220,
      scales: {
        x: { time: false },
        y: opts.logY ? { distr: 3 } : {},
        ...(hasY2 ? { y2: {} } : {}),
      },
      axes,
      series: [
        { label: opts.xLabel },
        ...opts.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          scale: s.scale ?? 'y',
        })),
      ],
      legend: { live: false },
    },
    [[], ...opts.series.map(() => [])] as uPlot.AlignedData,
    parent,
  );
}

/** Square canvas view of the plane [-extent, extent]^2. */
export class PlaneView {
  readonly canvas: HTMLCanvasElement;
  readonly ctx: CanvasRenderingContext2D;
  extent: number;

  constructor(
    parent: HTMLElement,
    opts: { size?: number; extent?: number; title?: string; id?: string },
  ) {
    const wrap = document.createElement('figure');
    wrap.className = 'plane';
    this.canvas = document.createElement('canvas');
    const size = opts.size ?? 260;
    this.canvas.width = size;
    this.canvas.height = size;
    if (opts.id) this.canvas.id = opts.id;
    wrap.append(this.canvas);
    if (opts.title) {
      const cap = document.createElement('figcaption');
      cap.textContent = opts.title;
      wrap.append(cap);
    }
    parent.append(wrap);
    // willReadFrequently keeps the canvas in CPU memory: it survives a GPU-process reset (which
    // WebGPU/WebGL backends can trigger under software rendering) and reads back cheaply.
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true })!;
    this.extent = opts.extent ?? 3;
    this.clear();
  }

  /** Set the caption under the canvas. */
  caption(text: string): void {
    const cap = this.canvas.parentElement?.querySelector('figcaption');
    if (cap) cap.textContent = text;
  }

  px(x: number): number {
    return ((x + this.extent) / (2 * this.extent)) * this.canvas.width;
  }

  py(y: number): number {
    return ((this.extent - y) / (2 * this.extent)) * this.canvas.height;
  }

  clear(): void {
    const { ctx, canvas } = this;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.strokeStyle = '#eee';
    ctx.lineWidth = 1;
    for (let v = -Math.floor(this.extent); v <= this.extent; v++) {
      ctx.beginPath();
      ctx.moveTo(this.px(v), 0);
      ctx.lineTo(this.px(v), canvas.height);
      ctx.moveTo(0, this.py(v));
      ctx.lineTo(canvas.width, this.py(v));
      ctx.stroke();
    }
    ctx.strokeStyle = '#ccc';
    ctx.beginPath();
    ctx.moveTo(this.px(0), 0);
    ctx.lineTo(this.px(0), canvas.height);
    ctx.moveTo(0, this.py(0));
    ctx.lineTo(canvas.width, this.py(0));
    ctx.stroke();
  }

  /** Points xy (flat [n*2]), coloured by `labels` (or one colour). */
  points(
    xy: ArrayLike<number>,
    opts: { labels?: ArrayLike<number>; color?: string; radius?: number; alpha?: number } = {},
  ): void {
    const { ctx } = this;
    const r = opts.radius ?? 1.6;
    ctx.globalAlpha = opts.alpha ?? 0.7;
    const n = xy.length / 2;
    for (let i = 0; i < n; i++) {
      ctx.fillStyle = opts.labels
        ? PALETTE[opts.labels[i]! % PALETTE.length]!
        : (opts.color ?? PALETTE[0]!);
      ctx.fillRect(this.px(xy[2 * i]!) - r, this.py(xy[2 * i + 1]!) - r, 2 * r, 2 * r);
    }
    ctx.globalAlpha = 1;
  }

  /** Poly-lines through successive states: `path[s]` is flat [n*2] at step s; draws the first `maxLines`. */
  trajectories(
    path: ArrayLike<number>[],
    opts: { maxLines?: number; color?: string; labels?: ArrayLike<number> } = {},
  ): void {
    if (path.length < 2) return;
    const { ctx } = this;
    const n = Math.min(path[0]!.length / 2, opts.maxLines ?? 64);
    ctx.globalAlpha = 0.35;
    ctx.lineWidth = 1;
    for (let i = 0; i < n; i++) {
      ctx.strokeStyle = opts.labels
        ? PALETTE[opts.labels[i]! % PALETTE.length]!
        : (opts.color ?? '#555');
      ctx.beginPath();
      ctx.moveTo(this.px(path[0]![2 * i]!), this.py(path[0]![2 * i + 1]!));
      for (let s = 1; s < path.length; s++)
        ctx.lineTo(this.px(path[s]![2 * i]!), this.py(path[s]![2 * i + 1]!));
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  /** Arrows from `from` (flat [n*2]) along `vec` (flat [n*2]) times `scale`. */
  arrows(
    from: ArrayLike<number>,
    vec: ArrayLike<number>,
    opts: { scale?: number; color?: string } = {},
  ): void {
    const { ctx } = this;
    const s = opts.scale ?? 1;
    ctx.strokeStyle = opts.color ?? '#333';
    ctx.lineWidth = 1;
    ctx.globalAlpha = 0.8;
    const n = from.length / 2;
    for (let i = 0; i < n; i++) {
      const x0 = this.px(from[2 * i]!);
      const y0 = this.py(from[2 * i + 1]!);
      const x1 = this.px(from[2 * i]! + s * vec[2 * i]!);
      const y1 = this.py(from[2 * i + 1]! + s * vec[2 * i + 1]!);
      ctx.beginPath();
      ctx.moveTo(x0, y0);
      ctx.lineTo(x1, y1);
      const a = Math.atan2(y1 - y0, x1 - x0);
      const h = Math.min(4, Math.hypot(x1 - x0, y1 - y0) / 2);
      ctx.lineTo(x1 - h * Math.cos(a - 0.5), y1 - h * Math.sin(a - 0.5));
      ctx.moveTo(x1, y1);
      ctx.lineTo(x1 - h * Math.cos(a + 0.5), y1 - h * Math.sin(a + 0.5));
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  /** The tiling of `images`: columns, rows, and the canvas pixels per image pixel. */
  private grid(count: number, h: number, w: number): { cols: number; rows: number; scale: number } {
    const cols = Math.ceil(Math.sqrt(count));
    const rows = Math.ceil(count / cols);
    const scale = Math.min(this.canvas.width / (cols * w), this.canvas.height / (rows * h));
    return { cols, rows, scale };
  }

  /** Grey-scale images in [-1, 1], each [h*w], tiled in a grid filling the canvas. */
  images(pixels: ArrayLike<number>, count: number, h: number, w: number): void {
    const { cols, rows, scale } = this.grid(count, h, w);
    const img = this.ctx.createImageData(cols * w, rows * h);
    img.data.fill(255);
    for (let k = 0; k < count; k++) {
      const ox = (k % cols) * w;
      const oy = Math.floor(k / cols) * h;
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const v = Math.max(
            0,
            Math.min(255, Math.round(((pixels[k * h * w + i * w + j]! + 1) / 2) * 255)),
          );
          const p = ((oy + i) * cols * w + ox + j) * 4;
          img.data[p] = img.data[p + 1] = img.data[p + 2] = 255 - v;
        }
      }
    }
    const tmp = document.createElement('canvas');
    tmp.width = img.width;
    tmp.height = img.height;
    tmp.getContext('2d')!.putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.fillStyle = '#fff';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.ctx.drawImage(tmp, 0, 0, img.width * scale, img.height * scale);
  }

  /**
   * Labels drawn over the tiles of the last `images` call (same count and size): `labels[k]` in
   * the top-left corner of image k, with a frame when `framed`; an empty label leaves it unmarked.
   */
  marks(
    labels: readonly string[],
    count: number,
    h: number,
    w: number,
    opts: { color: string; framed: boolean },
  ): void {
    const { cols, scale } = this.grid(count, h, w);
    const { ctx } = this;
    ctx.save();
    ctx.strokeStyle = opts.color;
    ctx.fillStyle = opts.color;
    ctx.lineWidth = 1;
    ctx.font = `bold ${Math.max(9, Math.round(5 * scale))}px sans-serif`;
    ctx.textBaseline = 'top';
    for (let k = 0; k < count; k++) {
      const label = labels[k];
      if (!label) continue;
      const x = (k % cols) * w * scale;
      const y = Math.floor(k / cols) * h * scale;
      if (opts.framed) ctx.strokeRect(x + 0.5, y + 0.5, w * scale - 1, h * scale - 1);
      ctx.fillText(label, x + 2, y + 2);
    }
    ctx.restore();
  }
}

/** Number of canvas pixels that differ from white: how the tests (and you) tell a blank canvas. */
export function inkedPixels(canvas: HTMLCanvasElement): number {
  const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i]! < 200 || d[i + 1]! < 200 || d[i + 2]! < 200) n++;
  return n;
}
