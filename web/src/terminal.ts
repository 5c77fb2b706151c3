// xterm.js with its add-ons, fed a job's output events in seq order: each event once, none
// skipped (the cursor takes only the next seq; a replay's earlier events are dropped). It keeps
// the newest output (bounded, fewer lines than the scrollback) to draw it again when the streams
// shown change, and knows where in the log that kept output starts: earlier output is the log's
// bytes before it (termbar.ts loads them by range).
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { Terminal } from "@xterm/xterm";
import type { MuxEvent } from "./types";

// stderr's own colour (bright red), and back to the default foreground after it
const STDERR_ON = "\x1b[91m";
const STDERR_OFF = "\x1b[39m";

/** Lines xterm keeps above the screen: what bounds the page's memory, whatever the job prints. */
export const SCROLLBACK = 10_000;
/** The output kept to draw again: fewer lines than the scrollback (wrapped lines take more
 * than one row), so the terminal still shows all of it and earlier output ends where it starts. */
const KEEP_LINES = 8_000;
const KEEP_BYTES = 4 * 1024 * 1024;

export type Stream = "stdout" | "stderr";
/** Which streams the terminal shows. */
export type Shown = "both" | Stream;

/** One output event kept: `offset` in its stream, `at` in the log of both streams. */
interface Piece {
  stream: Stream;
  text: string;
  offset: number;
  at: number;
  length: number;
  lines: number;
}

const encoder = new TextEncoder();

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

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
  shown: Shown = "both";
  /** Lines that came (of the streams shown) while the user looked at earlier ones. */
  newLines = 0;
  /** Told when `newLines` or the scroll position changes. */
  onChange: () => void = () => {};
  /** Each stream's bytes so far: the next event's offset. */
  private ends: Record<Stream, number> = { stdout: 0, stderr: 0 };
  private kept: Piece[] = [];
  private keptLines = 0;
  private keptBytes = 0;

  constructor(host: HTMLElement, pty: boolean, readOnly: boolean) {
    this.term = new Terminal({
      convertEol: !pty, // pipes give bare \n; a PTY gives \r\n itself
      disableStdin: readOnly,
      allowProposedApi: true, // the unicode11 add-on's API
      scrollback: SCROLLBACK,
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
    // Back at the bottom (by scrolling, or the jump): nothing is new any more.
    this.term.onScroll(() => {
      if (!this.paused() && this.newLines) this.newLines = 0;
      this.onChange();
    });
  }

  /** Whether the user scrolled up: xterm then leaves the view where it is as output comes. */
  paused(): boolean {
    const b = this.term.buffer.active;
    return b.viewportY < b.baseY;
  }

  /** Show one event if it is the next; true if it was. */
  feed(ev: MuxEvent): boolean {
    if (ev.seq !== this.seq + 1) return false;
    this.seq = ev.seq;
    const text = ev.data["text"];
    if (typeof text !== "string" || (ev.event !== "stdout" && ev.event !== "stderr")) return true;
    const stream: Stream = ev.event;
    const offset = typeof ev.data["offset"] === "number" ? ev.data["offset"] : this.ends[stream];
    const length = typeof ev.data["length"] === "number" ? ev.data["length"] : encoder.encode(text).length;
    const piece: Piece = {
      stream,
      text,
      offset,
      length,
      at: this.ends.stdout + this.ends.stderr,
      lines: countLines(text),
    };
    this.ends[stream] = offset + length;
    if (this.shown === "both" || this.shown === stream) {
      if (this.paused() && piece.lines) {
        this.newLines += piece.lines;
        this.onChange();
      }
      this.write(piece);
    }
    this.keep(piece); // after the write: keeping may cut its first lines
    return true;
  }

  private write(piece: Piece): void {
    this.term.write(piece.stream === "stderr" ? STDERR_ON + piece.text + STDERR_OFF : piece.text);
  }

  private keep(piece: Piece): void {
    this.kept.push(piece);
    this.keptLines += piece.lines;
    this.keptBytes += piece.length;
    while (this.kept.length > 1 && this.keptBytes > KEEP_BYTES) this.dropFirst();
    while (this.keptLines > KEEP_LINES) {
      const first = this.kept[0] as Piece;
      const excess = this.keptLines - KEEP_LINES;
      if (excess < first.lines && this.trimFirst(first, excess)) break;
      if (this.kept.length === 1) break;
      this.dropFirst();
    }
  }

  private dropFirst(): void {
    const first = this.kept.shift() as Piece;
    this.keptLines -= first.lines;
    this.keptBytes -= first.length;
  }

  /** Drop the first `n` lines of `piece`: only where its text is its bytes exactly (valid UTF-8). */
  private trimFirst(piece: Piece, n: number): boolean {
    if (encoder.encode(piece.text).length !== piece.length) return false;
    let cut = -1;
    for (let i = 0; i < n; i++) cut = piece.text.indexOf("\n", cut + 1);
    const dropped = encoder.encode(piece.text.slice(0, cut + 1)).length;
    piece.text = piece.text.slice(cut + 1);
    piece.offset += dropped;
    piece.at += dropped;
    piece.length -= dropped;
    piece.lines -= n;
    this.keptLines -= n;
    this.keptBytes -= dropped;
    return true;
  }

  /** Show only these streams: the kept output drawn again, filtered. */
  show(shown: Shown): void {
    if (shown === this.shown) return;
    this.shown = shown;
    this.term.reset();
    for (const piece of this.kept) if (shown === "both" || piece.stream === shown) this.write(piece);
    this.term.scrollToBottom();
    this.newLines = 0;
    this.onChange();
  }

  /** Where the kept output of the streams shown starts, in `/log?stream=…`'s bytes. */
  keptFrom(): { stream: "all" | Stream; offset: number } {
    if (this.shown === "both") {
      return { stream: "all", offset: this.kept[0]?.at ?? this.ends.stdout + this.ends.stderr };
    }
    const first = this.kept.find((p) => p.stream === this.shown);
    return { stream: this.shown, offset: first?.offset ?? this.ends[this.shown] };
  }

  /** The selection, or else everything the terminal holds, as text. */
  text(): string {
    if (this.term.hasSelection()) return this.term.getSelection();
    const b = this.term.buffer.active;
    const lines: string[] = [];
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      if (!line) continue;
      const s = line.translateToString(true);
      // A wrapped row goes on the line before it, as it was printed.
      if (line.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    return lines.join("\n").replace(/\n+$/, "");
  }

  jumpToEnd(): void {
    this.term.scrollToBottom();
    this.newLines = 0;
    this.onChange();
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
