export interface PairwiseQuality {
  truePositives: number;
  falsePositives: number;
  falseNegatives: number;
  precision: number;
  recall: number;
  f1: number;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

/** Every unordered pair inside each cluster: the pairs a perfect matcher would report. */
export function pairsWithinClusters(clusters: Iterable<readonly string[]>): Set<string> {
  const pairs = new Set<string>();
  for (const members of clusters) {
    for (let i = 0; i < members.length; i++) {
      for (let j = i + 1; j < members.length; j++) pairs.add(pairKey(members[i]!, members[j]!));
    }
  }
  return pairs;
}

/** Pairwise precision, recall and F1 of predicted pairs against the true ones. */
export function pairwiseQuality(predicted: Iterable<readonly [string, string]>, truth: ReadonlySet<string>): PairwiseQuality {
  const predictedKeys = new Set<string>();
  for (const [a, b] of predicted) if (a !== b) predictedKeys.add(pairKey(a, b));
  let truePositives = 0;
  for (const key of predictedKeys) if (truth.has(key)) truePositives++;
  const falsePositives = predictedKeys.size - truePositives;
  const falseNegatives = truth.size - truePositives;
  const precision = predictedKeys.size === 0 ? 1 : truePositives / predictedKeys.size;
  const recall = truth.size === 0 ? 1 : truePositives / truth.size;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { truePositives, falsePositives, falseNegatives, precision, recall, f1 };
}

/**
 * The groups that merging every linked pair produces (connected components): merges are
 * transitive, so a profile is a component, not a pair.
 */
export function connectedComponents(pairs: Iterable<readonly [string, string]>): string[][] {
  const parent = new Map<string, string>();
  const find = (id: string): string => {
    let root = id;
    while (parent.get(root) !== root) root = parent.get(root) ?? root;
    let node = id;
    while (node !== root) {
      const next = parent.get(node)!;
      parent.set(node, root);
      node = next;
    }
    return root;
  };
  for (const [a, b] of pairs) {
    if (!parent.has(a)) parent.set(a, a);
    if (!parent.has(b)) parent.set(b, b);
    const rootA = find(a);
    const rootB = find(b);
    if (rootA !== rootB) parent.set(rootA < rootB ? rootB : rootA, rootA < rootB ? rootA : rootB);
  }
  const groups = new Map<string, string[]>();
  for (const id of parent.keys()) {
    const root = find(id);
    const group = groups.get(root);
    if (group) group.push(id);
    else groups.set(root, [id]);
  }
  return [...groups.values()];
}
