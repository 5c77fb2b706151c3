// The job's events as they come, raw (seed 003's dashboard): live counts of all events, output
// (events and lines), extractions and state changes, and the newest events as JSON, by kind.
import { h } from "../dom";
import type { MuxEvent } from "../types";
import { brief, clock, type Panel } from "./panel";

/** The newest events kept on the page; the counts go on counting past it. */
const KEEP = 500;

type Kind = "output" | "extraction" | "state" | "other";
const KINDS: readonly Kind[] = ["output", "extraction", "state", "other"];
const LABELS: Record<Kind | "all", string> = {
  all: "All events",
  output: "Output events",
  extraction: "Extractions",
  state: "State changes",
  other: "Other",
};

function kindOf(type: string): Kind {
  if (type === "stdout" || type === "stderr") return "output";
  if (type === "extraction") return "extraction";
  if (type === "status" || type === "complete" || type === "command") return "state";
  return "other";
}

export class EventsPanel implements Panel {
  readonly key = "events";
  readonly title = "Events";
  readonly el: HTMLElement;
  private counts = new Map<Kind | "all", HTMLElement>();
  private lines: HTMLElement;
  private lineCount = 0;
  private list = h("ol", { class: "raw-events", id: "raw-events", "aria-label": "Raw events" });
  private filter = h(
    "select",
    { id: "events-filter", "aria-label": "Show events of kind" },
    ...(["all", ...KINDS] as const).map((k) => h("option", { value: k === "all" ? "" : k }, LABELS[k])),
  );

  constructor() {
    const stats = h("dl", { class: "counts" });
    for (const k of ["all", ...KINDS] as const) {
      const dd = h("dd", { "data-kind": k }, "0");
      this.counts.set(k, dd);
      stats.append(h("dt", {}, LABELS[k]), dd);
    }
    this.lines = h("dd", { "data-kind": "lines" }, "0");
    stats.append(h("dt", {}, "Output lines"), this.lines);
    this.filter.addEventListener("change", () => this.applyFilter());
    this.el = h("div", {}, stats, h("p", {}, this.filter), this.list);
  }

  event(ev: MuxEvent): void {
    const kind = kindOf(ev.event);
    for (const k of ["all", kind] as const) {
      const dd = this.counts.get(k);
      if (dd) dd.textContent = String(Number(dd.textContent) + 1);
    }
    const text = ev.data["text"];
    if (kind === "output" && typeof text === "string") {
      // the line ends in this event (a line written in parts counts once, at its end)
      this.lineCount += text.split("\n").length - 1;
      this.lines.textContent = String(this.lineCount);
    }
    const li = h(
      "li",
      { "data-kind": kind, "data-seq": ev.seq },
      h("span", { class: "muted" }, `${clock(ev.ts)} #${ev.seq} `),
      h("strong", {}, ev.event),
      " ",
      h("code", {}, brief(ev.data)),
    );
    li.hidden = !this.visible(kind);
    this.list.prepend(li);
    while (this.list.childElementCount > KEEP) this.list.lastElementChild?.remove();
  }

  private visible(kind: Kind): boolean {
    return !this.filter.value || this.filter.value === kind;
  }

  private applyFilter(): void {
    for (const li of this.list.children) {
      (li as HTMLElement).hidden = !this.visible((li as HTMLElement).dataset["kind"] as Kind);
    }
  }
}
