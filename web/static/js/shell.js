// What every page does: the header's sign-in state and unread notification count.
import { api, clearSession, session } from "./session.js";

export async function initShell() {
  const signedIn = Boolean(session()?.access_token);
  const login = document.getElementById("nav-login");
  const logout = document.getElementById("nav-logout");
  if (login) login.hidden = signedIn;
  if (logout) {
    logout.hidden = !signedIn;
    logout.addEventListener("click", async () => {
      const s = session();
      if (s?.refresh_token) await api("/api/v1/auth/logout", { method: "POST", body: { refresh_token: s.refresh_token } });
      clearSession();
      location.assign("/");
    });
  }
  if (signedIn) {
    const prefs = await api("/api/v1/me/preferences", { auth: true });
    if (prefs.ok && window.esportsSpoilers) window.esportsSpoilers.adopt(Boolean(prefs.data?.spoiler_free));
    const after = sessionStorage.getItem("esports.inbox.after"); // the inbox page's last mark (notifications.js)
    const inbox = await api("/api/v1/me/notifications?unread=true&limit=1", { auth: true, headers: after ? { "X-Min-Position": after } : {} });
    const badge = document.getElementById("unread");
    if (inbox.ok && badge && inbox.data?.unread_count) {
      badge.textContent = String(inbox.data.unread_count);
      badge.hidden = false;
    }
  }
}

initShell();
