// What the page knows of each job: the `jobs` list, kept up to date by the events of the
// firehose. An event at or below a job's `last_seq` is already in it and is skipped, so a
// replay (a view subscribing from the start) changes nothing here.
import { api } from "./api";
import type { Job, MuxEvent, Progress, Status } from "./types";

type Listener = () => void;

/** The events that change what the list shows (output does not). */
const META = new Set(["status", "complete", "progress"]);
type EventListener = (ev: MuxEvent) => void;

export class JobStore {
  readonly jobs = new Map<string, Job>();
  private listeners = new Set<Listener>();
  private eventListeners = new Map<string, Set<EventListener>>();
  private fetching = new Set<string>();
  /** The list's events of jobs not known yet, by job. */
  private waiting = new Map<string, MuxEvent[]>();
  private scheduled = false;

  onChange(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every event of one job, replays included: the view keeps its own cursor. */
  onEvent(job: string, fn: EventListener): () => void {
    let set = this.eventListeners.get(job);
    if (!set) this.eventListeners.set(job, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  put(job: Job): void {
    const known = this.jobs.get(job.id);
    if (!known || known.last_seq <= job.last_seq) {
      this.jobs.set(job.id, job);
      this.changed();
    }
    // What came while it was being fetched, past what the fetch saw.
    const waiting = this.waiting.get(job.id);
    this.waiting.delete(job.id);
    for (const ev of waiting ?? []) this.meta(ev);
  }

  putAll(jobs: Job[]): void {
    for (const job of jobs) this.put(job);
  }

  apply(ev: MuxEvent): void {
    for (const fn of this.eventListeners.get(ev.job) ?? []) fn(ev);
    this.meta(ev);
  }

  private meta(ev: MuxEvent): void {
    const job = this.jobs.get(ev.job);
    if (!job) {
      // Kept until the job's fetch answers: the answer may predate this event.
      if (META.has(ev.event)) {
        const waiting = this.waiting.get(ev.job) ?? [];
        if (waiting.length < 1000) waiting.push(ev);
        this.waiting.set(ev.job, waiting);
      }
      this.fetch(ev.job);
      return;
    }
    if (ev.seq <= job.last_seq) return;
    job.last_seq = ev.seq;
    const d = ev.data;
    switch (ev.event) {
      case "status": {
        job.status = d["status"] as Status;
        if (job.status === "running" && job.started_at === null) job.started_at = ev.ts;
        if (typeof d["reason"] === "string") job.reason = d["reason"];
        break;
      }
      case "complete": {
        job.status = d["status"] as Status;
        job.exit_code = (d["exit_code"] as number | null) ?? null;
        job.signal = (d["signal"] as string | null) ?? null;
        job.finished_at = ev.ts;
        if (typeof d["reason"] === "string") job.reason = d["reason"];
        break;
      }
      case "progress":
        job.progress = d as Progress;
        break;
      default:
        return; // output: nothing the list shows
    }
    this.changed();
  }

  /** A job the firehose told of before the list did (one created since): its metadata. */
  fetch(id: string): void {
    if (this.fetching.has(id)) return;
    this.fetching.add(id);
    api<Job>("GET", `/jobs/${encodeURIComponent(id)}`)
      .then((job) => this.put(job))
      .catch(() => this.waiting.delete(id))
      .finally(() => this.fetching.delete(id));
  }

  private changed(): void {
    // One render per frame, however many events came in it.
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    });
  }
}
