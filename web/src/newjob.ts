// The new-job page: the form for a raw command (when the policy and the token allow it) or a
// template, its parameters as fields checked as the server will (then the job's page); beside
// it the paste panel, and below the chat and direct commands, where the server has templates
// for them and the token may run them.
import { api, ApiError } from "./api";
import { ChatPanel } from "./chat";
import { clear, h } from "./dom";
import type { Mux } from "./mux";
import { PastePanel } from "./pastes";
import type { JobStore } from "./store";
import type { Job, ParamSchema, Template, WhoAmI } from "./types";
import { problem } from "./validate";

/** How soon GET /templates is asked again when it failed while the socket stayed up. */
const RETRY_MS = 2000;

interface Field {
  name: string;
  schema: ParamSchema;
  required: boolean;
  input: HTMLInputElement | HTMLSelectElement;
  error: HTMLElement;
}

export class NewJobView {
  readonly el: HTMLElement;
  private form: HTMLFormElement;
  private kind: HTMLSelectElement;
  private command = h("input", { id: "command", name: "command", autocomplete: "off", spellcheck: "false" });
  private params = h("fieldset", { class: "params", hidden: true });
  private name = h("input", { id: "job-name", name: "name", autocomplete: "off" });
  private pty = h("input", { id: "job-pty", name: "pty", type: "checkbox" });
  private cwd = h("input", { id: "job-cwd", name: "cwd", autocomplete: "off" });
  private timeout = h("input", { id: "job-timeout", name: "timeout", type: "number", min: "0", step: "any" });
  private message = h("p", { class: "error", role: "alert" });
  private fields: Field[] = [];
  private templates: Template[] = [];
  private pastes: PastePanel | null = null;
  private chat: ChatPanel | null = null;
  private layout = h("div", { class: "newjob-page" });
  private offs: (() => void)[] = [];
  private retry = 0;
  private destroyed = false;

  constructor(
    private readonly me: WhoAmI,
    private readonly store: JobStore,
    private readonly mux: Mux,
  ) {
    this.kind = h("select", { id: "job-kind", "aria-label": "What to run" });
    this.form = h("form", { class: "newjob", novalidate: true });
    this.layout.append(this.form);
    this.el = h("section", { "aria-label": "New job" }, h("h1", {}, "New job"), this.layout);
    void this.load();
  }

  destroy(): void {
    this.destroyed = true;
    for (const off of this.offs) off();
    window.clearTimeout(this.retry);
    this.chat?.destroy();
  }

  /** Load again once the page's connection is back (or in a moment, if it never went). */
  private retryLater(): void {
    const again = () => {
      off();
      window.clearTimeout(this.retry);
      if (!this.destroyed) void this.load();
    };
    const off = this.mux.onConnect(again);
    this.offs.push(off);
    if (this.mux.connected) this.retry = window.setTimeout(again, RETRY_MS);
  }

  /** Pastes, chat and direct commands: each needs `run` (POST /pastes, /chat, /direct do),
   * chat the server's `chat` template, direct commands any template. */
  private panels(): void {
    if (!this.me.scopes.includes("run")) return;
    const pastes = new PastePanel();
    this.pastes = pastes;
    this.layout.append(pastes.el);
    const chat = this.templates.find((t) => t.name === "chat");
    if (!chat && !this.templates.length) return;
    this.chat = new ChatPanel(chat, this.templates, () => pastes.selected(), this.store, this.mux);
    this.el.append(this.chat.el);
  }

