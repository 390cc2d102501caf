// The edge client's logic against a fake WebSocket (node --test; run by tests/unit/test_web_modules.py).
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
const { EdgeClient, backoffMs, isChatLog, referrerOf } = await import("../static/js/edge.js");
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

test("backoff doubles from 0.5 s to 30 s with equal jitter", () => {
  assert.equal(backoffMs(0, () => 0), 250);
  assert.equal(backoffMs(0, () => 1), 500);
  assert.equal(backoffMs(3, () => 0.5), 3000);
  assert.equal(backoffMs(20, () => 1), 30000);
  assert.ok(backoffMs(20, () => 0) >= 15000); // never all clients at once, never zero
});

test("only chat-log messages move the resume position", () => {
  assert.ok(isChatLog({ type: "chat" }) && isChatLog({ type: "deleted" }));
  assert.ok(isChatLog({ type: "state", kind: "ban" }) && isChatLog({ type: "state", kind: "subscribed" }));
  assert.ok(!isChatLog({ type: "state", kind: "live" }) && !isChatLog({ type: "count" }) && !isChatLog({ type: "poll" }));
});

test("subscribes, authenticates, resumes with since on the next node, and matches acks by nonce", async () => {
  FakeSocket.made = [];
  const edge = new EdgeClient(["ws://a/", "ws://b/"], { token: async () => "T" });
  edge.subscribe("s-1");
  edge.connect();
  const first = FakeSocket.made[0];
  first.open();
  await tick();
  assert.deepEqual(first.sent.slice(0, 3), [
    { type: "auth", token: "T" },
    { type: "subscribe", stream: "s-1" },
    { type: "heartbeat", stream: "s-1" },
  ]);
  first.receive({ type: "count", stream: "s-1", pos: "0:99", count: 3 }); // a snapshot: not a position
  first.receive({ type: "chat", stream: "s-1", pos: "4:17", id: "m" });
  first.receive({ type: "state", kind: "live", stream: "s-1", pos: "2:5" });
  const answer = edge.request({ type: "chat", stream: "s-1", text: "hi" });
  const nonce = first.sent.at(-1).nonce;
  first.receive({ type: "ack", nonce, stream: "s-1", message_id: "x", pos: "1:1" });
  assert.equal((await answer).message_id, "x");

  const realTimeout = globalThis.setTimeout;
  globalThis.setTimeout = (fn) => realTimeout(fn, 0); // skip the backoff wait
  first.close();
  await tick();
  globalThis.setTimeout = realTimeout;
  await tick();
  const second = FakeSocket.made[1];
  assert.equal(second.url, "ws://b/"); // any node can resume us
  second.open();
  await tick();
  assert.deepEqual(second.sent[1], { type: "subscribe", stream: "s-1", since: "4:17" });

  second.receive({ type: "notice", code: "reload", stream: "s-1", since: "4:17" });
  assert.equal(edge.streams.get("s-1"), null); // rebuild from the backfill next time
  edge.close();
});

test("a request while offline fails at once instead of hanging", async () => {
  const edge = new EdgeClient(["ws://a/"]);
  const answer = await edge.request({ type: "vote", stream: "s", poll: "p", option: 0 });
  assert.equal(answer.code, "offline");
  edge.close();
});

/** A client connected to one fake socket, opened. */
async function connected(options) {
  FakeSocket.made = [];
  const edge = new EdgeClient(["ws://a"], options);
  edge.connect();
  const ws = FakeSocket.made[0];
  ws.readyState = 1;
  ws.dispatchEvent(new Event("open"));
  await new Promise((r) => setTimeout(r, 0));
  return { edge, ws };
}

test("says where the viewer came from: a host, site or direct, never a path", async () => {
  assert.equal(referrerOf("https://www.twitter.com/esports/status/1?x=y", "https://live.example"), "twitter.com");
  assert.equal(referrerOf("https://live.example/browse?game=cs2", "https://live.example"), "site");
  assert.equal(referrerOf("", "https://live.example"), "direct");
  assert.equal(referrerOf("not a url", "https://live.example"), "direct");
  const { edge, ws } = await connected({ referrer: "twitter.com" });
  edge.subscribe("s-9");
  assert.deepEqual(ws.sent.find((m) => m.type === "subscribe"), { type: "subscribe", stream: "s-9", referrer: "twitter.com" });
  edge.close();
});

test("a page that hides its match's result subscribes with spoilers=hide (no result frames)", async () => {
  const { edge, ws } = await connected({ spoilersHidden: true });
  edge.subscribe("s-9");
  assert.deepEqual(ws.sent.find((m) => m.type === "subscribe"), { type: "subscribe", stream: "s-9", spoilers: "hide" });
  edge.close();
});
