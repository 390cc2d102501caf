// The stream page: player (low latency or standard, see lowLatencyWanted), live chat, poll, prediction
// (live odds and stakes; the streamer's controls: predictions.js), viewer count and follow button (and,
// for the channel's moderators, the held-message queue and the moderation log); for an ended stream
// the VOD with the chat replayed in sync with the playhead.
import "./shell.js";
import { ChatView, pausedNotice } from "./chat.js";
import { EdgeClient, referrerOf } from "./edge.js";
import { ModeratorPanel } from "./moderation.js";
import { attachPlayer } from "./player.js";
import { PollView } from "./poll.js";
import { PredictionView } from "./predictions.js";
import { accessToken, api, currentUser, el, session } from "./session.js";

const page = document.getElementById("content");
const streamId = page.dataset.streamId;
const video = document.getElementById("video");
const $ = (id) => document.getElementById(id);
const LOW_LATENCY_KEY = "esports.lowLatency";

// A deleted replay has no files left: no player (the page says so), and no chat replay without it.
const vodDeleted = page.dataset.vodDeleted === "true";
if (!vodDeleted) {
  const player = attachPlayer(video, page.dataset.hls, {
    quality: $("quality"),
    liveEdge: $("live-edge"),
    latency: $("latency"),
    latencyMode: $("latency-mode"),
    status: $("player-status"),
    live: page.dataset.mode === "live",
    lowLatency: lowLatencyWanted(),
  });
  $("low-latency")?.addEventListener("change", (e) => {
    localStorage.setItem(LOW_LATENCY_KEY, String(e.target.checked));
    player?.setLowLatency(e.target.checked);
  });
} else {
  video.removeAttribute("controls");
}
const WINDOW_MS = 60_000; // the VOD chat replay loads the archive a minute at a time
setUpFollow();
if (!vodDeleted) setUpClip();
if (page.dataset.mode === "live") live();
else if (!vodDeleted) replay();

// Low latency or the standard mode: the viewer's own choice (kept in this browser, for every channel)
// over the channel's setting.
function lowLatencyWanted() {
  const mine = localStorage.getItem(LOW_LATENCY_KEY);
  return mine === null ? page.dataset.lowLatency !== "false" : mine === "true";
}

async function live() {
  const me = await currentUser();
  const moderators = new Set(JSON.parse(page.dataset.moderators || "[]"));
  const canModerate = () =>
    Boolean(me) && (me.user_id === page.dataset.ownerId || moderators.has(me.user_id) || me.role === "admin");
  const referrer = referrerOf(document.referrer, location.origin);
  const spoilersHidden = page.dataset.resultHidden === "true";
  const edge = new EdgeClient(JSON.parse(page.dataset.edges), { token: accessToken, referrer, spoilersHidden });
  const notice = $("chat-notice");
  const say = (text) => (notice.textContent = text);
  const chat = new ChatView($("messages"), {
    canModerate,
    onModerate: async (action, m) => {
      const frame = { type: "mod", stream: streamId, action };
      if (action === "delete") frame.message_id = m.id;
      else frame.user = m.user;
      if (action === "timeout") frame.duration_s = 600;
      const answer = await edge.request(frame);
      say(answer.type === "error" ? answer.message : "");
    },
  });
  const poll = new PollView($("poll"), {
    vote: async (pollId, option) => {
      const answer = await edge.request({ type: "vote", stream: streamId, poll: pollId, option });
      if (answer.type === "error") say(answer.code === "unauthorized" ? "Sign in to vote." : answer.message);
      return answer;
    },
  });
  const panel = canModerate() ? new ModeratorPanel($("moderator-panel"), { streamId, edge, say }) : null;
  const prediction = new PredictionView($("prediction"), $("prediction-admin"), {
    streamId,
    signedIn: Boolean(me),
    canManage: canModerate(),
    resultHidden: spoilersHidden,
  });
  const predictionLoaded = prediction.start();
  const listing = await api(`/api/v1/streams/${streamId}/polls`);
  const open = listing.ok ? (listing.data.items || []).find((p) => p.status === "open") : null;
  if (open) poll.show(open);

  edge.addEventListener("message", (e) => {
    const m = e.detail;
    if (m.stream && m.stream !== streamId) return;
    chat.apply(m);
    panel?.apply(m);
    if (m.type === "poll") poll.apply(m);
    if (m.type === "prediction") predictionLoaded.then(() => prediction.apply(m));
    if (m.type === "prediction_result") predictionLoaded.then(() => prediction.applyResult(m));
    if (m.type === "count") {
      $("viewers").querySelector(".count").textContent = String(m.count);
      $("viewers").dataset.count = String(m.count);
    }
    if (m.type === "state" && m.kind === "ended") {
      // Spoiler-free: that the broadcast of a hidden match ended is a result too.
      if (document.querySelector("main")?.dataset.resultHidden !== "true") $("state-tag").textContent = "ENDED";
      say("The stream has ended. The video will be available here.");
    }
    if (m.type === "state" && m.kind === "subscribed") page.dataset.subscribed = "true";
    if (m.type === "notice" && m.code === "rejected") say(`Not sent: ${m.detail || m.reason}`);
    if (m.type === "notice" && m.code === "held") say("Your message waits for a moderator.");
    if (m.type === "notice" && m.code === "authenticated") enableComposer();
    if (m.type === "notice" && m.code === "notification") {
      const badge = $("unread");
      badge.textContent = String(Number(badge.textContent || 0) + 1);
      badge.hidden = false;
      say(`🔔 ${m.title}`);
    }
  });
  edge.addEventListener("close", () => (page.dataset.subscribed = "false"));
  const showPaused = pausedNotice($("chat-form"));
  edge.addEventListener("sending", (e) => showPaused(e.detail.paused));
  edge.subscribe(streamId);
  panel?.start();
  edge.connect();

  function enableComposer() {
    $("chat-input").disabled = false;
    $("chat-send").disabled = false;
    $("chat-input").placeholder = "Send a message";
  }

  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("chat-input");
    const text = input.value.trim();
    if (!text) return;
    // `/poll Q | A | B [60s]`, `/endpoll` and moderator commands are typed as chat: the edge and the
    // agents decide them (edge_ws/PROTOCOL.md), so the page has no second parser to drift.
    const media_time_ms = Number.isFinite(video.currentTime) ? Math.round(video.currentTime * 1000) : undefined;
    const answer = await edge.request({ type: "chat", stream: streamId, text, media_time_ms });
    if (answer.type === "ack") {
      input.value = "";
      say(text.startsWith("/") ? "Command sent." : "");
    } else say(answer.code === "unauthorized" ? "Sign in to chat." : answer.message);
  });
  if (!session()?.access_token) $("chat-input").placeholder = "Sign in to chat";
}

