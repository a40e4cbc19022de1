/**
 * The in_segment graph of a workspace: which segment reads which. Pure functions over
 * `uses: key → keys it references`, so cycle refusal and recompute order are testable alone.
 */
export type SegmentGraph = ReadonlyMap<string, readonly string[]>;

/**
 * A path `[start, …, start]` when following references from `start` leads back to it, else null.
 * Only cycles through `start` matter: the graph was acyclic before `start` changed.
 */
export function findCycle(uses: SegmentGraph, start: string): string[] | null {
  const visited = new Set<string>();
  const walk = (key: string, path: string[]): string[] | null => {
    for (const next of uses.get(key) ?? []) {
      if (next === start) return [...path, next];
      if (visited.has(next)) continue;
      visited.add(next);
      const found = walk(next, [...path, next]);
      if (found) return found;
    }
    return null;
  };
  return walk(start, [start]);
}

/** Keys of the segments that reference `key`, directly or through others. */
export function referencedBy(uses: SegmentGraph, key: string): string[] {
  const users = new Map<string, string[]>();
  for (const [user, used] of uses) {
    for (const target of used) users.set(target, [...(users.get(target) ?? []), user]);
  }
  const found = new Set<string>();
  const pending = [key];
  while (pending.length > 0) {
    for (const user of users.get(pending.pop()!) ?? []) {
      if (user === key || found.has(user)) continue;
      found.add(user);
      pending.push(user);
    }
  }
  return [...found];
}

/**
 * `keys` ordered so that every segment comes after the segments of `keys` it references, ties by
 * key so the order never depends on input order. Throws on a cycle (refused when saving).
 */
export function dependencyOrder(uses: SegmentGraph, keys: readonly string[]): string[] {
  const wanted = new Set(keys);
  const ordered: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (key: string): void => {
    const seen = state.get(key);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new Error(`in_segment cycle through ${key}`);
    state.set(key, 'visiting');
    for (const used of [...(uses.get(key) ?? [])].sort()) if (wanted.has(used)) visit(used);
    state.set(key, 'done');
    ordered.push(key);
  };
  for (const key of [...wanted].sort()) visit(key);
  return ordered;
}

/** Segments that reference `key` (directly only), to name them when refusing to archive it. */
export function directUsers(uses: SegmentGraph, key: string): string[] {
  return [...uses].filter(([user, used]) => user !== key && used.includes(key)).map(([user]) => user).sort();
}
