// Sign in and register: tokens from the API are kept in localStorage (see session.js).
import "./shell.js";
import { api, saveSession } from "./session.js";

const error = document.getElementById("form-error");
const next = new URLSearchParams(location.search).get("next");
const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";

async function login(username, password) {
  const r = await api("/api/v1/auth/login", { method: "POST", body: { username, password } });
  if (!r.ok) {
    error.textContent = r.status === 429 ? "Too many attempts; wait a minute." : "Wrong username or password.";
    return;
  }
  saveSession(r.data);
  location.assign(target);
}

document.getElementById("login-form")?.addEventListener("submit", (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  login(form.get("username"), form.get("password"));
});

document.getElementById("register-form")?.addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  const body = { username: form.get("username"), password: form.get("password") };
  if (form.get("display_name")) body.display_name = form.get("display_name");
  const r = await api("/api/v1/auth/register", { method: "POST", body });
  if (!r.ok) {
    const field = r.data?.errors?.[0];
    error.textContent = r.status === 409 ? "That username is taken." : field?.msg || r.data?.detail || "Could not register.";
    return;
  }
  login(body.username, body.password);
});