// --- VOD: the chat archive replayed with the playhead ---------------------------------------

function replay() {
  const list = $("messages");
  const loaded = new Map(); // window start -> Promise<messages>
  let shown = -1;
  let all = [];

  const load = (start) => {
    if (!loaded.has(start)) {
      loaded.set(
        start,
        api(`/api/v1/streams/${streamId}/chat?from_ms=${start}&to_ms=${start + WINDOW_MS}&limit=500`).then((r) => {
          if (!r.ok) {
            loaded.delete(start);
            return;
          }
          const known = new Set(all.map((m) => m.message_id));
          all = all.concat(r.data.items.filter((m) => !known.has(m.message_id)));
          all.sort((a, b) => a.media_time_ms - b.media_time_ms);
          shown = -1;
        }),
      );
    }
    return loaded.get(start);
  };

  const render = () => {
    const now = video.currentTime * 1000;
    const visible = all.filter((m) => m.media_time_ms <= now);
    if (visible.length === shown) return;
    shown = visible.length;
    list.replaceChildren(
      ...visible.slice(-200).map((m) => {
        const li = el("li");
        li.dataset.id = m.message_id;
        li.append(el("span", m.display_name, "name"), el("span", m.text, "text"));
        return li;
      }),
    );
    list.scrollTop = list.scrollHeight;
  };

  const tick = async () => {
    const start = Math.floor((video.currentTime * 1000) / WINDOW_MS) * WINDOW_MS;
    await Promise.all([load(start), load(start + WINDOW_MS)]);
    render();
  };
  video.addEventListener("timeupdate", tick);
  video.addEventListener("seeked", tick);
  tick();
}

function setUpFollow() {
  const button = $("follow");
  if (!button) return;
  const channel = button.dataset.channelId;
  let following = false;
  const show = () => {
    button.textContent = following ? "Following" : "Follow";
    button.setAttribute("aria-pressed", String(following));
  };
  if (session()?.access_token) {
    api("/api/v1/me/follows", { auth: true }).then((r) => {
      following = Boolean(r.ok && (r.data.channels || []).some((c) => c.channel_id === channel));
      show();
    });
  }
  button.addEventListener("click", async () => {
    if (!session()?.access_token) return location.assign("/login");
    const r = await api(`/api/v1/me/follows/channels/${channel}`, { method: following ? "DELETE" : "PUT", auth: true });
    if (r.ok) following = !following;
    show();
  });
}

// Clip: the 30 s before the playhead (fewer at the stream's start; at least 5), in the stream's media
// time, which the player's timeline is for a replay and for a live stream within its DVR window.
// The ingest node cuts it from its segments; the link appears once the clip is ready.
const CLIP_MS = 30000;
const CLIP_MIN_MS = 5000;

function setUpClip() {
  const button = $("clip");
  const status = $("clip-status");
  if (!button || !session()?.access_token) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    const end = Math.floor(video.currentTime * 1000);
    const start = Math.max(0, end - CLIP_MS);
    if (end - start < CLIP_MIN_MS) {
      status.textContent = "Watch a few seconds more: a clip is 5 to 60 s.";
      return;
    }
    button.disabled = true;
    status.textContent = "Clipping…";
    const r = await api("/api/v1/clips", {
      method: "POST",
      auth: true,
      body: { stream_id: streamId, start_ms: start, duration_ms: end - start },
    });
    if (!r.ok) {
      status.textContent = r.data?.detail || "The clip could not be made.";
      button.disabled = false;
      return;
    }
    const clip = await clipOutcome(r.data.clip_id);
    button.disabled = false;
    status.replaceChildren();
    if (clip?.status === "ready") {
      const link = el("a", "Your clip is ready");
      link.href = `/clips/${clip.clip_id}`;
      link.id = "clip-link";
      status.append(link);
    } else {
      status.textContent = clip ? `The clip failed: ${clip.failure || "unknown reason"}` : "The clip is still being made.";
    }
  });
}

async function clipOutcome(clipId) {
  for (let attempt = 0; attempt < 60; attempt += 1) {
    const r = await api(`/api/v1/streams/${streamId}/clips?limit=100`);
    const clip = r.ok ? (r.data.items || []).find((c) => c.clip_id === clipId) : null;
    if (clip && clip.status !== "pending") return clip;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}
