// A job page's panels below its terminal, as tabs (arrow keys move between them), and its
// progress bar: each is given the job's events once, in seq order, whatever replays come.
import { h } from "../dom";
import type { JobStore } from "../store";
import type { Job, MuxEvent, Progress, WhoAmI } from "../types";
import { EventsPanel } from "./events";
import { ExtractionsPanel } from "./extractions";
import type { Panel } from "./panel";
import { ProgressBar } from "./progress";
import { StatsPanel } from "./stats";
import { TracePanel } from "./trace";

export class JobPanels {
  /** The progress bar, to go above the terminal. */
  readonly progress: ProgressBar;
  /** The tabs, to go below it. */
  readonly el: HTMLElement;
  private panels: Panel[];
  private tabs: HTMLButtonElement[] = [];
  private seq = 0;
  private off: () => void;

  constructor(job: Job, store: JobStore, me: WhoAmI) {
    this.progress = new ProgressBar(job.progress);
    this.panels = [new ExtractionsPanel(job.extracted), new EventsPanel()];
    if (me.scopes.includes("admin")) this.panels.push(new TracePanel(job.id));
    this.panels.push(new StatsPanel(job.id));
    const list = h("div", { role: "tablist", "aria-label": "Job panels", class: "tabs" });
    for (const p of this.panels) {
      const tab = h(
        "button",
        { type: "button", role: "tab", id: `tab-${p.key}`, "aria-controls": `panel-${p.key}` },
        p.title,
      );
      tab.addEventListener("click", () => this.select(p.key));
      tab.addEventListener("keydown", (e) => this.arrow(e));
      this.tabs.push(tab);
      list.append(tab);
      p.el.id = `panel-${p.key}`;
      p.el.setAttribute("role", "tabpanel");
      p.el.setAttribute("aria-labelledby", tab.id);
      p.el.classList.add("panel");
    }
    this.el = h("section", { class: "panels", "aria-label": "Panels" }, list, ...this.panels.map((p) => p.el));
    this.select(this.panels[0]?.key ?? "");
    this.off = store.onEvent(job.id, (ev) => this.event(ev));
  }

  select(key: string): void {
    for (const [i, p] of this.panels.entries()) {
      const on = p.key === key;
      const tab = this.tabs[i];
      tab?.setAttribute("aria-selected", String(on));
      if (tab) tab.tabIndex = on ? 0 : -1;
      if (p.el.hidden === on) p.shown?.(on);
      p.el.hidden = !on;
    }
  }

  destroy(): void {
    this.off();
    for (const p of this.panels) p.destroy?.();
  }

  private event(ev: MuxEvent): void {
    if (ev.seq <= this.seq) return; // a replay's: given already
    this.seq = ev.seq;
    if (ev.event === "progress") this.progress.set(ev.data as Progress);
    for (const p of this.panels) p.event?.(ev);
  }

  private arrow(e: KeyboardEvent): void {
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const at = this.tabs.findIndex((t) => t === document.activeElement);
    const next = this.tabs[(at + step + this.tabs.length) % this.tabs.length];
    if (!next) return;
    next.focus();
    next.click();
  }
}
