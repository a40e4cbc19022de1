/**
 * Edit distance with adjacent transpositions (optimal string alignment), by code points, so a
 * swapped pair of letters ("evnet") or one Chinese character counts as one edit.
 */
export function editDistance(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  // Three rolling rows: the transposition step looks two rows back.
  let before = new Array<number>(y.length + 1).fill(0);
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i += 1) {
    const current = new Array<number>(y.length + 1).fill(0);
    current[0] = i;
    for (let j = 1; j <= y.length; j += 1) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      let best = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) best = Math.min(best, before[j - 2]! + 1);
      current[j] = best;
    }
    before = previous;
    previous = current;
  }
  return previous[y.length]!;
}

/**
 * The candidate closest to `word`, if close enough to be a likely typo: case is ignored for the
 * distance (a differently cased name is the best suggestion there is), and the allowed distance
 * grows with the word's length (1 edit up to 4 characters, then one per 3).
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  const allowed = Math.max(1, Math.floor([...word].length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance && distance <= allowed) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best ?? abbreviated(lower, candidates);
}

/** The one candidate the word abbreviates (same first letter, letters in order: cnt → count). */
function abbreviated(lower: string, candidates: Iterable<string>): string | undefined {
  if ([...lower].length < 2) return undefined;
  const matches = [...candidates].filter((candidate) => {
    const target = [...candidate.toLowerCase()];
    if (target[0] !== [...lower][0]) return false;
    let at = 0;
    for (const char of lower) {
      at = target.indexOf(char, at);
      if (at === -1) return false;
      at += 1;
    }
    return true;
  });
  return matches.length === 1 ? matches[0] : undefined;
}
