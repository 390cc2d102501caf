// The creator dashboard: your channel, the stream key (issued and shown once, hidden until you
// reveal it), the RTMP/SRT settings for OBS, your streams' state, and what you set on them: the
// current (or next) stream's title, game, tags and language, its schedule and its end; the channel's
// latency mode (low latency or standard, where its viewers' players start) and DVR window; chat slow mode
// and followers-only; the channel's rules (unique chat, link policy, blocked terms), all sent as
// moderation actions over REST on the current stream; the channel's moderators. Every error is the
// API's (problem+json), shown as text.
import "./shell.js";
import { api, currentUser, el } from "./session.js";

const $ = (id) => document.getElementById(id);
const status = $("dash-status");

async function main() {
  const me = await currentUser();
  if (!me) {
    location.assign("/login?next=/dashboard");
    return;
  }
  const r = await api(`/api/v1/channels?owner=${encodeURIComponent(me.user_id)}`);
  const channel = r.ok ? r.data.items[0] : null;
  status.textContent = "";
  if (!channel) {
    $("no-channel").hidden = false;
    $("channel-form").addEventListener("submit", openChannel);
    return;
  }
  showChannel(channel);
}

async function openChannel(e) {
  e.preventDefault();
  const form = new FormData(e.target);
  const r = await api("/api/v1/channels", {
    method: "POST",
    auth: true,
    body: { slug: form.get("slug"), display_name: form.get("display_name") },
  });
  if (!r.ok) {
    $("channel-error").textContent = r.data?.detail || "Could not open the channel.";
    return;
  }
  location.reload();
}

function showChannel(channel) {
  $("channel").hidden = false;
  $("channel-title").textContent = channel.display_name;
  const key = $("stream-key");
  $("rotate-key").addEventListener("click", async () => {
    if (channel.stream_key_id && !confirm("The current key stops working at once. Rotate?")) return;
    const r = await api(`/api/v1/channels/${channel.channel_id}/stream-key`, { method: "POST", auth: true });
    if (!r.ok) return (status.textContent = r.data?.detail || "Could not rotate the key.");
    key.value = r.data.stream_key;
    status.textContent = "New key issued: copy it into OBS now, it is not shown again.";
  });
  $("reveal-key").addEventListener("click", (e) => {
    const shown = key.type === "text";
    key.type = shown ? "password" : "text";
    e.target.textContent = shown ? "Reveal" : "Hide";
    e.target.setAttribute("aria-pressed", String(!shown));
  });
  $("copy-key").addEventListener("click", () => navigator.clipboard?.writeText(key.value));
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => navigator.clipboard?.writeText($(button.dataset.copy).textContent));
  }
  refreshStreams(channel);
  setInterval(() => refreshStreams(channel), 5000);
  manageStream(channel);
  manageLatency(channel);
  manageRules();
  manageModerators(channel);
}

async function refreshStreams(channel) {
  const r = await api(`/api/v1/streams?channel=${encodeURIComponent(channel.channel_id)}&limit=10`);
  if (!r.ok) return;
  const rows = await Promise.all(
    r.data.items.map(async (s) => {
      const tr = el("tr");
      const link = el("a", s.title);
      link.href = `/live/${s.stream_id}`;
      const title = el("td");
      title.append(link);
      tr.append(title, el("td", s.state === "live" ? "LIVE" : s.state), el("td", await ingestHealth(s)));
      return tr;
    }),
  );
  $("streams").replaceChildren(...rows);
  showCurrent(currentStream(r.data.items));
}

