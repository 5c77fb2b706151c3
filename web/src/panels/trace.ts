// The trace ledger's entries for this job (admin): who created, started, drove and ended it.
// The ledger is not on /ws, so it is read again when the job's state changes, from the last
// entry shown (`after`), and every few seconds while the tab shows it.
import { api, ApiError } from "../api";
import { h } from "../dom";
import type { MuxEvent, TraceEntry } from "../types";
import { brief, clock, type Panel } from "./panel";

const POLL_MS = 3000;

export class TracePanel implements Panel {
  readonly key = "trace";
  readonly title = "Trace";
  readonly el: HTMLElement;
  private body = h("tbody", { id: "trace-entries" });
  private message = h("p", { class: "muted", id: "trace-message" }, "Loading…");
  private after = 0;
  private timer = 0;
  private loading = false;
  private again = false;

  constructor(private readonly job: string) {
    this.el = h(
      "div",
      {},
      this.message,
      h(
        "table",
        { class: "grid" },
        h("thead", {}, h("tr", {}, ...["Time", "Who", "Operation", "Outcome", "Detail"].map((t) => h("th", {}, t)))),
        this.body,
      ),
    );
    void this.load();
  }

  event(ev: MuxEvent): void {
    // Each of these has a ledger entry beside it (job.start, job.finish, ...).
    if (ev.event === "status" || ev.event === "complete") void this.load();
  }

  shown(visible: boolean): void {
    window.clearInterval(this.timer);
    if (visible) {
      void this.load();
      this.timer = window.setInterval(() => void this.load(), POLL_MS);
    }
  }

  destroy(): void {
    window.clearInterval(this.timer);
  }

  private async load(): Promise<void> {
    if (this.loading) {
      this.again = true; // one more read when this one ends: the change may be past it
      return;
    }
    this.loading = true;
    try {
      const q = new URLSearchParams({ job: this.job, after: String(this.after), limit: "1000" });
      const { entries } = await api<{ entries: TraceEntry[] }>("GET", `/trace?${q}`);
      // newest first from the server: added oldest first, each on top
      for (const e of [...entries].reverse()) {
        if (e.seq <= this.after) continue;
        this.after = e.seq;
        this.body.prepend(
          h(
            "tr",
            { "data-op": e.op },
            h("td", {}, clock(e.ts)),
            h("td", {}, e.who ?? "—"),
            h("td", { class: "op" }, e.op),
            h("td", {}, e.outcome),
            h("td", {}, h("code", {}, brief(e.detail))),
          ),
        );
      }
      this.message.textContent = this.body.childElementCount ? "" : "No entries yet.";
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
    } finally {
      this.loading = false;
      if (this.again) {
        this.again = false;
        void this.load();
      }
    }
  }
}
