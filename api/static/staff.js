// Staff console: answer lookup (what the chat would say), this month's changes, and the
// handoff inbox with its ticket detail. Four parts, each a function below; start() at the
// end wires them together. All data is inserted as text (Madoguchi.el / textContent) or,
// for answer texts, through Madoguchi.markdown.
(function () {
  "use strict";
  const M = window.Madoguchi;
  const el = M.el;
  const $ = (id) => document.getElementById(id);

  const REASONS = {
    requested_human: "職員との会話を希望",
    none_of_these: "候補に該当なし",
    negative_feedback: "回答で解決しなかった",
    two_failed_turns: "回答できなかった質問",
    assistant_error: "システム不具合",
    stale_choice: "古い選択肢",
    choice_unavailable: "選ばれた回答が公開停止",
  };
  const reasonLabel = (reason) => REASONS[reason] || "その他";
  const SPEAKERS = { resident: "住民", assistant: "自動応答", staff: "職員" };
  const CHANGE_KINDS = { published: "公開", takes_effect: "適用開始" };
  const EMPTY_VIEWS = {
    new: "新着の問い合わせはありません。",
    mine: "担当中の問い合わせはありません。",
    resolved: "対応済みの問い合わせはありません。",
  };
  const FIELD_NAMES = { title: "タイトル", question: "住民の質問", questions: "質問",
    answer: "回答案", text: "返信", note: "対応メモ", entry_id: "答えた項目" };
  const REFRESH_MS = 10000;
  const SEARCH_DELAY_MS = 250;

  // ---- small helpers -------------------------------------------------------------

  // "2025-04-01" → "2025年4月1日". Dates carry no time of day, so Madoguchi.when (which
  // formats instants) does not fit them.
  function formatDate(ymd, withYear = true) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(ymd || "");
    if (!m) return String(ymd || "");
    const day = Number(m[2]) + "月" + Number(m[3]) + "日";
    return withYear ? Number(m[1]) + "年" + day : day;
  }

  function formatMonth(ym) {
    const m = /^(\d{4})-(\d{2})$/.exec(ym || "");
    return m ? Number(m[1]) + "年" + Number(m[2]) + "月" : String(ym || "");
  }

  // At most `max` characters (not UTF-16 units), on one line, "…" when cut.
  function truncate(text, max) {
    const chars = Array.from(String(text || "").replace(/\s+/g, " ").trim());
    return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : chars.join("");
  }

  // Only http(s), mailto and tel addresses become links.
  function safeHref(url) {
    try {
      const parsed = new URL(String(url));
      return ["http:", "https:", "mailto:", "tel:"].includes(parsed.protocol) ? parsed.href : null;
    } catch (error) {
      return null;
    }
  }

  function externalLink(url, text) {
    const href = safeHref(url);
    if (!href) return url ? String(url) : null;
    const outside = href.startsWith("http");
    return el("a", { href, target: outside ? "_blank" : null, rel: outside ? "noopener noreferrer" : null },
      text || String(url), outside && el("span", { className: "visually-hidden" }, "（新しいタブで開きます）"));
  }

  function renderAnswer(text) {
    return M.markdown ? M.markdown(text) : document.createTextNode(String(text || ""));
  }

  // The server masks personal numbers in what staff send (the reply reaches the
  // resident, the note stays in the ticket): say so, naming what was masked.
  function sentText(done, result) {
    const masked = result && Array.isArray(result.masked) ? result.masked : [];
    if (!masked.length) return done;
    return done + "。ご注意：" + masked.join("・") + "が含まれていたため、［" + masked[0] +
      "］のように伏せて保存しました。個人の番号はチャットに書かないでください。";
  }

  const errorText = (error) => M.errorText(error, FIELD_NAMES);
  const say = M.say;

  // Clipboard API where allowed; otherwise the old way, through a selected textarea.
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch (error) {
        // permission refused: fall through to the textarea
      }
    }
    const buffer = el("textarea", { className: "copy-buffer", readOnly: true, tabIndex: -1, "aria-hidden": "true" });
    buffer.value = text;
    document.body.append(buffer);
    buffer.select();
    buffer.setSelectionRange(0, text.length);
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    buffer.remove();
    return copied;
  }

  // A person on a ticket by their display name (the server's names), never a login name
  // such as cli:operator.
  function who(ticket, actor) {
    return (ticket && ticket.names && ticket.names[actor]) || (actor === (M.user() || {}).name
      ? M.user().display_name || actor : actor);
  }

  function isTicket(value) {
    return Boolean(value && value.id !== undefined && Array.isArray(value.transcript));
  }

  // ---- answer lookup ---------------------------------------------------------------

  function createLookup() {
    const form = $("lookup");
    const q = $("q");
    const asOf = $("as-of");
    const summary = $("summary");
    const results = $("results");
    let timer = null;
    let lastKey = null; // question + date of the latest search started
    let latest = 0; // number of the latest search: only its answer may be shown

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(search, SEARCH_DELAY_MS);
    }

    function searchNow() {
      clearTimeout(timer);
      search();
    }

    async function search() {
      const text = q.value.trim();
      const key = text + "\n" + asOf.value;
      if (key === lastKey) return; // same question, same date: what is shown stands
      lastKey = key;
      const mine = ++latest;
      if (!text) {
        results.replaceChildren();
        results.removeAttribute("aria-busy");
        summary.textContent = "";
        return;
      }
      const params = new URLSearchParams({ q: text, k: "5" });
      if (asOf.value) params.set("as_of", asOf.value);
      results.setAttribute("aria-busy", "true");
      try {
        const data = await M.api("GET", "/api/answers?" + params);
        if (mine !== latest) return; // a newer search is on its way
        summary.textContent = summaryText(data);
        results.replaceChildren(...data.results.map((r, i) => resultCard(r, badgeFor(data.decision, i))));
      } catch (error) {
        if (mine !== latest) return;
        lastKey = null; // the same search may be tried again
        summary.textContent = "検索できませんでした。" + errorText(error);
        results.replaceChildren();
      } finally {
        if (mine === latest) results.removeAttribute("aria-busy");
      }
    }

    function summaryText(data) {
      const texts = {
        answer: "チャットはこの回答を返します",
        clarify: "チャットは次の候補から選んでもらいます（上位3件）",
        handoff: "チャットでは職員に引き継がれる質問です（近い候補）",
      };
      let text = texts[data.decision] || "チャットの判定：" + data.decision;
      if (typeof data.confidence === "number") text += "　確信度 " + M.scoreText(data.confidence, 2);
      if (!data.results.length) text += "。該当する回答はありません。";
      return text;
    }

    // What the chat does with this result: its answer, or one of the offered choices.
    function badgeFor(decision, index) {
      if (decision === "answer" && index === 0) return "チャットの回答";
      if (decision === "clarify" && index < 3) return "チャットの候補";
      return null;
    }

    function resultCard(r, badge) {
      const copyStatus = el("span", { className: "copy-status", role: "status" });
      const copy = el("button", { type: "button", className: "copy secondary" }, "回答文をコピー");
      copy.addEventListener("click", async () => {
        const copied = await copyText(r.answer);
        copy.focus(); // the fallback moved the focus to its textarea
        say(copyStatus, copied ? "コピーしました" : "コピーできませんでした。回答文を選択してコピーしてください。");
      });
      return el("article", { className: "result", dataset: { entryId: r.entry_id, revision: String(r.revision) } },
        el("h3", {}, r.title, badge && el("span", { className: "badge" }, badge)),
        el("p", { className: "entry-ref" }, r.entry_id + "・第" + r.revision + "版"),
        el("div", { className: "answer" }, renderAnswer(r.answer)),
        el("p", { className: "copy-row" }, copy, copyStatus),
        facts(r));
    }

    function facts(r) {
      const documents = (r.documents || []).length
        ? el("ul", { className: "documents" }, r.documents.map((d) => el("li", {}, d)))
        : null;
      const notes = r.staff_notes
        ? [el("span", { className: "internal-label" }, "住民には伝えない内部メモ"), el("span", {}, r.staff_notes)]
        : null;
      const rows = [
        ["担当課", r.department],
        ["連絡先", r.contact],
        ["持ち物", documents],
        ["手数料", r.fees],
        ["有効期間", validity(r.valid_from, r.valid_until)],
        ["職員メモ", notes, "staff-notes"],
        ["出典", externalLink(r.source_url)],
        ["一致度", el("small", {}, M.scoreText(Number(r.score), 3))],
      ];
      return el("dl", { className: "facts" }, rows
        .filter(([, value]) => value !== null && value !== undefined && value !== "")
        .map(([term, value, className]) => el("div", { className }, el("dt", {}, term), el("dd", {}, value))));
    }

    function validity(from, until) {
      if (!from && !until) return "期限なし";
      return (from ? formatDate(from) : "") + "〜" + (until ? formatDate(until) : "");
    }

    // A title picked elsewhere (changes, ticket candidates) is looked up right away.
    function searchFor(text) {
      q.value = text;
      searchNow();
      q.focus();
    }

    // Typing Japanese goes through the IME: search once a word is committed, not on
    // every intermediate kana.
    q.addEventListener("input", (event) => { if (!event.isComposing) schedule(); });
    q.addEventListener("compositionend", schedule);
    asOf.addEventListener("change", searchNow);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      searchNow();
    });
    if (q.value.trim()) searchNow(); // typed before the page was ready
    return { searchFor };
  }

  // ---- this month's changes -----------------------------------------------------------

  function createChanges(onPick) {
    const list = $("changes");
    const month = $("changes-month");
    const note = $("changes-note");
    let latest = 0;

    async function load() {
      const value = month.value.trim();
      if (value && !/^\d{4}-\d{2}$/.test(value)) {
        note.textContent = "月は「2025-04」の形で入力してください。";
        return;
      }
      const mine = ++latest;
      try {
        const data = await M.api("GET", "/api/changes" + (value ? "?month=" + encodeURIComponent(value) : ""));
        if (mine !== latest) return;
        if (!month.value) month.value = data.month;
        // A bulk import (the starter entries, say) is one line, opened on demand: it
        // would otherwise bury the month's real changes.
        const edited = data.changes.filter((c) => !c.imported);
        const imported = data.changes.filter((c) => c.imported);
        list.replaceChildren(...edited.map(changeItem), ...(imported.length ? [importedItem(imported)] : []));
        note.textContent = formatMonth(data.month) + (data.changes.length
          ? "の変更：" + edited.length + "件" + (imported.length ? "（ほかに一括取り込み " + imported.length + "件）" : "")
          : "の変更はありません。");
      } catch (error) {
        if (mine !== latest) return;
        note.textContent = "変更の一覧を読み込めませんでした。" + errorText(error);
      }
    }

    function changeItem(c) {
      return el("li", { className: "change" + (c.upcoming ? " upcoming" : ""),
        dataset: { entryId: c.entry_id, revision: String(c.revision) } },
        el("p", { className: "change-meta" },
          el("time", { dateTime: c.date }, formatDate(c.date, false)),
          el("span", { className: "kind" }, CHANGE_KINDS[c.kind] || c.kind),
          c.upcoming && el("span", { className: "badge upcoming" }, "予定")),
        el("button", { type: "button", className: "link change-title", onclick: () => onPick(c.title) }, c.title),
        c.department && el("p", { className: "department" }, c.department));
    }

    function importedItem(changes) {
      return el("li", { className: "change imported" },
        el("details", {},
          el("summary", {}, "一括取り込み（" + changes.length + "件）"),
          el("ul", { className: "changes" }, changes.map(changeItem))));
    }

    month.addEventListener("change", load);
    return { load };
  }

  // ---- handoff inbox --------------------------------------------------------------------

  function createInbox(ticket) {
    const list = $("tickets");
    const empty = $("tickets-empty");
    const status = $("inbox-status");
    const tabs = Array.from(document.querySelectorAll("#inbox-views [data-view]"));
    const views = tabs.map((tab) => tab.dataset.view);
    const items = new Map(); // ticket id → its <li>, kept across refreshes so focus stays put
    let view = "new";
    let latest = 0;

    async function refresh() {
      const mine = ++latest;
      try {
        // One call per view, so every tab shows its count.
        const pages = await Promise.all(views.map((v) => M.api("GET", "/api/tickets?view=" + v)));
        if (mine !== latest) return;
        pages.forEach((page, i) => {
          const count = typeof page.count === "number" ? page.count : page.data.length;
          tabs[i].querySelector(".count").textContent = "（" + count + "）";
        });
        render(pages[views.indexOf(view)].data);
        if (status.textContent) status.textContent = "";
      } catch (error) {
        if (mine !== latest) return;
        status.textContent = "受付の一覧を更新できませんでした。" + errorText(error);
      }
    }

    // Updates the list in place: existing items are reused and only moved when the order
    // changed, so a refresh neither steals the focus nor jumps the page.
    function render(tickets) {
      const focused = list.contains(document.activeElement) ? document.activeElement.closest("li") : null;
      const keep = new Set();
      tickets.forEach((t, index) => {
        const id = String(t.id);
        keep.add(id);
        let item = items.get(id);
        if (!item) {
          item = el("li", { dataset: { ticketId: id } },
            el("button", { type: "button", className: "open-ticket", onclick: () => ticket.open(t.id) }));
          items.set(id, item);
        }
        fillButton(item.firstChild, t);
        if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
      });
      for (const [id, item] of items) {
        if (!keep.has(id)) {
          item.remove();
          items.delete(id);
        }
      }
      if (focused && focused.isConnected && !focused.contains(document.activeElement)) {
        focused.firstChild.focus({ preventScroll: true });
      }
      markCurrent(ticket.currentId());
      empty.hidden = tickets.length > 0;
      empty.textContent = EMPTY_VIEWS[view];
    }

    function fillButton(button, t) {
      const when = t.status === "resolved"
        ? "対応済み " + M.when(t.resolved_at)
        : M.duration(t.waiting_s || 0) + "待ち";
      const parts = [
        reasonLabel(t.reason),
        // The question that failed, chosen by the server (knowledge.inquiries).
        truncate(t.question || "", 60) || "（具体的なご質問はありません）",
        when + (t.claimed_by ? "・担当：" + who(t, t.claimed_by) : "・未担当"),
      ];
      const signature = parts.join("\n");
      if (button.dataset.signature === signature) return; // nothing new to read out
      button.dataset.signature = signature;
      button.replaceChildren(
        el("span", { className: "ticket-reason" }, parts[0]),
        el("span", { className: "ticket-question" }, parts[1]),
        el("span", { className: "ticket-meta" }, parts[2]));
    }

    function markCurrent(id) {
      for (const [key, item] of items) {
        if (id !== null && key === String(id)) item.firstChild.setAttribute("aria-current", "true");
        else item.firstChild.removeAttribute("aria-current");
      }
    }

    function select(next) {
      view = next;
      for (const tab of tabs) tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
      items.clear();
      list.replaceChildren();
      empty.hidden = true;
      refresh();
    }

    // Back to the ticket's button when its detail closes (or to the heading if it left
    // this view).
    function focusTicket(id) {
      const item = items.get(String(id));
      if (item) item.firstChild.focus();
      else $("inbox-heading").focus();
    }

    // Refresh while the page is visible; a tab in the background waits for its return.
    function startPolling(onTick) {
      const tick = () => {
        if (document.hidden) return;
        refresh();
        onTick();
      };
      setInterval(tick, REFRESH_MS);
      document.addEventListener("visibilitychange", tick);
    }

    for (const tab of tabs) tab.addEventListener("click", () => select(tab.dataset.view));
    return { refresh, markCurrent, focusTicket, startPolling };
  }

  // ---- which entry answered (part of the resolve form) ---------------------------------

  const SEARCH_OTHER = "search"; // the radio that opens the lookup
  const NO_ENTRY = "none";

  // The resolve form's 「住民の質問に答えた項目」: one of the ticket's candidates, any
  // entry found with the staff lookup, or none (the default). The chosen entry gets the
  // resident's question (as staff edited it) as a suggested wording for the editors.
  function createAnswered() {
    const options = $("answered-options");
    const search = $("answered-search");
    const q = $("answered-q");
    const found = $("answered-found");
    const searchStatus = $("answered-search-status");
    const wording = $("answered-wording");
    const question = $("answered-question");
    let ticketId = null;
    const titles = new Map(); // entry id → title, of the candidates and the entries found
    let shownCandidates = null; // JSON of the candidates the radios were built from
    let latest = 0;

    function radio(name, value, label, extra) {
      const id = "answered-" + name + "-" + String(value).replace(/[^a-z0-9-]/gi, "_");
      return el("div", { className: "choice" },
        el("input", { type: "radio", name: "answered-" + name, id, value }),
        el("label", { htmlFor: id }, label, extra ? [" ", extra] : []));
    }

    function checkedValue(name) {
      const input = document.querySelector("input[name='answered-" + name + "']:checked");
      return input ? input.value : null;
    }

    function check(name, value) {
      for (const input of document.querySelectorAll("input[name='answered-" + name + "']")) {
        input.checked = input.value === value;
      }
    }

    // A different ticket: its candidates, nothing chosen, its question as the wording
    // and as the search (a ticket from 「人と話したい」 has no candidates: one Enter
    // searches with the resident's words; tabbing in selects them to type over).
    function reset(t) {
      ticketId = String(t.id);
      shownCandidates = null;
      fill(t);
      check("entry", NO_ENTRY);
      question.value = String(t.question || "").trim();
      q.value = question.value;
      found.replaceChildren();
      say(searchStatus, "");
      update();
    }

    // The same ticket refreshed: the radios are rebuilt only when its candidates
    // changed, and keep what was chosen.
    function fill(t) {
      const candidates = (t.candidates || []).filter((c) => c.entry_id);
      for (const c of candidates) if (c.title) titles.set(c.entry_id, c.title);
      const signature = JSON.stringify(candidates.map((c) => [c.entry_id, c.title]));
      if (signature === shownCandidates) return;
      shownCandidates = signature;
      const chosen = checkedValue("entry");
      options.replaceChildren(
        ...candidates.map((c) => radio("entry", c.entry_id, c.title || c.entry_id,
          el("small", {}, "（候補）"))),
        radio("entry", SEARCH_OTHER, "ほかの項目を検索"),
        radio("entry", NO_ENTRY, "該当する項目なし"));
      check("entry", chosen || NO_ENTRY);
    }

    function show(t) {
      if (ticketId !== String(t.id)) reset(t);
      else fill(t);
    }

    // The chosen entry's id, or null.
    function chosenEntry() {
      const value = checkedValue("entry");
      if (value === SEARCH_OTHER) return checkedValue("found");
      return value && value !== NO_ENTRY ? value : null;
    }

    function update() {
      search.hidden = checkedValue("entry") !== SEARCH_OTHER;
      wording.hidden = chosenEntry() === null;
    }

    async function lookup() {
      const text = q.value.trim();
      if (!text) {
        say(searchStatus, "検索する言葉を入力してください。", true);
        q.focus();
        return;
      }
      const mine = ++latest;
      found.setAttribute("aria-busy", "true");
      say(searchStatus, "検索しています…");
      try {
        const data = await M.api("GET", "/api/answers?" + new URLSearchParams({ q: text, k: "5" }));
        if (mine !== latest) return;
        for (const r of data.results) titles.set(r.entry_id, r.title);
        found.replaceChildren(...data.results.map((r) => radio("found", r.entry_id, r.title,
          el("small", {}, r.department || ""))));
        say(searchStatus, data.results.length
          ? data.results.length + "件見つかりました。答えた項目を選んでください。"
          : "該当する項目が見つかりませんでした。");
        update();
      } catch (error) {
        if (mine === latest) say(searchStatus, "検索できませんでした。" + errorText(error), true);
      } finally {
        if (mine === latest) found.removeAttribute("aria-busy");
      }
    }

    // What the resolve request adds, or a reason it cannot be sent yet (focus moved
    // to what needs fixing).
    function body() {
      const entryId = chosenEntry();
      if (checkedValue("entry") === SEARCH_OTHER && entryId === null) {
        (found.querySelector("input") || q).focus();
        return { problem: "検索して答えた項目を選ぶか、「該当する項目なし」を選んでください。" };
      }
      if (entryId === null) return {}; // nothing answered it: no suggestion
      const text = question.value.trim();
      if (!text) {
        question.focus();
        return { problem: "候補として送る言い回しを入力してください（送らないときは「該当する項目なし」を選んでください）。" };
      }
      return { entry_id: entryId, question: text };
    }

    options.addEventListener("change", update);
    found.addEventListener("change", update);
    $("answered-search-run").addEventListener("click", lookup);
    // Enter in the search box searches; it must not resolve the ticket.
    q.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        lookup();
      }
    });
    // An entry by its title where one was seen (candidates and entries found).
    function titleOf(entryId) {
      return titles.get(entryId) || entryId;
    }

    return { show, reset, body, titleOf };
  }

  // ---- ticket detail --------------------------------------------------------------------

  // hooks: changed() after any action, opened(id), closed(id), lookup(title).
  function createTicket(me, hooks) {
    const section = $("ticket");
    const heading = $("ticket-heading");
    const meta = $("ticket-meta");
    const error = $("ticket-error");
    const status = $("ticket-status");
    const transcript = $("transcript");
    const candidates = $("candidates");
    const claim = $("claim");
    const replyForm = $("reply-form");
    const replyText = $("reply-text");
    const replyStatus = $("reply-status");
    const resolveForm = $("resolve-form");
    const resolveNote = $("resolve-note");
    const answered = createAnswered();
    const propose = $("propose");
    const proposeForm = $("propose-form");
    const proposeResult = $("propose-result");
    const isEditor = me.role === "editor" || me.role === "admin";
    const drafts = new Map(); // unsent replies per ticket, kept when switching tickets
    let current = null; // the ticket shown
    const signatures = new WeakMap(); // part of the detail → the data it was built from
    let busy = false; // an action is running: refreshes wait, a second click is ignored
    let opening = 0; // number of the latest ticket asked for: only it may open

    const url = (action) => "/api/tickets/" + encodeURIComponent(current.id) + (action ? "/" + action : "");

    async function open(id) {
      const mine = ++opening;
      try {
        const t = await M.api("GET", "/api/tickets/" + encodeURIComponent(id));
        if (mine !== opening) return;
        if (!current || String(current.id) !== String(t.id)) switchTo(t);
        show(t);
        section.hidden = false;
        hooks.opened(t.id);
        heading.focus();
      } catch (err) {
        if (mine !== opening) return;
        $("inbox-status").textContent = "問い合わせを開けませんでした。" + errorText(err);
      }
    }

    // A different ticket: its own reply draft, fresh messages and a closed proposal form.
    function switchTo(t) {
      if (current) drafts.set(String(current.id), replyText.value);
      replyText.value = drafts.get(String(t.id)) || "";
      resolveNote.value = "";
      answered.reset(t);
      for (const region of [error, status, replyStatus, proposeResult]) region.textContent = "";
      closeProposal();
    }

    // Fills the detail from a ticket. Never touches what is being typed (the reply, the
    // note, the proposal), so a refresh while typing loses nothing.
    function show(t) {
      current = t;
      heading.textContent = "問い合わせ：" + reasonLabel(t.reason);
      refill(meta, [t.id, t.reason, t.page, t.created_at, t.status, t.claimed_by, t.resolved_by,
        t.resolved_at, t.note, t.answered_entry, t.answered_title], () => metaRows(t));
      refill(transcript, t.transcript || [], () => (t.transcript || []).map(turnItem));
      refill(candidates, t.candidates || [], () => candidateItems(t.candidates || []));
      answered.show(t);
      const resolved = t.status === "resolved";
      claim.hidden = resolved || t.claimed_by === me.name;
      // A ticket resolved meanwhile (by someone else) takes its forms away; the focus
      // must not vanish with them.
      if (resolved && (replyForm.contains(document.activeElement) || resolveForm.contains(document.activeElement))) {
        heading.focus({ preventScroll: true });
      }
      replyForm.hidden = resolved;
      resolveForm.hidden = resolved;
    }

    // Rebuilds a part only when its data changed, so a refresh leaves a focused link or
    // button (and the reader's place) alone.
    function refill(node, data, build) {
      const signature = JSON.stringify(data);
      if (signatures.get(node) === signature) return;
      signatures.set(node, signature);
      node.replaceChildren(...build());
    }

    function metaRows(t) {
      let state;
      if (t.status === "resolved") {
        state = "対応済み（" + [who(t, t.resolved_by), M.when(t.resolved_at)].filter(Boolean).join("・") + "）";
      } else if (t.claimed_by) {
        state = "対応中（担当：" + who(t, t.claimed_by) + (t.claimed_by === me.name ? "＝自分" : "") + "）";
      } else {
        state = "未担当";
      }
      const rows = [
        ["理由", reasonLabel(t.reason)],
        ["開いていたページ", t.page ? externalLink(t.page) : "不明"],
        ["受付日時", M.when(t.created_at)],
        ["状態", state],
        ["回答した項目", answeredText(t)],
        ["対応メモ", t.note || null],
        ["番号", String(t.id)],
      ];
      return rows.filter(([, value]) => value)
        .map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value)));
    }

    // The entry staff said answered the resident, by its title.
    function answeredText(t) {
      if (!t.answered_entry) return null;
      return t.answered_title || answered.titleOf(t.answered_entry);
    }

    // A button the resident pressed arrives as its payload ("/none_of_these", ...);
    // staff read what the button said.
    const BUTTONS = {
      none_of_these: "［ボタン］どれにも当てはまらない",
      feedback_positive: "［ボタン］解決した",
      feedback_negative: "［ボタン］解決しなかった",
    };

    function residentText(text) {
      const payload = /^\/(\w+)(\{.*\})?$/s.exec(String(text || ""));
      if (!payload) return text;
      if (BUTTONS[payload[1]]) return BUTTONS[payload[1]];
      if (payload[1] === "choose_entry") {
        try {
          return "［ボタン］候補を選択：" + JSON.parse(payload[2]).entry_id;
        } catch (error) {
          return text;
        }
      }
      return text;
    }

    function turnItem(turn) {
      const speaker = turn.role === "staff" && turn.author
        ? "職員（" + who(current, turn.author) + "）"
        : SPEAKERS[turn.role] || turn.role;
      const text = turn.role === "assistant"
        ? el("div", { className: "turn-text" }, renderAnswer(turn.text))
        : el("p", { className: "turn-text plain" },
          turn.role === "resident" ? residentText(turn.text) : turn.text);
      return el("li", { className: "turn " + turn.role },
        el("p", { className: "turn-who" }, speaker,
          turn.at && el("time", { dateTime: turn.at }, M.when(turn.at))),
        text,
        turn.role === "resident" && understood(turn));
    }

    // What the assistant took the resident's message to mean, for judging the handoff.
    function understood(turn) {
      const top = (turn.intent_ranking || [])[0];
      const name = top ? top.name : turn.intent;
      if (!name) return null;
      const confidence = top && typeof top.confidence === "number" ? "・確信度 " + M.scoreText(top.confidence, 2) : "";
      return el("p", { className: "understood" }, el("small", {}, "解釈：" + M.intentLabel(name) + confidence));
    }

    function candidateItems(list) {
      if (!list.length) return [el("li", { className: "none" }, "候補はありません。")];
      return list.map((c) => el("li", { dataset: { entryId: c.entry_id } },
        el("button", { type: "button", className: "link", onclick: () => hooks.lookup(c.title) }, c.title),
        " ",
        el("small", {}, "一致度 " + M.scoreText(Number(c.score), 3))));
    }

    // A reply the server confirmed without sending the ticket back: shown (and kept for
    // the proposal) until the next refresh brings the server's own record of it.
    function appendTurn(turn) {
      current = Object.assign({}, current, { transcript: (current.transcript || []).concat([turn]) });
      signatures.set(transcript, JSON.stringify(current.transcript));
      transcript.append(turnItem(turn));
    }

    // Runs an action on the open ticket: one at a time, errors in #ticket-error, the inbox
    // refreshed afterwards either way.
    async function act(work) {
      if (busy || !current) return;
      busy = true;
      error.textContent = "";
      try {
        await work();
      } catch (err) {
        error.textContent = errorText(err);
        // Someone else resolved it, or it is gone: show how things stand now.
        if (err.status === 409 || err.status === 404) await reload().catch(() => {});
      } finally {
        busy = false;
        hooks.changed();
      }
    }

    // An action's answer is the ticket when the server sends it; otherwise fetch it.
    async function apply(result) {
      if (isTicket(result)) show(result);
      else await reload();
    }

    async function reload() {
      if (!current) return;
      const t = await M.api("GET", url());
      if (current && String(current.id) === String(t.id)) show(t);
    }

    // The periodic refresh: new resident messages, claims and resolutions by others.
    async function refresh() {
      if (!current || section.hidden || busy) return;
      try {
        const t = await M.api("GET", url());
        // Skipped if the ticket was closed or another one opened meanwhile.
        if (!busy && current && !section.hidden && String(current.id) === String(t.id)) show(t);
      } catch (err) {
        // The next refresh tries again; the inbox reports a lost connection.
      }
    }

    claim.addEventListener("click", () => act(async () => {
      await apply(await M.api("POST", url("claim")));
      say(status, "担当しました");
      replyText.focus(); // the claim button is gone now
    }));

    replyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = replyText.value.trim();
      if (!text) {
        error.textContent = "返信を入力してください。";
        replyText.focus();
        return;
      }
      act(async () => {
        const result = await M.api("POST", url("reply"), { text });
        const id = String(current.id);
        replyText.value = "";
        drafts.delete(id);
        if (isTicket(result)) show(result);
        else appendTurn({ role: "staff", text, author: me.name, at: new Date().toISOString() });
        say(replyStatus, sentText("送信しました", result));
      });
    });

    resolveForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const learned = answered.body();
      if (learned.problem) {
        error.textContent = learned.problem;
        return;
      }
      act(async () => {
        const result = await M.api("POST", url("resolve"), { note: resolveNote.value.trim(), ...learned });
        await apply(result);
        resolveNote.value = "";
        const done = learned.entry_id
          ? "対応完了にしました。言い回しの候補を編集者に送りました"
          : "対応完了にしました";
        say(status, sentText(done, result));
        heading.focus(); // the form is hidden now
      });
    });

    // ---- proposal: the conversation as a draft entry for the editors ----

    function prefillProposal() {
      const question = String(current.question || "").trim();
      const replies = (current.transcript || [])
        .filter((turn) => turn.role === "staff")
        .map((turn) => String(turn.text || "").trim())
        .filter(Boolean);
      $("propose-title").value = Array.from(question.replace(/\s+/g, " ")).slice(0, 40).join("");
      $("propose-question").value = question;
      $("propose-answer").value = replies.join("\n\n");
      proposeForm.dataset.ticketId = String(current.id);
    }

    function closeProposal() {
      proposeForm.hidden = true;
      propose.setAttribute("aria-expanded", "false");
    }

    propose.addEventListener("click", () => {
      if (!proposeForm.hidden) {
        closeProposal();
        return;
      }
      // Filled once per ticket: closing and reopening keeps what was edited.
      if (proposeForm.dataset.ticketId !== String(current.id)) prefillProposal();
      proposeForm.hidden = false;
      propose.setAttribute("aria-expanded", "true");
      $("propose-title").focus();
    });

    proposeForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = {};
      for (const field of ["title", "question", "answer"]) {
        const value = $("propose-" + field).value.trim();
        if (value) body[field] = value; // left out: the server makes it from the conversation
      }
      act(async () => {
        const revision = await M.api("POST", url("propose"), body);
        closeProposal();
        delete proposeForm.dataset.ticketId;
        proposeResult.replaceChildren(
          "下書き " + revision.entry_id + " を作成しました。編集者の確認後に公開されます。",
          isEditor ? " " : "",
          isEditor ? el("a", { href: "/editor#entry=" + encodeURIComponent(revision.entry_id) }, "編集画面で開く") : "");
        propose.focus();
      });
    });

    $("ticket-close").addEventListener("click", () => {
      const id = current ? current.id : null;
      section.hidden = true;
      current = null;
      hooks.opened(null);
      if (id !== null) hooks.closed(id);
    });

    return { open, refresh, currentId: () => (current && !section.hidden ? current.id : null) };
  }

  // ---- start ---------------------------------------------------------------------------

  async function start() {
    let me;
    try {
      me = await M.requireLogin("staff");
    } catch (error) {
      if (error.status === 401) return; // on the way to the login page
      $("page-error").textContent = error instanceof M.ApiError
        ? error.message
        : "サーバーに接続できませんでした。時間をおいて再読み込みしてください。";
      document.querySelector(".regions").hidden = true;
      return;
    }
    M.showUser(me);
    $("nav-editor").hidden = !(me.role === "editor" || me.role === "admin");

    const lookup = createLookup();
    const changes = createChanges(lookup.searchFor);
    const ticket = createTicket(me, {
      changed: () => inbox.refresh(),
      opened: (id) => inbox.markCurrent(id),
      closed: (id) => inbox.focusTicket(id),
      lookup: lookup.searchFor,
    });
    const inbox = createInbox(ticket);

    changes.load();
    inbox.refresh();
    inbox.startPolling(ticket.refresh);
  }

  start();
})();
