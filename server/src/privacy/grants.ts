import type { FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.ts';
import { keyAllows, permissionsBeyond, roleAllows } from './permissions.ts';

/** Every permission some route declares, as known to the running server. */
function declaredPermissions(request: FastifyRequest): string[] {
  return (request.server.registeredRoutes ?? []).flatMap((route) => (route.permission ? [route.permission] : []));
}

/**
 * Refuses (403, naming the permissions) a grant reaching beyond what the caller holds in this
 * workspace: a key with `keys.write` cannot issue or rotate a stronger key, a member with
 * `members.write`/`roles.write` cannot hand out or define a stronger role. The admin token and
 * superusers hold everything.
 */
export function assertMayGrant(
  request: FastifyRequest,
  grantAllows: (permission: string) => boolean,
  grantPatterns: readonly string[] | null,
  what: string,
  field: string,
): void {
  const access = request.access;
  if (!access) return; // only reachable without the access hook (never in a built server)
  const beyond = permissionsBeyond(access.can, grantAllows, declaredPermissions(request), grantPatterns);
  if (beyond.length === 0) return;
  const shown = beyond.slice(0, 8).join(', ') + (beyond.length > 8 ? `, … (${beyond.length} in all)` : '');
  throw new ApiError(403, 'forbidden', `You cannot ${what}: it would hold permissions you do not hold (${shown})`, field);
}

/** A key's permissions as a predicate (explicit patterns, or its kind's default). */
export const keyGrant = (kind: 'write' | 'server', permissions: readonly string[] | null) => (permission: string) => keyAllows(kind, permissions, permission);

/** A role's permissions as a predicate. */
export const roleGrant = (permissions: readonly string[]) => (permission: string) => roleAllows(permissions, permission);
