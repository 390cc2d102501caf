// The moderator panel of the stream page (shown to the channel's owner, its moderators and admins):
// the held-message queue, live, with approve/deny, and the moderation log with actor and reason.
//
// The queue is loaded from the API (GET .../moderation/held) and kept live by the edge: with a
// moderator pass from the API (POST .../moderation/pass) the connection receives `held` (a message
// the rules held) and `resolved` (approved or denied) for this stream; viewers never get these. The
// log is reloaded from the API after each moderation frame, waiting for that frame's position
// (X-Min-Position) so it includes what the frame announced. All text is rendered with textContent.
import { accessToken, api, el } from "./session.js";

const LOG_SIZE = 50;
const MODERATION_STATES = new Set(["ban", "timeout", "unban", "settings", "clear"]);

export class ModeratorPanel {
  constructor(root, { streamId, edge, say = () => {} }) {
    this.root = root;
    this.streamId = streamId;
    this.edge = edge;
    this.say = say;
    this.queue = root.querySelector("#held-queue");
    this.log = root.querySelector("#mod-log");
    this.held = new Map(); // message id -> li
    this.resolved = new Set(); // ids resolved while the queue was loading: never shown again
    this.logTimer = null;
    this.latestPos = null;
  }

  /** Show the panel; join the held queue on every (re)connection of the edge client. */
  start() {
    this.root.hidden = false;
    this.edge.addEventListener("open", () => this.#join());
    if (this.edge.connected) this.#join();
    this.#loadLog();
  }

  apply(m) {
    if (m.stream !== this.streamId) return;
    if (m.type === "held") this.#add(m);
    else if (m.type === "resolved") this.#resolve(m.id);
    if (m.type === "held" || m.type === "resolved" || this.#isModeration(m)) this.#logSoon(m.pos);
  }

  async #join() {
    const granted = await api(`/api/v1/streams/${this.streamId}/moderation/pass`, { method: "POST", auth: true });
    if (!granted.ok) return this.say(granted.data?.detail || "Cannot open the moderator queue.");
    this.edge.send({ type: "moderate", stream: this.streamId, pass: granted.data.moderator_pass });
    await this.#loadQueue(); // after joining: nothing held meanwhile is missed (duplicates merge by id)
  }

  async #loadQueue() {
    const r = await this.#get(`/api/v1/streams/${this.streamId}/moderation/held?limit=100`);
    if (!r) return;
    for (const item of r.items) {
      this.#add({ id: item.message_id, user: item.user_id, name: item.display_name, text: item.text, reasons: item.reasons });
    }
  }

  #add(m) {
    if (this.held.has(m.id) || this.resolved.has(m.id)) return;
    const li = el("li");
    li.dataset.id = m.id;
    li.append(el("span", m.name || m.user, "name"), el("span", m.text, "text"));
    if (m.reasons?.length) li.append(el("span", `(${m.reasons.join(", ")})`, "muted reasons"));
    for (const [action, label] of [
      ["approve", "Approve"],
      ["deny", "Deny"],
    ]) {
      const button = el("button", label, `held-${action}`);
      button.type = "button";
      button.setAttribute("aria-label", `${label} the held message of ${m.name || m.user}`);
      button.addEventListener("click", () => this.#decide(action, m.id, li));
      li.append(button);
    }
    this.queue.append(li);
    this.held.set(m.id, li);
    this.#count();
  }

  async #decide(action, id, li) {
    for (const b of li.querySelectorAll("button")) b.disabled = true;
    const answer = await this.edge.request({ type: "mod", stream: this.streamId, action, message_id: id });
    if (answer.type === "error") {
      for (const b of li.querySelectorAll("button")) b.disabled = false;
      this.say(answer.message);
    } // the queue drops it when the edge sends its resolution
  }

  #resolve(id) {
    this.resolved.add(id);
    this.held.get(id)?.remove();
    this.held.delete(id);
    this.#count();
  }

  #count() {
    this.root.querySelector("#held-count").textContent = String(this.held.size);
  }

  #isModeration(m) {
    return m.type === "deleted" || (m.type === "chat" && m.restored) || (m.type === "state" && MODERATION_STATES.has(m.kind));
  }

  #logSoon(pos) {
    this.latestPos = pos || this.latestPos;
    clearTimeout(this.logTimer);
    this.logTimer = setTimeout(() => this.#loadLog(), 150);
  }

  async #loadLog() {
    const r = await this.#get(`/api/v1/streams/${this.streamId}/moderation/log?limit=${LOG_SIZE}`, this.latestPos);
    if (!r) return;
    this.log.replaceChildren(
      ...r.items.map((entry) => {
        const li = el("li");
        li.dataset.action = entry.action;
        const target = entry.target_user_id || entry.target_message_id || "";
        li.append(
          el("time", new Date(entry.at).toLocaleTimeString(), "muted"),
          el("span", entry.actor_id, "actor"),
          el("span", entry.action, "action"),
          el("span", target, "target"),
        );
        if (entry.reason) li.append(el("span", `“${entry.reason}”`, "reason"));
        return li;
      }),
    );
  }

  /** GET with the user's token, waiting (bounded, server side) for a chat.messages position. */
  async #get(path, pos = null) {
    const token = await accessToken();
    if (!token) return null;
    const headers = { Authorization: `Bearer ${token}` };
    if (pos) headers["X-Min-Position"] = `chat.messages:${pos}`;
    try {
      const response = await fetch(path, { headers });
      return response.ok ? await response.json() : null;
    } catch {
      return null;
    }
  }
}
