// The gateway's access token, as the page handles it (see SECURITY.md).
//
// spark-gateway prints a URL ending in `#token=…` (a fragment: browsers never send it to the
// server, so it is in no access log and no Referer); `?token=…` works too, Jupyter style. The
// page moves the token into sessionStorage (this tab only, gone when the tab closes), removes it
// from the address bar and history, and presents it on the websocket as a second subprotocol
// entry `token.<token>` — never in the websocket URL, which servers and proxies log.
//
// The token is bound to the websocket URL the page used when it received it, and is presented
// to that URL only: a later visit in the same tab to `…/?ws=<another server>` (a link or a
// redirect from another site) must not hand the token to that server.

const KEY = "spark-gateway.token";
const PREFIX = "token.";

let memory = null;  // when sessionStorage is unavailable: this page only

function load() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : memory;
  } catch {
    return memory;
  }
}

function save(entry) {
  memory = entry;
  try {
    if (entry) sessionStorage.setItem(KEY, JSON.stringify(entry));
    else sessionStorage.removeItem(KEY);
  } catch { /* storage disabled: kept in memory */ }
}

/**
 * Move a `token` from the page URL (fragment or query) into sessionStorage, bound to `wsUrl`
 * (the websocket this page talks to), and strip it from the address bar.
 */
export function takeTokenFromUrl(wsUrl) {
  const url = new URL(location.href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const token = hash.get("token") ?? url.searchParams.get("token");
  if (token === null) return;
  hash.delete("token");
  url.searchParams.delete("token");
  const rest = hash.toString();
  url.hash = rest ? `#${rest}` : "";
  history.replaceState(history.state, "", url.href);
  save(token ? { token, ws: wsUrl } : null);
}

/** The token to present to `wsUrl`, or null (none, or it was given for another gateway). */
export function tokenFor(wsUrl) {
  const entry = load();
  return entry && entry.ws === wsUrl && typeof entry.token === "string" ? entry.token : null;
}

/** The subprotocols to offer `wsUrl`: the protocol version, then the token entry when there is one. */
export function subprotocols(version, wsUrl) {
  const token = tokenFor(wsUrl);
  return token ? [version, PREFIX + token] : [version];
}
