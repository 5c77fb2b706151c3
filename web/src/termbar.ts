// The controls around a job's terminal: which streams it shows, copy, download of the raw log,
// "N new lines" while the user reads earlier output, and the output before what the terminal
// keeps, loaded from `/log` byte ranges on demand.
import { ApiError, fetchBytes } from "./api";
import { h } from "./dom";
import type { JobTerminal, Shown } from "./terminal";
import type { Job } from "./types";

/** Bytes of earlier output loaded per click. */
const PAGE_BYTES = 256 * 1024;
// CSI, OSC and two-byte escapes: earlier output is shown as text, its colours left out.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\r(?=\n)/g;

export class TermBar {
  /** Above the terminal: streams, copy, download, earlier output. */
  readonly bar: HTMLElement;
  /** Over the terminal's corner: the jump back to the newest output. */
  readonly jump: HTMLButtonElement;
  /** Earlier output, above the terminal once loaded. */
  readonly earlier: HTMLElement;
  private note = h("span", { class: "muted term-note", role: "status", "aria-live": "polite" });
  private streams = h(
    "select",
    { id: "term-streams", "aria-label": "Streams shown" },
    h("option", { value: "both" }, "stdout and stderr"),
    h("option", { value: "stdout" }, "stdout only"),
    h("option", { value: "stderr" }, "stderr only"),
  );
  private more = h("button", { type: "button", id: "term-earlier", hidden: true }, "Load earlier output");
  private earlierText = h("pre", { class: "earlier-text" });
  private terminal: JobTerminal | null = null;
  private job: Job | null = null;
  /** Where the earlier output loaded so far starts (null: none loaded), in `stream`'s bytes. */
  private loadedFrom: number | null = null;
  /** Where it ends: where the terminal's kept output started then. As the terminal lets go of
   * its oldest lines, earlier output grows at its end too, so the two always join. */
  private loadedTo = 0;
  private filling = false;
  /** Counts the resets (streams changed): an answer to an older request is dropped. */
  private generation = 0;

  constructor() {
    const copy = h("button", { type: "button", id: "term-copy", title: "The selection, or all the terminal holds" }, "Copy");
    const download = h("button", { type: "button", id: "term-download" }, "Download log");
    copy.addEventListener("click", () => void this.copy());
    download.addEventListener("click", () => void this.download(download));
    this.streams.addEventListener("change", () => {
      this.terminal?.show(this.streams.value as Shown);
      this.forgetEarlier();
    });
    this.more.addEventListener("click", () => void this.loadEarlier());
    this.bar = h("div", { class: "termbar" }, this.streams, copy, download, this.more, this.note);
    this.jump = h("button", { type: "button", id: "term-jump", class: "term-jump", hidden: true });
    this.jump.addEventListener("click", () => this.terminal?.jumpToEnd());
    this.earlier = h(
      "section",
      { class: "earlier", "aria-label": "Earlier output", hidden: true },
      this.earlierText,
    );
  }

  attach(terminal: JobTerminal, job: Job): void {
    this.terminal = terminal;
    this.job = job;
    // A PTY's output is all stdout: nothing to choose.
    this.streams.hidden = job.pty;
    terminal.onChange = () => this.update();
    this.update();
  }

  /** On each change of the terminal: what the controls can offer. */
  update(): void {
    const t = this.terminal;
    if (!t) return;
    const n = t.newLines;
    this.jump.hidden = !(t.paused() && n > 0);
    this.jump.textContent = `${n} new line${n === 1 ? "" : "s"} ↓`;
    this.jump.setAttribute("aria-label", `${n} new lines: jump to the newest output`);
    this.more.hidden = (this.loadedFrom ?? t.keptFrom().offset) === 0;
    if (this.loadedFrom !== null && !this.filling && t.keptFrom().offset > this.loadedTo) {
      void this.fill();
    }
  }

