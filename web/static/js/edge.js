// The edge websocket client (edge_ws/PROTOCOL.md): reconnects with exponential backoff and jitter,
// resumes each stream with `since` (the last chat-log position), sends heartbeats every 15 s,
// authenticates with the user's token, matches acks/errors to requests by nonce, and tells its page
// when the node's sending is paused (Kafka unreachable) and resumed ("sending" events).

const HEARTBEAT_MS = 15_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const CHAT_LOG_STATES = new Set(["ban", "timeout", "unban", "settings", "clear", "subscribed"]);

export function isChatLog(m) {
  return m.type === "chat" || m.type === "deleted" || (m.type === "state" && CHAT_LOG_STATES.has(m.kind));
}

export function backoffMs(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2)); // "equal jitter": never 0, never in lockstep
}

/** Where the viewer came from, as the edge's `subscribe` takes it (no path, nothing personal): the
 * referring page's host name, "site" for a page of this platform, "direct" for none. */
export function referrerOf(documentReferrer, origin) {
  if (!documentReferrer) return "direct";
  try {
    const from = new URL(documentReferrer);
    if (from.origin === origin) return "site";
    return /^[a-z0-9.-]+$/.test(from.hostname) ? from.hostname.replace(/^www\./, "") : "direct";
  } catch {
    return "direct";
  }
}

export class EdgeClient extends EventTarget {
  constructor(urls, { token = async () => null, referrer = null, spoilersHidden = false } = {}) {
    super();
    this.urls = urls;
    this.token = token;
    this.referrer = referrer; // sent with each subscribe: the edge files it with the session's heartbeats
    this.spoilersHidden = spoilersHidden; // the page hides its match's result: no `prediction_result` frames
    this.streams = new Map(); // stream id -> last chat-log pos (or null)
    this.pending = new Map(); // nonce -> {resolve}
    this.attempt = 0;
    this.urlIndex = 0;
    this.ws = null;
    this.user = null;
    this.paused = false; // the node cannot reach the event log: writes are refused until it resumes
    this.closed = false;
    this.heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
  }

  connect() {
    if (this.closed) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.addEventListener("open", () => this.#opened(ws));
    ws.addEventListener("message", (e) => this.#received(e.data));
    ws.addEventListener("close", () => this.#lost(ws));
  }

  get connected() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  subscribe(stream) {
    if (!this.streams.has(stream)) this.streams.set(stream, null);
    if (this.send(this.#subscription(stream, null))) this.send({ type: "heartbeat", stream });
  }

  send(message) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Send with a nonce; resolves with the `ack` or `error` that names it (or {type:"error"} if offline). */
  request(message) {
    const nonce = crypto.randomUUID().slice(0, 32);
    return new Promise((resolve) => {
      if (!this.send({ ...message, nonce })) {
        resolve({ type: "error", code: "offline", message: "not connected; try again in a moment" });
        return;
      }
      const timer = setTimeout(() => {
        if (this.pending.delete(nonce)) resolve({ type: "error", code: "timeout", message: "no answer" });
      }, 15_000);
      this.pending.set(nonce, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
    });
  }

  async authenticate() {
    const token = await this.token();
    if (token && this.connected) this.send({ type: "auth", token });
  }

  close() {
    this.closed = true;
    clearInterval(this.heartbeat);
    this.ws?.close(1000);
  }

  async #opened(ws) {
    if (ws !== this.ws) return;
    this.attempt = 0;
    this.#sending(false); // a node that is paused says so right after the handshake
    await this.authenticate();
    for (const [stream, since] of this.streams) {
      this.send(this.#subscription(stream, since));
      this.send({ type: "heartbeat", stream }); // counted at once, not 15 s later
    }
    this.dispatchEvent(new CustomEvent("open", { detail: { url: ws.url } }));
  }

  #subscription(stream, since) {
    const message = since ? { type: "subscribe", stream, since } : { type: "subscribe", stream };
    if (this.spoilersHidden) message.spoilers = "hide";
    return this.referrer ? { ...message, referrer: this.referrer } : message;
  }

  #lost(ws) {
    if (ws !== this.ws) return;
    this.user = null;
    this.dispatchEvent(new CustomEvent("close"));
    if (this.closed) return;
    this.urlIndex += 1; // try the next node: any node can resume us
    const delay = backoffMs(this.attempt++);
    setTimeout(() => this.connect(), delay);
  }

  #received(data) {
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      return;
    }
    if (m.nonce && this.pending.has(m.nonce) && (m.type === "ack" || m.type === "error")) {
      this.pending.get(m.nonce)(m);
      this.pending.delete(m.nonce);
    }
    if (m.stream && m.pos && isChatLog(m) && this.streams.has(m.stream)) this.streams.set(m.stream, m.pos);
    if (m.type === "notice" && m.code === "authenticated") this.user = { user_id: m.user, role: m.role };
    if (m.type === "notice" && m.code === "reload" && this.streams.has(m.stream)) this.streams.set(m.stream, null);
    if (m.type === "notice" && m.code === "reconnect") this.ws.close(1000);
    if (m.type === "notice" && (m.code === "paused" || m.code === "resumed")) this.#sending(m.code === "paused");
    this.dispatchEvent(new CustomEvent("message", { detail: m }));
  }

  #sending(paused) {
    if (this.paused === paused) return;
    this.paused = paused;
    this.dispatchEvent(new CustomEvent("sending", { detail: { paused } }));
  }

  #beat() {
    for (const stream of this.streams.keys()) this.send({ type: "heartbeat", stream });
  }
}
