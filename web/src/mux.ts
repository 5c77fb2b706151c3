// The one WebSocket to /ws: it follows every job ("*") for the list, and the jobs that views
// open. The token goes in the first message, never in the URL.
import { token } from "./auth";
import type { Job, MuxEvent } from "./types";

export type ConnectionState = "connecting" | "connected" | "closed";

export interface MuxHandlers {
  /** The newest jobs, on connect and on `list`. */
  jobs(jobs: Job[]): void;
  event(ev: MuxEvent): void;
  state(state: ConnectionState, why?: string): void;
  /** A `<type>_result` or `error` the server sent. */
  answer?(msg: Record<string, unknown>): void;
}

export class Mux {
  private ws: WebSocket | null = null;
  private queue: string[] = [];
  private open = false;

  constructor(private readonly handlers: MuxHandlers) {}

  connect(): void {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this.handlers.state("connecting");
    ws.onopen = () => {
      const t = token();
      if (t) ws.send(JSON.stringify({ type: "auth", token: t }));
      this.open = true;
      this.handlers.state("connected");
      for (const msg of this.queue.splice(0)) ws.send(msg);
    };
    ws.onmessage = (e: MessageEvent<string>) => this.receive(e.data);
    ws.onclose = (e) => {
      this.open = false;
      this.handlers.state("closed", e.reason || `code ${e.code}`);
    };
  }

  private receive(raw: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return;
    }
    switch (msg["type"]) {
      case "event":
        this.handlers.event(msg as unknown as MuxEvent);
        break;
      case "jobs":
        this.handlers.jobs(msg["jobs"] as Job[]);
        break;
      default:
        this.handlers.answer?.(msg);
    }
  }

  send(msg: Record<string, unknown>): void {
    const text = JSON.stringify(msg);
    if (this.open && this.ws) this.ws.send(text);
    else this.queue.push(text);
  }

  /** Follow `jobs` from the seq each has in `after` (0: from the start). */
  subscribe(jobs: string[], after: Record<string, number> = {}): void {
    this.send({ type: "subscribe", jobs, after });
  }
}
