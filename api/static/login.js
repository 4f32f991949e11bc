// Login page. Sends the name and password to /api/auth/login and, on success, goes back
// to the page that sent us here (`next`, same site only) or to the console for the role.
// Standalone on purpose: it runs before there is a session for console.js to work with.
(function () {
  "use strict";
  const form = document.getElementById("login-form");
  const nameInput = document.getElementById("name");
  const passwordInput = document.getElementById("password");
  const errorBox = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  const ROLE_NAMES = { staff: "職員", editor: "編集者", admin: "管理者" };
  let busy = false;

  // `next` only if it is a path on this site: "/staff" yes; "//evil.example",
  // "/\evil.example", "https://…" or anything with control characters, no.
  function safeNext() {
    const raw = new URLSearchParams(location.search).get("next");
    if (!raw || raw[0] !== "/" || raw[1] === "/" || /[\\\u0000-\u001f\u007f]/.test(raw)) return null;
    try {
      const url = new URL(raw, location.origin);
      if (url.origin !== location.origin || url.pathname === "/login") return null;
      return url.pathname + url.search + url.hash;
    } catch (error) {
      return null;
    }
  }

  function homeFor(role) {
    return role === "editor" || role === "admin" ? "/editor" : "/staff";
  }

  function showError(text) {
    errorBox.textContent = text;
  }

  // The message for a failed login: the server's own sentence when it gives one.
  async function failureText(response) {
    let detail = null;
    try {
      const data = await response.json();
      if (data && typeof data.detail === "string") detail = data.detail;
    } catch (error) {
      detail = null;
    }
    if (response.status === 401) return detail || "ユーザー名またはパスワードが違います。";
    if (response.status === 429) {
      const seconds = Number(response.headers.get("Retry-After"));
      const wait = Number.isFinite(seconds) && seconds > 0
        ? "約" + Math.ceil(seconds / 60) + "分後にもう一度お試しください。"
        : "しばらく待ってからもう一度お試しください。";
      return (detail || "ログインの失敗が続いたため、一時的にログインできません。") + wait;
    }
    if (response.status === 422) return "ユーザー名とパスワードを入力してください。";
    if (response.status >= 500) return "サーバーでエラーが起きました。時間をおいてもう一度お試しください。";
    return detail || "ログインできませんでした。";
  }

  async function login(event) {
    event.preventDefault();
    if (busy) return;
    const name = nameInput.value.trim();
    const password = passwordInput.value;
    nameInput.removeAttribute("aria-invalid");
    passwordInput.removeAttribute("aria-invalid");
    if (!name || !password) {
      const missing = !name ? nameInput : passwordInput;
      missing.setAttribute("aria-invalid", "true");
      showError("ユーザー名とパスワードを入力してください。");
      missing.focus();
      return;
    }
    busy = true;
    submit.setAttribute("aria-busy", "true");
    showError("");
    try {
      const response = await fetch("/api/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ name, password }),
      });
      if (response.ok) {
        const user = await response.json();
        location.assign(safeNext() || homeFor(user.role));
        return;
      }
      showError(await failureText(response));
      if (response.status === 401) {
        passwordInput.value = "";
        passwordInput.setAttribute("aria-invalid", "true");
        passwordInput.focus();
      }
    } catch (error) {
      showError("サーバーに接続できませんでした。通信環境を確認してください。");
    } finally {
      busy = false;
      submit.removeAttribute("aria-busy");
    }
  }

  // Already logged in: who, and the way to the consoles (the form stays for switching
  // to another user).
  async function showSession() {
    let user;
    try {
      const response = await fetch("/api/auth/me", { credentials: "same-origin" });
      if (!response.ok) return;
      user = await response.json();
    } catch (error) {
      return; // no server answer: the form is all there is to show
    }
    const role = ROLE_NAMES[user.role] || user.role;
    document.getElementById("signed-in-who").textContent =
      (user.display_name || user.name) + "（" + role + "）としてログインしています。";
    document.getElementById("editor-link-item").hidden = homeFor(user.role) !== "/editor";
    const next = safeNext();
    if (next) document.getElementById("next-link").href = next;
    document.getElementById("next-link-item").hidden = !next;
    document.getElementById("logout").onclick = () => logout(user.csrf_token);
    document.getElementById("signed-in").hidden = false;
    document.getElementById("form-heading").hidden = false;
  }

  async function logout(csrfToken) {
    let ok = false;
    try {
      const response = await fetch("/api/auth/logout", {
        method: "POST",
        headers: { "X-CSRF-Token": csrfToken },
        credentials: "same-origin",
      });
      ok = response.ok;
    } catch (error) {
      ok = false;
    }
    if (!ok) {
      showError("ログアウトできませんでした。ページを再読み込みしてもう一度お試しください。");
      return;
    }
    document.getElementById("signed-in").hidden = true;
    document.getElementById("form-heading").hidden = true;
    nameInput.focus();
  }

  form.addEventListener("submit", login);
  showSession();
})();
