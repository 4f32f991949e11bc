// Staff lookup: the same engine call as the chat, shown as the resident would see it.
(function () {
  "use strict";
  const q = document.getElementById("q");
  const asOf = document.getElementById("as-of");
  const results = document.getElementById("results");
  const summary = document.getElementById("summary");
  const labels = { answer: "回答あり", clarify: "候補から確認", handoff: "該当なし（職員対応）" };
  let timer = null;
  let latest = 0;

  async function lookup() {
    const text = q.value.trim();
    if (!text) { results.replaceChildren(); summary.textContent = ""; return; }
    const params = new URLSearchParams({ q: text, k: "5" });
    if (asOf.value) params.set("as_of", asOf.value);
    const ticket = ++latest;
    const response = await fetch("/api/answers?" + params);
    if (ticket !== latest) return;  // a newer keystroke's search is on its way
    const data = await response.json();
    if (!response.ok) { summary.textContent = "検索できませんでした。"; return; }
    summary.textContent = labels[data.decision] + "（確信度 " + data.confidence.toFixed(2) + "）";
    results.replaceChildren(...data.results.map((r) => {
      const item = document.createElement("li");
      const title = document.createElement("h2");
      title.textContent = r.title + "（" + r.entry_id + " 第" + r.revision + "版）";
      const answer = document.createElement("p");
      answer.className = "answer";
      answer.textContent = r.answer;
      const contact = document.createElement("p");
      contact.textContent = "担当：" + r.contact;
      const copy = document.createElement("button");
      copy.type = "button";
      copy.textContent = "回答をコピー";
      copy.addEventListener("click", () => navigator.clipboard.writeText(r.answer));
      item.append(title, answer, contact, copy);
      return item;
    }));
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(lookup, 250); }
  q.addEventListener("input", schedule);
  asOf.addEventListener("change", lookup);
  document.getElementById("lookup").addEventListener("submit", (e) => { e.preventDefault(); lookup(); });
})();
