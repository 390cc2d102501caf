// The home page: viewer counts and stills refreshed while the page is open.
import "./shell.js";
import { api } from "./session.js";

const REFRESH_MS = 15_000;

for (const img of document.querySelectorAll("img[data-fallback]")) {
  img.addEventListener("error", () => (img.hidden = true)); // no still yet: the card's background shows
}

async function refresh() {
  const r = await api("/api/v1/streams/live?limit=24");
  if (!r.ok) return;
  for (const s of r.data.items) {
    const card = document.querySelector(`.card[data-stream-id="${CSS.escape(s.stream_id)}"]`);
    if (!card) continue;
    card.querySelector(".count").textContent = String(s.viewers);
    const img = card.querySelector("img");
    img.hidden = false;
    img.src = `${img.src.split("?")[0]}?t=${Date.now()}`;
  }
}
setInterval(refresh, REFRESH_MS);
