// The server's shapes, as /openapi.json describes them (only what the UI reads).
export type Status =
  | "queued"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "timed_out"
  | "lost";

export const STATUSES: readonly Status[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "timed_out",
  "lost",
];

export function isFinal(status: Status): boolean {
  return status !== "queued" && status !== "running";
}

export interface Progress {
  percent?: number | null;
  current?: number;
  total?: number;
  message?: string | null;
  unit?: string;
  /** OSC 9;4's state, named */
  state?: "clear" | "normal" | "error" | "indeterminate" | "paused";
}

export interface Job {
  id: string;
  name: string | null;
  kind: "job" | "source";
  status: Status;
  command: string | null;
  argv: string[];
  cwd: string | null;
  pty: boolean;
  stdin: boolean;
  labels: Record<string, string>;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  exit_code: number | null;
  signal: string | null;
  reason: string | null;
  last_seq: number;
  progress: Progress | null;
  /** The latest value of each extractor, by name */
  extracted?: Record<string, string>;
}

/** One event of a job as /ws pushes it: `event` is its own type. */
export interface MuxEvent {
  type: "event";
  job: string;
  seq: number;
  event: string;
  ts: number;
  data: Record<string, unknown>;
}

export interface WhoAmI {
  name: string;
  scopes: string[];
  labels: Record<string, string>;
  auth: boolean;
  mode: "safe" | "expert";
  raw_commands: boolean;
  control: boolean;
}

export interface ParamSchema {
  type: "string" | "integer" | "boolean";
  enum?: string[];
  pattern?: string;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  description?: string;
  default?: string | number | boolean;
}

export interface Template {
  name: string;
  description: string | null;
  command: string[];
  pty: boolean;
  timeout: number | null;
  schema: { properties: Record<string, ParamSchema>; required: string[] };
}

/** One entry of the trace ledger (GET /trace), newest first there. */
export interface TraceEntry {
  seq: number;
  ts: number;
  who: string | null;
  op: string;
  job: string | null;
  outcome: string;
  detail: Record<string, unknown>;
}

/** GET /stats, what the stats panel reads of it. */
export interface Stats {
  clients: Record<string, number> & { total: number };
  events_sent: number;
  bytes_sent: number;
  rates: { window_seconds: number; events_per_second: number; bytes_per_second: number };
  jobs: Record<string, { clients: number; events_per_second: number; bytes_per_second: number }>;
}
