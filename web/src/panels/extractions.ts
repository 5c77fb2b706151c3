// What the job's extractors found: the latest value of each name, and every match in order
// (newest first, the oldest let go past HISTORY).
import { h } from "../dom";
import type { MuxEvent } from "../types";
import { clock, type Panel } from "./panel";

const HISTORY = 1000;

export class ExtractionsPanel implements Panel {
  readonly key = "extractions";
  readonly title = "Extractions";
  readonly el: HTMLElement;
  private latest = h("tbody", { id: "extractions-latest" });
  private history = h("tbody", { id: "extractions-history" });
  private empty = h("p", { class: "muted", id: "extractions-empty" }, "Nothing extracted yet.");
  private rows = new Map<string, HTMLTableRowElement>();
  private counts = new Map<string, number>();

  constructor(extracted: Record<string, string> | undefined) {
    this.el = h(
      "div",
      {},
      this.empty,
      h("h2", {}, "Latest"),
      h("table", { class: "grid" }, h("thead", {}, row("th", "Name", "Value", "Line", "Matches")), this.latest),
      h("h2", {}, "History"),
      h("table", { class: "grid" }, h("thead", {}, row("th", "Time", "Name", "Value", "Line")), this.history),
    );
    // What the job had when fetched: a page opened late shows it before the replay comes.
    for (const [name, value] of Object.entries(extracted ?? {})) this.setLatest(name, value, null);
  }

  event(ev: MuxEvent): void {
    if (ev.event !== "extraction") return;
    const name = String(ev.data["name"]);
    const value = String(ev.data["value"]);
    const line = typeof ev.data["line_no"] === "number" ? ev.data["line_no"] : null;
    this.setLatest(name, value, line);
    const n = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, n);
    const count = this.rows.get(name)?.cells[3];
    if (count) count.textContent = `${n}×`;
    const tr = row("td", clock(ev.ts), name, value, line === null ? "" : String(line));
    tr.title = String(ev.data["line"] ?? "");
    this.history.prepend(tr);
    while (this.history.childElementCount > HISTORY) this.history.lastElementChild?.remove();
  }

  private setLatest(name: string, value: string, line: number | null): void {
    this.empty.hidden = true;
    let tr = this.rows.get(name);
    if (!tr) {
      tr = row("td", name, "", "", "");
      tr.dataset["name"] = name;
      tr.cells[0]?.classList.add("name");
      tr.cells[1]?.classList.add("value");
      tr.cells[3]?.classList.add("count", "muted");
      this.rows.set(name, tr);
      this.latest.append(tr);
    }
    const [, v, l] = tr.cells;
    if (v) v.textContent = value;
    if (l && line !== null) l.textContent = String(line);
  }
}

function row(cell: "td" | "th", ...texts: string[]): HTMLTableRowElement {
  return h("tr", {}, ...texts.map((t) => h(cell, {}, t)));
}
