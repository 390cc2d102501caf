// The HLS player on hls.js: quality selector with Auto, a live-edge button, the latency shown, low
// latency (LL-HLS) or the standard mode and the viewer's switch between them, retries while the stream
// is not playable yet, a new ladder after a publisher came back at another resolution. Safari-style
// native HLS is the fallback.
import Hls from "/static/vendor/hls/hls.mjs";

const RETRY_MS = 3000;
const LADDER_CHECKS = 3; // the master is cached for a second: a rendition may end a moment before it

function label(level) {
  return level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kb/s`;
}

export function attachPlayer(video, src, ui = {}) {
  const { quality, liveEdge, latency, latencyMode, status, live = true } = ui;
  let lowLatency = ui.lowLatency ?? true;
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
    // No liveSyncDuration(Count) here: hls.js lets either override the playlist's PART-HOLD-BACK, which
    // kept low-latency players 6 s behind; its default (3 target durations) is the standard mode's.
    // In low-latency mode it may play up to 1.5x to get back to the target after a stall.
    const hls = new Hls({
      lowLatencyMode: lowLatency,
      maxLiveSyncPlaybackRate: lowLatency ? 1.5 : 1,
      capLevelToPlayerSize: !quality,
    });
    state.hls = hls;
    video.hls = hls; // for the e2e tests and the devtools
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      say("");
      if (quality) fillQualities(quality, hls);
      if (liveEdge) liveEdge.disabled = !live;
      video.play().catch(() => say("Press play to start."));
    });
    // The viewer's low-latency switch (a label around a checkbox) shows once the stream has parts.
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
      if (!latencyMode || !live || !data.details.partTarget) return;
      latencyMode.hidden = false;
      latencyMode.querySelector("input").checked = lowLatency;
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
      const level = hls.levels[data.level];
      video.dataset.level = String(data.level);
      video.dataset.height = String(level?.height ?? "");
      if (quality) quality.options[0].textContent = `Auto${level ? ` (${label(level)})` : ""}`;
    });
    // A publisher back at another resolution gets a new ladder: the renditions it dropped end while the
    // stream goes on. At the end of one, start over on the new master if it no longer lists it.
    hls.on(Hls.Events.BUFFER_EOS, async () => {
      if (!live) return;
      for (let check = 0; check < LADDER_CHECKS && state.hls === hls; check++) {
        if (check) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        if (state.hls === hls && (await dropped(hls, src))) {
          hls.destroy();
          start();
          return;
        }
      }
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
  // Low latency on or off: the same stream, played again from its live edge in the other mode.
  state.setLowLatency = (on) => {
    if (on === lowLatency || !state.hls) return;
    lowLatency = on;
    state.hls.destroy();
    start();
  };
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

// Whether the master at `src` no longer lists the level playing (false when it cannot tell).
async function dropped(hls, src) {
  const level = hls.levels[hls.currentLevel];
  const response = await fetch(src, { cache: "no-store" }).catch(() => null);
  if (!level || !response?.ok) return false;
  const uris = (await response.text())
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((uri) => new URL(uri, response.url).href);
  return !uris.includes(level.uri);
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
