import { Type, type Static } from '@sinclair/typebox';
import type { Queryable } from '../storage/database.ts';
import { ConflictError, NotFoundError } from '../workspaces/store.ts';
import { hashPassword, passwordNeedsRehash, passwordProblem, verifyPassword } from './passwords.ts';
import { BUILT_IN_ROLES, isPermissionPattern, ROLE_PERMISSIONS } from './permissions.ts';

/** Failed logins in a row before an account locks, and for how long. */
export const MAX_FAILED_LOGINS = 5;
export const LOCK_MINUTES = 15;

// ---- schemas (one source of truth for types and the OpenAPI document) ----------------------

export const UserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('disabled')]),
  superuser: Type.Boolean(),
  lockedUntil: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastLoginAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  createdAt: Type.String({ format: 'date-time' }),
});
export type User = Static<typeof UserSchema>;

const Email = Type.String({ pattern: '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$', maxLength: 320, description: 'An email address' });
const Password = Type.String({ minLength: 12, maxLength: 256, description: '12 to 256 characters' });

export const CreateUserSchema = Type.Object(
  {
    email: Email,
    name: Type.Optional(Type.String({ maxLength: 200 })),
    password: Password,
    superuser: Type.Optional(Type.Boolean({ description: 'Every permission in every workspace' })),
  },
  { additionalProperties: false },
);
export const UpdateUserSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')])),
    password: Type.Optional(Password),
    superuser: Type.Optional(Type.Boolean()),
    unlock: Type.Optional(Type.Literal(true, { description: 'Clear a lock-out after failed logins' })),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const RoleSchema = Type.Object({
  key: Type.String(),
  name: Type.String(),
  builtIn: Type.Boolean(),
  permissions: Type.Array(Type.String()),
});
export type Role = Static<typeof RoleSchema>;

export const PutRoleSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    permissions: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 200 }),
  },
  { additionalProperties: false },
);

export const MemberSchema = Type.Object({
  userId: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  role: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});
export type Member = Static<typeof MemberSchema>;

export const PutMemberSchema = Type.Object({ role: Type.String({ minLength: 1, maxLength: 63 }) }, { additionalProperties: false });

// ---- users ---------------------------------------------------------------------------------

interface UserRow {
  id: string;
  email: string;
  name: string;
  status: 'active' | 'disabled';
  is_superuser: boolean;
  locked_until: Date | null;
  last_login_at: Date | null;
  created_at: Date;
  password_hash: string;
  failed_logins: number;
}

const toUser = (row: UserRow): User => ({
  id: row.id,
  email: row.email,
  name: row.name,
  status: row.status,
  superuser: row.is_superuser,
  lockedUntil: row.locked_until && row.locked_until > new Date() ? row.locked_until.toISOString() : null,
  lastLoginAt: row.last_login_at?.toISOString() ?? null,
  createdAt: row.created_at.toISOString(),
});

export async function createUser(db: Queryable, input: Static<typeof CreateUserSchema>): Promise<User> {
  const problem = passwordProblem(input.password);
  if (problem) throw new RangeError(`password ${problem}`);
  try {
    const { rows } = await db.query<UserRow>(
      `insert into users (email, name, password_hash, is_superuser) values ($1, $2, $3, $4) returning *`,
      [input.email.toLowerCase(), input.name ?? '', await hashPassword(input.password), input.superuser ?? false],
    );
    return toUser(rows[0]!);
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw new ConflictError(`A user with email "${input.email}" already exists`);
    throw error;
  }
}

export async function listUsers(db: Queryable): Promise<User[]> {
  const { rows } = await db.query<UserRow>('select * from users order by created_at');
  return rows.map(toUser);
}

export async function getUser(db: Queryable, userId: string): Promise<User> {
  const { rows } = await db.query<UserRow>('select * from users where id = $1', [userId]);
  if (!rows[0]) throw new NotFoundError(`User "${userId}" not found`);
  return toUser(rows[0]);
}

