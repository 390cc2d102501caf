// The prediction card of the stream page: live odds from the edge's `prediction` frames (status, pools
// and stakers per outcome: edge_ws/PROTOCOL.md, "Predictions"); the title, outcomes and lock time come
// from GET /api/v1/predictions/{id} once per prediction (the stream's newest from
// GET /api/v1/streams/{id}/predictions?limit=1 when the page loads). A signed-in viewer sees their
// points and stakes with POST /api/v1/predictions/{id}/stakes; the channel's owner and moderators open,
// lock, resolve and cancel predictions over the API too. Nothing goes through the edge but the odds.
//
// The winner is a result ("Who wins map 3?" answered), so no `prediction` frame carries it: it comes in
// a `prediction_result` frame, which the edge sends only to a page that does not hide its match's
// result, and from the API, which hides it in spoiler-free mode (every read here sends the page's
// choice as `spoilers=hide|show`). On a page that hides it (main[data-result-hidden]), *Show the
// winner* asks the API with `spoilers=show`. Pools, percentages and payout ratios are odds, not
// results, and are always shown.
import { api, el } from "./session.js";

const ACTIVE = new Set(["open", "locked"]);
const BALANCE_EVERY_MS = 5 * 60_000; // watching earns points: keep the shown balance roughly current

/** "1:2.35": what one point staked on an outcome pays back if it wins (pot / the outcome's pool). */
export function payoutRatio(total, pool) {
  return pool > 0 ? `1:${(total / pool).toFixed(2)}` : "1:–";
}

/** Whole percent of the pot on each outcome. */
export function shares(pools) {
  const total = pools.reduce((a, b) => a + b, 0);
  return pools.map((pool) => (total ? Math.round((100 * pool) / total) : 0));
}

/** "1:05", "12:00": what is left before the lock. */
export function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function moment(value) {
  if (value === null || value === undefined || value === "") return 0;
  if (typeof value === "number") return value < 1e12 ? value * 1000 : value;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? 0 : parsed;
}

/** A prediction of the API (its listing item or its own view) in the page's shape. */
export function described(item) {
  const outcomes = (item.outcomes || []).map((o) => (typeof o === "string" ? o : o.title ?? o.name ?? o.label ?? ""));
  const live = {
    status: item.status || "open",
    pools: item.pools || (item.outcomes || []).map((o) => o.pool ?? 0),
    stakers: item.stakers || (item.outcomes || []).map((o) => o.stakers ?? 0),
    winning_outcome: item.winning_outcome ?? null,
    settled: Boolean(item.settled),
  };
  if (live.winning_outcome !== null && live.winning_outcome < 0) live.winning_outcome = null;
  return {
    id: item.prediction_id ?? item.id,
    title: item.title || "Prediction",
    outcomes,
    locksAt: moment(item.locks_at),
    openedAt: moment(item.opened_at ?? item.created_at) || moment(item.locks_at),
    live,
    mine: item.my_stake || null, // the caller's stake (a token was sent): {outcome, amount, payout, refunded}
  };
}

export class PredictionView {
  constructor(section, admin, { streamId, signedIn, canManage, resultHidden }) {
    this.section = section;
    this.admin = admin;
    this.streamId = streamId;
    this.signedIn = signedIn;
    this.canManage = canManage;
    this.resultHidden = resultHidden;
    this.revealed = new Set(); // predictions whose winner this viewer chose to see
    this.spoilers = resultHidden ? "spoilers=hide" : "spoilers=show"; // the page's choice, for the API
    this.results = new Map(); // id -> winning outcome (`prediction_result` frames)
    this.known = new Map(); // id -> Promise<described prediction | null>
    this.frames = new Map(); // id -> the latest `prediction` frame
    this.current = null; // the described prediction shown
    this.balance = null;
    this.entries = []; // the viewer's latest ledger entries (GET /me/points)
    this.$ = (id) => section.ownerDocument.getElementById(id);
    this.limits = JSON.parse(section.dataset.limits || "{}");
    this.timer = setInterval(() => this.#tick(), 1000);
    this.#wire();
  }

  /** On page load: the stream's newest prediction, the viewer's points, the streamer's tools. */
  async start() {
    if (this.canManage) this.admin.hidden = false;
    if (this.signedIn) {
      this.refreshBalance();
      setInterval(() => this.refreshBalance(), BALANCE_EVERY_MS);
    }
    const newest = `/api/v1/streams/${encodeURIComponent(this.streamId)}/predictions?limit=1&${this.spoilers}`;
    const r = await api(newest, { auth: this.signedIn });
    const item = r.ok ? (r.data?.items || [])[0] : null;
    if (item) {
      const prediction = described(item);
      if (!this.known.has(prediction.id)) this.known.set(prediction.id, Promise.resolve(prediction));
      await this.#consider(prediction);
    }
    this.render();
  }

  /** A `prediction_result` frame of the edge (never sent to a page that hides results). */
  applyResult(m) {
    this.results.set(m.prediction, m.winning_outcome);
    if (this.current?.id === m.prediction) this.render();
  }

  /** A `prediction` frame of the edge. */
  async apply(m) {
    const before = this.frames.get(m.prediction);
    if (before && offset(before.pos) > offset(m.pos)) return; // a subscribe's snapshot behind a delta
    this.frames.set(m.prediction, m);
    if (this.current?.id === m.prediction) {
      this.render();
      const wasSettled = before?.settled ?? this.current.live.settled;
      if (m.settled && !wasSettled) this.#settledSoon(Math.random() * 3000); // not every viewer at once
      return;
    }
    // A newer prediction than the one shown starts open; older ones (a subscribe sends the latest of
    // each the node has read) are not worth a request each while one is running.
    const shown = this.current && this.state().status;
    if (ACTIVE.has(shown) && m.status !== "open") return;
    const prediction = await this.#describe(m.prediction);
    if (prediction) await this.#consider(prediction);
  }

  async refreshBalance() {
    if (!this.signedIn) return null;
    const r = await api("/api/v1/me/points", { auth: true });
    if (!r.ok) return null;
    this.balance = r.data.balance;
    this.entries = r.data.entries || [];
    this.$("points-balance").textContent = String(this.balance);
    this.section.dataset.balance = String(this.balance);
    return r.data;
  }

  // --- which prediction is shown ------------------------------------------------------------------

  async #consider(prediction) {
    if (!this.current || this.current.id === prediction.id || prediction.openedAt > this.current.openedAt) {
      this.current = prediction;
      this.render();
    }
  }

