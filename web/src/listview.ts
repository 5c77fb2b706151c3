// The job list: live from the store, newest first, with filters by status and label and a
// search over names and commands.
import { badge } from "./badge";
import { h } from "./dom";
import { commandLine, duration, elapsed, ending, labelText } from "./format";
import type { JobStore } from "./store";
import { STATUSES, type Job } from "./types";

export class ListView {
  readonly el: HTMLElement;
  private body: HTMLElement;
  private count: HTMLElement;
  private status: HTMLSelectElement;
  private label: HTMLInputElement;
  private search: HTMLInputElement;
  private off: () => void;
  private timer: number;
  private rows = new Map<string, { sig: string; el: HTMLElement }>();

  constructor(private readonly store: JobStore) {
    this.status = h(
      "select",
      { "aria-label": "Filter by status", id: "filter-status" },
      h("option", { value: "" }, "every status"),
      ...STATUSES.map((s) => h("option", { value: s }, s.replace("_", " "))),
    );
    this.label = h("input", {
      type: "search",
      placeholder: "label (key=value)",
      "aria-label": "Filter by label",
      id: "filter-label",
    });
    this.search = h("input", {
      type: "search",
      placeholder: "search name or command",
      "aria-label": "Search by name or command",
      id: "filter-search",
    });
    for (const input of [this.status, this.label, this.search]) {
      input.addEventListener("input", () => this.render());
    }
    this.count = h("span", { class: "muted", "aria-live": "polite" });
    this.body = h("tbody");
    this.el = h(
      "section",
      { class: "list", "aria-label": "Jobs" },
      h("div", { class: "filters" }, this.status, this.label, this.search, this.count),
      h(
        "table",
        { class: "jobs" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ...["Status", "Name", "Command", "Labels", "Time", "Exit", "Progress"].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        this.body,
      ),
    );
    this.off = store.onChange(() => this.render());
    // Running jobs' elapsed times move on by themselves.
    this.timer = window.setInterval(() => this.render(), 1000);
    this.render();
  }

  destroy(): void {
    this.off();
    window.clearInterval(this.timer);
  }

  private matches(job: Job): boolean {
    const status = this.status.value;
    if (status && job.status !== status) return false;
    const label = this.label.value.trim();
    if (label) {
      const [k, v] = label.split("=", 2) as [string, string | undefined];
      if (!(k in job.labels) || (v !== undefined && job.labels[k] !== v)) return false;
    }
    const q = this.search.value.trim().toLowerCase();
    if (q && !`${job.name ?? ""} ${job.id} ${commandLine(job)}`.toLowerCase().includes(q)) {
      return false;
    }
    return true;
  }

  render(): void {
    // Ids sort by creation time: newest first is the reverse of their order.
    const jobs = [...this.store.jobs.values()].filter((j) => this.matches(j));
    jobs.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    // Rows are kept and changed in place where they can be: a focused link, a hover or a
    // selection in the list survives the updates (and the clock's tick only sets a text).
    // Nodes that stay are never moved (moving one takes its focus): the others go in around them.
    const wanted = jobs.map((j) => this.row(j));
    const keep = new Set<Element>(wanted);
    for (const child of [...this.body.children]) if (!keep.has(child)) child.remove();
    let cursor = this.body.firstElementChild;
    for (const el of wanted) {
      if (el === cursor) cursor = cursor.nextElementSibling;
      else this.body.insertBefore(el, cursor);
    }
    if (!jobs.length) {
      const text = this.store.jobs.size ? "No job matches." : "No jobs yet. Start one with New job.";
      this.body.append(h("tr", {}, h("td", { colspan: 7, class: "empty" }, text)));
    }
    this.count.textContent = `${jobs.length} of ${this.store.jobs.size}`;
  }

  /** The job's row, made anew only when more than its time changed. */
  private row(job: Job): HTMLElement {
    const sig = signature(job);
    const known = this.rows.get(job.id);
    const time = elapsed(job);
    const text = time === null ? "" : duration(time);
    if (known && known.sig === sig) {
      const cell = known.el.querySelector("td.time");
      if (cell && cell.textContent !== text) cell.textContent = text;
      return known.el;
    }
    const el = row(job);
    if (known?.el.parentNode) known.el.replaceWith(el);
    this.rows.set(job.id, { sig, el });
    return el;
  }
}

function signature(job: Job): string {
  return JSON.stringify([job.status, job.name, job.exit_code, job.signal, job.progress, job.labels]);
}

function row(job: Job): HTMLElement {
  const link = `#/jobs/${encodeURIComponent(job.id)}`;
  const time = elapsed(job);
  const pct = job.progress?.percent;
  return h(
    "tr",
    { "data-job": job.id, "data-status": job.status },
    h("td", {}, badge(job.status)),
    h(
      "td",
      { class: "name" },
      h("a", { href: link }, job.name ?? job.id),
      job.kind === "source" ? h("span", { class: "tag" }, "source") : null,
    ),
    h("td", { class: "command" }, h("code", {}, commandLine(job))),
    h("td", { class: "labels" }, ...labelText(job.labels).map((l) => h("span", { class: "tag" }, l))),
    h("td", { class: "time" }, time === null ? "" : duration(time)),
    h("td", { class: "exit" }, ending(job)),
    h(
      "td",
      { class: "progress" },
      // the figure beside the bar: a bar alone does not say 97% from 100%
      ...(typeof pct === "number"
        ? [
            h("progress", { max: 100, value: pct, "aria-label": `${pct}%` }, `${pct}%`),
            h("span", { class: "pct", "aria-hidden": "true" }, `${pct}%`),
          ]
        : []),
    ),
  );
}
