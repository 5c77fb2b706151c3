// REST calls with the tab's token as `Authorization: Bearer` (never in a URL).
import { token } from "./auth";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers["Authorization"] = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "connection_failed", `cannot reach the server: ${String(e)}`);
  }
  const text = await resp.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: told below by the status
  }
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? `HTTP ${resp.status}`);
  }
  return data as T;
}

/** A GET whose answer is bytes (a log, a range of it), with the token as a header: a plain
 * link could not carry it, and the token never goes in a URL. An ApiError unless it is 2xx. */
export async function fetchBytes(path: string, headers: Record<string, string> = {}): Promise<Response> {
  const t = token();
  const all = { ...headers, ...(t ? { Authorization: `Bearer ${t}` } : {}) };
  let resp: Response;
  try {
    resp = await fetch(path, { headers: all, credentials: "omit" });
  } catch (e) {
    throw new ApiError(0, "connection_failed", `cannot reach the server: ${String(e)}`);
  }
  if (!resp.ok) {
    let err: { code?: string; message?: string } | undefined;
    try {
      err = ((await resp.json()) as { error?: { code?: string; message?: string } }).error;
    } catch {
      // not JSON: told by the status
    }
    throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? `HTTP ${resp.status}`);
  }
  return resp;
}
