// The chat view: messages from the edge rendered with textContent only (chat text is data, never
// HTML), deletions/bans/clears applied, and moderator tools.
import { el } from "./session.js";

const MAX_SHOWN = 300;

export class ChatView {
  constructor(list, { canModerate = () => false, onModerate = () => {} } = {}) {
    this.list = list;
    this.canModerate = canModerate;
    this.onModerate = onModerate; // (action, message) for "delete", "timeout", "ban"
    this.items = new Map(); // message id -> {li, at, user}
  }

  apply(m) {
    if (m.type === "chat") this.add(m);
    else if (m.type === "deleted") this.remove(m.id);
    else if (m.type === "state" && (m.kind === "ban" || m.kind === "timeout")) this.removeWhere((x) => x.user === m.user);
    else if (m.type === "state" && m.kind === "clear") this.removeWhere((x) => x.at < m.before);
    else if (m.type === "notice" && m.code === "reload") this.clear();
  }

  add(m) {
    this.remove(m.id); // a restored message replaces any copy
    const li = el("li");
    li.dataset.id = m.id;
    for (const badge of m.badges || []) li.append(el("span", badge, `badge-${badge}`));
    li.append(el("span", m.name || m.user, "name"), el("span", m.text, "text"));
    if (this.canModerate()) {
      const who = m.name || m.user;
      for (const [action, text, label] of [
        ["delete", "Delete", `Delete the message of ${who}`],
        ["timeout", "10m", `Time out ${who} for 10 minutes`],
        ["ban", "Ban", `Ban ${who} from this chat`],
      ]) {
        const button = el("button", text, `mod-${action}`);
        button.type = "button";
        button.setAttribute("aria-label", label);
        button.addEventListener("click", () => this.onModerate(action, m));
        li.append(button);
      }
    }
    const after = [...this.items.values()].find((x) => x.at > m.at);
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.insertBefore(li, after ? after.li : null);
    this.items.set(m.id, { li, at: m.at, user: m.user });
    while (this.items.size > MAX_SHOWN) this.remove(this.items.keys().next().value);
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    item.li.remove();
    this.items.delete(id);
  }

  removeWhere(predicate) {
    for (const [id, item] of [...this.items]) if (predicate(item)) this.remove(id);
  }

  clear() {
    this.items.clear();
    this.list.replaceChildren();
  }
}

/** The line "Chat paused, reconnecting to the server…" put before `anchor`, shown while the edge
 * node cannot reach the server's event log (notice paused → resumed); returns its show/hide switch. */
export function pausedNotice(anchor) {
  const line = el("p", "Chat paused, reconnecting to the server…", "chat-paused");
  line.setAttribute("role", "status");
  line.hidden = true;
  anchor.before(line);
  return (paused) => {
    line.hidden = !paused;
  };
}