export async function updateUser(db: Queryable, userId: string, input: Static<typeof UpdateUserSchema>): Promise<User> {
  if (input.password !== undefined) {
    const problem = passwordProblem(input.password);
    if (problem) throw new RangeError(`password ${problem}`);
  }
  const { rows } = await db.query<UserRow>(
    `update users set
       name = coalesce($2, name),
       status = coalesce($3, status),
       password_hash = coalesce($4, password_hash),
       is_superuser = coalesce($5, is_superuser),
       failed_logins = case when $6 then 0 else failed_logins end,
       locked_until = case when $6 then null else locked_until end,
       updated_at = now()
     where id = $1 returning *`,
    [
      userId,
      input.name ?? null,
      input.status ?? null,
      input.password === undefined ? null : await hashPassword(input.password),
      input.superuser ?? null,
      input.unlock === true,
    ],
  );
  if (!rows[0]) throw new NotFoundError(`User "${userId}" not found`);
  return toUser(rows[0]);
}

export type LoginOutcome =
  | { ok: true; user: User }
  | { ok: false; reason: 'invalid' }
  | { ok: false; reason: 'locked'; retryAfterSeconds: number };

// Verified against when the email is unknown, so both failures take as long.
let decoy: Promise<string> | undefined;

/**
 * Checks a password. After MAX_FAILED_LOGINS failures in a row the account locks for
 * LOCK_MINUTES, during which even the right password is refused (without being checked).
 */
export async function attemptLogin(db: Queryable, email: string, password: string): Promise<LoginOutcome> {
  const { rows } = await db.query<UserRow>(`select * from users where email = $1`, [email.toLowerCase()]);
  const row = rows[0];
  if (!row || row.status !== 'active') {
    decoy ??= hashPassword('decoy-password-never-used');
    await verifyPassword(password, await decoy);
    return { ok: false, reason: 'invalid' };
  }
  if (row.locked_until && row.locked_until > new Date()) {
    return { ok: false, reason: 'locked', retryAfterSeconds: Math.ceil((row.locked_until.getTime() - Date.now()) / 1000) };
  }
  if (!(await verifyPassword(password, row.password_hash))) {
    const { rows: updated } = await db.query<{ locked_until: Date | null }>(
      `update users set
         failed_logins = failed_logins + 1,
         locked_until = case when failed_logins + 1 >= $2 then now() + make_interval(mins => $3) else locked_until end
       where id = $1 returning locked_until`,
      [row.id, MAX_FAILED_LOGINS, LOCK_MINUTES],
    );
    const lockedUntil = updated[0]?.locked_until;
    if (lockedUntil && lockedUntil > new Date()) return { ok: false, reason: 'locked', retryAfterSeconds: LOCK_MINUTES * 60 };
    return { ok: false, reason: 'invalid' };
  }
  // The password is in hand only now: a hash from before argon2 (or at an older cost) is replaced.
  const upgraded = passwordNeedsRehash(row.password_hash) ? await hashPassword(password) : null;
  const { rows: done } = await db.query<UserRow>(
    `update users set failed_logins = 0, locked_until = null, last_login_at = now(),
       password_hash = coalesce($2, password_hash)
     where id = $1 returning *`,
    [row.id, upgraded],
  );
  return { ok: true, user: toUser(done[0]!) };
}

export async function changePassword(db: Queryable, userId: string, current: string, next: string): Promise<boolean> {
  const { rows } = await db.query<{ password_hash: string }>('select password_hash from users where id = $1', [userId]);
  if (!rows[0] || !(await verifyPassword(current, rows[0].password_hash))) return false;
  await updateUser(db, userId, { password: next });
  return true;
}

// ---- roles and members ---------------------------------------------------------------------

export async function listRoles(db: Queryable, workspaceId: string): Promise<Role[]> {
  const builtIn = BUILT_IN_ROLES.map((key) => ({ key, name: ROLE_PERMISSIONS[key].name, builtIn: true, permissions: ROLE_PERMISSIONS[key].permissions }));
  const { rows } = await db.query<{ key: string; name: string; permissions: string[] }>(
    'select key, name, permissions from workspace_roles where workspace_id = $1 order by key',
    [workspaceId],
  );
  return [...builtIn, ...rows.map((row) => ({ ...row, builtIn: false }))];
}

