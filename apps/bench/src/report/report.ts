/**
 * REPORT.md (tables) and the SVG plots of a run, built from results.json alone, so a stored run can
 * be re-rendered.
 */
import { runtimeName } from '../goals.js';
import { describeMachine } from '../machine.js';
import type { AccuracyCurve, AccuracySuite, GoalsRecord, Results } from '../results.js';
import type { Stat } from '../stats.js';
import { type Bar, barChart, logLogChart } from './svg.js';

const ms = (v: number | null | undefined) =>
  v === null || v === undefined
    ? '-'
    : v >= 100
      ? v.toFixed(0)
      : v >= 10
        ? v.toFixed(1)
        : v.toFixed(2);
const stat = (s: Stat) => `${ms(s.median)} (${ms(s.min)}-${ms(s.max)})`;
const sci = (v: number | null | undefined) =>
  v === null || v === undefined ? '-' : v.toExponential(2);
const ratio = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}x`);

function table(head: string[], rows: (string | number)[][]): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, '\\|');
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function notes(list: string[]): string {
  return list.length === 0 ? '' : `\n${list.map((n) => `- ${n}`).join('\n')}\n`;
}

/** File name of the accuracy plot of one mixture and metric. */
export function accuracyPlotName(mixture: string, metric: 'exact' | 'sw'): string {
  return `accuracy-${mixture.replace(/[^a-zA-Z0-9]+/g, '-')}-${metric}.svg`;
}

/** The SVG plots of a run, by file name. */
export function renderPlots(r: Results): Record<string, string> {
  const out: Record<string, string> = {};
  const acc = r.suites.accuracy;
  if (acc && acc.curves.length > 0) {
    for (const mix of acc.mixtures) {
      const curves = acc.curves.filter((c) => c.mixture === mix.id && c.points.length > 0);
      const refs = acc.references.filter(
        (ref) => mix.id.startsWith('A') && ref.source === 'diffusers',
      );
      out[accuracyPlotName(mix.id, 'exact')] = logLogChart({
        title: `${mix.id}: error against the exact ODE solution`,
        xLabel: 'model evaluations (NFE)',
        yLabel: 'mean L2 to exact end point',
        // Stochastic samplers do not follow the ODE path: only the distance to the data plot shows them.
        series: curves
          .filter((c) => !c.stochastic)
          .map((c) => ({
            name: c.sampler,
            points: c.points.map((p) => ({ x: p.nfe, y: p.meanL2 })),
          })),
        ...(refs.length > 0
          ? {
              markers: {
                name: 'diffusers (refs)',
                points: refs.map((ref) => ({ x: ref.nfe, y: ref.theirs.meanL2, label: ref.id })),
              },
            }
          : {}),
      });
      out[accuracyPlotName(mix.id, 'sw')] = logLogChart({
        title: `${mix.id}: distance to the data distribution`,
        xLabel: 'model evaluations (NFE)',
        yLabel: 'sliced Wasserstein-2',
        series: curves.map((c) => ({
          name: c.sampler,
          points: c.points.map((p) => ({ x: p.nfe, y: p.slicedWasserstein })),
        })),
        hline: { y: mix.floor.slicedWasserstein, label: 'floor: data vs data' },
      });
    }
  }
  const bars: Bar[] = [];
  for (const row of r.suites.throughput?.rows ?? []) {
    bars.push({
      label: `${row.model} forward, ${row.backend}, batch ${row.batch}`,
      value: row.msPerCall.median,
      group: row.backend,
    });
  }
  for (const row of r.suites.training?.rows ?? []) {
    const v = row.variant === 'default' ? '' : ` (${row.variant})`;
    bars.push({
      label: `${row.model} Adam step, ${row.backend}${v}, batch ${row.batch}`,
      value: row.msPerStep.median,
      group: row.backend + v,
    });
  }
  for (const row of r.suites.peers?.rows ?? []) {
    bars.push({
      label: `${row.model} ${row.task === 'train' ? 'Adam step' : 'forward'}, PyTorch, batch ${row.batch}`,
      value: row.torch.median,
      group: 'pytorch',
    });
  }
  if (bars.length > 0)
    out['speed.svg'] = barChart({
      title: 'Time per model call and per Adam step',
      xLabel: 'ms (median)',
      bars,
    });
  return out;
}

/** A table cell where a curve has no point at `nfe`: n/a (cannot be reached), failed, or '-'. */
function cellWithoutPoint(c: AccuracyCurve, nfe: number): string {
  if (c.unreachable?.some((u) => u.nfeRequested === nfe)) return 'n/a';
  return c.error ? 'failed' : '-';
}

/** One note per sampler and reason: "x: n/a at NFE 5, 10: reason". */
function unreachableNotes(c: AccuracyCurve): string[] {
  const byReason = new Map<string, number[]>();
  for (const u of c.unreachable ?? [])
    byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u.nfeRequested]);
  return [...byReason].map(([reason, n]) => `${c.sampler}: n/a at NFE ${n.join(', ')}: ${reason}`);
}

function accuracySection(acc: AccuracySuite): string {
  const parts = [`## Sampler accuracy (${acc.status})\n${notes(acc.notes)}`];
  if (acc.mixtures.length > 0) {
    parts.push(
      table(
        ['mixture', 'dim', 'components', 'exact reference', 'samples', 'SW floor', 'MMD floor'],
        acc.mixtures.map((m) => [
          m.id,
          m.dim,
          m.components,
          m.exactReference,
          m.samples,
          sci(m.floor.slicedWasserstein),
          sci(m.floor.mmd),
        ]),
      ),
    );
  }
  for (const mix of acc.mixtures) {
    const curves = acc.curves.filter((c) => c.mixture === mix.id);
    const nfes = [...new Set(curves.flatMap((c) => c.points.map((p) => p.nfeRequested)))].sort(
      (a, b) => a - b,
    );
    parts.push(
      `\n### ${mix.id}: mean L2 to the exact ODE end point (NFE requested; actual NFE in results.json)\n`,
      table(
        ['sampler', ...nfes.map((n) => `NFE ${n}`)],
        curves.map((c) => [
          c.sampler + (c.stochastic ? ' (stochastic)' : ''),
          ...nfes.map((n) => {
            const p = c.points.find((q) => q.nfeRequested === n);
            return p ? sci(p.meanL2) : cellWithoutPoint(c, n);
          }),
        ]),
      ),
      `\n![error vs NFE](${accuracyPlotName(mix.id, 'exact')})\n`,
      `\n### ${mix.id}: sliced Wasserstein-2 to the data distribution\n`,
      table(
        ['sampler', ...nfes.map((n) => `NFE ${n}`)],
        curves.map((c) => [
          c.sampler,
          ...nfes.map((n) => {
            const p = c.points.find((q) => q.nfeRequested === n);
            return p ? sci(p.slicedWasserstein) : cellWithoutPoint(c, n);
          }),
        ]),
      ),
      `\n![SW vs NFE](${accuracyPlotName(mix.id, 'sw')})\n`,
    );
    const failed = curves.filter((c) => c.error);
    if (failed.length > 0) parts.push(notes(failed.map((c) => `${c.sampler}: failed: ${c.error}`)));
    const na = curves.flatMap((c) => unreachableNotes(c));
    if (na.length > 0) parts.push(notes(na));
  }
  if (acc.references.length > 0) {
    parts.push(
      '\n### Against the reference implementations (same configuration, same start noise)\n',
      table(
        [
          'reference run',
          'ours',
          'NFE',
          'theirs mean L2',
          'ours mean L2',
          'theirs max L2',
          'ours max L2',
          'note',
        ],
        acc.references.map((x) => [
          x.id,
          x.ours,
          x.nfe,
          sci(x.theirs.meanL2),
          sci(x.mine?.meanL2),
          sci(x.theirs.maxL2),
          sci(x.mine?.maxL2),
          x.note ?? '',
        ]),
      ),
    );
  }
  return parts.join('\n');
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** The goals table of issue 9: measured numbers, ratio, target, pass/fail/n/a. */
export function goalsSection(g: GoalsRecord, load: number | undefined): string {
  const isOverhead = (id: string) => id === 'sampler-overhead-unet';
  const rows = g.rows.map((x) => [
    x.id,
    `${x.model}${x.batch !== null ? `, batch ${x.batch}` : ''}`,
    x.ours ? `${ms(x.ours.ms)} (${x.ours.what})` : '-',
    x.reference ? `${ms(x.reference.ms)} (${x.reference.what})` : '-',
    x.value === null ? 'n/a' : isOverhead(x.id) ? pct(x.value) : ratio(x.value),
    `${x.target.op} ${isOverhead(x.id) ? pct(x.target.value) : x.target.value.toFixed(1)}`,
    x.status === 'pass' ? 'pass' : x.status === 'fail' ? '**fail**' : 'n/a',
    x.note ?? '',
  ]);
  const noisy =
    load !== undefined && load >= 1
      ? `\nThe machine's 1-minute load average was ${load.toFixed(2)} when the run started: other work shared the cores, so timings (ours and PyTorch's) are noisy.\n`
      : '';
  return [
    '## Goals (issue 9: fast paths)\n',
    "Ratios of numbers measured in this run, at the PyTorch peer's batch. `sampling-*`: ms per model call through `Denoiser.predict` (what samplers call; for onnx including the worker round trip), the best Diffuse runtime over PyTorch CPU's forward pass. `training-*`: ms per Adam step, the best Diffuse configuration (ablations excluded) over PyTorch's. `sampler-overhead-unet`: the sampler's own time per step in a real `sample()` run over the U-Net's time per step, on the fastest U-Net runtime.\n",
    table(
      ['goal', 'model', 'Diffuse ms', 'reference ms', 'ratio', 'target', 'status', 'note'],
      rows,
    ),
    noisy,
  ].join('\n');
}

