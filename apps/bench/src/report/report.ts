/**
 * REPORT.md (tables) and the SVG plots of a run, built from results.json alone, so a stored run can
 * be re-rendered.
 */
import { describeMachine } from '../machine.js';
import type { AccuracySuite, Results } from '../results.js';
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
    const v = row.variant === 'default' ? '' : ' (no transpose fix)';
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
            return p ? sci(p.meanL2) : c.error ? 'failed' : '-';
          }),
        ]),
      ),
      `\n![error vs NFE](${accuracyPlotName(mix.id, 'exact')})\n`,
      `\n### ${mix.id}: sliced Wasserstein-2 to the data distribution\n`,
      table(
        ['sampler', ...nfes.map((n) => `NFE ${n}`)],
        curves.map((c) => [
          c.sampler,
          ...nfes.map((n) => sci(c.points.find((q) => q.nfeRequested === n)?.slicedWasserstein)),
        ]),
      ),
      `\n![SW vs NFE](${accuracyPlotName(mix.id, 'sw')})\n`,
    );
    const failed = curves.filter((c) => c.error);
    if (failed.length > 0) parts.push(notes(failed.map((c) => `${c.sampler}: ${c.error}`)));
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

/** REPORT.md of a run. */
export function renderReport(r: Results): string {
  const parts: string[] = [];
  parts.push(
    '# Diffuse benchmark report\n',
    `- run: ${r.createdAt}, preset \`${r.plan.preset}\`, ${(r.durationMs / 1000).toFixed(1)} s, \`${['bench', ...r.argv].join(' ')}\``,
    `- machine: ${describeMachine(r.machine)}`,
    `- timings: median of ${r.plan.repeats} repeats after ${r.plan.warmup} warm-up call(s); (min-max) beside it; ms`,
    '',
    '## Backends\n',
    table(
      ['backend', 'where', 'available', 'SIMD', 'threads', 'float32', 'note'],
      r.backends.map((b) => [
        b.name,
        b.environment,
        b.available ? 'yes' : 'no',
        b.simd ? 'yes' : 'no',
        b.threads ?? '-',
        b.float32 === undefined ? '-' : b.float32 ? 'yes' : 'no',
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
          'backend',
          'batch',
          'params',
          'ms per call',
          'samples/s',
          'leaked tensors',
          'source',
        ],
        throughput.rows.map((x) => [
          x.model,
          x.backend,
          x.batch,
          x.params,
          stat(x.msPerCall),
          (+x.samplesPerSecond.toPrecision(3)).toString(),
          x.leakedTensors,
          x.modelSource,
        ]),
      ),
      '',
    );
    const sampled = throughput.rows.filter((x) => x.sampling);
    if (sampled.length > 0) {
      parts.push(
        "### Sampling runs: the sampler's own time per step\n",
        table(
          [
            'model',
            'backend',
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
              x.backend,
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
          x.variant,
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
  }
  if (peers) {
    const t = peers.torch;
    parts.push(
      `## Peers: PyTorch on CPU (${peers.status})\n`,
      t.available
        ? `PyTorch ${t.version ?? '?'} (${t.python ?? ''}), ${t.threads ?? '?'} threads, BLAS: ${t.blas ?? 'unknown'}.\n`
        : `PyTorch is not installed here. Install: \`${t.install}\`\n`,
      notes(peers.notes),
    );
    if (peers.rows.length > 0) {
      parts.push(
        table(
          [
            'model',
            'task',
            'batch',
            'PyTorch ms',
            'ours ms',
            'ours backend',
            'ours / PyTorch',
            'params (ours / torch)',
          ],
          peers.rows.map((x) => [
            x.model,
            x.task,
            x.batch,
            stat(x.torch),
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
  if (r.suites.throughput || r.suites.training || r.suites.peers)
    parts.push('![speed](speed.svg)\n');
  return parts.join('\n');
}
