import type { JourneyNode } from './definition.ts';

/*
 * The nodes a node leads to, with the field that names each. Its own module, with only a type
 * import, so the dashboard's canvas uses this one list rather than a copy (no TypeBox in the bundle).
 */
export function successors(node: JourneyNode): Array<{ field: string; target: string }> {
  switch (node.kind) {
    case 'entry':
    case 'delay':
    case 'send':
    case 'update_trait':
    case 'webhook':
      return [{ field: 'next', target: node.next }];
    case 'wait':
    case 'segment_wait':
      return [
        { field: 'happened', target: node.happened },
        { field: 'timedOut', target: node.timedOut },
      ];
    case 'split':
      return [
        { field: 'yes', target: node.yes },
        { field: 'no', target: node.no },
      ];
    case 'random':
      return node.branches.map((branch, i) => ({ field: `branches.${i}.next`, target: branch.next }));
    case 'end':
      return [];
  }
}
