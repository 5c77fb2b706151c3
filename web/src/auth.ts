// The tab's token: taken from the URL `jobcast serve` prints (`/?token=…`) into
// sessionStorage, and out of the address bar (and so of the history, bookmarks, Referers).
const KEY = "jobcast.token";

export function adoptTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return;
  if (token) sessionStorage.setItem(KEY, token);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(value: string): void {
  sessionStorage.setItem(KEY, value.trim());
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
