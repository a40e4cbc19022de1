export interface ImportProgress {
  rowsRead: number;
  stored: number;
  duplicates: number;
  rejected: number;
  /** Bytes of the file read so far and its size (both compressed for a gzip file). */
  bytesRead: number;
  totalBytes: number;
  elapsedMs: number;
}

const BAR_WIDTH = 24;

export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}` : `${m}:${String(s).padStart(2, '0')}`;
}

export function rowsPerSecond(rows: number, elapsedMs: number): number {
  return elapsedMs > 0 ? (rows * 1000) / elapsedMs : 0;
}

/** Remaining time, extrapolated from the share of the file read so far; null until it means something. */
export function estimateRemainingMs(progress: Pick<ImportProgress, 'bytesRead' | 'totalBytes' | 'elapsedMs'>): number | null {
  const { bytesRead, totalBytes, elapsedMs } = progress;
  if (bytesRead <= 0 || totalBytes <= 0 || elapsedMs < 500) return null;
  const done = Math.min(1, bytesRead / totalBytes);
  return (elapsedMs * (1 - done)) / done;
}

/** One progress line: `[#####-----]  42% 123,456 rows  21,034 rows/s  ETA 0:14  (312 rejected)`. */
export function formatProgressLine(progress: ImportProgress, bar = true): string {
  const share = progress.totalBytes > 0 ? Math.min(1, progress.bytesRead / progress.totalBytes) : 0;
  const filled = Math.round(share * BAR_WIDTH);
  const eta = estimateRemainingMs(progress);
  const parts = [
    `${String(Math.floor(share * 100)).padStart(3)}%`,
    `${formatCount(progress.rowsRead)} rows`,
    `${formatCount(rowsPerSecond(progress.rowsRead, progress.elapsedMs))} rows/s`,
    `ETA ${eta === null ? '--:--' : formatDuration(eta)}`,
  ];
  if (progress.rejected > 0) parts.push(`(${formatCount(progress.rejected)} rejected)`);
  const text = parts.join('  ');
  return bar ? `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${text}` : text;
}

export interface ProgressWriter {
  isTTY?: boolean;
  write(text: string): unknown;
}

/**
 * Renders progress on stderr: a bar redrawn in place at most 5 times a second on a terminal,
 * otherwise (logs, CI) a plain line every `plainIntervalMs`.
 */
export function createProgressReporter(out: ProgressWriter, plainIntervalMs = 10_000) {
  const tty = out.isTTY === true;
  const interval = tty ? 200 : plainIntervalMs;
  let last = -Infinity;
  let drawn = false;
  return {
    update(progress: ImportProgress): void {
      if (progress.elapsedMs - last < interval) return;
      last = progress.elapsedMs;
      if (tty) {
        out.write(`\r${formatProgressLine(progress)}\x1b[K`);
        drawn = true;
      } else {
        out.write(`import: ${formatProgressLine(progress, false)}\n`);
      }
    },
    /** Ends the in-place line so the summary starts on a fresh one. */
    finish(): void {
      if (drawn) out.write('\r\x1b[K');
      drawn = false;
    },
  };
}
