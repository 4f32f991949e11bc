// The safe Markdown subset of answer texts, built from DOM nodes only (never parsed as
// HTML): paragraphs separated by blank lines, line breaks, "- " / "* " and "1. " lists,
// **bold**, and [label](url) links to http(s), mailto and tel addresses. Anything else,
// markup included, stays literal text. The phone numbers given in options.phones (the
// city profile's) become tel: links wherever they stand in the text.
//
//   Madoguchi.markdown("手続き:\n- 窓口\n- [郵送](https://example.jp)") -> DocumentFragment
//   Madoguchi.markdown("電話 0000-00-1111", { phones: ["0000-00-1111"] })
(function () {
  "use strict";

  const BULLET = /^[ \t]{0,3}[-*][ \t]+(.*)$/;
  const NUMBERED = /^[ \t]{0,3}(\d{1,9})\.[ \t]+(.*)$/;
  const CONTINUATION = /^[ \t]+\S/; // an indented line carries on the list item above
  // Bounded lengths keep matching linear on long or hostile input.
  const LINK = /\[([^\[\]\n]{1,500})\]\(([^\s()]{1,2000})\)/y;
  const SPECIAL = /\[|\*\*/g; // where a link or bold text may start
  const SAFE_PREFIXES = ["http://", "https://", "mailto:", "tel:"];

  function markdown(text, options) {
    const fragment = document.createDocumentFragment();
    const phones = phonePattern((options && options.phones) || []);
    let source;
    try {
      source = text === undefined || text === null ? "" : String(text);
    } catch (error) {
      return fragment; // a value that cannot be turned into text shows nothing
    }
    try {
      for (const block of source.replace(/\r\n?/g, "\n").split(/\n[ \t]*\n/)) {
        renderBlock(block, fragment, phones);
      }
    } catch (error) {
      // Never expected; if it happens, the text is still shown, unformatted.
      fragment.replaceChildren(document.createTextNode(source));
    }
    return fragment;
  }

  // A block is a run of lines: consecutive list lines make one list, other lines one
  // paragraph (so "次の書類が必要です:\n- 本人確認書類" needs no blank line).
  function renderBlock(block, parent, phones) {
    let paragraph = null;
    let list = null;
    let item = null;
    for (const line of block.split("\n")) {
      const bullet = BULLET.exec(line);
      const numbered = bullet ? null : NUMBERED.exec(line);
      if (bullet || numbered) {
        const tag = bullet ? "ul" : "ol";
        if (!list || list.tagName.toLowerCase() !== tag) {
          list = document.createElement(tag);
          if (numbered && numbered[1] !== "1") list.start = Number(numbered[1]);
          parent.append(list);
        }
        paragraph = null;
        item = document.createElement("li");
        appendInline(item, bullet ? bullet[1] : numbered[2], phones);
        list.append(item);
      } else if (item && CONTINUATION.test(line)) {
        item.append(document.createElement("br"));
        appendInline(item, line.trim(), phones);
      } else if (line.trim() !== "") {
        list = null;
        item = null;
        if (paragraph) paragraph.append(document.createElement("br"));
        else {
          paragraph = document.createElement("p");
          parent.append(paragraph);
        }
        appendInline(paragraph, line.trim(), phones);
      }
    }
  }

  // Inline text: [label](url) links and **bold**; the rest as text nodes.
  function appendInline(parent, text, phones) {
    let plain = "";
    let at = 0;
    let boldPossible = true; // false once no closing "**" is left in the text
    const flush = () => {
      appendText(parent, plain, phones);
      plain = "";
    };
    while (at < text.length) {
      SPECIAL.lastIndex = at;
      const found = SPECIAL.exec(text);
      if (!found) break;
      plain += text.slice(at, found.index);
      at = found.index;
      if (text[at] === "[") {
        LINK.lastIndex = at;
        const match = LINK.exec(text);
        if (match) {
          flush();
          parent.append(link(match[1], match[2], match[0]));
          at += match[0].length;
          continue;
        }
      } else if (boldPossible) {
        const end = text.indexOf("**", at + 2);
        if (end === -1) boldPossible = false;
        else if (text.slice(at + 2, end).trim()) {
          flush();
          const strong = document.createElement("strong");
          appendLinksAndText(strong, text.slice(at + 2, end), phones);
          parent.append(strong);
          at = end + 2;
          continue;
        }
      }
      plain += text[at]; // not markup after all: a literal "[" or "*"
      at += 1;
    }
    plain += text.slice(at);
    flush();
  }

  // Inside **bold**: links, but no further bold.
  function appendLinksAndText(parent, text, phones) {
    let last = 0;
    for (let at = text.indexOf("["); at !== -1; at = text.indexOf("[", at + 1)) {
      if (at < last) continue;
      LINK.lastIndex = at;
      const match = LINK.exec(text);
      if (!match) continue;
      if (at > last) appendText(parent, text.slice(last, at), phones);
      parent.append(link(match[1], match[2], match[0]));
      last = at + match[0].length;
    }
    if (last < text.length) appendText(parent, text.slice(last), phones);
  }

  // Plain text, with the known phone numbers in it as tel: links.
  function appendText(parent, text, phones) {
    if (!text) return;
    if (!phones) {
      parent.append(document.createTextNode(text));
      return;
    }
    let last = 0;
    phones.lastIndex = 0;
    for (let match = phones.exec(text); match; match = phones.exec(text)) {
      if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
      const number = match[0];
      parent.append(link(number, "tel:" + number.replace(/[^0-9+]/g, ""), number));
      last = match.index + number.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  // One pattern for the numbers, longest first; a number inside a longer run of digits
  // (another number, an account number) is not one of them.
  function phonePattern(numbers) {
    const valid = numbers
      .filter((n) => typeof n === "string" && /^\+?[0-9][0-9-]{2,30}$/.test(n))
      .sort((a, b) => b.length - a.length);
    if (!valid.length) return null;
    const alternatives = valid.map((n) => n.replace(/[-+]/g, "\\$&")).join("|");
    return new RegExp("(?<![0-9０-９-])(?:" + alternatives + ")(?![0-9０-９-])", "g");
  }

  // A link to a safe address; any other address shows the Markdown as written.
  function link(label, url, raw) {
    const prefix = safePrefix(url);
    if (!prefix) return document.createTextNode(raw);
    const anchor = document.createElement("a");
    anchor.href = url;
    anchor.textContent = label;
    if (prefix.startsWith("http")) {
      anchor.target = "_blank";
      anchor.rel = "noopener noreferrer";
    }
    return anchor;
  }

  // The allowed prefix the address starts with, or null (also for an unparsable address).
  function safePrefix(url) {
    const lower = url.toLowerCase();
    const prefix = SAFE_PREFIXES.find((p) => lower.startsWith(p));
    if (!prefix) return null;
    try {
      return new URL(url) && prefix;
    } catch (error) {
      return null;
    }
  }

  window.Madoguchi = window.Madoguchi || {};
  window.Madoguchi.markdown = markdown;
})();
