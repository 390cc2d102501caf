// The chat view: messages from the edge rendered with textContent only (chat text is data, never
// HTML), deletions/bans/clears applied (and undone live by undelete/unban), and moderator tools.
import { el } from "./session.js";

const MAX_SHOWN = 300;

export class ChatView {
  constructor(list, { canModerate = () => false, onModerate = () => {} } = {}) {
    this.list = list;
    this.canModerate = canModerate;
    this.onModerate = onModerate; // (action, message) for "delete", "timeout", "ban"
    this.items = new Map(); // message id -> {li, at, user, message}
    // A ban or time-out takes its author's messages off the page but keeps them here, so the unban
    // puts them back live, where they were (the edge's `unban` carries no messages).
    this.suspended = new Map(); // user -> Map(message id -> message)
  }

  apply(m) {
    if (m.type === "chat") this.add(m);
    else if (m.type === "deleted") this.#forget(m.id);
    else if (m.type === "state" && (m.kind === "ban" || m.kind === "timeout")) this.#suspend(m.user);
    else if (m.type === "state" && m.kind === "unban") this.#unsuspend(m.user);
    else if (m.type === "state" && m.kind === "clear") this.#clearBefore(m.before);
    else if (m.type === "notice" && m.code === "reload") this.clear();
  }

  add(m) {
    this.remove(m.id); // a restored message replaces any copy
    const kept = this.suspended.get(m.user);
    if (kept) {
      kept.set(m.id, m); // its author is banned: shown again on the unban
      return;
    }
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
    this.items.set(m.id, { li, at: m.at, user: m.user, message: m });
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
    this.suspended.clear();
    this.list.replaceChildren();
  }

  #forget(id) {
    this.remove(id);
    for (const kept of this.suspended.values()) kept.delete(id);
  }

  #suspend(user) {
    const kept = this.suspended.get(user) || new Map();
    this.suspended.set(user, kept);
    for (const [id, item] of [...this.items]) {
      if (item.user !== user) continue;
      kept.set(id, item.message);
      this.remove(id);
    }
  }

  #unsuspend(user) {
    const kept = this.suspended.get(user);
    this.suspended.delete(user);
    for (const m of [...(kept?.values() || [])].sort((a, b) => a.at - b.at)) this.add(m);
    while (this.items.size > MAX_SHOWN) this.remove(this.items.keys().next().value);
  }

  #clearBefore(before) {
    this.removeWhere((x) => x.at < before);
    for (const kept of this.suspended.values()) {
      for (const [id, m] of [...kept]) if (m.at < before) kept.delete(id);
    }
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
