// The job's progress as a bar: from its latest `progress` event (or the job's `progress`
// when it is opened), indeterminate without a percent, marked on OSC 9;4's error and paused.
import { h } from "../dom";
import type { Progress } from "../types";

const STATES: Record<number, string> = { 2: "error", 4: "paused" };

export class ProgressBar {
  readonly el = h("div", { class: "progress-panel", hidden: true });
  private bar = h("progress", { id: "progress-bar", max: 100, "aria-label": "Progress" });
  private text = h("span", { class: "progress-text", id: "progress-text" });

  constructor(initial: Progress | null) {
    this.el.append(this.bar, this.text);
    if (initial) this.set(initial);
  }

  set(p: Progress): void {
    // state 0 clears the bar (OSC 9;4 "remove")
    if (p.state === 0) {
      this.el.hidden = true;
      return;
    }
    this.el.hidden = false;
    if (typeof p.percent === "number") this.bar.value = p.percent;
    else this.bar.removeAttribute("value"); // indeterminate
    this.el.dataset["state"] = (p.state !== undefined && STATES[p.state]) || "normal";
    const parts: string[] = [];
    if (typeof p.percent === "number") parts.push(`${Math.round(p.percent * 10) / 10}%`);
    if (p.current !== undefined && p.total !== undefined) {
      parts.push(`${p.current}/${p.total}${p.unit ? ` ${p.unit}` : ""}`);
    }
    if (p.message) parts.push(p.message);
    this.text.textContent = parts.join(" · ");
    this.bar.setAttribute("aria-valuetext", this.text.textContent || "in progress");
  }
}
