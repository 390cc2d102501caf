// The edge client's paused/resumed state (edge_ws/PROTOCOL.md, "When Kafka is unreachable"), against
// a fake WebSocket (node --test; run by tests/unit/test_web_pause.py).
import assert from "node:assert/strict";
import { test } from "node:test";

globalThis.CustomEvent ??= class extends Event {
  constructor(type, init = {}) {
    super(type);
    this.detail = init.detail;
  }
};

class FakeSocket extends EventTarget {
  static OPEN = 1;
  static made = [];
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.made.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
    this.dispatchEvent(new Event("close"));
  }
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
  receive(message) {
    this.dispatchEvent(Object.assign(new Event("message"), { data: JSON.stringify(message) }));
  }
}
globalThis.WebSocket = FakeSocket;
const { EdgeClient } = await import("../static/js/edge.js");
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("paused and resumed notices switch the client's sending state, once each", async () => {
  FakeSocket.made = [];
  const edge = new EdgeClient(["ws://a/", "ws://b/"]);
  const seen = [];
  edge.addEventListener("sending", (e) => seen.push(e.detail.paused));
  edge.subscribe("s-1");
  edge.connect();
  const first = FakeSocket.made[0];
  first.open();
  await tick();
  assert.equal(edge.paused, false);
  first.receive({ type: "notice", code: "paused", since: 1 });
  first.receive({ type: "notice", code: "paused", since: 1 }); // told again: no second event
  assert.equal(edge.paused, true);
  const refused = edge.request({ type: "chat", stream: "s-1", text: "hi" });
  const nonce = first.sent.at(-1).nonce;
  first.receive({ type: "error", code: "paused", message: "sending is paused", nonce });
  assert.equal((await refused).code, "paused"); // the page shows the message and keeps the text
  first.receive({ type: "notice", code: "resumed", paused_ms: 900 });
  assert.equal(edge.paused, false);
  assert.deepEqual(seen, [true, false]);
  edge.close();
});

test("a reconnect clears the pause: the next node says so again if it is paused too", async () => {
  FakeSocket.made = [];
  const edge = new EdgeClient(["ws://a/", "ws://b/"]);
  edge.connect();
  const first = FakeSocket.made[0];
  first.open();
  first.receive({ type: "notice", code: "paused", since: 1 });
  const realTimeout = globalThis.setTimeout;
  globalThis.setTimeout = (fn) => realTimeout(fn, 0); // skip the backoff wait
  first.close();
  await tick();
  globalThis.setTimeout = realTimeout;
  await tick();
  const second = FakeSocket.made[1];
  second.open();
  await tick();
  assert.equal(edge.paused, false); // a healthy node sends nothing
  second.receive({ type: "notice", code: "paused", since: 2 });
  assert.equal(edge.paused, true);
  edge.close();
});
