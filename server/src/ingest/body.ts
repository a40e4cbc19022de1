import type { IncomingMessage } from 'node:http';
import zlib from 'node:zlib';
import { ApiError } from '../api/errors.ts';

/**
 * Reads a collection request body: gzip or deflate when Content-Encoding says so, any content type
 * (Segment's browser clients send JSON as text/plain to avoid CORS preflights). The limit counts
 * decompressed bytes, so a small gzip bomb cannot expand past it.
 */
export async function readJsonBody(request: IncomingMessage, limitBytes: number): Promise<unknown> {
  const encoding = (request.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  let stream: NodeJS.ReadableStream = request;
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = request.pipe(zlib.createGunzip());
  else if (encoding === 'deflate') stream = request.pipe(zlib.createInflate());
  else if (encoding !== 'identity') {
    request.resume();
    throw new ApiError(415, 'unsupported_encoding', `Content-Encoding "${encoding}" is not supported; use gzip or none`);
  }

  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > limitBytes) {
        request.resume();
        throw new ApiError(413, 'payload_too_large', `Request body exceeds ${Math.round(limitBytes / 1024)} KB (after decompression)`);
      }
      chunks.push(buffer);
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(400, 'malformed_body', `The body could not be decoded as ${encoding}: ${(error as Error).message}`);
  }
  // A byte-order mark (some Windows clients write one) is not part of the JSON.
  const text = Buffer.concat(chunks).toString('utf8').replace(/^\uFEFF/, '');
  if (text.trim() === '') throw new ApiError(400, 'malformed_json', 'The request body is empty');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ApiError(400, 'malformed_json', `The body is not valid JSON: ${(error as Error).message}`);
  }
}
