// One chat message's or direct command's answer on the new-job page: the job it started, its
// status, and its output as text, live. It follows the job on the page's one connection as the
// job page does (from the last event it showed, after a reconnect too: each event once).
import { badge } from "./badge";
import { h } from "./dom";
import { ending } from "./format";
import type { Mux } from "./mux";
import type { JobStore } from "./store";
import type { MuxEvent } from "./types";

/** An answer shows this much of its output; the job's page has the rest. */
const MAX_CHARS = 256 * 1024;
// Colours, cursor moves and titles: what a terminal would draw, not text to read here
// (CSI sequences, OSC ones ended by BEL or ST, and two-byte escapes).
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

export type Asked = "chat" | "direct";

export class Answer {
  readonly el: HTMLElement;
  private seq = 0;
  private chars = 0;
  private head = h("div", { class: "answer-head" });
  private out = h("pre", { class: "answer-text", "aria-label": "Answer" });
  private offs: (() => void)[] = [];

  constructor(
    kind: Asked,
    asked: string,
    private readonly job: string,
    private readonly store: JobStore,
    mux: Mux,
  ) {
    this.el = h(
      "article",
      { class: "answer", "data-job": job },
      h("p", { class: "asked" }, h("span", { class: "tag" }, kind === "chat" ? "you" : "direct"), " ", asked),
      this.head,
      this.out,
    );
    this.offs.push(store.onEvent(job, (ev) => this.feed(ev)));
    this.offs.push(store.onChange(() => this.render()));
    this.offs.push(mux.follow(job, () => this.seq));
    if (!store.jobs.has(job)) store.fetch(job); // an answer of before a reload
    this.render();
  }

  destroy(): void {
    for (const off of this.offs) off();
  }

  private feed(ev: MuxEvent): void {
    if (ev.seq !== this.seq + 1) return; // a replay's earlier events, or one already shown
    this.seq = ev.seq;
    const text = ev.data["text"];
    if (typeof text !== "string" || (ev.event !== "stdout" && ev.event !== "stderr")) return;
    if (this.chars >= MAX_CHARS) return;
    const clean = text.replace(ESCAPES, "").slice(0, MAX_CHARS - this.chars);
    this.chars += clean.length;
    this.out.append(ev.event === "stderr" ? h("span", { class: "stderr" }, clean) : clean);
    if (this.chars >= MAX_CHARS) this.out.append(h("span", { class: "muted" }, "\n… the rest is on the job's page"));
  }

  private render(): void {
    const job = this.store.jobs.get(this.job);
    const link = h("a", { href: `#/jobs/${encodeURIComponent(this.job)}` }, job?.name ?? this.job);
    this.head.replaceChildren(
      ...(job ? [badge(job.status), " "] : []),
      link,
      job && ending(job) ? h("span", { class: "muted" }, ` ${ending(job)}`) : "",
    );
  }
}
