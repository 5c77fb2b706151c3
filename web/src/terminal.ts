// xterm.js with its add-ons, fed a job's output events in seq order: each event once, none
// skipped (the cursor takes only the next seq; a replay's earlier events are dropped).
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { Terminal } from "@xterm/xterm";
import type { MuxEvent } from "./types";

// stderr's own colour (bright red), and back to the default foreground after it
const STDERR_ON = "\x1b[91m";
const STDERR_OFF = "\x1b[39m";

/** Only http(s) links open, in a new tab that cannot reach back to this one. */
export function openLink(_event: MouseEvent, uri: string): void {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return;
  window.open(url.href, "_blank", "noopener,noreferrer");
}

export class JobTerminal {
  readonly term: Terminal;
  readonly search: SearchAddon;
  private fit: FitAddon;
  private resizer: ResizeObserver;
  /** The seq of the last event shown. */
  seq = 0;

  constructor(host: HTMLElement, pty: boolean, readOnly: boolean) {
    this.term = new Terminal({
      convertEol: !pty, // pipes give bare \n; a PTY gives \r\n itself
      disableStdin: readOnly,
      allowProposedApi: true, // the unicode11 add-on's API
      scrollback: 10_000,
      fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace',
      fontSize: 13,
      theme: theme(),
    });
    this.fit = new FitAddon();
    this.search = new SearchAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(this.search);
    this.term.loadAddon(new WebLinksAddon(openLink));
    this.term.loadAddon(new Unicode11Addon());
    this.term.unicode.activeVersion = "11";
    this.term.open(host);
    this.fit.fit();
    this.resizer = new ResizeObserver(() => this.fit.fit());
    this.resizer.observe(host);
  }

  /** Show one event if it is the next; true if it was. */
  feed(ev: MuxEvent): boolean {
    if (ev.seq !== this.seq + 1) return false;
    this.seq = ev.seq;
    const text = ev.data["text"];
    if (typeof text !== "string") return true;
    if (ev.event === "stdout") this.term.write(text);
    else if (ev.event === "stderr") this.term.write(STDERR_ON + text + STDERR_OFF);
    return true;
  }

  destroy(): void {
    this.resizer.disconnect();
    this.term.dispose();
  }
}

function theme(): { background: string; foreground: string; cursor: string } {
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  return dark
    ? { background: "#0f1115", foreground: "#e6e6e6", cursor: "#e6e6e6" }
    : { background: "#fbfbfc", foreground: "#1d1f24", cursor: "#1d1f24" };
}
