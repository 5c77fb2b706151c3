// A job's page: how it was started and how it ends, its output live in a terminal, and (for a
// token with `control`) cancel and signals.
import { api, ApiError } from "./api";
import { badge } from "./badge";
import { clear, h } from "./dom";
import { commandLine, duration, elapsed, ending } from "./format";
import type { Mux } from "./mux";
import { JobPanels } from "./panels";
import type { JobStore } from "./store";
import { TermBar } from "./termbar";
import { JobTerminal } from "./terminal";
import { isFinal, type Job, type WhoAmI } from "./types";

// The search add-on's highlight of every match, and of the current one
const MATCH = {
  matchBackground: "#f2cc60",
  matchOverviewRuler: "#f2cc60",
  activeMatchBackground: "#f08c00",
  activeMatchColorOverviewRuler: "#f08c00",
};

function progressText(job: Job): string {
  const p = job.progress;
  if (!p) return "";
  const parts: string[] = [];
  if (typeof p.percent === "number") parts.push(`${p.percent}%`);
  if (p.current !== undefined && p.total !== undefined) parts.push(`${p.current}/${p.total}`);
  if (p.message) parts.push(p.message);
  return parts.join(" ");
}

const SIGNALS = ["INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "KILL"];

export class JobView {
  readonly el: HTMLElement;
  private summary = h("div", { class: "summary" });
  private actions = h("div", { class: "actions" });
  private message = h("p", { class: "error", role: "alert" });
  private termHost = h("div", { class: "terminal", "aria-label": "Output" });
  private terminal: JobTerminal | null = null;
  private panels: JobPanels | null = null;
  private termBar = new TermBar();
  private offs: (() => void)[] = [];
  private timer = 0;
  private cancelling = false;

  constructor(
    private readonly id: string,
    private readonly store: JobStore,
    private readonly mux: Mux,
    private readonly me: WhoAmI,
  ) {
    this.el = h(
      "section",
      { class: "job", "aria-label": "Job" },
      h("p", {}, h("a", { href: "#/" }, "← Jobs")),
      this.summary,
      this.actions,
      this.message,
      this.searchBar(),
      this.termBar.bar,
      this.termBar.earlier,
      this.termHost,
    );
    this.termHost.append(this.termBar.jump); // over the terminal's corner
    void this.start();
  }

  private async start(): Promise<void> {
    let job = this.store.jobs.get(this.id);
    if (!job) {
      try {
        job = await api<Job>("GET", `/jobs/${encodeURIComponent(this.id)}`);
      } catch (e) {
        this.message.textContent = e instanceof ApiError ? e.message : String(e);
        return;
      }
      this.store.put(job);
    }
    const id = job.id;
    const drives = this.me.control && (job.pty || job.stdin);
    this.terminal = new JobTerminal(this.termHost, job.pty, !drives);
    if (drives) {
      // A pipe has no line discipline to turn Enter's \r into \n (ICRNL): the page does.
      const pipe = !job.pty;
      this.terminal.term.onData((text) => {
        const now = this.store.jobs.get(id);
        if (!now || isFinal(now.status)) return;
        this.mux.send({ type: "send", job: id, text: pipe ? text.replace(/\r/g, "\n") : text });
      });
      if (job.pty) {
        // The job's window is this terminal's: its size now, and again whenever the fit
        // changes it (the program gets SIGWINCH).
        const term = this.terminal.term;
        const resize = (cols: number, rows: number) => {
          const now = this.store.jobs.get(id);
          if (now && !isFinal(now.status)) this.mux.send({ type: "resize", job: id, cols, rows });
        };
        term.onResize(({ cols, rows }) => resize(cols, rows));
        resize(term.cols, term.rows);
      }
    }
    const terminal = this.terminal;
    this.termBar.attach(terminal, job);
    this.offs.push(this.store.onEvent(id, (ev) => terminal.feed(ev)));
    this.offs.push(this.store.onChange(() => this.render()));
    this.panels = new JobPanels(job, this.store, this.me);
    this.termHost.before(this.panels.progress.el);
    this.termHost.after(this.panels.el);
    // From the start, and after a reconnect from the last event shown: the terminal takes
    // each event once, in order, whatever came before (the panels skip what they have seen).
    this.offs.push(this.mux.follow(id, () => terminal.seq));
    this.timer = window.setInterval(() => this.render(), 1000);
    this.render();
  }

  /** Find in the output: Enter (or ↓) the next match, Shift+Enter (or ↑) the previous. */
  private searchBar(): HTMLElement {
    const input = h("input", {
      type: "search",
      id: "term-search",
      placeholder: "find in output",
      "aria-label": "Find in output",
    });
    const find = (back: boolean) => {
      const search = this.terminal?.search;
      if (!search || !input.value) return;
      const options = { decorations: MATCH };
      if (back) search.findPrevious(input.value, options);
      else search.findNext(input.value, options);
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        find(e.shiftKey);
      }
    });
    input.addEventListener("input", () => {
      if (!input.value) this.terminal?.search.clearDecorations();
    });
    const prev = h("button", { type: "button", "aria-label": "Previous match" }, "↑");
    const next = h("button", { type: "button", "aria-label": "Next match" }, "↓");
    prev.addEventListener("click", () => find(true));
    next.addEventListener("click", () => find(false));
    return h("div", { class: "search", role: "search" }, input, prev, next);
  }

  destroy(): void {
    for (const off of this.offs) off();
    window.clearInterval(this.timer);
    this.terminal?.destroy();
    this.panels?.destroy();
  }

  private render(): void {
    const job = this.store.jobs.get(this.id) ?? [...this.store.jobs.values()].find((j) => j.name === this.id);
    if (!job) return;
    const time = elapsed(job);
    clear(this.summary);
    this.summary.append(
      h(
        "h1",
        {},
        badge(job.status),
        " ",
        job.name ?? job.id,
        this.me.control ? null : h("span", { class: "tag readonly" }, "read-only"),
      ),
      h("pre", { class: "cmdline", "aria-label": "Command line" }, `$ ${commandLine(job)}`),
      h(
        "dl",
        {},
        h("dt", {}, "Exit"),
        h("dd", { class: "exit" }, ending(job) || "—"),
        h("dt", {}, "Elapsed"),
        h("dd", { class: "elapsed" }, time === null ? "—" : duration(time)),
        job.progress ? h("dt", {}, "Progress") : null,
        job.progress ? h("dd", { class: "job-progress" }, progressText(job)) : null,
        job.reason ? h("dt", {}, "Why") : null,
        job.reason ? h("dd", {}, job.reason) : null,
        h("dt", {}, "Id"),
        h("dd", {}, h("code", {}, job.id)),
      ),
    );
    this.renderActions(job);
  }

  private renderActions(job: Job): void {
    if (!this.me.control || isFinal(job.status)) {
      clear(this.actions);
      return;
    }
    if (this.actions.childElementCount) return; // they keep their own state while it runs
    const cancel = h("button", { type: "button", class: "danger", id: "cancel" }, "Cancel job");
    const confirm = h(
      "span",
      { class: "confirm", hidden: true },
      "Cancel this job? ",
      h("button", { type: "button", class: "danger", id: "cancel-yes" }, "Yes, cancel it"),
      " ",
      h("button", { type: "button", id: "cancel-no" }, "Keep it running"),
    );
    cancel.addEventListener("click", () => {
      cancel.hidden = true;
      confirm.hidden = false;
      (confirm.querySelector("#cancel-no") as HTMLButtonElement).focus();
    });
    confirm.querySelector("#cancel-no")?.addEventListener("click", () => {
      confirm.hidden = true;
      cancel.hidden = false;
      cancel.focus();
    });
    confirm.querySelector("#cancel-yes")?.addEventListener("click", () => {
      confirm.hidden = true;
      cancel.hidden = false;
      void this.cancel(job.id, cancel);
    });
    const signal = h(
      "select",
      { "aria-label": "Signal", id: "signal" },
      ...SIGNALS.map((s) => h("option", { value: s }, `SIG${s}`)),
    );
    const send = h("button", { type: "button", id: "signal-send" }, "Send signal");
    send.addEventListener("click", () => void this.signal(job.id, signal.value, send));
    this.actions.append(cancel, confirm, h("span", { class: "signal" }, signal, send));
  }

  private async cancel(id: string, button: HTMLButtonElement): Promise<void> {
    if (this.cancelling) return;
    this.cancelling = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.classList.add("loading");
    button.textContent = "Cancelling…";
    this.message.textContent = "";
    try {
      this.store.put(await api<Job>("POST", `/jobs/${encodeURIComponent(id)}/cancel`));
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
      button.disabled = false;
      button.removeAttribute("aria-busy");
      button.classList.remove("loading");
      button.textContent = "Cancel job";
    } finally {
      this.cancelling = false;
    }
  }

  private async signal(id: string, name: string, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    this.message.textContent = "";
    try {
      await api("POST", `/jobs/${encodeURIComponent(id)}/signal`, { signal: name });
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
    } finally {
      button.disabled = false;
    }
  }
}
