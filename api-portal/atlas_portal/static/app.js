// ATLAS portal UI: talks to the portal's JSON API with the login token kept in sessionStorage (gone when
// the tab closes). Everything user-provided is inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const apiUrl = document.body.dataset.apiUrl;
let token = sessionStorage.getItem("atlas-token");
let models = [];

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  if (response.status === 401 && path !== "/api/auth/login") { logout(); throw new Error("session expired"); }
  if (response.status === 204) return null;
  const data = await response.json();
  if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
  return data;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.className = className; b.addEventListener("click", onClick);
  return b;
}

async function loadKeys() {
  const keys = await api("GET", "/api/keys");
  const body = $("keys").tBodies[0];
  body.replaceChildren();
  for (const key of keys) {
    const row = body.insertRow();
    row.dataset.keyId = key.id;
    row.className = key.is_active ? "" : "inactive";
    cell(row, key.name); cell(row, `${key.prefix}…`); cell(row, key.user_id);
    cell(row, key.rate_limit || "∞"); cell(row, key.tokens_per_min || "∞"); cell(row, key.max_concurrent || "∞");
    cell(row, key.expires_at ? key.expires_at.slice(0, 10) : "never");
    cell(row, key.is_active ? "active" : "revoked", "status");
    const actions = row.insertCell();
    actions.append(
      button(key.is_active ? "Revoke" : "Enable", "secondary toggle", async () => {
        await api("PATCH", `/api/keys/${key.id}/toggle`); await loadKeys();
      }),
      " ",
      button("Delete", "danger delete", async () => {
        if (confirm(`Delete key "${key.name}"? Clients using it stop working at once.`)) {
          await api("DELETE", `/api/keys/${key.id}`); await loadKeys();
        }
      }),
    );
  }
}

async function loadUsage() {
  const usage = await api("GET", "/api/usage?days=30");
  $("usage-total").textContent =
    `${usage.requests} requests, ${usage.prompt_tokens} prompt and ${usage.completion_tokens} completion tokens.`;
  const body = $("usage").tBodies[0];
  body.replaceChildren();
  for (const r of usage.rows) {
    const row = body.insertRow();
    cell(row, r.day);
    namedCell(row, r.username, "user", r.user_id);
    namedCell(row, r.key_name, "key", r.key_id);
    for (const v of [r.model, r.requests, r.errors, r.prompt_tokens, r.completion_tokens]) cell(row, v);
  }
}

// A user's or key's name, its id in the tooltip. A deleted one has no name any more, but its usage still
// counts: it shows the id, greyed.
function namedCell(row, name, kind, id) {
  const gone = name === null || name === undefined;
  const td = cell(row, gone ? `(deleted ${kind} ${id})` : name, gone ? "inactive" : "");
  td.title = `${kind} id ${id}`;
  return td;
}

function renderOpenCode() {
  // OpenCode offers every listed model as a chat model: leave out the embedding model, and the models an admin
  // hid (which the proxy does not serve).
  const entries = {};
  for (const m of models.filter((model) => model.chat && !model.hidden)) {
    entries[m.id] = { name: m.route === "rag" ? `${m.id} (verified by ATLAS)` : m.id };
  }
  const config = {
    $schema: "https://opencode.ai/config.json",
    provider: {
      atlas: {
        npm: "@ai-sdk/openai-compatible",
        name: "ATLAS",
        options: { baseURL: apiUrl, apiKey: "{env:ATLAS_API_KEY}" },
        models: entries,
      },
    },
  };
  $("opencode-config").value = JSON.stringify(config, null, 2);
}

async function copy(text, status) {
  try { await navigator.clipboard.writeText(text); }
  catch { const area = $("opencode-config"); area.select(); document.execCommand("copy"); }
  if (status) { status.textContent = "copied"; setTimeout(() => { status.textContent = ""; }, 2000); }
}

async function showApp() {
  const me = await api("GET", "/api/auth/me");
  $("who").textContent = `${me.username}${me.is_admin ? " (admin)" : ""}`;
  $("login-view").hidden = true; $("app-view").hidden = false; $("logout").hidden = false;
  models = await api("GET", "/api/models");
  renderOpenCode();
  await Promise.all([loadKeys(), loadUsage()]);
}

function logout() {
  // End the session on the server too, so the token stops working even if it was copied somewhere.
  if (token) fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  token = null; sessionStorage.removeItem("atlas-token");
  $("login-view").hidden = false; $("app-view").hidden = true; $("logout").hidden = true; $("who").textContent = "";
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const login = $("login-name").value.trim();
  const body = login.includes("@") ? { email: login } : { username: login };
  body.password = $("login-password").value;
  try {
    const result = await api("POST", "/api/auth/login", body);
    token = result.access_token; sessionStorage.setItem("atlas-token", token);
    $("login-password").value = "";
    await showApp();
  } catch (error) { $("login-error").textContent = error.message; }
});

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("key-error").textContent = "";
  const body = { name: $("key-name").value.trim() };
  if ($("key-rpm").value !== "") body.rate_limit = Number($("key-rpm").value);
  if ($("key-days").value !== "") body.expires_days = Number($("key-days").value);
  try {
    const created = await api("POST", "/api/keys", body);
    $("new-key-value").textContent = created.key; $("new-key").hidden = false; $("key-name").value = "";
    await loadKeys();
  } catch (error) { $("key-error").textContent = error.message; }
});

$("copy-key").addEventListener("click", () => copy($("new-key-value").textContent, null));
$("copy-opencode").addEventListener("click", () => copy($("opencode-config").value, $("copy-status")));
$("logout").addEventListener("click", () => logout());

if (token) showApp().catch(logout);
