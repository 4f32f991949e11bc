// The chat widget for the city website, served at /widget.js and included with one tag:
//   <script src="https://chat.example.city/widget.js" defer></script>
// It adds a 「チャットで質問する」 button; the panel it opens shows the chat page of the
// server this script came from (/?embed=1) in a frame. Class names start with
// "madoguchi-" and the only global is window.MadoguchiWidget ({open, close}).
(function () {
  "use strict";
  if (window.MadoguchiWidget) return; // included twice: the first copy does the work

  const script = document.currentScript ||
    document.querySelector('script[src$="/widget.js"]');
  const ORIGIN = new URL(script ? script.src : "/", location.href).origin;
  const TITLE = "お問い合わせチャット";
  const PANEL_ID = "madoguchi-panel";

  // Sizes in px, not rem: the host page may change the root font size.
  const CSS = `
.madoguchi-launcher, .madoguchi-panel, .madoguchi-panel * {
  box-sizing: border-box; letter-spacing: normal; text-transform: none; text-align: left;
  font-family: "Hiragino Kaku Gothic ProN", "Noto Sans JP", "Yu Gothic", "Meiryo", sans-serif;
}
.madoguchi-launcher {
  position: fixed; right: 16px; bottom: 16px; z-index: 2147483000;
  margin: 0; min-width: 44px; min-height: 48px; width: auto; height: auto;
  padding: 10px 20px; border: 2px solid #fff; border-radius: 999px;
  background: #1d4f91; color: #fff; cursor: pointer;
  font-size: max(1rem, 16px); font-weight: bold; line-height: 1.4;
  box-shadow: 0 0 0 2px #1d4f91, 0 4px 12px rgba(0, 0, 0, .35);
}
.madoguchi-launcher:hover { background: #153a6b; }
/* Black and yellow rings: visible on any host page background. */
.madoguchi-launcher:focus-visible, .madoguchi-close:focus-visible {
  outline: 4px solid #1a1a1a; outline-offset: 3px; box-shadow: 0 0 0 9px #ffdd00;
}
.madoguchi-panel {
  position: fixed; right: 16px; bottom: 84px; z-index: 2147483000;
  width: min(440px, calc(100vw - 32px)); height: min(800px, calc(100vh - 100px));
  margin: 0; padding: 0; display: flex; flex-direction: column; overflow: hidden;
  background: #fff; color: #1a1a1a; border: 1px solid #555; border-radius: 12px;
  box-shadow: 0 8px 28px rgba(0, 0, 0, .35);
}
.madoguchi-panel[hidden] { display: none !important; }
.madoguchi-bar {
  flex: none; display: flex; align-items: center; justify-content: space-between;
  gap: 8px; padding: 6px 8px 6px 14px; background: #1d4f91; color: #fff;
  font-size: max(1rem, 16px); font-weight: bold; line-height: 1.4;
}
.madoguchi-close {
  flex: none; margin: 0; min-width: 44px; min-height: 44px; padding: 0 14px;
  border: 2px solid #fff; border-radius: 6px; background: #fff; color: #1d4f91;
  font-size: max(1rem, 16px); font-weight: bold; line-height: 1.4; cursor: pointer;
}
.madoguchi-close:hover { background: #e8f1ff; }
.madoguchi-frame {
  flex: 1 1 auto; display: block; width: 100%; min-height: 0; margin: 0; border: 0;
  background: #fff;
}
@media (max-width: 480px), (max-height: 480px) {
  .madoguchi-panel {
    top: 0; right: 0; bottom: 0; left: 0; width: 100%; height: 100%;
    border: 0; border-radius: 0;
  }
}
@media (forced-colors: active) {
  .madoguchi-launcher, .madoguchi-panel { border: 2px solid CanvasText; }
}`;

  let launcher = null;
  let panel = null;
  let frame = null;
  let title = null;

  function make(tag, className, props) {
    const node = document.createElement(tag);
    node.className = className;
    Object.assign(node, props || {});
    return node;
  }

  function build() {
    if (launcher) return;
    // A constructed style sheet, not a <style> element: a city page whose
    // Content-Security-Policy forbids inline styles would block the element.
    if (document.adoptedStyleSheets && window.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    } else {
      document.head.append(make("style", "madoguchi-style", { textContent: CSS }));
    }

    launcher = make("button", "madoguchi-launcher", {
      type: "button",
      textContent: "チャットで質問する",
    });
    launcher.setAttribute("aria-haspopup", "dialog");
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-controls", PANEL_ID);
    launcher.addEventListener("click", () => (panel.hidden ? open() : close()));

    panel = make("div", "madoguchi-panel", { id: PANEL_ID, hidden: true });
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-modal", "false");
    panel.setAttribute("aria-label", TITLE);
    const bar = make("div", "madoguchi-bar");
    title = make("span", "madoguchi-title", { textContent: TITLE });
    const closeButton = make("button", "madoguchi-close", { type: "button", textContent: "閉じる" });
    closeButton.addEventListener("click", close);
    bar.append(title, closeButton);
    panel.append(bar);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });

    // The launcher comes right before the panel, so Tab goes from one into the other.
    document.body.append(launcher, panel);
    window.addEventListener("message", onMessage);
  }

  // The frame is made on first opening, so pages where nobody opens the chat cost the
  // server nothing. Closing only hides it: the conversation stays.
  function ensureFrame() {
    if (frame) return;
    frame = make("iframe", "madoguchi-frame", { title: TITLE, src: ORIGIN + "/?embed=1" });
    // The chat records which page of the website it was opened on (document.referrer).
    frame.referrerPolicy = "no-referrer-when-downgrade";
    frame.addEventListener("load", () => {
      if (!panel.hidden) focusFrame();
    });
    panel.append(frame);
  }

  // Focus into the frame, and ask the chat page to put it in its text box.
  function focusFrame() {
    frame.focus();
    if (frame.contentWindow) frame.contentWindow.postMessage({ madoguchi: "focus" }, ORIGIN);
  }

  // The chat page in the frame asks to be closed when Esc is pressed inside it, and
  // names the city for the title once it knows it.
  function onMessage(event) {
    if (!frame || event.source !== frame.contentWindow || event.origin !== ORIGIN) return;
    const data = event.data || {};
    if (data.madoguchi === "close") close();
    if (data.madoguchi === "title" && typeof data.text === "string" && data.text) {
      title.textContent = data.text.slice(0, 60);
      panel.setAttribute("aria-label", title.textContent);
    }
  }

  function open() {
    whenReady(() => {
      build();
      ensureFrame();
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      focusFrame();
    });
  }

  function close() {
    if (!panel || panel.hidden) return;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  function whenReady(callback) {
    if (document.body) callback();
    else document.addEventListener("DOMContentLoaded", callback, { once: true });
  }

  window.MadoguchiWidget = Object.freeze({ open, close });
  whenReady(build);
})();
