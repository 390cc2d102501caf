// The creator dashboard: your channel, the stream key (issued and shown once, hidden until you
// reveal it), the RTMP/SRT settings for OBS, and your streams' state.
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

main();