async function ingestHealth(stream) {
  if (stream.state !== "live") return stream.ended_at ? `ended ${new Date(stream.ended_at).toLocaleString()}` : "–";
  const base = document.getElementById("content").dataset.hls;
  const probe = await fetch(`${base}/${stream.stream_id}/master.m3u8`, { cache: "no-store" }).catch(() => null);
  const since = new Date(stream.started_at).toLocaleTimeString();
  const state = probe?.ok ? `receiving since ${since}, playable` : `receiving since ${since}, not playable yet`;
  // The transcoder's latest report (about every 5 s); 404 when no publisher reported lately.
  const r = await api(`/api/v1/streams/${encodeURIComponent(stream.stream_id)}/ingest`, { auth: true });
  if (!r.ok) return `${state}; no health report yet`;
  const h = r.data;
  const speed = h.encoder_speed < 1 ? `speed ${h.encoder_speed.toFixed(2)}× (falling behind!)` : `speed ${h.encoder_speed.toFixed(2)}×`;
  return `${state}; ${Math.round(h.input_bitrate_kbps).toLocaleString()} kbps, ${h.fps.toFixed(1)} fps, ${speed}, ${h.dropped_frames} dropped, ${h.restarts} restarts`;
}

// The problem+json answer as one line: its detail, or each invalid field with its message.
export function problemText(r, fallback) {
  if (r.status === 0) return "The server could not be reached; try again.";
  const errors = r.data?.errors;
  if (Array.isArray(errors) && errors.length) {
    return errors.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${e.msg}`).join("; ");
  }
  return r.data?.detail || r.data?.title || fallback;
}

// The stream a push would go live on: live, else the next scheduled, else a created one.
function currentStream(items) {
  const rank = { live: 0, scheduled: 1, created: 2 };
  const open = items.filter((s) => s.state in rank);
  open.sort((a, b) => rank[a.state] - rank[b.state] || String(a.scheduled_start).localeCompare(String(b.scheduled_start)));
  return open[0] || null;
}

let current = null; // the stream the forms act on (null: saving creates the next one)
let currentId = null;

function showCurrent(stream) {
  current = stream;
  const target = $("stream-target");
  $("end-stream").hidden = stream?.state !== "live";
  $("chat-settings").hidden = !stream;
  $("schedule-form").hidden = stream?.state === "live";
  if (!stream) {
    target.textContent = "No stream open: saving creates your next stream (your next push goes live with it).";
    currentId = null;
    return;
  }
  const when = stream.scheduled_start ? `, planned for ${new Date(stream.scheduled_start).toLocaleString()}` : "";
  target.textContent = `Editing ${stream.state === "live" ? "your live stream" : `your next stream (${stream.state}${when})`}.`;
  if (currentId === stream.stream_id) return; // keep what the streamer is typing
  currentId = stream.stream_id;
  loadRules();
  $("stream-title").value = stream.title;
  $("stream-game").value = stream.game;
  $("stream-tags").value = stream.tags.join(", ");
  $("stream-language").value = stream.language;
}

function streamFields() {
  const tags = $("stream-tags")
    .value.split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  const body = { title: $("stream-title").value.trim(), game: $("stream-game").value.trim(), tags };
  const language = $("stream-language").value.trim();
  if (language) body.language = language;
  return body;
}

// Send a command; on failure show the problem next to its form and resolve to null.
async function command(errorId, path, options, fallback) {
  const error = $(errorId);
  error.textContent = "";
  const r = await api(path, { auth: true, ...options });
  if (!r.ok) {
    error.textContent = problemText(r, fallback);
    return null;
  }
  return r.data;
}

function manageLatency(channel) {
  const box = $("low-latency");
  const dvr = $("dvr-window");
  box.checked = channel.low_latency !== false;
  const chosen = channel.dvr_window_s === null || channel.dvr_window_s === undefined ? "" : String(channel.dvr_window_s);
  if (chosen && ![...dvr.options].some((o) => o.value === chosen)) dvr.add(new Option(`${chosen} s`, chosen));
  dvr.value = chosen;
  $("latency-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { low_latency: box.checked, ...(dvr.value === "" ? {} : { dvr_window_s: Number(dvr.value) }) };
    const done = await command("latency-error", `/api/v1/channels/${channel.channel_id}`, { method: "PATCH", body }, "Could not save.");
    if (done) status.textContent = box.checked ? "Low latency is on." : "Low latency is off: players start in the standard mode.";
  });
}

function manageStream(channel) {
  const saved = (text) => {
    status.textContent = text;
    refreshStreams(channel);
  };
  $("stream-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = streamFields();
    const done = current
      ? await command("stream-error", `/api/v1/streams/${current.stream_id}`, { method: "PATCH", body }, "Could not save.")
      : await command("stream-error", "/api/v1/streams", { method: "POST", body: { ...body, channel_id: channel.channel_id } }, "Could not create the stream.");
    if (done) saved("Stream info saved.");
  });
  $("schedule-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const start = new Date($("schedule-start").value);
    if (Number.isNaN(start.getTime())) return ($("schedule-error").textContent = "Pick a date and time.");
    const scheduled_start = start.toISOString();
    const done = current
      ? await command("schedule-error", `/api/v1/streams/${current.stream_id}/schedule`, { method: "POST", body: { scheduled_start } }, "Could not schedule.")
      : await command("schedule-error", "/api/v1/streams", { method: "POST", body: { ...streamFields(), channel_id: channel.channel_id, scheduled_start } }, "Could not schedule.");
    if (done) saved(`Scheduled for ${start.toLocaleString()}.`);
  });
  $("end-stream").addEventListener("click", async () => {
    if (!current || !confirm("End the stream now? Viewers see the replay.")) return;
    const done = await command("end-error", `/api/v1/streams/${current.stream_id}/end`, { method: "POST" }, "Could not end the stream.");
    if (done) saved("Ending the stream…");
  });
  $("slow-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const seconds = Number($("slow-seconds").value);
    const body = { action: "slow_mode", duration_s: seconds };
    const done = current && (await moderate("slow-error", body));
    if (done) status.textContent = seconds ? `Slow mode: ${seconds} s.` : "Slow mode off.";
    if (done) setTimeout(loadRules, 1000);
  });
  $("followers-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const raw = $("followers-minutes").value.trim();
    const body = { action: "followers_only", duration_s: raw === "" ? null : Number(raw) * 60 };
    const done = current && (await moderate("followers-error", body));
    if (done) status.textContent = raw === "" ? "Followers-only off." : `Followers-only: ${raw} min.`;
    if (done) setTimeout(loadRules, 1000);
  });
}

// --- Channel rules: moderation actions over REST, read back from the moderation log ------------

// Send a rule (e.g. {action: "block_term", term}) for the current stream, then reload the rules
// until the moderation log shows the change the agent decided (none: the rule was already so).
async function ruleRequest(body) {
  $("rules-error").textContent = "";
  if (!current) return false;
  const before = await settingsChanges();
  const done = await moderate("rules-error", body);
  if (!done) return false;
  status.textContent = "Rule sent.";
  for (let i = 0; i < 40; i++) {
    const changes = await settingsChanges();
    if (changes && changes.length !== before?.length) {
      showRules(changes);
      status.textContent = "Rule saved.";
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  status.textContent = "Nothing changed (the rule was already so).";
  return true;
}

// The stream's chat-settings changes, newest first (the moderation log keeps each in full, and the
// blocked terms each added or removed); null when the log cannot be read.
async function settingsChanges() {
  if (!current) return null;
  const r = await api(`/api/v1/streams/${current.stream_id}/moderation/log?action=settings&limit=100`, { auth: true });
  return r.ok ? r.data.items : null;
}

async function loadRules() {
  const changes = await settingsChanges();
  if (changes) showRules(changes);
}

function showRules(changes) {
  const latest = changes[0]?.details || {};
  const terms = new Set();
  for (const change of [...changes].reverse()) {
    for (const t of change.details.blocked_terms_added || []) terms.add(t);
    for (const t of change.details.blocked_terms_removed || []) terms.delete(t);
  }
  const links = { allow: "allowed", deny: "refused", allowlist: `only ${(latest.link_allowlist || []).join(" ")}` };
  $("rules-current").textContent = [
    `Slow mode: ${latest.slow_mode_s ? `${latest.slow_mode_s} s` : "off"}`,
    `followers-only: ${latest.followers_only_min_s == null ? "off" : `${Math.round(latest.followers_only_min_s / 60)} min`}`,
    `unique chat: ${latest.unique_chat ? "on" : "off"}`,
    `links: ${links[latest.link_policy] || "the platform's default"}`,
  ].join(" · ");
  $("unique-chat").checked = Boolean(latest.unique_chat);
  const items = [...terms].map((term) => {
    const li = el("li", term);
    li.dataset.term = term;
    const remove = el("button", "Unblock", "danger");
    remove.type = "button";
    remove.setAttribute("aria-label", `Unblock ${term}`);
    remove.addEventListener("click", () => ruleRequest({ action: "unblock_term", term }));
    li.append(" ", remove);
    return li;
  });
  $("blocked-terms").replaceChildren(...(items.length ? items : [el("li", "No blocked terms.", "muted")]));
}

function manageRules() {
  $("unique-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ruleRequest({ action: "unique_chat", enabled: $("unique-chat").checked });
  });
  $("links-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const policy = $("link-policy").value;
    const domains = $("link-allowlist").value.split(/[\s,]+/).filter(Boolean);
    if (policy === "allowlist" && !domains.length) return ($("rules-error").textContent = "Name at least one domain.");
    ruleRequest({ action: "link_policy", link_policy: policy, ...(policy === "allowlist" ? { link_allowlist: domains } : {}) });
  });
  $("block-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const term = $("blocked-term").value.trim();
    if (!term) return;
    if (await ruleRequest({ action: "block_term", term })) $("blocked-term").value = "";
  });
}

function moderate(errorId, body) {
  return command(errorId, `/api/v1/streams/${current.stream_id}/moderation`, { method: "POST", body }, "Could not change the chat settings.");
}

async function refreshModerators(channel) {
  const r = await api(`/api/v1/channels/${encodeURIComponent(channel.channel_id)}`);
  if (!r.ok) return;
  const items = r.data.moderators.map((m) => {
    const li = el("li", m.username || m.user_id);
    li.dataset.userId = m.user_id;
    const remove = el("button", "Remove", "danger");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${m.username || m.user_id}`);
    remove.addEventListener("click", async () => {
      const url = `/api/v1/channels/${channel.channel_id}/moderators/${encodeURIComponent(m.user_id)}`;
      const done = await command("moderator-error", url, { method: "DELETE" }, "Could not remove the moderator.");
      if (done) await untilModerators(channel, (ids) => !ids.includes(m.user_id));
    });
    li.append(" ", remove);
    return li;
  });
  $("moderators").replaceChildren(...(items.length ? items : [el("li", "No moderators yet.", "muted")]));
  return r.data.moderators;
}

// The read model catches up with a command within moments: reload the list until it shows the change.
async function untilModerators(channel, done) {
  for (let i = 0; i < 20; i++) {
    const moderators = await refreshModerators(channel);
    const names = (moderators || []).map((m) => (m.username || "").toLowerCase());
    if (moderators && done(moderators.map((m) => m.user_id), names)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function manageModerators(channel) {
  refreshModerators(channel);
  $("moderator-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const who = $("moderator-user").value.trim();
    const url = `/api/v1/channels/${channel.channel_id}/moderators/${encodeURIComponent(who)}`;
    const done = await command("moderator-error", url, { method: "PUT" }, "Could not appoint the moderator.");
    if (!done) return;
    $("moderator-user").value = "";
    status.textContent = `${who} is now a moderator.`;
    await untilModerators(channel, (ids, names) => ids.includes(who) || names.includes(who.toLowerCase()));
  });
}

main();
