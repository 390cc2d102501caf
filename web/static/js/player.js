// The HLS player on hls.js: quality selector with Auto, a live-edge button, the latency shown,
// retries while the stream is not playable yet. Safari-style native HLS is the fallback.
import Hls from "/static/vendor/hls/hls.mjs";

const RETRY_MS = 3000;

function label(level) {
  return level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`;
}

export function attachPlayer(video, src, ui = {}) {
  const { quality, liveEdge, latency, status, live = true, lowLatency = true } = ui;
  const say = (text) => status && (status.textContent = text);
  if (!Hls.isSupported()) {
    if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
      video.play().catch(() => {});
    } else {
      say("This browser cannot play HLS video.");
    }
    return null;
  }
  const state = { hls: null, destroyed: false };
  const start = () => {
    if (state.destroyed) return;
    const hls = new Hls({ lowLatencyMode: lowLatency, liveSyncDurationCount: 3, capLevelToPlayerSize: !quality });
    state.hls = hls;
    video.hls = hls; // for the e2e tests and the devtools
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      say("");
      if (quality) fillQualities(quality, hls);
      if (liveEdge) liveEdge.disabled = !live;
      video.play().catch(() => say("Press play to start."));
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = hls.levels[data.level];
      video.dataset.level = String(data.level);
      video.dataset.height = String(level?.height ?? "");
      if (quality) quality.options[0].textContent = `Auto${level ? ` (${label(level)})` : ""}`;
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      say(live ? "Waiting for the stream…" : "The video is not available.");
      hls.destroy();
      setTimeout(start, RETRY_MS);
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  };
  start();
  if (quality) {
    quality.addEventListener("change", () => {
      if (state.hls) state.hls.currentLevel = Number(quality.value); // -1 = auto (ABR)
    });
  }
  if (liveEdge) {
    liveEdge.addEventListener("click", () => {
      const edge = state.hls?.liveSyncPosition;
      if (edge) video.currentTime = edge;
      video.play().catch(() => {});
    });
  }
  if (latency && live) {
    setInterval(() => {
      // Wall clock minus the PROGRAM-DATE-TIME of the frame on screen (the ingest stamps every
      // segment), else hls.js's distance to the live edge.
      const date = state.hls?.playingDate;
      const l = date ? (Date.now() - date.getTime()) / 1000 : state.hls?.latency;
      latency.textContent = Number.isFinite(l) && l > 0 ? `latency ${l.toFixed(1)} s` : "latency –";
    }, 1000);
  }
  return state;
}

function fillQualities(select, hls) {
  select.replaceChildren(new Option("Auto", "-1"));
  hls.levels
    .map((level, index) => ({ level, index }))
    .sort((a, b) => (b.level.height || b.level.bitrate) - (a.level.height || a.level.bitrate))
    .forEach(({ level, index }) => select.add(new Option(label(level), String(index))));
  select.value = "-1";
  select.disabled = hls.levels.length < 2;
}
