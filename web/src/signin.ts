// Shown when the tab has no valid token: where to find one, and a field to paste it.
import { h } from "./dom";

export function signInPanel(reason: string, onToken: (token: string) => void): HTMLElement {
  const input = h("input", {
    id: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "signin-help",
  });
  const form = h(
    "form",
    { class: "signin-form" },
    h("label", { for: "token" }, "Token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) onToken(input.value.trim());
  });
  return h(
    "section",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to jobcast"),
    h("p", { class: "error", role: "alert" }, reason),
    h(
      "div",
      { id: "signin-help" },
      h(
        "p",
        {},
        "Open the address that ",
        h("code", {}, "jobcast serve"),
        " printed when it started (it ends in ",
        h("code", {}, "/?token=…"),
        "): it signs this tab in.",
      ),
      h(
        "p",
        {},
        "Or paste a token: the server's admin token is in the file ",
        h("code", {}, "token"),
        " of its data directory (",
        h("code", {}, "cat .jobcast/token"),
        "); other tokens come from the ",
        h("code", {}, "[[tokens]]"),
        " of its config. The token stays in this tab only.",
      ),
    ),
    form,
  );
}
