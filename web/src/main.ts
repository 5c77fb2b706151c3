// The page: who the token is, the one /ws connection, and a view per hash route
// (#/ the list, #/new the form, #/jobs/ID a job).
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import { api, ApiError } from "./api";
import { adoptTokenFromUrl, forgetToken, setToken, token } from "./auth";
import { clear, h } from "./dom";
import { JobView } from "./jobview";
import { ListView } from "./listview";
import { Mux, type ConnectionState } from "./mux";
import { NewJobView } from "./newjob";
import { installShortcuts } from "./shortcuts";
import { signInPanel } from "./signin";
import { JobStore } from "./store";
import { isFinal, type WhoAmI } from "./types";

interface View {
  el: HTMLElement;
  destroy(): void;
}

const root = document.getElementById("app") as HTMLElement;

async function boot(): Promise<void> {
  adoptTokenFromUrl();
  let me: WhoAmI;
  try {
    me = await api<WhoAmI>("GET", "/whoami");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      const had = token() !== null;
      forgetToken();
      showSignIn(had ? "That token is not valid here." : "This server asks for a token.");
      return;
    }
    root.replaceChildren(h("p", { class: "error", role: "alert" }, e instanceof Error ? e.message : String(e)));
    return;
  }
  start(me);
}

function showSignIn(reason: string): void {
  root.replaceChildren(
    signInPanel(reason, (t) => {
      setToken(t);
      void boot();
    }),
  );
}

function start(me: WhoAmI): void {
  const store = new JobStore();
  const indicator = h("span", { class: "conn", role: "status", "aria-live": "polite" });
  const setState = (state: ConnectionState, why?: string) => {
    indicator.dataset["state"] = state;
    indicator.textContent = state;
    // The words say the state, the colour only repeats it; the name says why, when known.
    indicator.setAttribute("aria-label", `Connection: ${state}${why ? ` (${why})` : ""}`);
    indicator.title = why ?? "";
  };
  const mux = new Mux({
    jobs: (jobs, greeting) => {
      store.putAll(jobs);
      if (greeting) {
        // Every job now and to come, on each new connection. The unfinished ones go on from
        // what the list has of them (a finished one in `after` would be followed as well, for
        // nothing), except one a view follows: given no `after`, the view's cursor goes on.
        const after: Record<string, number> = {};
        for (const job of store.jobs.values()) {
          if (!isFinal(job.status) && !mux.followed(job.id)) after[job.id] = job.last_seq;
        }
        mux.subscribe(["*"], after);
      }
    },
    event: (ev) => store.apply(ev),
    state: setState,
  });
  const canStart = me.scopes.includes("run") || me.scopes.includes("exec");
  const main = h("main", { id: "main" });
  root.replaceChildren(
    h(
      "header",
      {},
      h("a", { class: "brand", href: "#/" }, "jobcast"),
      h(
        "nav",
        { "aria-label": "Views" },
        h("a", { href: "#/" }, "Jobs"),
        canStart ? h("a", { href: "#/new", id: "nav-new" }, "New job") : null,
        // the same tab: its sessionStorage, and so its token, goes with it
        h("a", { href: "/docs", id: "nav-docs" }, "API"),
      ),
      h("span", { class: "spacer" }),
      indicator,
      h("span", { class: "who", title: me.scopes.join(", ") }, me.name),
      h("button", { type: "button", id: "help", "aria-label": "Keyboard shortcuts", title: "Keyboard shortcuts (?)" }, "?"),
    ),
    main,
  );
  let view: View | null = null;
  const route = () => {
    view?.destroy();
    clear(main);
    const hash = location.hash.replace(/^#/, "") || "/";
    const job = /^\/jobs\/([^/]+)$/.exec(hash);
    if (job?.[1]) view = new JobView(decodeURIComponent(job[1]), store, mux, me);
    else if (hash === "/new" && canStart) view = new NewJobView(me);
    else view = new ListView(store);
    main.append(view.el);
  };
  window.addEventListener("hashchange", route);
  const help = installShortcuts(canStart);
  document.getElementById("help")?.addEventListener("click", help);
  mux.connect();
  route();
}

void boot();
