/** Where a parse error points in the text: the line, and a caret under the column (1-based, as the API gives them). */
export function errorMarker(text: string, line: number, column: number, length = 1): { lineText: string; caret: string } | null {
  const lines = text.split('\n');
  const lineText = lines[line - 1];
  if (lineText === undefined || column < 1) return null;
  const width = Math.max(1, Math.min(length, lineText.length - column + 1));
  return { lineText, caret: `${' '.repeat(column - 1)}${'^'.repeat(width)}` };
}

/** Entries and exits per day (YYYY-MM-DD in the browser's zone) from a list of transitions. */
export function transitionsPerDay(items: ReadonlyArray<{ transition: 'entered' | 'exited'; at: string }>): Array<{ day: string; entered: number; exited: number }> {
  const days = new Map<string, { entered: number; exited: number }>();
  for (const item of items) {
    const date = new Date(item.at);
    const day = `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, '0')}-${String(date.getDate()).padStart(2, '0')}`;
    const counts = days.get(day) ?? { entered: 0, exited: 0 };
    counts[item.transition] += 1;
    days.set(day, counts);
  }
  return [...days].sort(([a], [b]) => a.localeCompare(b)).map(([day, counts]) => ({ day, ...counts }));
}