  #describe(id) {
    if (!this.known.has(id)) {
      this.known.set(
        id,
        (async () => {
          // The read model may be a moment behind the odds: retry a few times before giving up.
          for (let attempt = 0; attempt < 6; attempt += 1) {
            const r = await api(`/api/v1/predictions/${encodeURIComponent(id)}?${this.spoilers}`, {
              auth: this.signedIn,
            });
            if (r.ok) return described(r.data);
            await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
          }
          this.known.delete(id); // ask again with the next frame
          return null;
        })(),
      );
    }
    return this.known.get(id);
  }

  /** The shown prediction's state: its latest frame over what the API said, and its winner. */
  state() {
    return merged(this.current, this.frames.get(this.current.id), this.results.get(this.current.id));
  }

  // --- drawing --------------------------------------------------------------------------------------

  render() {
    this.#renderAdmin();
    const p = this.current;
    if (!p) return;
    const s = this.state();
    const total = s.pools.reduce((a, b) => a + b, 0);
    const percent = shares(s.pools);
    const winnerHidden = s.status === "resolved" && this.resultHidden && !this.revealed.has(p.id);
    this.section.hidden = false;
    Object.assign(this.section.dataset, { prediction: p.id, status: s.status, total: String(total) });
    this.$("prediction-title").textContent = p.title;
    this.$("prediction-outcomes").replaceChildren(
      ...p.outcomes.map((outcome, i) => {
        const li = el("li", undefined, "outcome");
        const won = s.status === "resolved" && s.winning_outcome === i && !winnerHidden;
        if (won) li.classList.add("winner");
        const bar = el("span", undefined, "bar");
        bar.style.width = `${percent[i]}%`;
        const people = `${s.stakers[i]} ${s.stakers[i] === 1 ? "viewer" : "viewers"}`;
        li.append(
          bar,
          el("span", won ? `${outcome} ✓` : outcome, "label"),
          el("span", `${percent[i]}% · ${s.pools[i]} pts · ${payoutRatio(total, s.pools[i])} · ${people}`, "odds"),
        );
        Object.assign(li.dataset, {
          pool: String(s.pools[i]),
          stakers: String(s.stakers[i]),
          ratio: payoutRatio(total, s.pools[i]),
        });
        return li;
      }),
    );
    this.$("prediction-pot").textContent = `${total} points in the pot`;
    this.$("prediction-reveal").hidden = !winnerHidden;
    this.#renderStatus();
    this.#renderStakeForm(s);
  }

  #renderStatus() {
    const p = this.current;
    const s = this.state();
    let text;
    if (s.status === "open") {
      const left = p.locksAt - Date.now();
      text = p.locksAt && left > 0 ? `Stakes close in ${countdown(left)}` : "Closing stakes…";
    } else if (s.status === "locked") text = "Locked: no more stakes. Waiting for the result.";
    else if (s.status === "resolved") {
      const hidden = this.resultHidden && !this.revealed.has(p.id);
      const winner = p.outcomes[s.winning_outcome] ?? "?";
      text = hidden ? "Resolved (winner hidden: spoiler-free mode)" : `Result: ${winner} won`;
      if (!hidden) text += s.settled ? " · winners paid out" : " · paying out…";
    } else if (s.status === "cancelled") text = s.settled ? "Cancelled · every stake refunded" : "Cancelled · refunding…";
    else text = s.status;
    this.$("prediction-status").textContent = text;
  }

  #renderStakeForm(s) {
    const form = this.$("stake-form");
    const open = s.status === "open" && (!this.current.locksAt || this.current.locksAt > Date.now());
    form.hidden = !this.signedIn || !open;
    if (!this.signedIn) this.$("stake-status").textContent = open ? "Sign in to stake your channel points." : "";
    const select = this.$("stake-outcome");
    const names = this.current.outcomes;
    if (select.dataset.prediction !== this.current.id) {
      select.replaceChildren(...names.map((name, i) => Object.assign(el("option", name), { value: String(i) })));
      select.dataset.prediction = this.current.id;
    }
    const mine = this.current.mine;
    if (mine) {
      // A viewer backs one outcome per prediction; a second stake adds to the first.
      select.value = String(mine.outcome);
      select.disabled = true;
      const hidden = this.resultHidden && !this.revealed.has(this.current.id);
      this.$("stake-status").textContent = myStakeText(mine, names[mine.outcome], s, hidden);
    } else select.disabled = false;
    // No cap at the balance shown here: it may be stale, and the API's refusal says what is wrong.
  }

  #renderAdmin() {
    if (!this.canManage) return;
    const p = this.current;
    const s = p ? this.state() : null;
    const active = Boolean(s && ACTIVE.has(s.status));
    this.$("prediction-open-form").hidden = active;
    this.$("prediction-manage").hidden = !active;
    if (!active) return;
    this.$("prediction-lock").disabled = s.status !== "open";
    const winner = this.$("prediction-winner");
    if (winner.dataset.prediction !== p.id) {
      winner.replaceChildren(...p.outcomes.map((name, i) => Object.assign(el("option", name), { value: String(i) })));
      winner.dataset.prediction = p.id;
    }
  }

  #tick() {
    if (!this.current) return;
    const s = this.state();
    if (s.status !== "open") return;
    this.#renderStatus();
    if (this.current.locksAt && this.current.locksAt <= Date.now()) this.#renderStakeForm(s);
  }

  /** Paid out or refunded: the viewer's balance and, if they staked, what their stake brought. */
  #settledSoon(delayMs) {
    const p = this.current;
    setTimeout(async () => {
      await this.refreshBalance();
      if (!p.mine) return;
      const spoilers = this.revealed.has(p.id) ? "spoilers=show" : this.spoilers;
      const r = await api(`/api/v1/predictions/${encodeURIComponent(p.id)}?${spoilers}`, { auth: true });
      if (r.ok && r.data.my_stake) p.mine = r.data.my_stake;
      if (this.current === p) this.render();
    }, delayMs);
  }

  /** *Show the winner*: the API's view without spoiler-free mode (the winner, the caller's payout). */
  async #reveal() {
    const p = this.current;
    if (!p) return;
    this.revealed.add(p.id);
    const url = `/api/v1/predictions/${encodeURIComponent(p.id)}?spoilers=show`;
    const r = await api(url, { auth: this.signedIn });
    if (r.ok) {
      const shown = described(r.data);
      p.live.winning_outcome = shown.live.winning_outcome;
      if (shown.mine) p.mine = shown.mine;
    }
    if (this.current === p) this.render();
  }

  // --- commands -------------------------------------------------------------------------------------

  #wire() {
    this.$("prediction-reveal").addEventListener("click", () => this.#reveal());
    this.$("stake-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#stake();
    });
    this.$("prediction-open-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.#open();
    });
    this.$("prediction-lock").addEventListener("click", () => this.#command("lock"));
    this.$("prediction-resolve").addEventListener("click", () =>
      this.#command("resolve", { outcome: Number(this.$("prediction-winner").value) }),
    );
    this.$("prediction-cancel").addEventListener("click", () => this.#command("cancel"));
  }

  async #stake() {
    const error = this.$("stake-error");
    const status = this.$("stake-status");
    const outcome = Number(this.$("stake-outcome").value);
    const amount = Number(this.$("stake-amount").value);
    error.textContent = "";
    status.textContent = "";
    if (!Number.isInteger(amount) || amount < 1) {
      error.textContent = "Stake a whole number of points, at least 1.";
      return;
    }
    const p = this.current;
    const button = this.$("stake-submit");
    button.disabled = true;
    const known = new Set((this.entries || []).map((e) => e.event_id)); // the ledger's answer is a new entry
    const r = await api(`/api/v1/predictions/${encodeURIComponent(p.id)}/stakes`, {
      method: "POST",
      auth: true,
      body: { outcome, amount },
    });
    button.disabled = false;
    if (!r.ok) {
      error.textContent = problem(r, r.status === 401 ? "Sign in to stake points." : "The stake was refused.");
      return;
    }
    this.$("stake-amount").value = "";
    status.textContent = `Staking ${amount} points on ${p.outcomes[outcome]}…`;
    await this.#ledgerAnswer(p, outcome, amount, known);
  }

  /** The ledger takes the stake or refuses it (its balance is the authority): its entry tells which. */
  async #ledgerAnswer(p, outcome, amount, known) {
    for (let attempt = 0; attempt < 10; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500 * Math.min(attempt + 1, 4)));
      const data = await this.refreshBalance();
      const entry = (data?.entries || []).find(
        (e) => e.prediction_id === p.id && !known.has(e.event_id) && (e.kind === "stake" || e.kind === "refused"),
      );
      if (!entry) continue;
      if (entry.kind === "refused") {
        this.$("stake-status").textContent = "";
        this.$("stake-error").textContent = `Refused: ${entry.reason}`;
        return;
      }
      const before = p.mine?.amount || 0;
      p.mine = { ...(p.mine || {}), outcome, amount: before + amount, payout: null, refunded: false };
      this.render();
      return;
    }
    this.$("stake-status").textContent = `Staked ${amount} points on ${p.outcomes[outcome]}; your balance will follow.`;
  }

  async #open() {
    const error = this.$("prediction-admin-error");
    error.textContent = "";
    const outcomes = this.$("prediction-new-outcomes")
      .value.split("\n")
      .map((o) => o.trim())
      .filter(Boolean);
    const { min_outcomes: least = 2, max_outcomes: most = 10 } = this.limits;
    if (outcomes.length < least || outcomes.length > most) {
      error.textContent = `Give ${least} to ${most} outcomes, one per line.`;
      return;
    }
    const body = {
      title: this.$("prediction-new-title").value.trim(),
      outcomes,
      window_s: Number(this.$("prediction-new-window").value),
    };
    const r = await api(`/api/v1/streams/${encodeURIComponent(this.streamId)}/predictions`, {
      method: "POST",
      auth: true,
      body,
    });
    if (!r.ok) {
      error.textContent = problem(r, "The prediction could not be opened.");
      return;
    }
    this.$("prediction-open-form").reset();
    // Shown from the API at once (the odds follow on the edge), read after the command's position.
    const id = r.data?.prediction_id;
    const position = r.data?.position;
    if (!id) return;
    const shown = await api(`/api/v1/predictions/${encodeURIComponent(id)}?${this.spoilers}`, {
      auth: true,
      headers: position ? { "X-Min-Position": position } : {},
    });
    if (shown.ok) {
      const prediction = described(shown.data);
      this.known.set(id, Promise.resolve(prediction));
      await this.#consider(prediction);
    }
  }

  async #command(action, body) {
    const error = this.$("prediction-admin-error");
    error.textContent = "";
    if (!this.current) return;
    if (action === "cancel" && !window.confirm("Cancel this prediction and refund every stake?")) return;
    const r = await api(`/api/v1/predictions/${encodeURIComponent(this.current.id)}/${action}`, {
      method: "POST",
      auth: true,
      body,
    });
    if (!r.ok) error.textContent = problem(r, `Could not ${action} the prediction.`);
  }
}

