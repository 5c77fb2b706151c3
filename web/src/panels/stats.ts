// The server's streaming figures from /stats: clients now (in all, by transport, and this
// job's), events and bytes sent and their rates. Read every two seconds while the tab shows.
import { api, ApiError } from "../api";
import { h } from "../dom";
import type { Stats } from "../types";
import type { Panel } from "./panel";

const POLL_MS = 2000;

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export class StatsPanel implements Panel {
  readonly key = "stats";
  readonly title = "Stats";
  readonly el = h("div", {});
  private list = h("dl", { class: "counts", id: "stats" });
  private message = h("p", { class: "error", role: "alert" });
  private timer = 0;

  constructor(private readonly job: string) {
    this.el.append(this.message, this.list);
  }

  shown(visible: boolean): void {
    window.clearInterval(this.timer);
    if (visible) {
      void this.load();
      this.timer = window.setInterval(() => void this.load(), POLL_MS);
    }
  }

  destroy(): void {
    window.clearInterval(this.timer);
  }

  private async load(): Promise<void> {
    let s: Stats;
    try {
      s = await api<Stats>("GET", "/stats");
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
      return;
    }
    this.message.textContent = "";
    const mine = s.jobs[this.job];
    const by = Object.entries(s.clients)
      .filter(([k, v]) => k !== "total" && v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const items: [string, string, string][] = [
      ["clients", "Clients", `${s.clients.total}${by ? ` (${by})` : ""}`],
      ["job-clients", "Following this job", String(mine?.clients ?? 0)],
      ["events", "Events sent", `${s.events_sent} (${s.rates.events_per_second}/s)`],
      ["bytes", "Bytes sent", `${bytes(s.bytes_sent)} (${bytes(s.rates.bytes_per_second)}/s)`],
    ];
    this.list.replaceChildren(
      ...items.flatMap(([key, label, value]) => [h("dt", {}, label), h("dd", { "data-stat": key }, value)]),
    );
  }
}
