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
  const headers: Record<string, string> = { accept: 'application/json', ...(options.headers ?? authHeaders(method)) };
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

/** Turns a finished XHR or fetch error answer into an ApiRequestError. */
function errorFromText(status: number, statusText: string, text: string): ApiRequestError {
  let error: { error?: string; message?: string; field?: string; details?: Record<string, unknown> } = {};
  try {
    error = JSON.parse(text) as typeof error;
  } catch {
    // not JSON: the status says it
  }
  if (status === 401) forgetCredentials();
  return new ApiRequestError(status, error.error ?? 'http_error', error.message ?? `${status} ${statusText}`, error.field, error.details);
}

/**
 * Sends a file as the request body with upload progress (fetch has none): XMLHttpRequest, the
 * same headers as every other call. Resolves with the JSON answer.
 */
export function uploadFile<T>(path: string, file: Blob, options: { query?: Record<string, QueryValue>; onProgress?: (sent: number, total: number) => void }): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path + queryString(options.query));
    const headers: Record<string, string> = { accept: 'application/json', 'content-type': file.type || 'application/octet-stream', ...authHeaders('POST') };
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => options.onProgress?.(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onerror = () => reject(new ApiRequestError(0, 'network_error', 'The server could not be reached'));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as T);
      else reject(errorFromText(xhr.status, xhr.statusText, xhr.responseText));
    };
    xhr.send(file);
  });
}

/**
 * Downloads an authorised file (CSV export, rejects) while counting what arrived, then hands it to
 * the browser as a download. Progress: bytes and lines so far.
 */
export async function downloadFile(path: string, fileName: string, onProgress?: (bytes: number, lines: number) => void): Promise<{ bytes: number; lines: number }> {
  const response = await fetch(path, { headers: authHeaders('GET'), credentials: 'same-origin' });
  if (!response.ok) throw errorFromText(response.status, response.statusText, await response.text());
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let lines = 0;
  const reader = response.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      bytes += value.length;
      for (const byte of value) if (byte === 10) lines++;
      onProgress?.(bytes, lines);
    }
  }
  const url = URL.createObjectURL(new Blob(chunks as BlobPart[], { type: response.headers.get('content-type') ?? 'application/octet-stream' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
  return { bytes, lines };
}
