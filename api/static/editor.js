// Editor console: the entry list, editing one entry (form, preview, history, workflow),
// the queue of questions residents asked that were not answered, and the wordings
// suggested from resolved handoffs. Every view is made by a factory (createList,
// createEntry, createUnanswered, createSuggestions, as in staff.js) that owns its state
// and wiring; start() makes each once and route() shows them by the URL hash (#list,
// #entry=ID, #new, #unanswered, #suggestions), so the back button and links work. Data
// is only ever inserted as text (Madoguchi.el, textContent); answer texts go through
// Madoguchi.markdown.
(function () {
  "use strict";
  const M = window.Madoguchi;
  const el = M.el;
  const $ = (id) => document.getElementById(id);

  const STATUS_LABELS = {
    draft: "下書き",
    in_review: "確認待ち",
    published: "公開中",
    archived: "公開停止",
  };
  // What the list says when a newer revision waits behind the one shown.
  const PENDING_LABELS = { draft: "下書きあり", in_review: "確認待ちあり", published: "公開予定あり" };
  const DECISION_LABELS = {
    answer: "回答",
    clarify: "候補を提示",
    handoff: "職員へ引き継ぎ",
    rephrase: "言い換えを依頼",
    feedback: "評価の受付",
    smalltalk: "雑談",
  };
  const KIND_LABELS = {
    handoff: "職員に引き継ぎ",
    negative_feedback: "回答で解決しなかった",
    none_of_these: "候補に該当なし",
    two_failed_turns: "回答できなかった質問",
  };
  const FIELD_LABELS = {
    id: "エントリID",
    title: "タイトル",
    questions: "質問の言い回し",
    answer: "回答文",
    category: "分類",
    department: "担当課",
    contact: "問い合わせ先",
    documents: "必要な書類",
    fees: "手数料",
    tags: "タグ",
    staff_notes: "職員向けメモ",
    source_url: "根拠・参考ページのURL",
    valid_from: "施行日",
    valid_until: "終了日",
  };
  const FORM_FIELDS = Object.keys(FIELD_LABELS); // in form order
  const LIST_FIELDS = ["questions", "documents", "tags"];
  const ACTION_LABELS = {
    save_draft: "下書き保存",
    submit: "確認を依頼",
    publish: "承認・公開",
    archive: "公開停止",
    import: "取り込み",
    propose: "職員からの提案",
    accept_suggestions: "言い回しの候補を採用",
    "suggestion.accept": "言い回しの候補を採用",
    "suggestion.reject": "言い回しの候補を不採用",
  };
  const MAX_ANSWER = 10000;
  const MAX_PREVIEW_QUESTIONS = 20;

  // ---------------------------------------------------------------- small helpers

  // The city's today as YYYY-MM-DD, as the server last said (the entries list and every
  // history carry it): the marks agree with what residents are answered, whatever the
  // clock or time zone of this computer.
  let cityToday = "";

  function today() {
    return cityToday;
  }

  function learnToday(data) {
    if (data && typeof data.today === "string") cityToday = data.today;
  }

  function lines(text) {
    return text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  }

  const say = M.say;
  const errorText = (error) =>
    M.errorText(error, null, "予期しないエラーが起きました。画面を再読み込みしてください。");

  // A <dialog> that resolves true when its "ok" button closed it (Escape cancels).
  function ask(dialog) {
    const back = document.activeElement;
    return new Promise((resolve) => {
      dialog.returnValue = "";
      dialog.addEventListener(
        "close",
        () => {
          if (back && back.isConnected && !back.disabled) back.focus();
          resolve(dialog.returnValue === "ok");
        },
        { once: true },
      );
      dialog.showModal();
    });
  }

  function confirmDialog(title, text, okLabel) {
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = okLabel;
    return ask($("confirm-dialog"));
  }

  // Answer text as the resident would see it.
  function rendered(text) {
    const box = el("div", { className: "rendered" });
    if (typeof M.markdown === "function") box.append(M.markdown(text));
    else box.append(el("p", { className: "plain" }, text));
    return box;
  }

  function statusBadge(status) {
    return el("span", { className: "badge status-" + status }, STATUS_LABELS[status] || status);
  }

  // In the history only the revision in force reads 「公開中」: an older published one was
  // replaced, a later one waits for its 施行日.
  function historyBadge(r, live) {
    if (r.status !== "published" || (live && live.revision === r.revision)) return statusBadge(r.status);
    const label = r.valid_from && r.valid_from > today() ? "公開予定" : "公開終了（新しい版に交代）";
    return el("span", { className: "badge status-superseded" }, label);
  }

  function entryHash(id) {
    return "#entry=" + encodeURIComponent(id);
  }

  // The published revision residents are answered from on ``day`` (as the server picks
  // it: among those whose dates include the day, the one that took effect last).
  function inForce(revisions, day) {
    let best = null;
    for (const r of revisions) {
      if (r.status !== "published") continue;
      if (r.valid_from && r.valid_from > day) continue;
      if (r.valid_until && r.valid_until < day) continue;
      const key = [r.valid_from || "", r.revision];
      if (!best || key[0] > (best.valid_from || "") ||
          (key[0] === (best.valid_from || "") && key[1] > best.revision)) {
        best = r;
      }
    }
    return best;
  }

  // ---------------------------------------------------------------- routing

  const views = {
    list: $("view-list"),
    entry: $("view-entry"),
    unanswered: $("view-unanswered"),
    suggestions: $("view-suggestions"),
  };
  let current = null; // the route shown: {view, id?}
  // The views, each made once by its factory at start.
  let entryList = null;
  let entryView = null;
  let unanswered = null;
  let suggestions = null;

  function parseHash() {
    const hash = location.hash.slice(1);
    if (hash.startsWith("entry=")) {
      try {
        const id = decodeURIComponent(hash.slice("entry=".length));
        if (id) return { view: "entry", id };
      } catch (error) {
        // a malformed hash: fall through to the list
      }
    }
    if (hash === "new") return { view: "entry", id: null };
    if (hash === "unanswered") return { view: "unanswered" };
    if (hash === "suggestions") return { view: "suggestions" };
    return { view: "list" };
  }

  function route(moveFocus) {
    const next = parseHash();
    if (current && current.view === "entry") entryView.stash();
    // Leaving the queue stops its conflict checks (each one takes the engine's lock).
    if (current && current.view === "suggestions" && next.view !== "suggestions") suggestions.stop();
    current = next;
    for (const [name, section] of Object.entries(views)) section.hidden = name !== next.view;
    const navName = next.view === "entry" ? (next.id === null ? "new" : null) : next.view;
    for (const link of document.querySelectorAll("#views-nav a")) {
      if (link.dataset.view === navName) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (next.view === "list") {
      document.title = "エントリ一覧 - ナレッジ編集";
      entryList.load();
    } else if (next.view === "unanswered") {
      document.title = "未回答の質問 - ナレッジ編集";
      unanswered.load();
    } else if (next.view === "suggestions") {
      document.title = "言い回しの候補 - ナレッジ編集";
      suggestions.load();
    } else if (next.id === null) {
      entryView.openNew();
    } else {
      entryView.open(next.id);
    }
    if (moveFocus) views[next.view].querySelector("h2").focus();
  }

  // ---------------------------------------------------------------- 1. entry list

  // The entries, as the filters choose them (text, status, category, department, changes
  // still to come).
  function createList() {
    const filters = {
      q: $("filter-q"),
      status: $("filter-status"),
      category: $("filter-category"),
      department: $("filter-department"),
      upcoming: $("filter-upcoming"),
    };
    const known = { category: new Set(), department: new Set() };
    let token = 0; // number of the latest load: only its answer is shown
    let timer = null;

    async function load() {
      const params = new URLSearchParams();
      for (const name of ["q", "status", "category", "department"]) {
        const value = filters[name].value.trim();
        if (value) params.set(name, value);
      }
      if (filters.upcoming.checked) params.set("upcoming", "true");
      const query = params.toString();
      const mine = ++token;
      const table = $("entries");
      table.setAttribute("aria-busy", "true");
      say($("entries-count"), "読み込み中…");
      try {
        const data = await M.api("GET", "/api/entries" + (query ? "?" + query : ""));
        if (mine !== token) return; // a newer search is on its way
        learnToday(data);
        rememberValues(data.data);
        renderEntries(data.data);
        say($("entries-count"), data.count
          ? data.count + "件のエントリがあります。"
          : "条件に合うエントリはありません。");
      } catch (error) {
        if (mine === token) say($("entries-count"), errorText(error), true);
      } finally {
        if (mine === token) table.removeAttribute("aria-busy");
      }
    }

    // Categories and departments seen so far fill the filters and the form's suggestions.
    function rememberValues(revisions) {
      for (const name of ["category", "department"]) {
        for (const r of revisions) if (r[name]) known[name].add(r[name]);
        const values = [...known[name]].sort((a, b) => a.localeCompare(b, "ja"));
        const select = filters[name];
        const chosen = select.value;
        select.replaceChildren(
          el("option", { value: "" }, "すべて"),
          ...values.map((v) => el("option", { value: v }, v)),
        );
        select.value = chosen;
        $(name + "-options").replaceChildren(...values.map((v) => el("option", { value: v })));
      }
    }

    function listStatus(r) {
      let text = STATUS_LABELS[r.status] || r.status;
      if (r.latest_revision > r.revision && PENDING_LABELS[r.latest_status]) {
        text += "（" + PENDING_LABELS[r.latest_status] + "）";
      }
      return text;
    }

    // The 施行日 of the revision in force, and of a published one still to come.
    function validFromCell(r) {
      if (!r.upcoming_from) return r.valid_from || "—";
      return [r.valid_from, r.upcoming_from + "（新しい版の施行予定）"].filter(Boolean).join("／");
    }

    function renderEntries(revisions) {
      const rows = revisions.map((r) =>
        el("tr", {},
          el("td", {},
            el("a", { href: entryHash(r.entry_id) }, r.title || r.entry_id),
            el("span", { className: "entry-id" }, r.entry_id)),
          el("td", {}, r.category || "—"),
          el("td", {}, r.department || "—"),
          el("td", { className: "status-cell status-" + r.status }, listStatus(r)),
          el("td", {}, validFromCell(r)),
          el("td", {}, M.when(r.published_at || r.created_at))));
      $("entries").tBodies[0].replaceChildren(...rows);
    }

    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    filters.q.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(load, 300);
    });
    for (const name of ["status", "category", "department", "upcoming"]) {
      filters[name].addEventListener("change", load);
    }
    $("new-entry").addEventListener("click", () => { location.hash = "#new"; });
    return { load };
  }

  // ---------------------------------------------------------------- 2. one entry

  // Editing one entry is createEntry (the form and its workflow), which makes the preview
  // (createPreview) and the history (createHistory) beside the form.

  // Which form field a problem is about: "field" (entry rules) or the FastAPI location
  // after ``prefix`` (["body"] for a save, ["body", "draft"] for a preview).
  function fieldOf(problem, prefix) {
    if (problem.field) return problem.field;
    const loc = Array.isArray(problem.loc) ? problem.loc : [];
    if (!prefix.every((part, i) => loc[i] === part)) return null;
    const name = loc.slice(prefix.length).find((part) => typeof part === "string");
    return name || null;
  }

  // ---------------------------------------------------------------- 2. one entry: preview

  // How the chat answers test questions now and with the draft in the form, side by side.
  // hooks: draft() → the form's content; fieldErrors(problems) shows problems with the
  // draft under its fields; clearErrors() once the draft passed.
  function createPreview(hooks) {
    async function run(event) {
      event.preventDefault();
      const questions = lines($("preview-questions").value);
      const error = $("preview-error");
      error.textContent = "";
      $("preview-questions").removeAttribute("aria-invalid");
      if (!questions.length || questions.length > MAX_PREVIEW_QUESTIONS) {
        error.textContent = questions.length
          ? "一度に試せる質問は" + MAX_PREVIEW_QUESTIONS + "件までです。"
          : "試す質問を1行に1つ入力してください。";
        $("preview-questions").setAttribute("aria-invalid", "true");
        $("preview-questions").focus();
        return;
      }
      const body = { questions, draft: hooks.draft() };
      if ($("preview-as-of").value) body.as_of = $("preview-as-of").value;
      const button = $("preview-run");
      if (button.getAttribute("aria-disabled") === "true") return;
      button.setAttribute("aria-disabled", "true");
      $("preview-results").setAttribute("aria-busy", "true");
      say($("preview-status"), "プレビューを作成しています…");
      try {
        const data = await M.api("POST", "/api/preview", body);
        hooks.clearErrors();
        renderPreview(data);
      } catch (failure) {
        if (Array.isArray(failure.detail)) showPreviewProblems(failure.problems);
        else say($("preview-status"), errorText(failure), true);
      } finally {
        button.removeAttribute("aria-disabled");
        $("preview-results").removeAttribute("aria-busy");
      }
    }

    // Problems with the draft go under its fields; the rest (questions, date) under the preview.
    function showPreviewProblems(problems) {
      const forDraft = [];
      const forPreview = [];
      for (const p of problems) {
        const loc = Array.isArray(p.loc) ? p.loc : [];
        if (p.field || loc[1] === "draft") {
          forDraft.push({ field: fieldOf(p, ["body", "draft"]), message: p.message });
        } else forPreview.push(p.message);
      }
      say($("preview-status"), "プレビューできませんでした。入力内容を確認してください。", true);
      $("preview-error").textContent = forPreview.join("\n");
      if (forPreview.length) $("preview-questions").setAttribute("aria-invalid", "true");
      if (forDraft.length) hooks.fieldErrors(forDraft);
    }

    function outcomeKey(outcome) {
      return outcome ? [outcome.decision, outcome.entry_id, outcome.text].join("\u0000") : "";
    }

    // The sentences of an answer (split after 。！？ and at line ends), to mark what changed.
    function sentences(text) {
      return String(text || "").split(/\n+|(?<=[。！？])/).map((s) => s.trim()).filter(Boolean);
    }

    function onlyIn(text, other, tag) {
      const theirs = new Set(sentences(other));
      const only = sentences(text).filter((s) => !theirs.has(s));
      if (!only.length) return "（なし）";
      return el("ul", { className: "changed-sentences" }, only.map((s) => el("li", {}, el(tag, {}, s))));
    }

    // Under two whole answers, the sentences that differ: removed now, added by the draft.
    function sentenceRow(now, draft) {
      if (!draft || !now.text || !draft.text || now.text === draft.text) return null;
      return el("tr", { className: "changed sentences" },
        el("th", { scope: "row" }, "変わった文"),
        el("td", {}, el("span", { className: "vh" }, "削除される文："), onlyIn(now.text, draft.text, "del")),
        el("td", {}, el("span", { className: "vh" }, "追加される文："), onlyIn(draft.text, now.text, "ins")));
    }

    function renderPreview(data) {
      let changed = 0;
      const tables = data.results.map((result, index) => {
        const now = result.now;
        const draft = result.with_draft;
        const differs = draft !== null && outcomeKey(now) !== outcomeKey(draft);
        if (differs) changed += 1;
        const captionId = "preview-caption-" + index;
        const row = (label, cell, same) => {
          const isChanged = draft !== null && !same;
          return el("tr", { className: isChanged ? "changed" : "" },
            el("th", { scope: "row" }, label, isChanged ? el("span", { className: "change-mark" }, "変更") : null),
            el("td", {}, cell(now)),
            el("td", {}, draft ? cell(draft) : "（下書きなし）"));
        };
        const same = (key) => !draft || (now[key] || null) === (draft[key] || null);
        return el("div", { className: "table-wrap" + (differs ? " differs" : ""), role: "region",
          tabindex: "0", "aria-labelledby": captionId },
        el("table", { className: "preview-table" },
          el("caption", { id: captionId }, "「" + result.question + "」",
            differs ? el("span", { className: "badge changed-badge" }, "回答が変わります") : null),
          el("thead", {}, el("tr", {},
            el("td", {}),
            el("th", { scope: "col" }, "現在"),
            el("th", { scope: "col" }, "この下書きでは"))),
          el("tbody", {},
            row("判定", (o) => DECISION_LABELS[o.decision] || o.decision, same("decision")),
            row("エントリ", outcomeEntry, !draft || entrySignature(now) === entrySignature(draft)),
            row("確信度", (o) => M.scoreText(o.confidence, 2), true),
            row("回答文", (o) => (o.text ? rendered(o.text) : "（回答文なし）"), same("text")),
            sentenceRow(now, draft))));
      });
      $("preview-results").replaceChildren(
        el("p", { className: "preview-as-of" }, "基準日：" + data.as_of),
        ...tables);
      say($("preview-status"), data.results.length + "件の質問のうち、" +
        (changed ? changed + "件で回答が変わります。" : "回答が変わるものはありません。"));
    }

    // Which entry (or candidate titles) an outcome shows; scores and revisions aside.
    function entrySignature(outcome) {
      return JSON.stringify([outcome.entry_id, outcome.title, (outcome.candidates || []).map((c) => c.title)]);
    }

    function outcomeEntry(outcome) {
      if (outcome.decision === "clarify" && outcome.candidates && outcome.candidates.length) {
        return el("ul", { className: "candidates" },
          outcome.candidates.map((c) => el("li", {}, c.title)));
      }
      if (!outcome.title) return "—";
      // Revision 0 stands for the unsaved draft.
      const which = outcome.revision === 0 ? "（この下書き）"
        : outcome.revision ? "（第" + outcome.revision + "版）" : "";
      return outcome.title + which;
    }

    // Nothing from the previous entry stays.
    function reset() {
      $("preview-results").replaceChildren();
      say($("preview-status"), "");
      $("preview-error").textContent = "";
    }

    // The first few of an entry's questions, to try at once.
    function suggest(questions) {
      $("preview-questions").value = questions.slice(0, 3).join("\n");
    }

    $("preview-form").addEventListener("submit", run);
    return { reset, suggest };
  }

  // ---------------------------------------------------------------- 2. one entry: history

  // An entry's revisions (newest first, each with its changes) and its audit trail.
  // hooks: rollback(revision number) for 「この版に戻す」.
  function createHistory(hooks) {
    const section = $("history");
    const body = $("history-body");
    const EQUAL_CONTEXT = 2; // unchanged lines kept visible next to a change
    let names = {}; // actor → a readable name, as the history last said

    // Who did it, by display name (the server's names; 「管理者（コマンド）」 for the CLI).
    function personName(actor) {
      return actor ? names[actor] || actor : "";
    }

    function show(revisions, audit, people) {
      names = people;
      const live = inForce(revisions, today());
      const items = [...revisions].reverse().map((r) => {
        const meta = [
          ["作成", [personName(r.author), M.when(r.created_at)].filter(Boolean).join("・")],
          ["承認", [personName(r.reviewer), M.when(r.published_at)].filter(Boolean).join("・")],
          ["施行日", r.valid_from],
          ["終了日", r.valid_until],
        ].filter(([, value]) => value);
        const canRestore = (r.status === "published" || r.status === "archived") &&
          !(live && live.revision === r.revision);
        return el("li", { className: "revision" },
          el("h4", {}, "第" + r.revision + "版 ", historyBadge(r, live),
            live && live.revision === r.revision ? el("span", { className: "in-force" }, "回答に使用中") : null),
          el("dl", { className: "meta" }, meta.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)])),
          renderDiff(r.diff || []),
          canRestore
            ? el("button", { type: "button", className: "rollback secondary",
              dataset: { revision: String(r.revision) } }, "この版に戻す")
            : null);
      });
      body.replaceChildren(
        el("ol", { className: "revisions" }, items),
        renderAudit(audit));
    }

    function renderDiff(fields) {
      if (!fields.length) return el("p", { className: "hint" }, "内容の変更はありません。");
      return el("ul", { className: "diff" }, fields.map((f) =>
        el("li", {},
          el("p", { className: "diff-field" }, FIELD_LABELS[f.field] || f.field),
          diffLines(f.lines || []))));
    }

    // Changed lines with a little unchanged context; long unchanged runs fold away.
    function diffLines(all) {
      const box = el("div", { className: "diff-lines" });
      let i = 0;
      while (i < all.length) {
        if (all[i].op !== "equal") {
          box.append(diffLine(all[i]));
          i += 1;
          continue;
        }
        let j = i;
        while (j < all.length && all[j].op === "equal") j += 1;
        const run = all.slice(i, j);
        const head = i === 0 ? 0 : EQUAL_CONTEXT;
        const tail = j === all.length ? 0 : EQUAL_CONTEXT;
        if (run.length > head + tail + 1) {
          const folded = run.slice(head, run.length - tail);
          box.append(
            ...run.slice(0, head).map(diffLine),
            el("details", { className: "diff-fold" },
              el("summary", {}, "変更のない" + folded.length + "行"),
              ...folded.map(diffLine)),
            ...run.slice(run.length - tail).map(diffLine));
        } else {
          box.append(...run.map(diffLine));
        }
        i = j;
      }
      return box;
    }

    function diffLine(line) {
      if (line.op === "delete") {
        return el("div", { className: "line delete" }, el("span", { className: "vh" }, "削除："),
          el("del", {}, line.text));
      }
      if (line.op === "insert") {
        return el("div", { className: "line insert" }, el("span", { className: "vh" }, "追加："),
          el("ins", {}, line.text));
      }
      return el("div", { className: "line equal" }, line.text);
    }

    function actionLabel(action) {
      const back = /^rollback_to_(\d+)$/.exec(action);
      if (back) return "第" + back[1] + "版に戻す";
      return ACTION_LABELS[action] || action;
    }

    function renderAudit(audit) {
      const events = [...audit].sort((a, b) => String(b.at).localeCompare(String(a.at)));
      const rows = events.map((e) =>
        el("tr", {},
          el("td", {}, M.when(e.at)),
          el("td", {}, personName(e.actor)),
          el("td", {}, actionLabel(e.action)),
          el("td", {}, e.revision ? "第" + e.revision + "版" : "—"),
          el("td", {}, e.detail && e.detail.reason ? "理由：" + e.detail.reason : "")));
      return el("details", { className: "audit" },
        el("summary", {}, "操作記録（" + events.length + "件）"),
        el("div", { className: "table-wrap", role: "region", tabindex: "0", "aria-label": "操作記録" },
          el("table", {},
            el("caption", { className: "vh" }, "操作記録"),
            el("thead", {}, el("tr", {},
              ["日時", "操作者", "操作", "版", "詳細"].map((h) => el("th", { scope: "col" }, h)))),
            el("tbody", {}, rows))));
    }

    // Empty and shown, for an entry being loaded.
    function reset() {
      body.replaceChildren();
      section.hidden = false;
    }

    function hide() {
      section.hidden = true;
    }

    section.addEventListener("click", (event) => {
      const button = event.target.closest("button.rollback");
      if (button) hooks.rollback(Number(button.dataset.revision));
    });
    return { show, reset, hide };
  }

  // ---------------------------------------------------------------- 2. one entry: the form

  // Editing one entry, or a new one: the form, its workflow steps, preview and history.
  // Unsaved edits are kept per entry while the editor is elsewhere (stash()), and the
  // page asks before it is left with any.
  function createEntry() {
    const form = $("entry-form");
    const field = (name) => $("f-" + name);
    const entry = {
      key: null, // the id of the entry in the form, "" for a new one, null when none is loaded
      revisions: [], // ascending; the form edits the last one
      baseline: "", // the saved content, to tell whether the form has unsaved edits
      dirty: false,
      busy: false,
      token: 0,
      flash: null, // a message for the next load (saving a new entry changes the URL)
    };
    // Unsaved edits of entries the editor navigated away from, by entry key: never lost.
    const unsaved = new Map();
    // Content to start the next new entry with (from the unanswered queue).
    let prefill = null;
    const preview = createPreview({ draft: readForm, fieldErrors: showFieldErrors, clearErrors });
    const history = createHistory({ rollback });

    // One shape for form content and saved content, so the two compare as JSON.
    function normalize(content) {
      const out = {};
      for (const name of FORM_FIELDS) {
        const value = content[name];
        if (LIST_FIELDS.includes(name)) out[name] = Array.isArray(value) ? value : [];
        else if (name === "valid_from" || name === "valid_until") out[name] = value || null;
        else out[name] = value == null ? "" : String(value);
      }
      return out;
    }

    function contentOf(revision) {
      return normalize({ ...revision, id: revision.entry_id });
    }

    function readForm() {
      const value = (name) => field(name).value;
      const text = (name) => value(name).trim();
      return normalize({
        id: text("id"),
        title: text("title"),
        questions: lines(value("questions")),
        answer: value("answer").replace(/\r\n?/g, "\n").trim(),
        category: text("category"),
        department: text("department"),
        contact: text("contact"),
        documents: lines(value("documents")),
        fees: text("fees"),
        tags: value("tags").split(/[,，、\n]/).map((t) => t.trim()).filter(Boolean),
        staff_notes: value("staff_notes").replace(/\r\n?/g, "\n").trim(),
        source_url: text("source_url"),
        valid_from: value("valid_from"),
        valid_until: value("valid_until"),
      });
    }

    function fillForm(content) {
      for (const name of FORM_FIELDS) {
        const value = content[name];
        if (name === "tags") field(name).value = (value || []).join("、");
        else if (LIST_FIELDS.includes(name)) field(name).value = (value || []).join("\n");
        else field(name).value = value || "";
      }
      countAnswer();
    }

    function countAnswer() {
      const length = field("answer").value.trim().length;
      const node = $("answer-count");
      node.textContent = length.toLocaleString("ja-JP") + " / " + MAX_ANSWER.toLocaleString("ja-JP") + "文字";
      node.classList.toggle("over", length > MAX_ANSWER);
    }

    function latest() {
      return entry.revisions[entry.revisions.length - 1] || null;
    }

    function checkDirty() {
      entry.dirty = entry.key !== null && JSON.stringify(readForm()) !== entry.baseline;
      updateActions();
    }

    // Keep what the editor typed when they go to another view; restored when they return.
    function stash() {
      if (entry.key === null) return;
      if (entry.dirty) unsaved.set(entry.key, readForm());
      else unsaved.delete(entry.key);
    }

    // The view before content arrives: nothing from the previous entry stays visible.
    function beginLoad(heading) {
      const token = ++entry.token;
      entry.key = null;
      entry.revisions = [];
      entry.dirty = false;
      $("entry-heading").textContent = heading;
      $("entry-status").textContent = "";
      $("entry-status").className = "badge";
      $("entry-revision").textContent = "";
      $("entry-in-force").textContent = "";
      $("unsaved-notice").hidden = true;
      say($("entry-message"), "");
      clearErrors();
      preview.reset();
      history.reset();
      $("entry-body").hidden = false;
      return token;
    }

    function openNew() {
      beginLoad("新規エントリ");
      document.title = "新規エントリ - ナレッジ編集";
      entry.key = "";
      field("id").readOnly = false;
      $("hint-id").textContent = "半角英小文字・数字・ハイフン（例：juminhyo-copy）。保存後は変更できません。";
      const empty = normalize({});
      fillForm(empty);
      entry.baseline = JSON.stringify(empty);
      const start = prefill || unsaved.get("");
      $("unsaved-notice").hidden = !(start && !prefill);
      if (start) fillForm(start);
      prefill = null;
      preview.suggest(start ? start.questions : []);
      history.hide();
      $("entry-fields").disabled = false;
      showEntryState();
      checkDirty();
      if (entry.flash) say($("entry-message"), entry.flash);
      entry.flash = null;
    }

    async function open(id) {
      const token = beginLoad("読み込み中…");
      document.title = id + " - ナレッジ編集";
      $("entry-fields").disabled = true;
      form.setAttribute("aria-busy", "true");
      say($("entry-message"), "読み込み中…");
      let data;
      try {
        data = await M.api("GET", "/api/entries/" + encodeURIComponent(id) + "/history");
      } catch (error) {
        if (token !== entry.token) return;
        form.removeAttribute("aria-busy");
        $("entry-heading").textContent = "エントリを表示できません";
        $("entry-body").hidden = true;
        history.hide();
        say($("entry-message"), error.status === 404
          ? "エントリ「" + id + "」は見つかりませんでした。一覧から選び直してください。"
          : errorText(error), true);
        return;
      }
      if (token !== entry.token) return; // the editor has gone elsewhere meanwhile
      form.removeAttribute("aria-busy");
      $("entry-fields").disabled = false;
      entry.key = id;
      field("id").readOnly = true;
      $("hint-id").textContent = "IDは変更できません。";
      const kept = unsaved.get(id);
      applyHistory(data, { fill: true });
      if (kept) {
        fillForm(kept);
        $("unsaved-notice").hidden = false;
        checkDirty();
      }
      preview.suggest(readForm().questions);
      say($("entry-message"), entry.flash || "");
      entry.flash = null;
    }

    // Show a freshly loaded history. The form takes the latest revision's content unless
    // the editor has unsaved edits (those are never overwritten).
    function applyHistory(data, { fill }) {
      learnToday(data);
      entry.revisions = data.revisions || [];
      const newest = latest();
      const saved = contentOf(newest);
      if (fill || !entry.dirty) fillForm(saved);
      entry.baseline = JSON.stringify(saved);
      $("entry-heading").textContent = newest.title || newest.entry_id;
      document.title = (newest.title || newest.entry_id) + " - ナレッジ編集";
      showEntryState();
      history.show(entry.revisions, data.audit || [], data.names || {});
      checkDirty();
    }

    async function reloadEntry(message) {
      const id = entry.key;
      const token = ++entry.token;
      const data = await M.api("GET", "/api/entries/" + encodeURIComponent(id) + "/history");
      if (token !== entry.token) return;
      applyHistory(data, { fill: false });
      if (message) say($("entry-message"), message);
    }

    function showEntryState() {
      const newest = latest();
      const status = $("entry-status");
      if (!newest) {
        status.textContent = "未保存";
        status.className = "badge status-new";
        $("entry-revision").textContent = "";
        $("entry-in-force").textContent = "";
        return;
      }
      status.textContent = STATUS_LABELS[newest.status] || newest.status;
      status.className = "badge status-" + newest.status;
      $("entry-revision").textContent = "第" + newest.revision + "版（最新）";
      const day = today();
      const live = inForce(entry.revisions, day);
      const scheduled = entry.revisions.filter((r) => r.status === "published" && r.valid_from > day);
      const parts = [live ? "住民への回答には第" + live.revision + "版を使っています。"
        : "現在、住民への回答には使われていません。"];
      for (const r of scheduled) parts.push("第" + r.revision + "版は " + r.valid_from + " から公開されます。");
      $("entry-in-force").textContent = parts.join(" ");
    }

    // Which workflow steps apply now; a short note says why the others do not.
    function updateActions() {
      const newest = latest();
      const saved = newest !== null;
      const status = saved ? newest.status : null;
      const scheduled = saved && newest.valid_from && newest.valid_from > today();
      $("submit-review").disabled = entry.busy || entry.dirty || status !== "draft";
      // Two people see every change: the author of a revision may not approve it.
      const own = status === "in_review" && M.user() && newest.author === M.user().name;
      $("approve").disabled = entry.busy || entry.dirty || status !== "in_review" || own;
      $("approve").textContent = status === "in_review" && scheduled
        ? "承認して予約公開（" + newest.valid_from + " から）"
        : "承認して公開";
      $("archive").disabled = entry.busy || !entry.revisions.some((r) => r.status === "published");
      $("save-draft").setAttribute("aria-disabled", String(entry.busy || entry.key === null));
      form.setAttribute("aria-busy", String(entry.busy));
      let note = "";
      if (entry.key === "") note = "新しいエントリは、まず下書き保存してください。";
      else if (entry.dirty && (status === "draft" || status === "in_review")) {
        note = "保存していない変更があります。確認の依頼や承認の前に、下書き保存してください。";
      } else if (own) {
        note = "この版はご自身が作成したものです。承認は別の編集者が行います。";
      }
      $("action-note").textContent = note;
    }

    // ---- field errors

    function clearErrors() {
      for (const name of FORM_FIELDS) {
        field(name).removeAttribute("aria-invalid");
        $("err-" + name).textContent = "";
      }
      const summary = $("form-errors");
      summary.hidden = true;
      summary.replaceChildren();
    }

    function clearFieldError(name) {
      field(name).removeAttribute("aria-invalid");
      $("err-" + name).textContent = "";
    }

    // Each problem under its field, a summary above the form, focus on the first field.
    function showFieldErrors(problems) {
      clearErrors();
      const byField = new Map();
      for (const p of problems) {
        const name = FORM_FIELDS.includes(p.field) ? p.field : null;
        if (!byField.has(name)) byField.set(name, []);
        byField.get(name).push(p.message);
      }
      for (const [name, messages] of byField) {
        if (name === null) continue;
        field(name).setAttribute("aria-invalid", "true");
        $("err-" + name).textContent = messages.join("\n");
      }
      const items = [];
      for (const name of [...FORM_FIELDS, null]) {
        for (const message of byField.get(name) || []) {
          const label = name ? FIELD_LABELS[name] + "：" : "";
          items.push(el("li", {}, name
            ? el("button", { type: "button", className: "link", onclick: () => field(name).focus() },
              label + message)
            : message));
        }
      }
      const summary = $("form-errors");
      summary.append(
        el("p", {}, "入力内容に" + items.length + "件の問題があります。各項目の説明に従って直してください。"),
        el("ul", {}, items));
      summary.hidden = false;
      const first = FORM_FIELDS.find((name) => byField.has(name));
      if (first) field(first).focus();
      else summary.focus();
    }

    function problemsFrom(error, prefix) {
      return error.problems.map((p) => ({ field: fieldOf(p, prefix), message: p.message }));
    }

    // ---- workflow actions

    // Runs one step with the form marked busy; errors go to the message, the form's
    // content stays as typed.
    async function step(run) {
      if (entry.busy) return;
      entry.busy = true;
      updateActions();
      try {
        await run();
      } catch (error) {
        say($("entry-message"), errorText(error), true);
        if (error.status === 409 && entry.key) {
          // Someone else moved the entry on: show where it is now.
          try { await reloadEntry(); } catch (ignored) { /* the message above says enough */ }
        }
      } finally {
        entry.busy = false;
        updateActions();
        const focused = document.activeElement;
        if (!focused || focused === document.body || focused.disabled) $("entry-message").focus();
      }
    }

    function saveDraft(event) {
      event.preventDefault();
      if (entry.key === null) return;
      step(async () => {
        const content = readForm();
        const isNew = entry.key === "";
        const before = latest();
        say($("entry-message"), "保存しています…");
        clearErrors();
        let saved;
        try {
          // ?new=true: the server refuses an id that is already used (in the same
          // transaction as the save), so a new entry never adds a revision to another.
          saved = await M.api("POST", "/api/entries" + (isNew ? "?new=true" : ""), content);
        } catch (error) {
          if (!Array.isArray(error.detail)) throw error;
          say($("entry-message"), "保存できませんでした。入力内容を確認してください。", true);
          showFieldErrors(problemsFrom(error, ["body"]));
          return;
        }
        unsaved.delete(entry.key);
        $("unsaved-notice").hidden = true;
        const message = before && saved.revision === before.revision
          ? "内容に変更がないため、新しい版は作られませんでした（第" + saved.revision + "版のままです）。"
          : "下書きを保存しました（第" + saved.revision + "版）。公開するには「確認を依頼」してください。";
        if (isNew) {
          entry.dirty = false;
          entry.key = null; // nothing left to stash when the URL changes
          entry.flash = message;
          location.hash = entryHash(saved.entry_id);
          return;
        }
        entry.dirty = false;
        await reloadEntry(message);
      });
    }

    function submitReview() {
      const newest = latest();
      step(async () => {
        say($("entry-message"), "確認を依頼しています…");
        await M.api("POST", revisionUrl(newest) + "/submit");
        await reloadEntry("第" + newest.revision + "版の確認を依頼しました。別の編集者が承認すると公開されます。");
      });
    }

    function approve() {
      const newest = latest();
      const scheduled = newest.valid_from && newest.valid_from > today();
      step(async () => {
        say($("entry-message"), "公開しています…");
        await M.api("POST", revisionUrl(newest) + "/approve");
        await reloadEntry(scheduled
          ? "第" + newest.revision + "版を承認しました。" + newest.valid_from + " から住民への回答に使われます。"
          : "第" + newest.revision + "版を承認し、公開しました。");
      });
    }

    function revisionUrl(revision) {
      return "/api/entries/" + encodeURIComponent(revision.entry_id) + "/revisions/" + revision.revision;
    }

    async function archive() {
      $("archive-reason").value = "";
      if (!(await ask($("archive-dialog")))) return;
      const reason = $("archive-reason").value.trim();
      step(async () => {
        say($("entry-message"), "公開を停止しています…");
        await M.api("POST", "/api/entries/" + encodeURIComponent(entry.key) + "/archive", { reason });
        await reloadEntry("公開を停止しました。このエントリは住民への回答に使われません。");
      });
    }

    async function rollback(number) {
      const ok = await confirmDialog(
        "第" + number + "版に戻します",
        "第" + number + "版の内容を新しい版として公開し、住民への回答に使います。今の版は履歴に残ります。",
        "第" + number + "版に戻す",
      );
      if (!ok) return;
      step(async () => {
        say($("entry-message"), "元に戻しています…");
        const restored = await M.api("POST", "/api/entries/" + encodeURIComponent(entry.key) + "/rollback",
          { to_revision: number });
        await reloadEntry("第" + number + "版の内容を、第" + restored.revision + "版として公開しました。" +
          (entry.dirty ? "編集中の内容は、そのまま残しています。" : ""));
      });
    }

    function discardChanges() {
      unsaved.delete(entry.key);
      $("unsaved-notice").hidden = true;
      const newest = latest();
      fillForm(newest ? contentOf(newest) : normalize({}));
      clearErrors();
      checkDirty();
      say($("entry-message"), "保存済みの内容に戻しました。");
      field("title").focus();
    }

    // A new entry started with this content (from the unanswered queue); a new entry not
    // yet saved is kept unless the editor agrees to replace it.
    async function startNew(content) {
      if (unsaved.has("")) {
        const ok = await confirmDialog(
          "作成中の新規エントリがあります",
          "保存していない新規エントリの内容を、この質問からの下書きに置き換えます。",
          "置き換える",
        );
        if (!ok) return;
        unsaved.delete("");
      }
      prefill = normalize(content);
      location.hash = "#new";
    }

    form.addEventListener("submit", saveDraft);
    form.addEventListener("input", (event) => {
      const name = event.target.id.replace(/^f-/, "");
      if (FORM_FIELDS.includes(name) && event.target.getAttribute("aria-invalid")) clearFieldError(name);
      if (name === "answer") countAnswer();
      checkDirty();
    });
    $("submit-review").addEventListener("click", submitReview);
    $("approve").addEventListener("click", approve);
    $("archive").addEventListener("click", archive);
    $("discard-changes").addEventListener("click", discardChanges);
    window.addEventListener("beforeunload", (event) => {
      if (entry.dirty || unsaved.size) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
    return { open, openNew, stash, startNew };
  }

  // ---------------------------------------------------------------- 3. unanswered

  // The 「未回答の質問」 view: what residents asked that was not answered, grouped;
  // hooks.draft({title, questions}) starts a new entry from a group.
  function createUnanswered(hooks) {
    const list = $("unanswered-groups");
    const status = $("unanswered-status");
    const days = $("unanswered-days");
    let loads = 0; // number of the latest load: only its answer is shown

    async function load() {
      const token = ++loads;
      list.setAttribute("aria-busy", "true");
      say(status, "読み込み中…");
      try {
        const data = await M.api("GET", "/api/unanswered?days=" + encodeURIComponent(days.value));
        if (token !== loads) return;
        list.replaceChildren(...data.groups.map(renderGroup));
        say(status, data.groups.length
          ? "過去" + data.days + "日に回答できなかった質問を、" + data.groups.length + "グループにまとめました。"
          : "過去" + data.days + "日に、回答できなかった質問はありません。");
      } catch (error) {
        if (token === loads) say(status, errorText(error), true);
      } finally {
        if (token === loads) list.removeAttribute("aria-busy");
      }
    }

    function kindSummary(items) {
      const counts = new Map();
      for (const item of items) counts.set(item.kind, (counts.get(item.kind) || 0) + 1);
      return [...counts].map(([kind, n]) => (KIND_LABELS[kind] || kind) + " " + n + "件").join("、");
    }

    let groupCount = 0;

    function renderGroup(group) {
      const headingId = "group-" + ++groupCount;
      const items = group.items || [];
      return el("li", { className: "group" },
        el("h3", { id: headingId }, group.representative),
        el("p", { className: "meta" },
          el("span", { className: "size" }, group.size + "件"), "　", kindSummary(items)),
        group.suggestion
          ? el("p", {}, "近いエントリ：",
            el("a", { href: entryHash(group.suggestion.entry_id) }, group.suggestion.title))
          : el("p", { className: "hint" }, "近いエントリはありません。"),
        el("details", {},
          el("summary", {}, "質問の一覧（" + items.length + "件）"),
          el("ul", { className: "items" }, items.map((item) =>
            el("li", {},
              el("span", { className: "item-text" }, item.text),
              el("span", { className: "item-meta" },
                [KIND_LABELS[item.kind] || item.kind, M.when(item.at),
                  item.ticket_id ? "受付番号 " + item.ticket_id : ""].filter(Boolean).join("・")))))),
        el("button", { type: "button", className: "new-draft secondary", "aria-describedby": headingId,
          onclick: () => hooks.draft(draftOf(group)) }, "この質問から下書きを作成"));
    }

    // A new entry's title (the group's representative question, cut to 40 characters)
    // and its questions (what residents asked, each once).
    function draftOf(group) {
      const texts = [];
      for (const item of group.items || []) {
        const text = String(item.text || "").replace(/\s+/g, " ").trim();
        if (text && !texts.includes(text)) texts.push(text);
      }
      const title = Array.from(String(group.representative || "").replace(/\s+/g, " ").trim())
        .slice(0, 40).join("");
      return { title, questions: texts.length ? texts : [title] };
    }

    days.addEventListener("change", load);
    return { load };
  }

  // ---------------------------------------------------------------- 4. suggestions

  // Where a suggested wording came from: staff who resolved a handoff with this entry
  // (strong evidence), a resident who chose it and said it helped (weaker: shown as
  // such), and residents who said its answer did not help.
  const SOURCE_LABELS = {
    staff: "職員が対応",
    resident: "利用者が選択（参考）",
    against: "解決しなかった",
  };
  // A wording that is another entry's phrasing can never be added as it is (a phrasing
  // belongs to one entry): edit it or reject it. One that would change which entry
  // answers another's phrasing may be accepted after a second, explicit confirmation.
  const SAME_AS_PHRASING = "suggestion.same_as_phrasing";
  const CHANGES_ANSWER = "suggestion.changes_answer";

  // The 「言い回しの候補」 view: open suggestions by entry; accept (optionally edited),
  // reject, or accept an entry's wordings together. Accepting makes a draft revision,
  // which then goes through review as every change does.
  function createSuggestions() {
    const list = $("suggestions-entries");
    const status = $("suggestions-status");
    const result = $("suggestions-result");
    const navCount = $("suggestions-count");
    let token = 0;
    let busy = false;
    let wordingCount = 0;

    function showCount(counts) {
      navCount.textContent = counts && counts.open ? "（" + counts.open + "）" : "";
    }

    // The list comes at once with the conflicts a lookup finds (a wording that is
    // already another entry's phrasing); whether accepting a wording would change
    // another entry's answer takes the engine's preview (~0.06 s a wording), so it is
    // checked entry by entry afterwards, top first, while the editor reads and acts.
    // load() returns once the list is shown; the checks go on until the next load or
    // until the editor leaves the view (stop).
    async function load() {
      const mine = ++token;
      list.setAttribute("aria-busy", "true");
      say(status, "読み込み中…");
      try {
        const data = await M.api("GET", "/api/suggestions?status=open&preview=false");
        if (mine !== token) return;
        showCount(data.counts);
        const groups = data.data.map(entryItem);
        list.replaceChildren(...groups.map((group) => group.item));
        say(status, summary(data) + (groups.length ? " ほかの項目の回答が変わらないか、順に確かめています。" : ""));
        checkAll(mine, groups, data);
      } catch (error) {
        if (mine === token) say(status, errorText(error), true);
      } finally {
        if (mine === token) list.removeAttribute("aria-busy");
      }
    }

    function stop() {
      token++;
    }

    async function checkAll(mine, groups, data) {
      let failed = 0;
      for (const group of groups) {
        if (mine !== token) return;
        try {
          await check(group);
        } catch (error) {
          if (mine !== token) return;
          failed++;
          group.failed(errorText(error));
        }
      }
      if (mine !== token) return;
      const clashes = groups.reduce((n, g) => n + g.group.wordings.filter((w) => w.conflict).length, 0);
      say(status, summary(data) + (clashes ? " うち" + clashes + "件は、ほかの項目と衝突します。" : " 衝突はありません。") +
        (failed ? " " + failed + "項目は確かめられませんでした。" : ""));
    }

    async function check(view) {
      const data = await M.api("GET", "/api/suggestions?status=open&entry_id=" +
        encodeURIComponent(view.group.entry_id));
      const found = new Map(((data.data[0] || {}).wordings || []).map((w) => [w.id, w]));
      for (const w of view.group.wordings) {
        const now = found.get(w.id);
        // Decided meanwhile, or shown under another id now: not counted as checked (the
        // next load shows it as it stands; accepting it is checked by the server).
        if (!now) {
          w.unchecked = true;
          continue;
        }
        if (!now.conflict || w.conflict) continue;
        w.conflict = now.conflict;
        const item = view.item.querySelector("li.wording[data-id='" + w.id + "']");
        if (!item) continue;
        const taken = w.conflict.code === SAME_AS_PHRASING;
        item.classList.add("has-conflict");
        item.querySelector(".actions").before(conflictNote(w.conflict, taken));
        const button = item.querySelector("button.accept");
        if (button && taken) button.remove();
        else if (button) button.textContent = "衝突を確認して採用";
      }
      view.checked();
    }

    function summary(data) {
      const counts = data.counts || {};
      const wordings = data.data.reduce((n, group) => n + group.wordings.length, 0);
      const done = "これまでに採用 " + (counts.accepted || 0) + "件・不採用 " + (counts.rejected || 0) + "件。";
      if (!data.data.length) return "未処理の言い回しの候補はありません。" + done;
      return data.data.length + "項目に、未処理の言い回しの候補が" + wordings + "件あります。" + done;
    }

    function sourceBadges(w) {
      const counts = [["staff", (w.sources || {}).staff], ["resident", (w.sources || {}).resident],
        ["against", w.against]];
      return counts.filter(([, n]) => n > 0).map(([kind, n]) =>
        el("span", { className: "source " + kind }, SOURCE_LABELS[kind] + " " + n + "件"));
    }

    // One entry's wordings; the bulk accept appears once its conflicts are checked.
    function entryItem(group) {
      const headingId = "suggest-" + group.entry_id;
      const wordings = group.wordings || [];
      const total = (kind) => wordings.reduce((n, w) => n + (((w.sources || {})[kind]) || 0), 0);
      const message = el("p", { className: "group-status", role: "status" });
      const checking = el("p", { className: "checking" }, "ほかの項目への影響を確かめています…");
      const bulkActions = el("div", { className: "actions", hidden: true });
      const item = el("li", { className: "suggestion-entry", dataset: { entryId: group.entry_id } },
      el("h3", { id: headingId },
        el("a", { href: entryHash(group.entry_id) }, group.title || group.entry_id),
        el("span", { className: "entry-id" }, group.entry_id)),
      el("p", { className: "meta" }, "言い回し " + wordings.length + "件（" +
          SOURCE_LABELS.staff + " " + total("staff") + "件・" + SOURCE_LABELS.resident + " " +
          total("resident") + "件）"),
      el("ul", { className: "wordings" }, wordings.map((w) => wordingItem(group, w, message))),
      checking,
      bulkActions,
      message);

      function checked() {
        checking.remove();
        item.dataset.checked = "true";
        // Several checked wordings without a conflict: all of them in one draft.
        const clear = wordings.filter((w) => !w.conflict && !w.unchecked);
        if (clear.length < 2) return;
        bulkActions.replaceChildren(el("button", { type: "button", className: "bulk-accept",
          "aria-describedby": headingId,
          onclick: () => bulkAccept(group, clear, wordings.length - clear.length, message) },
        (clear.length === wordings.length ? "" : "衝突のない") + clear.length + "件をまとめて採用"));
        bulkActions.hidden = false;
      }

      function failed(text) {
        checking.textContent = "ほかの項目への影響を確かめられませんでした（" + text + "）。採用するときに確かめます。";
      }

      return { group, item, checked, failed };
    }

    function wordingItem(group, w, message) {
      const textId = "wording-" + ++wordingCount;
      const edit = editForm(group, w, textId, message, () => toggleEdit(edit, editButton));
      const editButton = el("button", { type: "button", className: "edit secondary",
        "aria-expanded": "false", "aria-controls": edit.id, "aria-describedby": textId,
        onclick: () => toggleEdit(edit, editButton) }, "編集して採用");
      const taken = Boolean(w.conflict && w.conflict.code === SAME_AS_PHRASING);
      const tickets = (w.tickets || []).map((t) => (t && typeof t === "object" ? t.id : t)).filter(Boolean);
      return el("li", { className: "wording" + (w.conflict ? " has-conflict" : ""), dataset: { id: String(w.id) } },
        el("p", { className: "wording-text", id: textId }, w.text),
        el("p", { className: "sources" }, sourceBadges(w)),
        el("p", { className: "when" }, [
          w.first_at && "最初 " + M.when(w.first_at),
          w.last_at && w.last_at !== w.first_at && "最新 " + M.when(w.last_at),
          tickets.length && "受付番号 " + tickets.join("、"),
        ].filter(Boolean).join("・")),
        w.conflict && conflictNote(w.conflict, taken),
        el("div", { className: "actions" },
          taken ? null : el("button", { type: "button", className: "accept", "aria-describedby": textId,
            onclick: () => accept(group, [{ id: w.id, text: null }], w.conflict, message) },
          w.conflict ? "衝突を確認して採用" : "採用"),
          editButton,
          el("button", { type: "button", className: "reject danger", "aria-describedby": textId,
            onclick: () => reject(w, message) }, "採用しない")),
        edit);
    }

    function conflictNote(conflict, taken) {
      return el("div", { className: "conflict", role: "note" },
        el("p", {}, el("strong", {}, "衝突："), conflict.message || "ほかの項目の言い回しと衝突します。"),
        taken ? el("p", {}, "このままでは採用できません。言い回しを編集して採用するか、採用しないでください。") : null,
        conflict.entry_id ? el("p", {}, "衝突する項目：",
          el("a", { href: entryHash(conflict.entry_id) }, conflict.entry_id),
          conflict.question ? "（「" + conflict.question + "」）" : "") : null);
    }

    function editForm(group, w, textId, message, cancel) {
      const id = "edit-" + textId;
      const area = el("textarea", { id: id + "-text", rows: 2, maxLength: 1000 });
      area.value = w.text;
      const form = el("form", { id, className: "edit-wording", hidden: true },
        el("label", { htmlFor: id + "-text" }, "採用する言い回し"),
        el("p", { className: "hint" }, "住民の書いた文です。氏名・住所・電話番号などが残っていれば消してください。"),
        area,
        el("div", { className: "actions" },
          el("button", { type: "submit" }, "この言い回しで採用"),
          el("button", { type: "button", className: "secondary", onclick: cancel }, "やめる")));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = area.value.replace(/\s+/g, " ").trim();
        if (!text) {
          say(message, "採用する言い回しを入力してください。", true);
          area.focus();
          return;
        }
        // Edited, it is checked afresh by the server (a conflict then is asked about).
        const same = text === w.text;
        accept(group, [{ id: w.id, text: same ? null : text }], same ? w.conflict : null, message);
      });
      return form;
    }

    function toggleEdit(form, button) {
      form.hidden = !form.hidden;
      button.setAttribute("aria-expanded", String(!form.hidden));
      if (form.hidden) button.focus();
      else form.querySelector("textarea").focus();
    }

    // One action at a time; its error stays beside the entry, the list reloads after.
    async function act(message, work) {
      if (busy) return;
      busy = true;
      list.setAttribute("aria-busy", "true");
      try {
        await work();
      } catch (error) {
        // Decided meanwhile by another editor, or gone: show how things stand now.
        if (error.status === 409 || error.status === 404) await load();
        const shown = message.isConnected ? message : result;
        say(shown, errorText(error), true);
        if (shown === result) result.focus();
      } finally {
        busy = false;
        list.removeAttribute("aria-busy");
      }
    }

    // A conflict the list showed needs a second, explicit confirmation (sent as force);
    // one the server finds only now (409) is shown and asked about the same way.
    async function accept(group, items, conflict, message) {
      let force = false;
      if (conflict) {
        force = await confirmConflict(conflict.message);
        if (!force) return;
      }
      await act(message, async () => {
        let revision;
        try {
          revision = await postAccept(group, items, force);
        } catch (error) {
          if (error.status !== 409 || force || error.code !== CHANGES_ANSWER) throw error;
          if (!(await confirmConflict(error.message))) {
            say(message, error.message, true);
            return;
          }
          revision = await postAccept(group, items, true);
        }
        await accepted(group, revision, items.length);
      });
    }

    function postAccept(group, items, force) {
      return M.api("POST", "/api/suggestions/accept", { entry_id: group.entry_id, items, force });
    }

    function confirmConflict(text) {
      return confirmDialog(
        "ほかの項目と衝突する言い回しです",
        (text || "ほかの項目の言い回しと衝突します。") +
          " 採用すると、住民への回答が変わることがあります。下書きのプレビューで確かめてから確認を依頼してください。",
        "衝突を承知で採用",
      );
    }

    async function bulkAccept(group, clear, conflicts, message) {
      await act(message, async () => {
        const revision = await postAccept(group, clear.map((w) => ({ id: w.id, text: null })), false);
        await accepted(group, revision, clear.length,
          conflicts ? "衝突のある" + conflicts + "件は、個別に確かめてください。" : "");
      });
    }

    // Says which draft revision was made, with a link into the usual review flow.
    async function accepted(group, revision, n, more) {
      await load();
      result.replaceChildren(
        "「" + (group.title || group.entry_id) + "」に言い回しを" + n + "件加え、第" + revision.revision +
          "版の下書きを作りました。内容を確かめて「確認を依頼」してください。別の編集者が承認すると公開されます。" +
          (more ? " " + more : ""),
        " ",
        el("a", { href: entryHash(revision.entry_id), className: "open-draft" },
          "第" + revision.revision + "版の下書きを開く"));
      result.focus();
    }

    async function reject(w, message) {
      const ok = await confirmDialog(
        "この言い回しを採用しません",
        "「" + w.text + "」を不採用として記録します。同じ言い回しは、今後は候補に出ません。",
        "採用しない",
      );
      if (!ok) return;
      await act(message, async () => {
        const done = await M.api("POST", "/api/suggestions/reject",
          { ids: w.ids && w.ids.length ? w.ids : [w.id], reason: "" });
        await load();
        say(result, "「" + w.text + "」を不採用にしました（" + done.rejected + "件）。今後は候補に出ません。");
        result.focus();
      });
    }

    // The menu's open count, without listing anything.
    async function count() {
      try {
        showCount(await M.api("GET", "/api/suggestions/counts"));
      } catch {
        // The view says what went wrong when it is opened.
      }
    }

    return { load, stop, count };
  }

  // ---------------------------------------------------------------- start

  async function start() {
    const notice = $("page-message");
    try {
      M.showUser(await M.requireLogin("editor"));
    } catch (error) {
      if (error.status !== 401) say(notice, errorText(error), true);
      return;
    }
    notice.hidden = true;
    $("views-nav").hidden = false;
    entryList = createList();
    entryView = createEntry();
    unanswered = createUnanswered({ draft: entryView.startNew });
    suggestions = createSuggestions();
    suggestions.count();
    window.addEventListener("hashchange", () => route(true));
    route(false);
    // The filters and the form's suggestions need the categories even if the editor
    // starts on another view.
    if (current.view !== "list") entryList.load();
  }

  start();
})();
