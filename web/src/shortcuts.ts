// Keyboard shortcuts, listed in a dialog on `?`. Keys typed into a field, the terminal (its
// textarea) or with a modifier are left alone; a two-key chord (`g l`) waits one second.
import { h } from "./dom";

interface Shortcut {
  /** What triggers it: keys (KeyboardEvent.key), a chord's separated by a space */
  keys: string[];
  what: string;
  run?(): void;
}

const CHORD_MS = 1000;

function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

function click(selector: string): void {
  document.querySelector<HTMLElement>(selector)?.click();
}

function go(hash: string): void {
  location.hash = hash;
}

/** `<kbd>g</kbd> then <kbd>l</kbd>`, and `or` between two triggers. */
function keyNames(keys: string[]): (Node | string)[] {
  return keys.flatMap((chord, i) => [
    i ? " or " : "",
    ...chord.split(" ").flatMap((k, j) => [j ? " then " : "", h("kbd", {}, k)]),
  ]);
}

/** Listens on the document; the returned function opens the list. */
export function installShortcuts(canStart: boolean): () => void {
  const shortcuts: Shortcut[] = [
    { keys: ["?"], what: "Show these shortcuts", run: () => open() },
    {
      keys: ["/"],
      what: "Search: the list, or the output of a job",
      run: () => document.querySelector<HTMLInputElement>("#filter-search, #term-search")?.focus(),
    },
    ...(canStart ? [{ keys: ["n"], what: "New job", run: () => go("#/new") }] : []),
    { keys: ["g l"], what: "Go to the list of jobs", run: () => go("#/") },
    { keys: ["g d"], what: "Go to the API docs", run: () => location.assign("/docs") },
    { keys: ["t"], what: "Focus the terminal (to type into an interactive job)", run: terminal },
    { keys: ["c"], what: "Cancel the job (asks first)", run: () => click("#cancel") },
    { keys: ["["], what: "Previous panel of a job", run: () => panel(-1) },
    { keys: ["]"], what: "Next panel of a job", run: () => panel(1) },
    { keys: ["Escape"], what: "Close this list; leave a field" },
  ];
  const byKeys = new Map(shortcuts.flatMap((s) => s.keys.map((k) => [k, s] as const)));

  const dialog = h(
    "dialog",
    { id: "shortcuts", "aria-labelledby": "shortcuts-title" },
    h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
    h(
      "dl",
      { class: "counts" },
      ...shortcuts.flatMap((s) => [h("dt", {}, ...keyNames(s.keys)), h("dd", {}, s.what)]),
    ),
    h("form", { method: "dialog" }, h("button", { type: "submit", id: "shortcuts-close" }, "Close")),
  );
  document.body.append(dialog);
  function open(): void {
    if (!dialog.open) dialog.showModal();
  }

  let pending = "";
  let timer = 0;
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) return;
    if (e.key === "Escape" && typing(e.target) && !dialog.open) {
      (e.target as HTMLElement).blur();
      return;
    }
    if (typing(e.target) || dialog.open) return; // the dialog closes itself on Esc
    const keys = pending ? `${pending} ${e.key}` : e.key;
    window.clearTimeout(timer);
    pending = "";
    const shortcut = byKeys.get(keys);
    if (shortcut?.run) {
      e.preventDefault();
      shortcut.run();
    } else if ([...byKeys.keys()].some((k) => k.startsWith(`${keys} `))) {
      pending = keys;
      timer = window.setTimeout(() => (pending = ""), CHORD_MS);
    }
  });
  return open;
}

function terminal(): void {
  document.querySelector<HTMLTextAreaElement>(".terminal textarea")?.focus();
}

function panel(step: number): void {
  const tabs = [...document.querySelectorAll<HTMLButtonElement>('.tabs [role="tab"]')];
  if (!tabs.length) return;
  const at = tabs.findIndex((t) => t.getAttribute("aria-selected") === "true");
  const next = tabs[(at + step + tabs.length) % tabs.length];
  next?.click();
}
