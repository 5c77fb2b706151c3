// What a job page's panel is to the tabs that hold it: an element, the job's events once each
// in seq order, and a hook for being shown (what polls the server does so only while seen).
import type { MuxEvent } from "../types";

export interface Panel {
  /** The tab's label, and the suffix of its element ids (`tab-<key>`, `panel-<key>`). */
  readonly key: string;
  readonly title: string;
  readonly el: HTMLElement;
  event?(ev: MuxEvent): void;
  shown?(visible: boolean): void;
  destroy?(): void;
}

/** A value as one short line: JSON, cut at `max` characters. */
export function brief(value: unknown, max = 240): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

export function clock(ts: number): string {
  return new Date(ts * 1000).toLocaleTimeString([], { hour12: false });
}