/** REPORT.md of a run. */
export function renderReport(r: Results): string {
  const parts: string[] = [];
  parts.push(
    '# Diffuse benchmark report\n',
    `- run: ${r.createdAt}, preset \`${r.plan.preset}\`, ${(r.durationMs / 1000).toFixed(1)} s, \`${['bench', ...r.argv].join(' ')}\``,
    `- machine: ${describeMachine(r.machine)}`,
    `- timings: median of ${r.plan.repeats} repeats after ${r.plan.warmup} warm-up call(s); (min-max) beside it; ms`,
    '',
    goalsSection(r.goals, r.machine.loadAverage[0]),
    '',
    '## Backends\n',
    table(
      [
        'backend',
        'where',
        'available',
        'SIMD',
        'threads',
        'float32',
        'Diffuse SIMD kernels',
        'note',
      ],
      r.backends.map((b) => [
        b.name,
        b.environment,
        b.available ? 'yes' : 'no',
        b.simd === undefined ? '-' : b.simd ? 'yes' : 'no',
        b.threads ?? '-',
        b.float32 === undefined ? '-' : b.float32 ? 'yes' : 'no',
        b.simdKernels === undefined ? '-' : b.simdKernels ? 'yes' : 'no',
        b.reason ?? b.browser ?? '',
      ]),
    ),
    '',
  );
  const { accuracy, throughput, training, peers } = r.suites;
  if (accuracy) parts.push(accuracySection(accuracy), '');
  if (throughput) {
    parts.push(
      `## Throughput (${throughput.status})\n${notes(throughput.notes)}`,
      table(
        [
          'model',
          'runtime',
          'batch',
          'params',
          'ms per call',
          'samples/s',
          'leaked tensors',
          'source',
        ],
        [
          ...throughput.rows.map((x) => [
            x.model,
            runtimeName(x),
            x.batch,
            x.params,
            stat(x.msPerCall),
            (+x.samplesPerSecond.toPrecision(3)).toString(),
            x.leakedTensors,
            x.modelSource,
          ]),
          ...r.backends
            .filter((b) => b.name.startsWith('onnx') && !b.available)
            .map((b) => ['mlp, unet', b.name, '-', '-', b.reason ?? 'n/a', '-', '-', '-']),
        ],
      ),
      '',
    );
    const native = throughput.rows.filter((x) => x.runtime);
    for (const backend of [...new Set(native.map((x) => x.backend))]) {
      const these = native.filter((x) => x.backend === backend);
      const rt = these[0]!.runtime!;
      const setup = these.map((x) => `${x.model} ${ms(x.runtime!.setupMs)} ms`).join(', ');
      parts.push(
        `${backend} rows: the network exported by @diffuse/onnx and run by ${rt.name} ${rt.version} on ${rt.threads} intra-op threads, called through ${rt.call}; every call includes the readback of x from tfjs-${rt.host} and the upload of the result. One-off export + session creation (untimed first call): ${setup}.\n`,
      );
    }
    const sampled = throughput.rows.filter((x) => x.sampling);
    if (sampled.length > 0) {
      parts.push(
        "### Sampling runs: the sampler's own time per step\n",
        table(
          [
            'model',
            'runtime',
            'batch',
            'sampler',
            'steps',
            'NFE',
            'ms per run',
            'samples/s',
            'model ms/step',
            'sampler ms/step',
            'sampler share',
            'live tensors (min-max)',
            'backend MB (max)',
            'leaked',
          ],
          sampled.map((x) => {
            const s = x.sampling!;
            return [
              x.model,
              runtimeName(x),
              x.batch,
              s.sampler,
              s.steps,
              s.nfe,
              stat(s.msPerRun),
              s.samplesPerSecond.toFixed(1),
              ms(s.modelMsPerStep),
              ms(s.overheadMsPerStep),
              `${(100 * s.overheadFraction).toFixed(1)}%`,
              `${Math.min(...s.liveTensorsPerCall)}-${Math.max(...s.liveTensorsPerCall)}`,
              (Math.max(...s.bytesPerCall) / 2 ** 20).toFixed(1),
              s.leakedTensors,
            ];
          }),
        ),
        '',
      );
    }
  }
  if (training) {
    parts.push(
      `## Training: one Adam step (${training.status})\n${notes(training.notes)}`,
      table(
        ['model', 'backend', 'batch', 'variant', 'ms per step', 'leaked tensors', 'source'],
        training.rows.map((x) => [
          x.model,
          x.backend,
          x.batch,
          `${x.variant}${x.workers ? ` (${x.workers} workers)` : ''}${x.ablation ? ' (ablation)' : ''}`,
          stat(x.msPerStep),
          x.leakedTensors,
          x.modelSource,
        ]),
      ),
      '',
    );
    const fast = training.rows.find(
      (x) => x.backend === 'wasm' && x.model === 'mlp' && x.variant === 'default',
    );
    const slow = training.rows.find((x) => x.variant === 'no-wasm-transpose-fix');
    if (fast && slow) {
      parts.push(
        `The backend's wasm transposed-matMul fix (explicit transposes before wasm's BatchMatMul/_FusedMatMul) makes the MLP Adam step ${(slow.msPerStep.median / fast.msPerStep.median).toFixed(1)}x faster: ${ms(slow.msPerStep.median)} ms without it, ${ms(fast.msPerStep.median)} ms with it (batch ${fast.batch}).\n`,
      );
    }
    for (const model of ['mlp', 'unet']) {
      const on = training.rows.find(
        (x) => x.backend === 'wasm' && x.model === model && x.variant === 'default',
      );
      const off = training.rows.find((x) => x.model === model && x.variant === 'no-simd-kernels');
      if (on && off) {
        parts.push(
          `\`@diffuse/backend\`'s own wasm SIMD kernels (GroupNorm, Adam, conv2d, matMul): the ${model === 'mlp' ? 'MLP' : 'U-Net'} Adam step takes ${ms(on.msPerStep.median)} ms with them, ${ms(off.msPerStep.median)} ms without (${(off.msPerStep.median / on.msPerStep.median).toFixed(2)}x; batch ${on.batch}, main thread).\n`,
        );
      }
    }
  }
  if (peers) {
    const t = peers.torch;
    parts.push(
      `## Peers: PyTorch on CPU (${peers.status})\n`,
      t.available
        ? `PyTorch ${t.version ?? '?'} (${t.python ?? ''}), BLAS: ${t.blas ?? 'unknown'}; run at ${t.settings?.length ?? 1} thread settings (torch intra-op threads x OPENBLAS_NUM_THREADS, one process each), ${peers.rows[0]?.torch.repeats ?? '?'} timed calls after ${peers.rows[0]?.torch.warmup ?? '?'} warm-up calls per setting${
            t.env && Object.keys(t.env).length > 0
              ? `; environment: ${Object.entries(t.env)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ')}`
              : ''
          }.\n`
        : `PyTorch is not installed here. Install: \`${t.install}\`\n`,
      notes(peers.notes),
    );
    if (peers.rows.length > 0) {
      // Every thread setting's min / median / max, then the best one, which the ratio and Goals use.
      const labels = peers.rows[0]!.settings?.map((x) => x.label) ?? [];
      parts.push(
        table(
          [
            'model',
            'task',
            'batch',
            ...labels.map((l) => `PyTorch ${l}: min / median / max ms`),
            'PyTorch best (setting)',
            'ours ms',
            'ours backend',
            'ours / PyTorch best',
            'params (ours / torch)',
          ],
          peers.rows.map((x) => [
            x.model,
            x.task,
            x.batch,
            ...labels.map((l) => {
              const st = x.settings?.find((y) => y.label === l)?.stat;
              return st ? `${ms(st.min)} / ${ms(st.median)} / ${ms(st.max)}` : '-';
            }),
            `${ms(x.torch.median)} (${x.setting ?? '?'})`,
            ms(x.oursMs),
            x.oursBackend ?? '-',
            ratio(x.ratio),
            `${x.paramsOurs} / ${x.paramsTorch}`,
          ]),
        ),
        '\nA ratio above 1 means Diffuse is slower than PyTorch on this machine.\n',
      );
    }
  }
  const checkpoints = r.suites.checkpoints;
  if (checkpoints) {
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    parts.push(
      `## Checkpoints: diffusers UNet2DModel, google/ddpm-cifar10-32's config (${checkpoints.status})\n`,
      notes(checkpoints.notes),
      table(
        [
          'runtime',
          'params',
          'batch',
          'load ms',
          'ms per call',
          'model MB',
          'peak RSS MB',
          'leaked tensors',
        ],
        checkpoints.rows.map((x) => [
          x.runtime
            ? `${x.backend} (${x.runtime.name}, ${x.runtime.threads} threads)`
            : `tfjs-${x.backend}`,
          x.params,
          x.batch,
          ms(x.loadMs),
          stat(x.msPerCall),
          mb(x.modelBytes),
          mb(x.peakRssBytes),
          x.leakedTensors,
        ]),
      ),
      '',
    );
  }
  if (r.suites.throughput || r.suites.training || r.suites.peers)
    parts.push('![speed](speed.svg)\n');
  return parts.join('\n');
}
