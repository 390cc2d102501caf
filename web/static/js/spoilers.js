// Spoiler-free mode in the browser. A classic script loaded in <head> (not a module) so it runs
// before the page is drawn: the server renders results hidden only when the URL says so
// (?spoilers=hide&reveal=<match_id>...), and pages use no cookies, so this script makes the URL say
// what the viewer chose. The choice lives in localStorage ("hide"/"show"): set by the header's toggle,
// by a URL switch (a shared spoiler-free link), and, for a signed-in viewer, from their account
// setting (shell.js reads GET /api/v1/me/preferences and calls esportsSpoilers.adopt).
// Revealed matches are remembered here too, per browser: a reveal is a viewer's moment, not a fact
// worth an event on the log.
(() => {
  const MODE = "esports.spoilers";
  const REVEALED = "esports.revealed";
  const MAX_REVEALED = 50; // producers/spoilers.py MAX_REVEALED: the server keeps no more
  const ID = /^[A-Za-z0-9_-]{1,64}$/;

  const read = (key, fallback) => {
    try {
      return JSON.parse(localStorage.getItem(key) || "null") ?? fallback;
    } catch {
      return fallback;
    }
  };
  const mode = () => read(MODE, "show");
  const revealed = () => read(REVEALED, []).filter((id) => ID.test(id)).slice(-MAX_REVEALED);

  /** ``href`` (same-site) with the switch and the remembered reveals, or without either. */
  function switched(href, hide) {
    const url = new URL(href, location.href);
    url.searchParams.delete("spoilers");
    url.searchParams.delete("reveal");
    if (hide) {
      url.searchParams.set("spoilers", "hide");
      for (const id of revealed()) url.searchParams.append("reveal", id);
    }
    return url;
  }

  function remember(params) {
    const asked = params.get("spoilers");
    if (asked === "hide" || asked === "show") localStorage.setItem(MODE, JSON.stringify(asked));
    const ids = [...revealed()];
    for (const id of params.getAll("reveal")) if (ID.test(id) && !ids.includes(id)) ids.push(id);
    localStorage.setItem(REVEALED, JSON.stringify(ids.slice(-MAX_REVEALED)));
  }

  /** Load this page again if what it shows is not what the viewer chose. */
  function enforce() {
    const hide = mode() === "hide";
    const wanted = switched(location.href, hide);
    const here = new URL(location.href);
    const same = (a, b) => [...a.searchParams].sort().join("&") === [...b.searchParams].sort().join("&");
    if ((hide && !same(wanted, here)) || (!hide && here.searchParams.get("spoilers") === "hide")) {
      document.documentElement.style.visibility = "hidden"; // nothing of this render is drawn
      location.replace(wanted.href);
    }
  }

  function keepInLinks() {
    const hide = mode() === "hide";
    const toggle = document.getElementById("spoiler-toggle");
    if (toggle) {
      toggle.setAttribute("aria-pressed", String(hide));
      toggle.textContent = hide ? "Spoilers hidden" : "Hide spoilers";
      toggle.addEventListener("click", () => choose(hide ? "show" : "hide"));
    }
    if (!hide) return;
    for (const a of document.querySelectorAll('a[href^="/"]')) {
      const path = a.getAttribute("href");
      if (path.startsWith("/static/") || path.startsWith("/api/") || path.startsWith("//")) continue;
      const url = new URL(path, location.href);
      const reveals = url.searchParams.getAll("reveal"); // a "Reveal result" link keeps its own
      const kept = switched(url.href, true);
      for (const id of reveals) if (!kept.searchParams.getAll("reveal").includes(id)) kept.searchParams.append("reveal", id);
      a.setAttribute("href", kept.pathname + kept.search + kept.hash);
    }
    for (const form of document.querySelectorAll('form[method="get"]')) {
      const input = Object.assign(document.createElement("input"), { type: "hidden", name: "spoilers", value: "hide" });
      form.append(input);
    }
  }

  /** The viewer's choice from the header's toggle: remembered, sent to their account, page reloaded. */
  async function choose(next) {
    localStorage.setItem(MODE, JSON.stringify(next));
    const token = read("esports.session", {})?.access_token;
    if (token) {
      await fetch("/api/v1/me/preferences", {
        method: "PATCH",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
        body: JSON.stringify({ spoiler_free: next === "hide" }),
      }).catch(() => null);
    }
    location.assign(switched(location.href, next === "hide").href);
  }

  /** The signed-in viewer's account setting (from shell.js) wins over what this browser had. */
  function adopt(spoilerFree) {
    const next = spoilerFree ? "hide" : "show";
    if (mode() === next) return;
    localStorage.setItem(MODE, JSON.stringify(next));
    enforce();
  }

  remember(new URLSearchParams(location.search));
  enforce();
  window.esportsSpoilers = { adopt, mode };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", keepInLinks);
  else keepInLinks();
})();
