"use strict";
// Sign-in: the form's CSRF token comes from a cookie set by GET /login, read back through the API (the cookie is
// HttpOnly) and sent as a header, which a cross-site form cannot do.
document.getElementById("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    const csrf = await fetch("/api/login/csrf", {credentials: "same-origin"}).then((r) => r.json());
    const answer = await fetch("/api/login", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf.csrf || ""},
      body: JSON.stringify({username: document.getElementById("login-name").value,
                            password: document.getElementById("login-password").value}),
    });
    if (answer.ok) { window.location.assign("/"); return; }
    const body = await answer.json().catch(() => ({}));
    error.textContent = (body.error && body.error.message) || `sign-in failed (${answer.status})`;
  } catch (e) {
    error.textContent = "the dashboard cannot be reached; try again";
  }
});
