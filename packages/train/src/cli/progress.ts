/**
 * Terminal progress for the CLI: a `cli-progress` bar on a terminal, one plain line every
 * `lineEvery` steps otherwise (logs of background runs).
 */
import cliProgress from 'cli-progress';
import type { TrainProgress } from '../trainer.js';

/** A progress reporter for `Trainer`'s `onProgress`. */
export function terminalProgress(label: string, options: { lineEvery?: number } = {}) {
  const tty = process.stdout.isTTY === true;
  const lineEvery = options.lineEvery ?? 100;
  let bar: cliProgress.SingleBar | null = null;
  const fmt = (p: TrainProgress) =>
    `loss ${p.meanLoss.toFixed(4)} | lr ${p.learningRate.toExponential(2)} | |g| ${p.gradNorm.toFixed(3)} | ${p.stepsPerSecond.toFixed(2)} it/s`;
  return {
    onProgress(p: TrainProgress): void {
      if (p.kind === 'eval') {
        const m = Object.entries(p.metrics ?? {})
          .map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`)
          .join(', ');
        if (bar) bar.stop();
        bar = null;
        console.log(`[${label}] step ${p.step}: ${m}`);
        return;
      }
      if (p.kind === 'checkpoint') {
        if (!tty) console.log(`[${label}] checkpoint at step ${p.step}`);
        return;
      }
      if (tty) {
        if (bar === null) {
          bar = new cliProgress.SingleBar(
            {
              format: `${label} [{bar}] {value}/{total} | {stats} | eta {eta_formatted}`,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(p.totalSteps, p.step, { stats: fmt(p) });
        }
        bar.update(p.step, { stats: fmt(p) });
      } else if (p.step % lineEvery === 0 || p.step === p.totalSteps) {
        console.log(
          `[${label}] step ${p.step}/${p.totalSteps} | ${fmt(p)} | ${new Date().toISOString()}`,
        );
      }
    },
    stop(): void {
      bar?.stop();
      bar = null;
    },
  };
}
