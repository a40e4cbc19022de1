/**
 * Permissions are '<area>.<action>' strings declared by every route in its Fastify config
 * (`config: { permission: 'segments.write' }`). Roles and keys hold patterns: an exact
 * permission, 'area.*', '*.action' or '*'. Pure logic, no I/O.
 */

/** Routes anyone may call (health, the SDK file, login). */
export const PUBLIC = 'public';
/** Routes any authenticated caller may call for itself (its session, logout). */
export const AUTHENTICATED = 'authenticated';
/** Not a route permission: holding it shows PII unmasked in responses. */
export const PII_READ = 'pii.read';

/**
 * Permissions over the whole instance rather than one workspace: only the admin token and
 * superusers hold them.
 */
export const INSTANCE_PERMISSIONS = new Set(['workspaces.create', 'workspaces.list', 'users.create', 'users.list', 'users.manage', 'audit.list', 'audit.verify']);

/** Reads that return personal data: recorded in the audit log, masked without `pii.read`. */
export const PII_READ_PERMISSIONS = new Set([
  'profiles.read',
  'events.read',
  'quarantine.read',
  'segments.export',
  'privacy.read',
  'privacy.export',
]);

/** Permissions whose requests are not audited: event collection is recorded by the events themselves. */
export const UNAUDITED_PERMISSIONS = new Set([PUBLIC, 'events.write', 'visitor.read']);

const PERMISSION = /^[a-z][a-z0-9-]*\.[a-z][a-z0-9-]*$/;
const PATTERN = /^(\*|([a-z][a-z0-9-]*|\*)\.([a-z][a-z0-9-]*|\*))$/;

export function isPermission(value: string): boolean {
  return value === PUBLIC || value === AUTHENTICATED || PERMISSION.test(value);
}
export function isPermissionPattern(value: string): boolean {
  return PATTERN.test(value);
}

export function patternAllows(pattern: string, permission: string): boolean {
  if (pattern === '*' || pattern === permission) return true;
  const [patternArea, patternAction] = pattern.split('.');
  const [area, action] = permission.split('.');
  return (patternArea === '*' || patternArea === area) && (patternAction === '*' || patternAction === action);
}

export function allows(patterns: readonly string[], permission: string): boolean {
  return patterns.some((pattern) => patternAllows(pattern, permission));
}

// ---- built-in roles -------------------------------------------------------------------------

export const BUILT_IN_ROLES = ['owner', 'admin', 'marketer', 'analyst', 'viewer'] as const;
export type BuiltInRole = (typeof BUILT_IN_ROLES)[number];

/** Areas that govern the workspace itself rather than its customer data. */
const GOVERNANCE_AREAS = ['workspaces', 'sources', 'keys', 'members', 'roles', 'audit'];

export const ROLE_PERMISSIONS: Record<BuiltInRole, { name: string; permissions: string[] }> = {
  owner: { name: 'Owner', permissions: ['*'] },
  // Everything but transferring ownership (checked where members change).
  admin: { name: 'Admin', permissions: ['*'] },
  marketer: {
    name: 'Marketer',
    permissions: [
      '*.read',
      'segments.*',
      'tags.*',
      'traits.*',
      'destinations.*',
      'journeys.*',
      'channels.*',
      'decisioning.*',
      'models.read',
      'analytics.*',
      'profiles.read',
    ],
  },
  analyst: { name: 'Analyst', permissions: ['*.read', 'analytics.*', 'models.*', 'segments.preview', 'traits.preview'] },
  viewer: { name: 'Viewer', permissions: ['*.read'] },
};

/** Reads even '*.read' does not reach: governance and PII belong to admins. */
const ROLE_READ_EXCLUSIONS = new Set(['audit.read', 'keys.read', 'members.read', 'roles.read', 'privacy.read', PII_READ]);

/** Whether a role holding `patterns` may use `permission`; '*.read' stops at governance reads and PII. */
export function roleAllows(patterns: readonly string[], permission: string): boolean {
  if (INSTANCE_PERMISSIONS.has(permission)) return false;
  return patterns.some((pattern) => {
    if (!patternAllows(pattern, permission)) return false;
    if (pattern === '*' || pattern === permission) return true;
    return !(pattern.startsWith('*.') && ROLE_READ_EXCLUSIONS.has(permission));
  });
}

// ---- API keys -------------------------------------------------------------------------------

/** What a write key without explicit permissions may do: send events and read its visitor's visible segments. */
export const DEFAULT_WRITE_KEY_PERMISSIONS = ['events.write', 'visitor.read'];

/**
 * A server key without explicit permissions keeps what it could do before permissions existed:
 * the workspace's data API (every area, present and future), but not the workspace's
 * governance (keys, sources, members, roles, audit) nor admin-only identity and quarantine changes.
 */
export function defaultServerKeyAllows(permission: string): boolean {
  if (INSTANCE_PERMISSIONS.has(permission)) return false;
  const area = permission.split('.')[0]!;
  if (GOVERNANCE_AREAS.includes(area) || area === 'users') return false;
  // imports.write stores events, like events.write: a key must be given it explicitly.
  return permission !== 'quarantine.write' && permission !== 'identity.write' && permission !== 'events.write' && permission !== 'imports.write';
}

/** A key with explicit permissions: its patterns, never instance permissions. */
export function keyAllows(kind: 'write' | 'server', explicit: readonly string[] | null, permission: string): boolean {
  if (INSTANCE_PERMISSIONS.has(permission)) return false;
  if (explicit) return allows(explicit, permission);
  return kind === 'write' ? DEFAULT_WRITE_KEY_PERMISSIONS.includes(permission) : defaultServerKeyAllows(permission);
}

// ---- granting: no caller hands out more than it holds --------------------------------------

/** A permission no route declares yet: stands for the areas and actions a wildcard reaches in the future. */
const FUTURE = 'zz-future';

/**
 * The permissions a grant reaches that the granter does not hold (empty when the grant is
 * covered). Both sides are predicates (`keyAllows`, `roleAllows`, an Access's `can`), checked over
 * every permission routes declare, `pii.read`, and for each wildcard in the grant a permission no
 * route declares yet — so `segments.*` is only granted by a caller holding `segments.*` (or more),
 * not by one that happens to hold every `segments.` permission of today.
 */
export function permissionsBeyond(
  granterAllows: (permission: string) => boolean,
  grantAllows: (permission: string) => boolean,
  known: Iterable<string>,
  grantPatterns: readonly string[] | null,
): string[] {
  const probes = new Set<string>([PII_READ, `${FUTURE}.${FUTURE}`]);
  for (const permission of known) if (permission !== PUBLIC && permission !== AUTHENTICATED) probes.add(permission);
  for (const pattern of grantPatterns ?? []) {
    const [area, action] = pattern === '*' ? ['*', '*'] : pattern.split('.');
    probes.add(`${area === '*' ? FUTURE : area}.${action === '*' ? FUTURE : action}`);
  }
  return [...probes].filter((permission) => grantAllows(permission) && !granterAllows(permission)).sort();
}
