// The poll panel: `poll` frames from the edge carry the tally; the question and options come from
// GET /api/v1/polls/{id} the first time a poll id is seen. Votes go through the edge (`vote`).
import { api, el } from "./session.js";

export class PollView {
  constructor(section, { vote }) {
    this.section = section;
    this.vote = vote;
    this.polls = new Map(); // poll id -> {question, options} (or a Promise while fetching)
    this.current = null;
    this.mine = new Map(); // poll id -> option index I voted
  }

  async describe(id) {
    if (!this.polls.has(id)) {
      this.polls.set(
        id,
        (async () => {
          // The read model may lag the tally by a moment: retry a few times before giving up.
          for (let attempt = 0; attempt < 6; attempt += 1) {
            const r = await api(`/api/v1/polls/${encodeURIComponent(id)}`);
            if (r.ok) return r.data;
            await new Promise((resolve) => setTimeout(resolve, 300 * (attempt + 1)));
          }
          this.polls.delete(id); // ask again with the next frame
          return null;
        })(),
      );
    }
    return this.polls.get(id);
  }

  /** A listing item of GET /streams/{id}/polls (question, options, counts, total, status, final). */
  async show(item) {
    this.polls.set(item.poll_id, Promise.resolve(item));
    await this.apply({ poll: item.poll_id, counts: item.counts, total: item.total, final: item.final || item.status === "closed" });
  }

  async apply(m) {
    const known = await this.describe(m.poll);
    // Without the question yet, still show the live tally under neutral labels.
    const poll = known || { question: "Poll", options: (m.counts || []).map((_c, i) => `Option ${i + 1}`) };
    if (this.current && this.current.id !== m.poll && this.current.final === false && m.final) return;
    this.current = { id: m.poll, final: m.final };
    this.render(m.poll, poll, m.counts || [], m.total || 0, m.final);
  }

  render(id, poll, counts, total, final) {
    this.section.hidden = false;
    this.section.dataset.poll = id;
    this.section.querySelector("#poll-question").textContent = final ? `${poll.question} (final)` : poll.question;
    const list = this.section.querySelector("#poll-options");
    list.replaceChildren(
      ...poll.options.map((option, i) => {
        const li = el("li");
        const button = el("button", undefined, "option");
        button.type = "button";
        button.disabled = Boolean(final);
        button.setAttribute("aria-pressed", String(this.mine.get(id) === i));
        const share = total ? Math.round((100 * (counts[i] || 0)) / total) : 0;
        const bar = el("span", undefined, "bar");
        bar.style.width = `${share}%`;
        button.append(bar, el("span", option, "label"), el("span", `${counts[i] || 0} · ${share}%`, "tally"));
        button.dataset.count = String(counts[i] || 0);
        button.addEventListener("click", async () => {
          const answer = await this.vote(id, i);
          if (answer.type === "ack") {
            this.mine.set(id, i);
            list.querySelectorAll("button").forEach((b, j) => b.setAttribute("aria-pressed", String(j === i)));
          }
        });
        li.append(button);
        return li;
      }),
    );
    this.section.querySelector("#poll-total").textContent = `${total} vote${total === 1 ? "" : "s"}`;
    this.section.dataset.total = String(total);
  }
}