export async function putRole(db: Queryable, workspaceId: string, key: string, input: Static<typeof PutRoleSchema>): Promise<Role> {
  if ((BUILT_IN_ROLES as readonly string[]).includes(key)) throw new ConflictError(`"${key}" is a built-in role and cannot be changed`);
  if (!/^[a-z][a-z0-9_-]{0,62}$/.test(key)) throw new RangeError('role keys are lower-case letters, digits, "_" and "-", starting with a letter');
  const bad = input.permissions.find((permission) => !isPermissionPattern(permission));
  if (bad !== undefined) throw new RangeError(`"${bad}" is not a permission pattern ('<area>.<action>', 'area.*', '*.action' or '*')`);
  const { rows } = await db.query<{ key: string; name: string; permissions: string[] }>(
    `insert into workspace_roles (workspace_id, key, name, permissions) values ($1, $2, $3, $4)
     on conflict (workspace_id, key) do update set name = excluded.name, permissions = excluded.permissions, updated_at = now()
     returning key, name, permissions`,
    [workspaceId, key, input.name, input.permissions],
  );
  return { ...rows[0]!, builtIn: false };
}

export async function deleteRole(db: Queryable, workspaceId: string, key: string): Promise<void> {
  const used = await db.query('select 1 from workspace_members where workspace_id = $1 and role = $2 limit 1', [workspaceId, key]);
  if (used.rowCount) throw new ConflictError(`Role "${key}" is held by members; give them another role first`);
  const { rowCount } = await db.query('delete from workspace_roles where workspace_id = $1 and key = $2', [workspaceId, key]);
  if (!rowCount) throw new NotFoundError(`Custom role "${key}" not found`);
}

export async function roleExists(db: Queryable, workspaceId: string, key: string): Promise<boolean> {
  if ((BUILT_IN_ROLES as readonly string[]).includes(key)) return true;
  const { rowCount } = await db.query('select 1 from workspace_roles where workspace_id = $1 and key = $2', [workspaceId, key]);
  return (rowCount ?? 0) > 0;
}

interface MemberRow {
  user_id: string;
  email: string;
  name: string;
  role: string;
  created_at: Date;
}
const toMember = (row: MemberRow): Member => ({ userId: row.user_id, email: row.email, name: row.name, role: row.role, createdAt: row.created_at.toISOString() });

export async function listMembers(db: Queryable, workspaceId: string): Promise<Member[]> {
  const { rows } = await db.query<MemberRow>(
    `select m.user_id, u.email, u.name, m.role, m.created_at from workspace_members m join users u on u.id = m.user_id
      where m.workspace_id = $1 order by u.email`,
    [workspaceId],
  );
  return rows.map(toMember);
}

export async function memberRole(db: Queryable, workspaceId: string, userId: string): Promise<string | null> {
  const { rows } = await db.query<{ role: string }>('select role from workspace_members where workspace_id = $1 and user_id = $2', [workspaceId, userId]);
  return rows[0]?.role ?? null;
}

export async function putMember(db: Queryable, workspaceId: string, userId: string, role: string): Promise<Member> {
  await getUser(db, userId);
  if (!(await roleExists(db, workspaceId, role))) throw new RangeError(`role "${role}" does not exist in this workspace`);
  await db.query(
    `insert into workspace_members (workspace_id, user_id, role) values ($1, $2, $3)
     on conflict (workspace_id, user_id) do update set role = excluded.role`,
    [workspaceId, userId, role],
  );
  return (await listMembers(db, workspaceId)).find((member) => member.userId === userId)!;
}

export async function removeMember(db: Queryable, workspaceId: string, userId: string): Promise<void> {
  const { rowCount } = await db.query('delete from workspace_members where workspace_id = $1 and user_id = $2', [workspaceId, userId]);
  if (!rowCount) throw new NotFoundError(`User "${userId}" is not a member of this workspace`);
}

export async function workspacesOf(db: Queryable, userId: string): Promise<Array<{ id: string; slug: string; name: string; role: string }>> {
  const { rows } = await db.query<{ id: string; slug: string; name: string; role: string }>(
    `select w.id, w.slug, w.name, m.role from workspace_members m join workspaces w on w.id = m.workspace_id
      where m.user_id = $1 and w.status = 'active' order by w.slug`,
    [userId],
  );
  return rows;
}
