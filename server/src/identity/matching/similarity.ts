/** Jaro similarity in [0, 1]: shared characters within a window, penalised for transpositions. */
export function jaro(a: string, b: string): number {
  if (a === b) return a.length === 0 ? 0 : 1;
  if (a.length === 0 || b.length === 0) return 0;
  const window = Math.max(0, Math.floor(Math.max(a.length, b.length) / 2) - 1);
  const matchedA = new Uint8Array(a.length);
  const matchedB = new Uint8Array(b.length);
  let matches = 0;
  for (let i = 0; i < a.length; i++) {
    const from = Math.max(0, i - window);
    const to = Math.min(b.length - 1, i + window);
    for (let j = from; j <= to; j++) {
      if (matchedB[j] || a[i] !== b[j]) continue;
      matchedA[i] = 1;
      matchedB[j] = 1;
      matches++;
      break;
    }
  }
  if (matches === 0) return 0;
  let transpositions = 0;
  let j = 0;
  for (let i = 0; i < a.length; i++) {
    if (!matchedA[i]) continue;
    while (!matchedB[j]) j++;
    if (a[i] !== b[j]) transpositions++;
    j++;
  }
  return (matches / a.length + matches / b.length + (matches - transpositions / 2) / matches) / 3;
}

/** Jaro–Winkler: Jaro boosted by a common prefix of up to 4 characters (Winkler's p = 0.1). */
export function jaroWinkler(a: string, b: string): number {
  const similarity = jaro(a, b);
  let prefix = 0;
  while (prefix < 4 && prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  return similarity + prefix * 0.1 * (1 - similarity);
}

/** Edit distance (insertions, deletions, substitutions), two rows of memory. */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  let current = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length]!;
}

/** 1 − distance / longer length: 1 for equal strings, 0 for nothing in common. */
export function levenshteinSimilarity(a: string, b: string): number {
  const longer = Math.max(a.length, b.length);
  return longer === 0 ? 0 : 1 - levenshtein(a, b) / longer;
}

const SOUNDEX_CODES: Record<string, string> = {
  b: '1', f: '1', p: '1', v: '1',
  c: '2', g: '2', j: '2', k: '2', q: '2', s: '2', x: '2', z: '2',
  d: '3', t: '3',
  l: '4',
  m: '5', n: '5',
  r: '6',
};

// Names repeat a lot across records; bounded so a long-running worker does not grow without end.
const soundexCache = new Map<string, string>();

/** American Soundex (`robert` → `r163`): names that sound alike share a code, used as a blocking key. */
export function soundex(name: string): string {
  const cached = soundexCache.get(name);
  if (cached !== undefined) return cached;
  const code = computeSoundex(name);
  if (soundexCache.size >= 100_000) soundexCache.clear();
  soundexCache.set(name, code);
  return code;
}

function computeSoundex(name: string): string {
  const letters = name.toLowerCase().replace(/[^a-z]/g, '');
  const first = letters[0];
  if (!first) return '';
  let code = first;
  let last = SOUNDEX_CODES[first] ?? '';
  for (const letter of letters.slice(1)) {
    const digit = SOUNDEX_CODES[letter];
    if (digit && digit !== last) code += digit;
    // h and w do not separate equal codes; vowels do.
    if (letter !== 'h' && letter !== 'w') last = digit ?? '';
    if (code.length === 4) break;
  }
  return code.padEnd(4, '0');
}
