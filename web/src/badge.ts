// A status badge: a colour and always the word, so the status never rests on colour alone.
import { h } from "./dom";
import type { Status } from "./types";

const WORDS: Record<Status, string> = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "cancelled",
  timed_out: "timed out",
  lost: "lost",
};

export function badge(status: Status): HTMLElement {
  return h("span", { class: `badge status-${status}`, "data-status": status }, WORDS[status]);
}

export function statusWord(status: Status): string {
  return WORDS[status];
}
