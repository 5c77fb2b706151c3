// The job's progress as a bar: from its latest `progress` event (or the job's `progress`
// when it is opened), indeterminate without a percent; OSC 9;4's state marks it (error,
// paused) or takes it away (clear).
import { h } from "../dom";
import type { Progress } from "../types";

export class ProgressBar {
  readonly el = h("div", { class: "progress-panel", hidden: true });
  private bar = h("progress", { id: "progress-bar", max: 100, "aria-label": "Progress" });
  private text = h("span", { class: "progress-text", id: "progress-text" });

  constructor(initial: Progress | null) {
    this.el.append(this.bar, this.text);
    if (initial) this.set(initial);
  }

  set(p: Progress): void {
    if (p.state === "clear") {
      this.el.hidden = true;
      return;
    }
    this.el.hidden = false;
    if (typeof p.percent === "number" && p.state !== "indeterminate") this.bar.value = p.percent;
    else this.bar.removeAttribute("value"); // an indeterminate bar
    this.el.dataset["state"] = p.state ?? "normal";
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
