// The signed-in user's tokens (localStorage) and a fetch wrapper for the REST API.
// Tokens are bearer tokens, never cookies, so pages need no CSRF defence; a 401 refreshes once.

const KEY = "esports.session";

export function session() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

export function saveSession(tokens, user) {
  const current = session() || {};
  localStorage.setItem(KEY, JSON.stringify({ ...current, ...tokens, ...(user ? { user } : {}) }));
}

export function clearSession() {
  localStorage.removeItem(KEY);
}

async function refresh() {
  const s = session();
  if (!s?.refresh_token) return false;
  const r = await fetch("/api/v1/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: s.refresh_token }),
  });
  if (!r.ok) {
    clearSession();
    return false;
  }
  saveSession(await r.json());
  return true;
}

/** Call the API; resolves to {ok, status, data} (data: the JSON body or null), never throws on HTTP errors. */
export async function api(path, { method = "GET", body, auth = false, retry = true, headers: extra = {} } = {}) {
  const headers = { ...extra };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // Commands are safe to retry under a key; sign-in answers carry tokens, which no store should keep.
  if (method === "POST" && !path.startsWith("/api/v1/auth/")) headers["Idempotency-Key"] = crypto.randomUUID();
  const s = session();
  if (auth && s?.access_token) headers.Authorization = `Bearer ${s.access_token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return { ok: false, status: 0, data: null };
  }
  if (response.status === 401 && auth && retry && (await refresh())) {
    return api(path, { method, body, auth, retry: false, headers: extra });
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  return { ok: response.ok, status: response.status, data };
}

/** A fresh access token for the edge (refreshed when it expires within a minute), or null. */
export async function accessToken() {
  const s = session();
  if (!s?.access_token) return null;
  try {
    const claims = JSON.parse(atob(s.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    if (claims.exp * 1000 - Date.now() < 60_000 && !(await refresh())) return null;
  } catch {
    return s.access_token;
  }
  return session()?.access_token ?? null;
}

/** The signed-in user ({user_id, username, display_name, role}) or null. */
export async function currentUser() {
  if (!session()?.access_token) return null;
  const me = await api("/api/v1/me", { auth: true });
  if (!me.ok) return null;
  saveSession({}, me.data);
  return me.data;
}

/** An element with text (never HTML). */
export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}
