import { ROLE_PERMISSIONS, roleAllows, type BuiltInRole } from '../../server/src/privacy/permissions.ts';
import { currentCredentials, currentRole, type Credentials } from './auth.ts';

/*
 * What the signed-in user may do, for hiding and disabling controls. The role matrix is the
 * server's own (server/src/privacy/permissions.ts, pure and dependency-free, bundled as is), so
 * the page and the API cannot disagree about a built-in role; the API refuses anyway. Server keys
 * and custom roles show every control and let the API answer.
 */
export function may(permission: string, credentials: Credentials | null = currentCredentials()): boolean {
  if (!credentials || credentials.kind === 'server-key' || credentials.superuser) return true;
  const role = currentRole(credentials);
  if (!role) return true;
  const builtIn = ROLE_PERMISSIONS[role as BuiltInRole];
  return builtIn ? roleAllows(builtIn.permissions, permission) : true;
}
