// How times, commands and labels read on the page.
import type { Job } from "./types";

export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const hours = Math.floor(m / 60);
  return `${hours}h ${String(m % 60).padStart(2, "0")}m`;
}

/** How long it ran (finished) or has been running; null before it started. */
export function elapsed(job: Job, now = Date.now() / 1000): number | null {
  if (job.started_at === null) return null;
  return (job.finished_at ?? now) - job.started_at;
}

export function commandLine(job: Job): string {
  if (job.command) return job.command;
  return job.argv.map((a) => (/^[\w./:=@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`)).join(" ");
}

export function labelText(labels: Record<string, string>): string[] {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`);
}

/** How it ended, in words: the exit code, or the signal. */
export function ending(job: Job): string {
  if (job.signal) return `signal ${job.signal}`;
  if (job.exit_code !== null) return `exit ${job.exit_code}`;
  return "";
}