  private async load(): Promise<void> {
    try {
      this.templates = (await api<{ templates: Template[] }>("GET", "/templates")).templates;
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
      if (e instanceof ApiError && e.status === 0) {
        // Out of reach (offline, the server restarting): what to offer is not known yet.
        this.message.textContent += "; trying again once the server answers";
        this.form.append(this.message);
        this.retryLater();
        return;
      }
    }
    if (this.destroyed) return;
    this.message.textContent = "";
    if (this.me.raw_commands) this.kind.append(h("option", { value: "" }, "A command"));
    for (const t of this.templates) {
      this.kind.append(h("option", { value: t.name }, `Template: ${t.name}`));
    }
    if (!this.kind.options.length) {
      this.form.append(
        h("p", {}, "There is nothing this token may start: the policy allows no raw commands (or the token lacks `exec`) and has no templates."),
        this.message,
      );
      return;
    }
    this.panels();
    this.kind.addEventListener("change", () => this.chosen());
    const submit = h("button", { type: "submit", class: "primary", id: "start" }, "Start");
    this.form.append(
      row("What", this.kind),
      h("div", { class: "command-row" }, row("Command", this.command)),
      this.params,
      row("Name", this.name),
      row("Working directory", this.cwd),
      row("Timeout (seconds)", this.timeout),
      h("label", { class: "check" }, this.pty, " Run in a terminal (PTY)"),
      submit,
      this.message,
    );
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit(submit);
    });
    this.chosen();
  }

  private template(): Template | undefined {
    return this.templates.find((t) => t.name === this.kind.value);
  }

  private chosen(): void {
    const t = this.template();
    (this.command.closest(".command-row") as HTMLElement).hidden = t !== undefined;
    this.command.required = t === undefined;
    clear(this.params);
    this.fields = [];
    this.params.hidden = t === undefined;
    if (!t) return;
    this.pty.checked = t.pty;
    this.params.append(h("legend", {}, t.description ?? `Parameters of ${t.name}`));
    for (const [name, schema] of Object.entries(t.schema.properties)) {
      const field = this.field(name, schema, t.schema.required.includes(name));
      this.fields.push(field);
    }
  }

  private field(name: string, schema: ParamSchema, required: boolean): Field {
    const id = `param-${name}`;
    let input: HTMLInputElement | HTMLSelectElement;
    if (schema.enum) {
      input = h("select", { id, name }, ...schema.enum.map((v) => h("option", { value: v }, v)));
      if (schema.default !== undefined) input.value = String(schema.default);
    } else if (schema.type === "boolean") {
      input = h("input", { id, name, type: "checkbox" });
      input.checked = schema.default === true;
    } else {
      input = h("input", {
        id,
        name,
        type: schema.type === "integer" ? "number" : "text",
        autocomplete: "off",
        spellcheck: "false",
        min: schema.minimum,
        max: schema.maximum,
        placeholder: schema.default !== undefined ? String(schema.default) : undefined,
      });
    }
    const error = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
    input.setAttribute("aria-describedby", error.id);
    const field: Field = { name, schema, required: required && schema.default === undefined, input, error };
    input.addEventListener("input", () => this.check(field));
    input.addEventListener("blur", () => this.check(field));
    const hint = schema.description ? h("small", {}, schema.description) : null;
    this.params.append(row(name, input, hint, error));
    return field;
  }

  private value(field: Field): string | boolean {
    const input = field.input;
    return input instanceof HTMLInputElement && input.type === "checkbox" ? input.checked : input.value;
  }

  /** The field's problem shown beside it; true when it has none. */
  private check(field: Field): boolean {
    const why = problem(field.schema, this.value(field), field.required);
    field.error.textContent = why ? `${field.name} ${why}` : "";
    field.input.setAttribute("aria-invalid", why ? "true" : "false");
    return why === null;
  }

  private async submit(button: HTMLButtonElement): Promise<void> {
    this.message.textContent = "";
    const t = this.template();
    const body: Record<string, unknown> = { pty: this.pty.checked };
    if (t) {
      const bad = this.fields.filter((f) => !this.check(f));
      if (bad.length) {
        bad[0]?.input.focus();
        return;
      }
      const args: Record<string, unknown> = {};
      for (const f of this.fields) {
        const v = this.value(f);
        if (v === "") continue; // the template's default
        args[f.name] = f.schema.type === "integer" ? Number(v) : v;
      }
      body["template"] = t.name;
      body["args"] = args;
    } else {
      if (!this.command.value.trim()) {
        this.message.textContent = "Give a command to run.";
        this.command.focus();
        return;
      }
      body["command"] = this.command.value;
    }
    if (this.name.value.trim()) body["name"] = this.name.value.trim();
    if (this.cwd.value.trim()) body["cwd"] = this.cwd.value.trim();
    if (this.timeout.value) body["timeout"] = Number(this.timeout.value);
    const context = this.pastes?.selected() ?? [];
    if (context.length) body["context"] = context;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const job = await api<Job>("POST", "/jobs", body);
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}

function row(label: string, input: HTMLElement, ...more: (HTMLElement | null)[]): HTMLElement {
  const id = input.id;
  return h("div", { class: "row" }, h("label", { for: id }, label), input, ...more);
}
