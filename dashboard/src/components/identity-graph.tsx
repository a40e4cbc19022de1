import type { IdentityGraph } from '../api/types.ts';

export interface GraphLayout {
  profiles: Array<{ id: string; x: number; y: number; survivor: boolean }>;
  identifiers: Array<{ key: string; type: string; value: string; live: boolean; profileId: string; x: number; y: number }>;
}

/**
 * Lays the graph out radially: the surviving profile in the middle, profiles it absorbed on a ring
 * around it, each profile's identifiers fanned around that profile. Pure, so it is tested alone.
 */
export function layoutGraph(graph: IdentityGraph, size = 420): GraphLayout {
  const centre = size / 2;
  const absorbed = graph.absorbedProfiles.map((p) => p.id);
  const profiles: GraphLayout['profiles'] = [{ id: graph.profileId, x: centre, y: centre, survivor: true }];
  absorbed.forEach((id, i) => {
    const angle = (2 * Math.PI * i) / absorbed.length - Math.PI / 2;
    profiles.push({ id, x: centre + Math.cos(angle) * size * 0.26, y: centre + Math.sin(angle) * size * 0.26, survivor: false });
  });
  const position = new Map(profiles.map((p) => [p.id, p]));
  const byProfile = new Map<string, IdentityGraph['identifiers']>();
  for (const identifier of graph.identifiers) {
    const owner = position.has(identifier.profileId) ? identifier.profileId : graph.profileId;
    byProfile.set(owner, [...(byProfile.get(owner) ?? []), identifier]);
  }
  const identifiers: GraphLayout['identifiers'] = [];
  for (const [profileId, list] of byProfile) {
    const anchor = position.get(profileId)!;
    const radius = anchor.survivor ? size * (absorbed.length ? 0.44 : 0.32) : size * 0.15;
    // Identifiers of an absorbed profile fan outwards, away from the centre.
    const outward = anchor.survivor ? 0 : Math.atan2(anchor.y - centre, anchor.x - centre);
    const spread = anchor.survivor ? 2 * Math.PI : Math.PI * 0.9;
    list.forEach((identifier, i) => {
      const angle = anchor.survivor
        ? (2 * Math.PI * i) / list.length + Math.PI / list.length
        : outward - spread / 2 + (spread * (i + 0.5)) / list.length;
      identifiers.push({
        key: `${identifier.profileId}:${identifier.type}:${identifier.value}:${identifier.boundAt}`,
        type: identifier.type,
        value: identifier.value,
        live: identifier.live,
        profileId,
        x: anchor.x + Math.cos(angle) * radius,
        y: anchor.y + Math.sin(angle) * radius,
      });
    });
  }
  return { profiles, identifiers };
}

const truncate = (text: string, max = 18) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function IdentityGraphView({ graph, label }: { graph: IdentityGraph; label: string }) {
  const size = 420;
  const layout = layoutGraph(graph, size);
  const position = new Map(layout.profiles.map((p) => [p.id, p]));
  const survivor = layout.profiles[0]!;
  return (
    <svg className="identity-graph" viewBox={`-60 -20 ${size + 120} ${size + 40}`} role="img" aria-label={label} data-testid="identity-graph">
      {layout.profiles.slice(1).map((p) => (
        <line key={`edge-${p.id}`} x1={survivor.x} y1={survivor.y} x2={p.x} y2={p.y} className="edge merged" />
      ))}
      {layout.identifiers.map((identifier) => {
        const anchor = position.get(identifier.profileId)!;
        return <line key={`edge-${identifier.key}`} x1={anchor.x} y1={anchor.y} x2={identifier.x} y2={identifier.y} className={identifier.live ? 'edge' : 'edge ended'} />;
      })}
      {layout.profiles.map((p) => (
        <g key={p.id}>
          <circle cx={p.x} cy={p.y} r={p.survivor ? 22 : 14} className={p.survivor ? 'node profile survivor' : 'node profile absorbed'}>
            <title>{p.id}</title>
          </circle>
          <text x={p.x} y={p.y + 4} textAnchor="middle" className="node-label">
            {p.id.slice(0, 4)}
          </text>
        </g>
      ))}
      {layout.identifiers.map((identifier) => (
        <g key={identifier.key}>
          <circle cx={identifier.x} cy={identifier.y} r={6} className={identifier.live ? 'node identifier' : 'node identifier ended'}>
            <title>{`${identifier.type}: ${identifier.value}`}</title>
          </circle>
          <text x={identifier.x} y={identifier.y - 10} textAnchor="middle" className="identifier-label">
            {truncate(`${identifier.type}: ${identifier.value}`)}
          </text>
        </g>
      ))}
    </svg>
  );
}
