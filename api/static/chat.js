// Resident chat, at "/" (and, with ?embed=1, inside the city website's chat widget).
// Texts from the server are rendered with Madoguchi.markdown (DOM nodes only); what the
// resident typed is shown as plain text. Nothing is ever inserted as HTML.
(function () {
  "use strict";

  const POLL_MS = 3000;
  const POLL_PAGES = 10; // the server sends at most 100 messages per poll
  const KEEP_MESSAGES = 200; // how much of the conversation survives a reload
  const PAGE_MAX = 500; // the API's limit for "page"
  const SESSION_ID = /^[A-Za-z0-9_-]{8,64}$/;
  const KEYS = {
    session: "madoguchi-session",
    last: "madoguchi-last-message",
    log: "madoguchi-log",
  };
  const SPEAKER = { resident: "あなた", assistant: "市役所", staff: "職員", system: "お知らせ" };
  const TEXT = {
    working: "回答を作成しています…",
    forwarded: "職員にお伝えしました。返事はこの画面に表示されます。",
    restarted: "新しい会話を始めました。ご質問をどうぞ。",
    offline: "通信できませんでした。通信環境を確認して、もう一度送信してください。",
    preparing: "ただいま準備中です。しばらくしてからもう一度お試しください。",
    tooMany: "送信が続いたため、受け付けを一時的に止めています。しばらくしてからもう一度お試しください。",
    invalid: "送信できませんでした。1000文字以内で、内容を確認してもう一度お試しください。",
    failed: "送信できませんでした。時間をおいてもう一度お試しください。",
  };

  const embedded = new URLSearchParams(location.search).get("embed") === "1";
  if (embedded) document.documentElement.classList.add("embed");

  const ui = {
    log: document.getElementById("log"),
    form: document.getElementById("ask"),
    input: document.getElementById("message"),
    send: document.getElementById("send"),
    status: document.getElementById("status"),
    error: document.getElementById("error"),
    handoff: document.getElementById("handoff-state"),
    restart: document.getElementById("restart"),
    hint: document.getElementById("message-hint"),
    cityName: document.getElementById("city-name"),
    welcome: document.getElementById("welcome"),
    welcomeText: document.getElementById("welcome-text"),
    welcomeHours: document.getElementById("welcome-hours"),
    topicsBlock: document.getElementById("topics-block"),
    topics: document.getElementById("topics"),
  };

  // A phone or tablet: no Shift key to speak of, so Enter makes a new line (the 送信
  // button sends) and the keyboard hint is not shown.
  const touch = window.matchMedia("(hover: none) and (pointer: coarse)").matches;
  if (touch) {
    ui.hint.hidden = true;
    ui.input.setAttribute("aria-describedby", "privacy-note");
  }

  // The city's phone numbers (GET /api/chat/welcome), shown as tel: links in answers.
  let phones = [];

  // ---------------------------------------------------------------- state

  // sessionStorage can be unavailable (blocked storage in an embedded frame): the chat
  // then still works, it just forgets the conversation on reload.
  function storage(kind) {
    return {
      get(key) {
        try {
          return window[kind].getItem(key);
        } catch (error) {
          return null;
        }
      },
      set(key, value) {
        try {
          if (value === null) window[kind].removeItem(key);
          else window[kind].setItem(key, value);
        } catch (error) {
          // not kept; see above
        }
      },
    };
  }
  const store = storage("sessionStorage");
  // While a person has the conversation, a copy outlives the tab: the resident was told
  // they may close the page and come back for the reply. Dropped once staff are done.
  const kept = storage("localStorage");
  const KEPT_KEY = "madoguchi-waiting";
  const KEPT_MS = 7 * 24 * 3600 * 1000; // the server's conversation ids last a week

  const state = {
    sessionId: null,
    lastMessageId: 0,
    transcript: [], // [{role, text, buttons?, chosen?: title}], the log, kept for reloads
    paused: false, // a person has the conversation
    handoffs: 0, // handoff replies seen: a poll sent before the latest one cannot unpause
    busy: false, // a message is on its way
    polling: false, // a poll is on its way
    pollTimer: null,
    conversation: 0, // bumped by "new conversation": late answers to the old one are dropped
  };

  function loadState() {
    const waiting = store.get(KEYS.session) ? null : keptConversation();
    const id = waiting ? waiting.session : store.get(KEYS.session);
    state.sessionId = id && SESSION_ID.test(id) ? id : null;
    state.lastMessageId = Number(waiting ? waiting.last : store.get(KEYS.last)) || 0;
    try {
      const saved = waiting ? waiting.log : JSON.parse(store.get(KEYS.log) || "[]");
      state.transcript = Array.isArray(saved) ? saved.filter(isEntry) : [];
    } catch (error) {
      state.transcript = [];
    }
    for (const entry of state.transcript) entry.buttons = validButtons(entry.buttons);
  }

  function isEntry(entry) {
    return Boolean(entry) && typeof entry.text === "string" &&
      Object.keys(SPEAKER).includes(entry.role);
  }

  function validButtons(buttons) {
    if (!Array.isArray(buttons)) return null;
    const valid = buttons.filter(
      (b) => b && typeof b.title === "string" && typeof b.payload === "string");
    return valid.length ? valid : null;
  }

  function saveState() {
    store.set(KEYS.session, state.sessionId);
    store.set(KEYS.last, state.sessionId ? String(state.lastMessageId) : null);
    state.transcript = state.transcript.slice(-KEEP_MESSAGES);
    store.set(KEYS.log, state.transcript.length ? JSON.stringify(state.transcript) : null);
    const waiting = state.paused && state.sessionId;
    kept.set(KEPT_KEY, waiting ? JSON.stringify({
      session: state.sessionId,
      last: state.lastMessageId,
      log: state.transcript,
      at: Date.now(),
    }) : null);
  }

  // The conversation a person had when the page was last closed, if recent.
  function keptConversation() {
    try {
      const saved = JSON.parse(kept.get(KEPT_KEY) || "null");
      if (saved && typeof saved.session === "string" && Date.now() - saved.at < KEPT_MS) {
        return saved;
      }
    } catch (error) {
      // unreadable: start afresh
    }
    kept.set(KEPT_KEY, null);
    return null;
  }

  function adoptSession(sessionId) {
    if (!sessionId || sessionId === state.sessionId) return;
    // A session the server did not know is a new conversation: staff messages count anew.
    state.sessionId = sessionId;
    state.lastMessageId = 0;
    saveState();
  }

  // ---------------------------------------------------------------- render

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One message in the log; the entry is remembered unless told otherwise.
  function addMessage(entry, remember = true) {
    const item = el("li", "msg " + entry.role);
    item.append(el("span", "who", SPEAKER[entry.role]));
    const body = el("div", "body");
    if (entry.role === "resident") body.append(el("p", "plain", entry.text));
    else body.append(window.Madoguchi.markdown(entry.text, { phones }));
    item.append(body);
    if (entry.buttons) item.append(choices(entry));
    ui.log.append(item);
    ui.welcome.hidden = true;
    if (remember) {
      state.transcript.push(entry);
      saveState();
    }
    return item;
  }

  function removeMessage(item, entry) {
    item.remove();
    const index = state.transcript.indexOf(entry);
    if (index !== -1) state.transcript.splice(index, 1);
    saveState();
  }

  // Clarify and feedback choices. A click sends the payload, shown as its title; the
  // group is then disabled so the same choice cannot be sent twice.
  function choices(entry) {
    const group = el("div", "choices");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "選択肢");
    for (const choice of entry.buttons) {
      const button = el("button", "choice", choice.title);
      button.type = "button";
      if (entry.chosen === choice.title) button.classList.add("chosen");
      button.addEventListener("click", (event) => choose(event, entry, group, choice));
      group.append(button);
    }
    if (entry.chosen) setChoicesDisabled(group, true);
    return group;
  }

  function setChoicesDisabled(group, disabled) {
    group.setAttribute("aria-disabled", String(disabled));
    for (const button of group.querySelectorAll("button")) button.disabled = disabled;
  }

  async function choose(event, entry, group, choice) {
    if (state.busy || entry.chosen) return;
    const byKeyboard = event.detail === 0; // Enter/Space, not a pointer
    entry.chosen = choice.title;
    const button = event.currentTarget;
    button.classList.add("chosen");
    setChoicesDisabled(group, true);
    // The focused button is now disabled; keyboard users continue in the text box.
    if (byKeyboard) ui.input.focus();
    const sent = await send(choice.payload, choice.title);
    if (!sent && group.isConnected) {
      entry.chosen = null;
      button.classList.remove("chosen");
      setChoicesDisabled(group, false);
    }
    saveState();
  }

  // Scroll the page so the new messages show from their start, with the resident's
  // question above them when it fits: all of them and the form if there is room, else
  // the top of the first (the rest of a long answer follows on the page).
  function reveal(first, last) {
    const top = (element) => element.getBoundingClientRect().top + window.scrollY;
    const room = window.innerHeight;
    const question = first.previousElementSibling;
    let start = top(first);
    if (question && question.classList.contains("resident") &&
        !first.classList.contains("resident") && start - top(question) < room / 3) {
      start = top(question);
    }
    start -= 8; // the bubble's border clear of the window's edge
    const end = window.scrollY +
      Math.max(last.getBoundingClientRect().bottom, ui.form.getBoundingClientRect().bottom);
    window.scrollTo(0, Math.max(0, end - start <= room ? end - room : start));
  }

  function setStatus(text) {
    ui.status.textContent = text;
  }

  function showError(text) {
    ui.error.textContent = text;
  }

  function setBusy(busy) {
    state.busy = busy;
    ui.send.setAttribute("aria-disabled", String(busy));
  }

  // The banner while a person has (or is about to take) the conversation.
  function setPaused(paused) {
    // Staff are done: "職員にお伝えしました…" no longer holds (their notice says so).
    if (state.paused && !paused) setStatus("");
    state.paused = paused;
    ui.handoff.hidden = !paused;
    saveState();
    if (paused) schedulePoll();
    else stopPolling();
  }

  // ---------------------------------------------------------------- send

  class ChatError extends Error {}

  // Which page of the city website the resident is on (for the staff who may take over).
  function currentPage() {
    const page = embedded ? document.referrer : location.href;
    return page.slice(0, PAGE_MAX);
  }

  // POST /api/chat; the reply, or a ChatError with a message for the resident.
  async function postChat(message) {
    const body = { message, page: currentPage() };
    if (state.sessionId) body.session_id = state.sessionId;
    let response;
    try {
      response = await fetch("/api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      throw new ChatError(TEXT.offline);
    }
    const data = await response.json().catch(() => null);
    if (response.ok && data && Array.isArray(data.replies)) return data;
    throw new ChatError(errorText(response.status, data && data.detail));
  }

  function errorText(status, detail) {
    const sentence = typeof detail === "string" && detail ? detail : null;
    if (status === 429) return sentence || TEXT.tooMany;
    if (status === 503) return sentence || TEXT.preparing;
    if (status === 422) return TEXT.invalid;
    if (status >= 400 && status < 500 && sentence) return sentence;
    return TEXT.failed;
  }

  // Sends one message (typed, or a choice's payload shown as its title). True if the
  // server took it; on failure the resident's bubble is taken back and the error shown.
  async function send(message, shown) {
    await ready;
    if (state.busy) return false;
    const conversation = state.conversation;
    setBusy(true);
    setStatus(TEXT.working);
    showError("");
    const mine = { role: "resident", text: shown || message };
    const mineItem = addMessage(mine);
    reveal(mineItem, mineItem);
    let sent = false;
    let outcome = "";
    try {
      const data = await postChat(message);
      sent = true;
      if (conversation === state.conversation) {
        adoptSession(data.session_id);
        outcome = showReplies(data);
      }
    } catch (error) {
      if (conversation === state.conversation) {
        removeMessage(mineItem, mine);
        showError(error instanceof ChatError ? error.message : TEXT.failed);
      }
    }
    setBusy(false);
    // After "new conversation", the status says so; leave it.
    if (conversation === state.conversation) setStatus(outcome);
    return sent;
  }

  // Shows the assistant's replies; returns what the status line should say.
  function showReplies(data) {
    const items = data.replies
      .filter((reply) => reply && typeof reply.text === "string")
      .map((reply) => addMessage(
        { role: "assistant", text: reply.text, buttons: validButtons(reply.buttons) }));
    if (items.length) reveal(items[0], items[items.length - 1]);
    if (data.decision !== "handoff") return "";
    state.handoffs += 1;
    setPaused(true);
    // No replies: a person already has the conversation, and the message went to them.
    return items.length ? "" : TEXT.forwarded;
  }

  // ---------------------------------------------------------------- poll

  // Messages from staff (and notices) since the last one shown; whether a person still
  // has the conversation.
  async function poll() {
    state.pollTimer = null;
    // One poll at a time; the one on its way schedules the next.
    if (state.polling || !state.sessionId) return;
    state.polling = true;
    const conversation = state.conversation;
    const sessionId = state.sessionId;
    const handoffs = state.handoffs;
    let paused = state.paused;
    try {
      for (let page = 0; page < POLL_PAGES; page += 1) {
        // The id goes in a header, never in the URL (proxies keep URLs in their logs).
        const url = "/api/chat/messages?after=" + state.lastMessageId;
        const response = await fetch(url, {
          headers: { Accept: "application/json", "X-Conversation-Id": sessionId },
        });
        if (!response.ok) break; // try again on the next tick, if still paused
        const data = await response.json();
        if (conversation !== state.conversation) break;
        showPolled(data.messages || []);
        paused = Boolean(data.paused);
        if (!data.messages || data.messages.length < 100) break;
      }
    } catch (error) {
      // Network trouble: try again on the next tick, if still paused.
    } finally {
      state.polling = false;
    }
    if (conversation !== state.conversation) {
      // "New conversation" meanwhile: this answer is about the old one. A poll the new
      // conversation wanted meanwhile was skipped (one at a time), so schedule it.
      if (state.paused) schedulePoll();
      return;
    }
    // A handoff that arrived while this poll was on its way is newer than its answer.
    setPaused(paused || handoffs !== state.handoffs);
  }

  function showPolled(messages) {
    const items = [];
    for (const message of messages) {
      if ((message.role === "staff" || message.role === "system") &&
          typeof message.text === "string") {
        items.push(addMessage({ role: message.role, text: message.text }));
      }
      state.lastMessageId = Math.max(state.lastMessageId, Number(message.id) || 0);
    }
    saveState();
    if (items.length) reveal(items[0], items[items.length - 1]);
  }

  function schedulePoll() {
    if (!state.pollTimer) state.pollTimer = setTimeout(poll, POLL_MS);
  }

  function stopPolling() {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }

  // ---------------------------------------------------------------- welcome

  // The city's name, welcome, office hours and common topics (pressing one asks it).
  // Without them (the server cannot be reached) the page's own short intro stays.
  async function loadWelcome() {
    let data;
    try {
      const response = await fetch("/api/chat/welcome", {
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      data = await response.json();
    } catch (error) {
      return;
    }
    if (!data || typeof data.city !== "string") return;
    phones = Array.isArray(data.phones) ? data.phones.filter((p) => typeof p === "string") : [];
    const title = data.city + " お問い合わせチャット";
    document.title = title;
    ui.cityName.textContent = data.city + " ";
    if (embedded && window.parent !== window) {
      window.parent.postMessage({ madoguchi: "title", text: title }, "*");
    }
    if (data.welcome) ui.welcomeText.textContent = data.welcome;
    if (data.hours) {
      ui.welcomeHours.textContent = "職員がお答えする時間：" + data.hours + "。" +
        (data.closed ? data.closed + "はお休みです。" : "") +
        "自動のご案内はいつでもご利用いただけます。";
      ui.welcomeHours.hidden = false;
    }
    const topics = (Array.isArray(data.topics) ? data.topics : []).filter(
      (t) => t && typeof t.title === "string" && typeof t.question === "string");
    ui.topics.replaceChildren(...topics.map((topic) => {
      const button = el("button", "choice", topic.title);
      button.type = "button";
      button.addEventListener("click", () => send(topic.question));
      return button;
    }));
    ui.topicsBlock.hidden = topics.length === 0;
  }

  // ---------------------------------------------------------------- conversation

  function restore() {
    loadState();
    for (const entry of state.transcript) addMessage(entry, false);
    const items = ui.log.children;
    if (items.length) reveal(items[items.length - 1], items[items.length - 1]);
    if (state.sessionId) poll(); // a person may have the conversation, or have replied
  }

  function restart() {
    state.conversation += 1;
    state.sessionId = null;
    state.lastMessageId = 0;
    state.transcript = [];
    saveState();
    setPaused(false);
    ui.log.replaceChildren();
    ui.welcome.hidden = false;
    showError("");
    setStatus(TEXT.restarted);
    ui.input.focus();
  }

  // Control characters (other than line breaks and tabs) are refused by the server; a
  // paste can carry them invisibly.
  function cleanInput(text) {
    return text.replace(/[\u0000-\u0008\u000b-\u001f]/g, "").trim();
  }

  async function submitTyped() {
    const typed = ui.input.value;
    const message = cleanInput(typed);
    if (!message || state.busy) return;
    ui.input.value = "";
    ui.input.focus();
    const sent = await send(message);
    // Give the text back unless the resident has started typing something else.
    if (!sent && ui.input.value === "") ui.input.value = typed;
  }

  // ---------------------------------------------------------------- events

  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitTyped();
  });

  ui.input.addEventListener("keydown", (event) => {
    // Enter while an input method is composing confirms the conversion: never send then.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229 ||
        touch) {
      return;
    }
    event.preventDefault();
    submitTyped();
  });

  ui.restart.addEventListener("click", restart);

  if (embedded) {
    // Inside the widget: Esc closes the panel, and the widget may ask for the focus on
    // opening. Events in this frame do not reach the city page, hence the messages.
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.isComposing && window.parent !== window) {
        window.parent.postMessage({ madoguchi: "close" }, "*");
      }
    });
    window.addEventListener("message", (event) => {
      if (event.source === window.parent && event.data && event.data.madoguchi === "focus") {
        ui.input.focus();
      }
    });
  }

  // The phone numbers are known before the saved conversation is shown again.
  const ready = loadWelcome().then(restore);
})();
