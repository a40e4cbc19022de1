import { authHeaders, forgetCredentials } from '../auth.ts';

/** An error answer of the API (server/src/api/errors.ts): status, machine code, sentence, field at fault. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export type QueryValue = string | number | boolean | undefined | null | readonly (string | number)[];

export function queryString(query: Record<string, QueryValue> = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === '') continue;
    if (Array.isArray(value)) for (const item of value) params.append(name, String(item));
    else params.append(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  body?: unknown;
  signal?: AbortSignal;
  /** Replaces the stored credentials' headers (login checks a key before keeping it). */
  headers?: Record<string, string>;
}

/**
 * One request to the Touchpoint API. Non-2xx answers become ApiRequestError with the API's own
 * code, message and field; a 401 also forgets the credentials, which sends the user to login.
 */
export async function apiRequest<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...(options.headers ?? authHeaders()) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path + queryString(options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      credentials: 'same-origin',
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiRequestError(0, 'network_error', `The server could not be reached (${(error as Error).message})`);
  }
  const text = await response.text();
  const body: unknown = text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  if (!response.ok) {
    const error = (body && typeof body === 'object' ? body : {}) as { error?: string; message?: string; field?: string; details?: Record<string, unknown> };
    if (response.status === 401 && !options.headers) forgetCredentials();
    throw new ApiRequestError(response.status, error.error ?? 'http_error', error.message ?? `${response.status} ${response.statusText}`, error.field, error.details);
  }
  return body as T;
}
