// The new-job page's paste panel: text stored on the server (POST /pastes) under its sha256,
// and this tab's pastes listed, each ticked or not as context for the next job, chat or
// direct command. The list lives in sessionStorage, as the token does: this tab only.
import { api, ApiError } from "./api";
import { clear, h } from "./dom";

const KEY = "jobcast.pastes";
/** How much of a paste the list shows of it (its first line, cut) */
const PREVIEW = 80;

interface Stored {
  ref: string;
  size: number;
  preview: string;
  use: boolean;
}

function load(): Stored[] {
  try {
    const data = JSON.parse(sessionStorage.getItem(KEY) ?? "[]") as unknown;
    return Array.isArray(data) ? (data as Stored[]).filter((p) => typeof p?.ref === "string") : [];
  } catch {
    return []; // a damaged entry: start afresh rather than break the page
  }
}

function preview(text: string): string {
  const first = text.trimStart().split("\n", 1)[0] ?? "";
  return first.length > PREVIEW ? `${first.slice(0, PREVIEW)}…` : first;
}

export class PastePanel {
  readonly el: HTMLElement;
  private text = h("textarea", {
    id: "paste-text",
    rows: 4,
    spellcheck: "false",
    "aria-label": "Text to paste",
    placeholder: "context for a job: a diff, a log, notes…",
  });
  private list = h("ul", { class: "pastes", id: "pastes", "aria-label": "This tab's pastes" });
  private message = h("p", { class: "error", role: "alert" });
  private pastes = load();

  constructor() {
    const store = h("button", { type: "submit", id: "paste-store" }, "Store paste");
    const form = h("form", { class: "paste-form" }, this.text, store);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.store(store);
    });
    this.el = h(
      "section",
      { class: "side-panel", id: "paste-panel", "aria-labelledby": "paste-title" },
      h("h2", { id: "paste-title" }, "Paste"),
      h(
        "p",
        { class: "muted" },
        "Stored on the server by its content; a ticked paste goes with the next job, chat or command " +
          "as a file named in its JOBCAST_CONTEXT.",
      ),
      form,
      this.message,
      this.list,
    );
    this.render();
  }

  /** The refs ticked as context, oldest first (the order the job gets them in). */
  selected(): string[] {
    return this.pastes.filter((p) => p.use).map((p) => p.ref).reverse();
  }

  private async store(button: HTMLButtonElement): Promise<void> {
    const text = this.text.value;
    this.message.textContent = "";
    if (!text) {
      this.message.textContent = "Nothing to store: paste some text first.";
      this.text.focus();
      return;
    }
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      const { ref, size } = await api<{ ref: string; size: number }>("POST", "/pastes", { text });
      // The same content is the same paste: it moves to the top, ticked.
      this.pastes = [{ ref, size, preview: preview(text), use: true }, ...this.pastes.filter((p) => p.ref !== ref)];
      this.save();
      this.text.value = "";
      this.render();
    } catch (e) {
      this.message.textContent = e instanceof ApiError ? e.message : String(e);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  private save(): void {
    sessionStorage.setItem(KEY, JSON.stringify(this.pastes));
  }

  private render(): void {
    clear(this.list);
    if (!this.pastes.length) {
      this.list.append(h("li", { class: "muted" }, "No pastes in this tab yet."));
      return;
    }
    this.pastes.forEach((p, i) => {
      const box = h("input", { type: "checkbox", id: `paste-use-${i}`, "data-ref": p.ref });
      box.checked = p.use;
      box.addEventListener("change", () => {
        p.use = box.checked;
        this.save();
      });
      const digest = p.ref.replace("ctx://paste/", "");
      this.list.append(
        h(
          "li",
          { "data-ref": p.ref },
          box,
          h(
            "label",
            { for: box.id },
            h("code", { title: p.ref }, `${digest.slice(0, 12)}…`),
            ` ${p.size} B `,
            h("span", { class: "muted" }, p.preview),
          ),
        ),
      );
    });
  }
}
