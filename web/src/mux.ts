// The one WebSocket to /ws: it follows every job ("*") for the list, and the jobs that views
// open. The token goes in the first message, never in the URL. A dropped connection comes back
// by itself (jittered, capped backoff; at once when the browser is back online), and every view
// that follows a job subscribes again from the last seq it rendered: no gap, no repeat.
import { token } from "./auth";
import type { Job, MuxEvent } from "./types";

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "offline";

export interface MuxHandlers {
  /** The newest jobs, on each connect (`greeting`: the first message of a connection) and on `list`. */
  jobs(jobs: Job[], greeting: boolean): void;
  event(ev: MuxEvent): void;
  state(state: ConnectionState, why?: string): void;
  /** A `<type>_result` or `error` the server sent. */
  answer?(msg: Record<string, unknown>): void;
}

/** A view following one job: `seq()` is the last event it rendered (0: none yet). */
interface Follow {
  job: string;
  seq(): number;
}

/** The first wait before reconnecting, the most, and the most typed input kept meanwhile. */
const BACKOFF_MS = 300;
const BACKOFF_CAP_MS = 10_000;
const QUEUE_BYTES = 64 * 1024;
/** A connection that lasted this long was a good one: the next drop starts the backoff afresh
 * (one dropped at once, by a server in trouble, keeps backing off). */
const STABLE_MS = 10_000;
/** Close codes the server gives a refused token: trying again would only be refused again. */
const REFUSED = new Set([4401, 4403]);
const OFFLINE = "the browser is offline";

export class Mux {
  private ws: WebSocket | null = null;
  /** What views sent while the connection was down (typed input, controls), in order. */
  private queue: string[] = [];
  private queued = 0;
  private open = false;
  private greeted = false;
  private attempts = 0;
  private openedAt = 0;
  private timer = 0;
  private stopped = false;
  private follows = new Set<Follow>();

  constructor(private readonly handlers: MuxHandlers) {
    window.addEventListener("offline", () => this.wentOffline());
    window.addEventListener("online", () => this.cameOnline());
  }

  get connected(): boolean {
    return this.open;
  }

  connect(): void {
    window.clearTimeout(this.timer);
    this.timer = 0;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this.greeted = false;
    if (!navigator.onLine) this.handlers.state("offline", OFFLINE);
    else this.handlers.state(this.attempts ? "reconnecting" : "connecting");
    ws.onopen = () => {
      const t = token();
      if (t) ws.send(JSON.stringify({ type: "auth", token: t }));
      this.open = true;
      this.openedAt = Date.now();
      this.handlers.state("connected");
      // Every followed job from what its view rendered; then what waited for the connection.
      for (const f of this.follows) this.subscribeOne(f);
      for (const msg of this.queue.splice(0)) ws.send(msg);
      this.queued = 0;
    };
    ws.onmessage = (e: MessageEvent<string>) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      if (this.open && Date.now() - this.openedAt >= STABLE_MS) this.attempts = 0;
      this.dropped(REFUSED.has(e.code) ? e.reason || `code ${e.code}` : null);
    };
  }

  /** The socket is gone: try again later, unless the token was refused. */
  private dropped(refused: string | null): void {
    this.ws = null;
    this.open = false;
    if (refused !== null) {
      this.stopped = true;
      this.handlers.state("offline", refused);
      return;
    }
    // Tried even when the browser says it is offline: it says so without any network but
    // loopback, and a server on this machine is still there.
    this.handlers.state(navigator.onLine ? "reconnecting" : "offline", navigator.onLine ? undefined : OFFLINE);
    // Full jitter over an exponential, capped: many tabs of a restarted server do not all
    // come back in the same instant.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_MS * 2 ** this.attempts);
    this.attempts += 1;
    this.timer = window.setTimeout(() => this.connect(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private wentOffline(): void {
    // The browser keeps an open socket through offline mode, but nothing is known to cross
    // it any more: let it go and start afresh (from each view's seq), now and until one holds.
    const ws = this.ws;
    if (this.stopped) return;
    if (!ws) {
      this.handlers.state("offline", OFFLINE); // between two tries
      return;
    }
    ws.onclose = ws.onmessage = ws.onopen = null;
    ws.close();
    window.clearTimeout(this.timer);
    this.dropped(null);
  }

  private cameOnline(): void {
    if (this.stopped || this.open) return;
    if (this.ws) {
      // One still trying (in offline mode it may hang or fail): a fresh one, now.
      this.ws.onclose = this.ws.onmessage = this.ws.onopen = null;
      this.ws.close();
      this.ws = null;
    }
    this.attempts = Math.max(this.attempts, 1); // "reconnecting", not a first connect
    this.connect();
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
      case "jobs": {
        const greeting = !this.greeted;
        this.greeted = true;
        this.handlers.jobs(msg["jobs"] as Job[], greeting);
        break;
      }
      default:
        this.handlers.answer?.(msg);
    }
  }

  /** Send now, or once connected (typed input beyond QUEUE_BYTES is dropped meanwhile). */
  send(msg: Record<string, unknown>): void {
    const text = JSON.stringify(msg);
    if (this.open && this.ws) this.ws.send(text);
    else if (this.queued + text.length <= QUEUE_BYTES) {
      this.queue.push(text);
      this.queued += text.length;
    }
  }

  /** Follow `jobs` from the seq each has in `after` (0: from the start), on this connection. */
  subscribe(jobs: string[], after: Record<string, number> = {}): void {
    if (this.open) this.send({ type: "subscribe", jobs, after });
  }

  /** Follow one job for a view, on this connection and each after it, from `seq()` each time. */
  follow(job: string, seq: () => number): () => void {
    const f: Follow = { job, seq };
    this.follows.add(f);
    if (this.open) this.subscribeOne(f);
    return () => this.follows.delete(f);
  }

  /** Whether a view follows this job (its cursor on the server is the view's). */
  followed(job: string): boolean {
    for (const f of this.follows) if (f.job === job) return true;
    return false;
  }

  private subscribeOne(f: Follow): void {
    this.ws?.send(JSON.stringify({ type: "subscribe", jobs: [f.job], after: { [f.job]: f.seq() } }));
  }
}
