// Resident chat. Every text is inserted with textContent: nothing typed by a resident
// or an editor can become markup.
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("message");
  const status = document.getElementById("status");
  let sessionId = sessionStorage.getItem("madoguchi-session") || null;
  let lastMessageId = Number(sessionStorage.getItem("madoguchi-last-message") || 0);
  let polling = null;
  const WHO = { resident: "あなた", staff: "職員", system: "お知らせ" };

  function add(role, text, buttons) {
    const item = document.createElement("li");
    item.className = "msg " + role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = WHO[role] || "市役所";
    const body = document.createElement("p");
    body.textContent = text;
    item.append(who, body);
    if (buttons && buttons.length) {
      const group = document.createElement("div");
      group.className = "choices";
      group.setAttribute("role", "group");
      group.setAttribute("aria-label", "選択肢");
      for (const b of buttons) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = b.title;
        button.addEventListener("click", () => send(b.payload, b.title));
        group.append(button);
      }
      item.append(group);
    }
    log.append(item);
    item.scrollIntoView({ block: "end" });
  }

  async function send(message, shown) {
    add("resident", shown || message);
    status.textContent = "回答を作成しています…";
    try {
      const response = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(
          Object.assign({ message, page: document.referrer || location.href },
            sessionId ? { session_id: sessionId } : {})),
      });
      const data = await response.json();
      if (!response.ok) {
        const detail = typeof data.detail === "string" ? data.detail : "入力内容を確認してください。";
        add("assistant", detail);
        return;
      }
      sessionId = data.session_id;
      sessionStorage.setItem("madoguchi-session", sessionId);
      for (const reply of data.replies) add("assistant", reply.text, reply.buttons);
      if (data.decision === "handoff") {
        status.textContent = "担当の職員に引き継ぎました。職員からの返事はこの画面に表示されます。";
        startPolling();
      } else status.textContent = "";
    } catch (error) {
      add("assistant", "通信できませんでした。時間をおいてもう一度お試しください。");
      status.textContent = "";
    }
  }

  // While a person has the conversation, their replies arrive without reloading.
  async function poll() {
    if (!sessionId) return;
    try {
      const response = await fetch(
        "/api/chat/" + encodeURIComponent(sessionId) + "/messages?after=" + lastMessageId);
      if (!response.ok) return;
      const data = await response.json();
      for (const message of data.messages) {
        add(message.role, message.text);
        lastMessageId = message.id;
        sessionStorage.setItem("madoguchi-last-message", String(lastMessageId));
      }
      if (data.paused) startPolling();
      else if (polling) {
        clearInterval(polling);
        polling = null;
        status.textContent = "";
      }
    } catch (error) {
      // Network trouble: try again on the next tick.
    }
  }

  function startPolling() {
    if (!polling) polling = setInterval(poll, 3000);
  }

  if (sessionId) poll();

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = input.value.trim();
    if (!message) return;
    input.value = "";
    send(message);
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
