/**
 * The progress bar (cli-progress) and the context each suite reports through. The bar is drawn only
 * on a terminal; in tests and CI logs it stays silent.
 */
import cliProgress from 'cli-progress';

/** What a suite uses to report progress. */
export interface Progress {
  /** Adds planned units of work (the bar's total grows). */
  plan(units: number): void;
  /** One unit done; `task` names what runs now. */
  tick(task?: string): void;
  /** Names what runs now without finishing a unit. */
  status(task: string): void;
  /** A line for the log (printed above the bar). */
  log(line: string): void;
  stop(): void;
}

/** A progress bar on stderr, or plain log lines when `enabled` is false or stderr is not a terminal. */
export function createProgress(
  enabled: boolean,
  logLine: (s: string) => void = console.log,
): Progress {
  const tty = enabled && process.stderr.isTTY === true;
  if (!tty) {
    return { plan() {}, tick() {}, status() {}, log: logLine, stop() {} };
  }
  const bar = new cliProgress.SingleBar(
    {
      format:
        ' {bar} {percentage}% | {value}/{total} | {duration_formatted} elapsed | ETA {eta_formatted} | {task}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  let total = 0;
  let value = 0;
  let started = false;
  let current = '';
  const ensure = () => {
    if (!started) {
      bar.start(Math.max(total, 1), value, { task: current });
      started = true;
    }
  };
  return {
    plan(units) {
      total += units;
      ensure();
      bar.setTotal(Math.max(total, 1));
    },
    tick(task) {
      value++;
      if (task !== undefined) current = task;
      ensure();
      if (value > total) {
        total = value;
        bar.setTotal(total);
      }
      bar.update(value, { task: current });
    },
    status(task) {
      current = task;
      ensure();
      bar.update(value, { task });
    },
    log(line) {
      if (started) {
        // Clear the bar's line, print, and let the next update redraw it.
        process.stderr.write('\r\x1b[2K');
        logLine(line);
        bar.update(value, { task: current });
      } else {
        logLine(line);
      }
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
