// The new-job page's chat and direct commands: a message to the server's `chat` template
// (POST /chat) or a template's command line (POST /direct), with the ticked pastes as context;
// each starts a job whose answer shows below, live. What was asked in this tab is kept in its
// sessionStorage, so the answers are there again after a visit to a job's page or a reload.
import { api, ApiError } from "./api";
import { Answer, type Asked } from "./answer";
import { h } from "./dom";
import type { Mux } from "./mux";
import type { JobStore } from "./store";
import type { Job, Template } from "./types";

const KEY = "jobcast.asked";
/** The answers a tab keeps (the newest) */
const KEEP = 50;

interface Entry {
  kind: Asked;
  asked: string;
  job: string;
}

function load(): Entry[] {
  try {
    const data = JSON.parse(sessionStorage.getItem(KEY) ?? "[]") as unknown;
    return Array.isArray(data) ? (data as Entry[]).filter((e) => typeof e?.job === "string") : [];
  } catch {
    return [];
  }
}

export class ChatPanel {
  readonly el: HTMLElement;
  // Not a live region: a screen reader would read out every piece of output as it comes.
  private log = h("div", { class: "answers", id: "answers", "aria-label": "Answers" });
  private answers: Answer[] = [];
  private entries = load();

  /** `chat`: the server's chat template, if it has one; `direct`: whether any template may be
   * run from a command line. `context` gives the refs ticked at the time of sending. */
  constructor(
    chat: Template | undefined,
    direct: Template[],
    private readonly context: () => string[],
    private readonly store: JobStore,
    private readonly mux: Mux,
  ) {
    this.el = h(
      "section",
      { class: "chat", id: "chat-panel", "aria-labelledby": "chat-title" },
      h("h2", { id: "chat-title" }, chat ? "Chat" : "Direct command"),
      chat ? this.chatForm(chat) : null,
      direct.length ? this.directForm(direct, chat !== undefined) : null,
      this.log,
    );
    for (const e of [...this.entries].reverse()) this.show(e);
  }

  destroy(): void {
    for (const a of this.answers) a.destroy();
  }

  private chatForm(chat: Template): HTMLElement {
    const message = h("textarea", {
      id: "chat-message",
      rows: 3,
      "aria-label": "Message",
      placeholder: "ask… (Ctrl+Enter sends)",
    });
    const send = h("button", { type: "submit", class: "primary", id: "chat-send" }, "Send");
    const error = h("p", { class: "error", role: "alert" });
    const form = h(
      "form",
      { class: "chat-form", id: "chat-form" },
      chat.description ? h("p", { class: "muted" }, chat.description) : null,
      message,
      h("div", { class: "chat-actions" }, send),
      error,
    );
    message.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!message.value.trim()) {
        error.textContent = "Write a message first.";
        message.focus();
        return;
      }
      void this.ask("chat", "/chat", { message: message.value }, send, error).then((ok) => {
        if (ok) message.value = "";
      });
    });
    return form;
  }

  /** `titled`: under the chat's heading, so it needs a visible one of its own. */
  private directForm(templates: Template[], titled: boolean): HTMLElement {
    const line = h("input", {
      id: "direct-command",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": "Direct command",
      "aria-describedby": "direct-help",
      placeholder: "TEMPLATE [--flag] [--key=value] [ARG…]",
    });
    const run = h("button", { type: "submit", id: "direct-run" }, "Run");
    const error = h("p", { class: "error", role: "alert" });
    const names = templates.map((t) => t.name).join(", ");
    const form = h(
      "form",
      { class: "direct-form", id: "direct-form" },
      titled ? h("label", { for: line.id }, "Direct command") : null,
      h("div", { class: "direct-row" }, line, run),
      h("small", { id: "direct-help", class: "muted" }, `A template by name, then its arguments: ${names}.`),
      error,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      if (!line.value.trim()) {
        error.textContent = "Give a template's name, then its arguments.";
        line.focus();
        return;
      }
      void this.ask("direct", "/direct", { command: line.value }, run, error).then((ok) => {
        if (ok) line.value = "";
      });
    });
    return form;
  }

  /** Send it; its answer joins the log. Whether the server took it. */
  private async ask(
    kind: Asked,
    path: string,
    body: Record<string, unknown>,
    button: HTMLButtonElement,
    error: HTMLElement,
  ): Promise<boolean> {
    error.textContent = "";
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    const context = this.context();
    try {
      const job = await api<Job>("POST", path, context.length ? { ...body, context } : body);
      this.store.put(job);
      const entry: Entry = { kind, asked: String(body["message"] ?? body["command"]), job: job.id };
      this.entries = [entry, ...this.entries].slice(0, KEEP);
      sessionStorage.setItem(KEY, JSON.stringify(this.entries));
      this.show(entry);
      return true;
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : String(e);
      return false;
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  /** Newest on top. */
  private show(entry: Entry): void {
    const answer = new Answer(entry.kind, entry.asked, entry.job, this.store, this.mux);
    this.answers.push(answer);
    this.log.prepend(answer.el);
    while (this.answers.length > KEEP) {
      const old = this.answers.shift();
      old?.destroy();
      old?.el.remove();
    }
  }
}
