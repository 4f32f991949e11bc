// Shared by the staff and editor consoles: who is logged in, API calls with the CSRF
// header, error messages in Japanese (the server words them: each error's `message`),
// small DOM helpers. Text is only ever inserted as text (textContent / text nodes),
// never as HTML.
(function () {
  "use strict";
  let me = null;

  class ApiError extends Error {
    // `data`: the response body: `code`, `params` and the Japanese `message` of the
    // error, and `problems` (each with `field` or `loc`, and its `message`) when the
    // input failed its checks.
    constructor(status, detail, data) {
      super(typeof detail === "string" ? detail : "入力内容を確認してください。");
      this.status = status;
      this.detail = detail; // a string, or a list of field problems
      this.code = (data && data.code) || null;
      this.params = (data && data.params) || {};
      this.problems = problemsOf(detail, data);
    }
  }

  function problemsOf(detail, data) {
    if (data && Array.isArray(data.problems)) return data.problems;
    if (!Array.isArray(detail)) return [];
    return detail.map((p) => ({ field: p.field, loc: p.loc, message: String(p.msg) }));
  }

  // Who is logged in; goes to the login page if nobody is, and says so if the role is
  // too small for this page.
  async function requireLogin(role) {
    const response = await fetch("/api/auth/me", { credentials: "same-origin" });
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new ApiError(401, "ログインしてください。");
    }
    me = await response.json();
    const rank = { staff: 1, editor: 2, admin: 3 };
    if (role && !(rank[me.role] >= rank[role])) {
      throw new ApiError(403, "このページを使う権限がありません。");
    }
    return me;
  }

  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && me) headers["X-CSRF-Token"] = me.csrf_token;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "サーバーに接続できませんでした。通信環境を確認してください。");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    if (!response.ok) {
      const detail = data && data.detail !== undefined ? data.detail : response.statusText;
      throw new ApiError(response.status, messageFor(response.status, detail, data), data);
    }
    return data;
  }

  function messageFor(status, detail, data) {
    if (Array.isArray(detail)) return detail; // field problems: the page shows them by field
    if (data && typeof data.message === "string") return data.message;
    if (status === 403) return "この操作を行う権限がありません。（" + detail + "）";
    if (status === 429) return "操作が多すぎます。しばらく待ってからもう一度お試しください。";
    if (status >= 500) return "サーバーでエラーが起きました。時間をおいてもう一度お試しください。";
    return String(detail);
  }

  // A message in a status element; errors are switched to role=alert so they are read
  // out. The same message again is emptied first, so it is announced again.
  function say(node, text, isError) {
    node.setAttribute("role", isError ? "alert" : "status");
    node.classList.toggle("error", Boolean(isError));
    clearTimeout(node.madoguchiSay);
    if (text && node.textContent === text) {
      node.textContent = "";
      node.madoguchiSay = setTimeout(() => { node.textContent = text; }, 50);
    } else {
      node.textContent = text || "";
    }
  }

  // What went wrong, in Japanese: the server's message; for input problems, each one
  // after its field's name (`fieldNames`), or the general message without them.
  function errorText(error, fieldNames, unexpected) {
    if (!(error instanceof ApiError)) return unexpected || "予期しないエラーが起きました。";
    if (!fieldNames || !error.problems.length) return error.message;
    return error.problems.map((problem) => {
      const loc = Array.isArray(problem.loc) ? problem.loc : [];
      const field = problem.field || loc[loc.length - 1] || "";
      return (fieldNames[field] || field || "入力") + "：" + problem.message;
    }).join(" ");
  }

  // el("p", {className: "x"}, "text", child, ...): an element with text children.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key in node && !key.includes("-")) node[key] = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // "3分", "1時間5分", "2日": how long something has waited.
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "秒";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "分";
    const h = Math.floor(m / 60);
    if (h < 24) return h + "時間" + (m % 60 ? (m % 60) + "分" : "");
    return Math.floor(h / 24) + "日";
  }

  // ISO time → "11月27日 14:05" in Japan time.
  function when(iso) {
    if (!iso) return "";
    const date = new Date(typeof iso === "number" ? iso * 1000 : iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString("ja-JP", {
      timeZone: "Asia/Tokyo",
      month: "long",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  // A plain mark beside a raw score or confidence (0–1), for readers who do not weigh
  // decimals: the number stays for those who do.
  function strength(value) {
    if (typeof value !== "number" || Number.isNaN(value)) return "";
    if (value >= 0.9) return "高";
    if (value >= 0.5) return "中";
    return "低";
  }

  function scoreText(value, digits) {
    const mark = strength(value);
    return mark ? mark + "（" + value.toFixed(digits) + "）" : "—";
  }

  // What NLU took a resident's message to be, in staff words (never the intent's name).
  const INTENT_LABELS = {
    greet: "挨拶",
    goodbye: "終わりの挨拶",
    thanks: "お礼",
    affirm: "肯定（はい）",
    deny: "否定（いいえ）",
    bot_challenge: "自動応答かどうかの確認",
    inquiry: "問い合わせ",
    request_human: "職員希望",
    out_of_scope: "対象外の話題",
    choose_entry: "候補の選択",
    none_of_these: "候補に該当なし",
    feedback_positive: "解決した（評価）",
    feedback_negative: "解決しなかった（評価）",
    nlu_fallback: "解釈できず",
  };

  function intentLabel(name) {
    return INTENT_LABELS[name] || "その他";
  }

  async function logout() {
    await api("POST", "/api/auth/logout");
    location.href = "/login";
  }

  // The header's "user (role) / log out" part, in an element with id "who".
  function showUser(user) {
    const who = document.getElementById("who");
    if (!who) return;
    const roleName = { staff: "職員", editor: "編集者", admin: "管理者" }[user.role] || user.role;
    who.replaceChildren(
      el("span", {}, (user.display_name || user.name) + "（" + roleName + "）"),
      " ",
      el("button", { type: "button", className: "link", onclick: logout }, "ログアウト"),
    );
  }

  window.Madoguchi = Object.assign(window.Madoguchi || {}, {
    ApiError,
    api,
    el,
    duration,
    errorText,
    intentLabel,
    say,
    scoreText,
    strength,
    when,
    logout,
    requireLogin,
    showUser,
    user: () => me,
  });
})();
