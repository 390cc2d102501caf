// The notification inbox (GET /api/v1/me/notifications); says so when the service is not there.
import "./shell.js";
import { api, el, session } from "./session.js";

const $ = (id) => document.getElementById(id);
let cursor = null;
// Read your writes, also across a reload: the log positions of this tab's last "mark as read" go with
// every list request (X-Min-Position), so the API answers once the inbox has applied them.
const AFTER = "esports.inbox.after";

async function markRead(body) {
  const r = await api("/api/v1/me/notifications/read", { method: "POST", auth: true, body });
  if (r.ok && r.data?.positions?.length) sessionStorage.setItem(AFTER, r.data.positions.join(","));
  return r;
}

async function load(reset) {
  if (!session()?.access_token) {
    location.assign("/login?next=/notifications");
    return;
  }
  if (reset) {
    cursor = null;
    $("inbox").replaceChildren();
  }
  const params = new URLSearchParams();
  if ($("unread-only").checked) params.set("unread", "true");
  if (cursor) params.set("cursor", cursor);
  const after = sessionStorage.getItem(AFTER);
  const r = await api(`/api/v1/me/notifications?${params}`, { auth: true, headers: after ? { "X-Min-Position": after } : {} });
  if (r.status === 404 || r.status === 405) {
    $("inbox-status").textContent = "Notifications are not available on this server yet.";
    return;
  }
  if (!r.ok) {
    $("inbox-status").textContent = "Could not load your notifications; try again later.";
    return;
  }
  $("inbox-status").textContent = r.data.items.length || cursor ? `${r.data.unread_count} unread` : "Nothing here yet.";
  for (const n of r.data.items) {
    const li = el("li");
    li.className = n.read ? "" : "unread";
    const title = el(n.url ? "a" : "span", n.title, "title");
    li.append(title, el("p", n.body), el("time", new Date(n.created_at).toLocaleString()));
    if (n.url && n.url.startsWith("/")) title.href = n.url; // same-site links only
    if (!n.read) {
      const mark = el("button", "Mark as read");
      mark.type = "button";
      mark.addEventListener("click", async () => {
        const r = await markRead({ ids: [n.notification_id] });
        if (r.ok) {
          li.className = "";
          mark.remove();
        }
      });
      title.addEventListener("click", () => markRead({ ids: [n.notification_id] }));
      li.append(mark);
    }
    $("inbox").append(li);
  }
  cursor = r.data.next_cursor;
  $("more").hidden = !cursor;
}

$("unread-only").addEventListener("change", () => load(true));
$("more").addEventListener("click", () => load(false));
$("mark-all").addEventListener("click", async () => {
  await markRead({ all: true });
  load(true);
});
load(true);