  private async range(stream: string, start: number, end: number): Promise<Uint8Array> {
    const resp = await fetchBytes(this.logPath(stream), { Range: `bytes=${start}-${end - 1}` });
    return new Uint8Array(await resp.arrayBuffer());
  }

  /** Earlier output's end brought up to where the terminal's kept output starts now. */
  private async fill(): Promise<void> {
    const t = this.terminal;
    if (!t) return;
    const generation = this.generation;
    const { stream, offset } = t.keptFrom();
    const end = Math.min(offset, this.loadedTo + PAGE_BYTES);
    this.filling = true;
    try {
      const bytes = await this.range(stream, this.loadedTo, end);
      if (generation !== this.generation) return;
      this.earlierText.append(document.createTextNode(asText(bytes)));
      this.loadedTo = end;
    } catch (e) {
      this.say(e instanceof ApiError ? e.message : String(e));
      return; // not again at once: the next change of the terminal tries
    } finally {
      this.filling = false;
    }
    this.update();
  }

  private say(text: string): void {
    this.note.textContent = text;
  }

  private async copy(): Promise<void> {
    const text = this.terminal?.text() ?? "";
    try {
      await navigator.clipboard.writeText(text);
      const lines = text ? text.split("\n").length : 0;
      this.say(`Copied ${lines} line${lines === 1 ? "" : "s"}.`);
    } catch (e) {
      this.say(`Could not copy: ${String(e)}`);
    }
  }

  private logPath(stream: string): string {
    const id = encodeURIComponent(this.job?.id ?? "");
    return `/jobs/${id}/log${stream === "all" ? "" : `?stream=${stream}`}`;
  }

  /** The raw log of the streams shown, saved as a file: fetched with the token as a header. */
  private async download(button: HTMLButtonElement): Promise<void> {
    const job = this.job;
    if (!job) return;
    const shown = this.streams.value;
    button.disabled = true;
    try {
      const blob = await (await fetchBytes(this.logPath(shown === "both" ? "all" : shown))).blob();
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `${job.name ?? job.id}${shown === "both" ? "" : `.${shown}`}.log` });
      document.body.append(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
      this.say("");
    } catch (e) {
      this.say(e instanceof ApiError ? e.message : String(e));
    } finally {
      button.disabled = false;
    }
  }

  private forgetEarlier(): void {
    this.generation += 1;
    this.loadedFrom = null;
    this.earlierText.textContent = "";
    this.earlier.hidden = true;
    this.update();
  }

  /** The page of output before what is shown (the terminal's, or earlier output's, start). */
  private async loadEarlier(): Promise<void> {
    const t = this.terminal;
    if (!t) return;
    const generation = this.generation;
    const { stream, offset } = t.keptFrom();
    const end = this.loadedFrom ?? offset;
    if (end <= 0) return;
    const start = Math.max(0, end - PAGE_BYTES);
    this.more.disabled = true;
    try {
      let bytes = await this.range(stream, start, end);
      if (generation !== this.generation) return;
      let from = start;
      if (start > 0) {
        // From a line's start: the page before gets the rest of it.
        const nl = bytes.indexOf(0x0a);
        if (nl !== -1 && nl + 1 < bytes.length) {
          bytes = bytes.subarray(nl + 1);
          from = start + nl + 1;
        }
      }
      const text = asText(bytes);
      const first = this.loadedFrom === null;
      if (first) this.loadedTo = end;
      this.earlier.hidden = false;
      const height = this.earlier.scrollHeight;
      this.earlierText.prepend(document.createTextNode(text));
      // Its end joins the terminal: shown first; a page loaded above leaves the view in place.
      if (first) this.earlier.scrollTop = this.earlier.scrollHeight;
      else this.earlier.scrollTop += this.earlier.scrollHeight - height;
      this.loadedFrom = from;
      this.say(from === 0 ? "All earlier output is loaded." : "");
    } catch (e) {
      this.say(e instanceof ApiError ? e.message : String(e));
    } finally {
      this.more.disabled = false;
      this.update();
    }
  }
}

function asText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes).replace(ESCAPES, "");
}