/** The problem+json `detail` of a refusal (what the viewer should read), or a fallback sentence. */
function problem(r, fallback) {
  if (r.status === 0) return "No connection to the server; try again.";
  const detail = r.data?.detail;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail) && detail[0]?.msg) return detail[0].msg; // a 422's field errors
  return r.data?.title || fallback;
}

/** A prediction's state to draw: its latest `prediction` frame (if any) over what the API said, with
 * the winner from a `prediction_result` frame (else the API's); pools and stakers fit its outcomes. */
export function merged(p, frame, winner) {
  const live = { ...p.live, ...(frame || {}) };
  if (winner !== undefined && winner !== null) live.winning_outcome = winner;
  const count = p.outcomes.length;
  const fit = (list) => Array.from({ length: count }, (_v, i) => Number(list?.[i] || 0));
  return { ...live, pools: fit(live.pools), stakers: fit(live.stakers) };
}

function myStakeText(mine, name, s, winnerHidden) {
  const staked = `Your stake: ${mine.amount} points on ${name}`;
  if (s.status === "cancelled" || mine.refunded) return `${staked} (refunded)`;
  if (s.status !== "resolved" || winnerHidden) return staked;
  if (s.winning_outcome !== mine.outcome) return `${staked} (lost)`;
  return mine.payout === null || mine.payout === undefined ? `${staked} (won: paying out…)` : `${staked} (won ${mine.payout})`;
}

function offset(pos) {
  return Number(String(pos || "0:-1").split(":")[1]);
}
