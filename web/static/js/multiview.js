// A match's streams side by side: one player each (quality chosen by size), one with sound at a time.
import "./shell.js";
import { attachPlayer } from "./player.js";

const tiles = [...document.querySelectorAll(".tile")];
for (const tile of tiles) {
  const video = tile.querySelector("video");
  attachPlayer(video, tile.dataset.hls, { live: true, lowLatency: true });
  tile.querySelector(".unmute").addEventListener("click", () => {
    for (const other of tiles) other.querySelector("video").muted = other !== tile;
    video.muted = false;
  });
}
