// Answering beyond htmx: the compose page's autosave, rich-text editor and saved replies, and
// the countdown of messages waiting in the outbox. No inline script, no eval (the CSP).

// Elements only useful with this script, and their plain-form fallbacks.
function kotakComposeReveal(root) {
  for (const element of root.querySelectorAll("[data-js-only]")) element.hidden = false;
  for (const element of root.querySelectorAll("[data-js-hidden]")) element.hidden = true;
}

// "Sending in 7 s" for queued messages (conversation timeline, drafts page).
(() => {
  function tick() {
    for (const element of document.querySelectorAll("[data-countdown]")) {
      const at = Date.parse(element.dataset.countdown);
      if (Number.isNaN(at)) continue;
      const left = Math.ceil((at - Date.now()) / 1000);
      element.textContent = left > 0 ? `Sending in ${left} s` : "Sending…";
    }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
})();

// The answering settings: follow the usual port when the security changes, unless one was typed.
(() => {
  document.addEventListener("change", (event) => {
    if (event.target.id !== "id_smtp_security") return;
    const port = document.getElementById("id_smtp_port");
    const usual = { ssl: "465", starttls: "587", plain: "587" };
    if (port && (!port.value || Object.values(usual).includes(port.value))) {
      port.value = usual[event.target.value] || "";
    }
  });
})();

(() => {
  const form = () => document.querySelector("form[data-compose]");

  document.addEventListener("DOMContentLoaded", () => {
    const compose = form();
    kotakComposeReveal(document);
    if (!compose) return;
    setUp(compose);
  });

  function setUp(compose) {
    const plain = compose.querySelector("[data-plain]");
    const editor = compose.querySelector("[data-editor]");
    const format = compose.querySelector("[data-format]");
    const html = compose.querySelector("[data-html]");
    const toggle = compose.querySelector("[data-rich-toggle]");
    const buttons = compose.querySelector("[data-rich-buttons]");
    const state = () => document.getElementById("save-state");
    let dirty = false;
    let leaving = false;
    let lastSaved = Date.now();
    let savedRange = null;

    const isRich = () => format.value === "rich";

    function changed() {
      // Programmatic changes fire "input" too, which is what starts an autosave.
      compose.dispatchEvent(new Event("input", { bubbles: true }));
    }

    // -- autosave --------------------------------------------------------------------------
    compose.addEventListener("input", () => {
      dirty = true;
      // Typing without a pause never lets "input delay:1500ms" fire: save every 8 s anyway.
      if (Date.now() - lastSaved > 8000) {
        lastSaved = Date.now();
        htmx.trigger(compose, "kotak:autosave");
      }
    });
    compose.addEventListener("htmx:beforeRequest", (event) => {
      const elt = event.detail.elt;
      if (elt.matches("[data-leaving]")) leaving = true;
      if (elt === compose || elt.matches(".save-button")) {
        dirty = false;
        lastSaved = Date.now();
        const element = state();
        if (element) element.textContent = "Saving…";
      }
    });
    compose.addEventListener("htmx:afterRequest", (event) => {
      const elt = event.detail.elt;
      if (elt.matches("[data-leaving]") && !event.detail.xhr.getResponseHeader("HX-Redirect")) {
        leaving = false; // a warning or an error: still here
      }
      if ((elt === compose || elt.matches(".save-button")) && !event.detail.successful) {
        dirty = true;
        const element = state();
        if (element) element.textContent = "Not saved — will try again";
      }
    });
    // A closed tab or a link followed: the last words still reach the server.
    window.addEventListener("pagehide", () => {
      if (!dirty || leaving) return;
      syncHtml();
      navigator.sendBeacon(compose.dataset.saveUrl, new FormData(compose));
      dirty = false;
    });

    // Ctrl+Enter (⌘+Enter) sends.
    compose.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        compose.querySelector("[data-send]").click();
      }
    });

    // -- rich text -------------------------------------------------------------------------
    function escapeHtml(text) {
      const div = document.createElement("div");
      div.textContent = text;
      return div.innerHTML;
    }
    function textToHtml(text) {
      return text
        .split("\n")
        .map((line) => (line ? `<div>${escapeHtml(line)}</div>` : "<div><br></div>"))
        .join("");
    }
    function syncHtml() {
      html.value = isRich() ? editor.innerHTML : "";
    }
    function setRich(on) {
      if (on === isRich()) return;
      if (on) {
        editor.innerHTML = textToHtml(plain.value);
      } else {
        plain.value = editor.innerText.replace(/\n{3,}/g, "\n\n");
      }
      format.value = on ? "rich" : "plain";
      editor.hidden = !on;
      plain.hidden = on;
      buttons.hidden = !on;
      syncHtml();
      (on ? editor : plain).focus();
      changed();
    }
    if (toggle) toggle.addEventListener("change", () => setRich(toggle.checked));
    editor.addEventListener("input", syncHtml);

    function rememberRange() {
      const selection = window.getSelection();
      if (selection.rangeCount && editor.contains(selection.anchorNode)) {
        savedRange = selection.getRangeAt(0).cloneRange();
      }
    }
    document.addEventListener("selectionchange", rememberRange);
    function restoreRange() {
      editor.focus();
      if (!savedRange) return;
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(savedRange);
    }

    if (buttons) {
      // Keep the editor's selection when a formatting button is pressed.
      buttons.addEventListener("mousedown", (event) => {
        if (event.target.closest("[data-command]")) event.preventDefault();
      });
      buttons.addEventListener("click", (event) => {
        const button = event.target.closest("[data-command]");
        if (!button) return;
        restoreRange();
        const command = button.dataset.command;
        if (command === "createLink") {
          const url = window.prompt("Link address", "https://");
          if (!url || !/^(https?:|mailto:)/i.test(url.trim())) return;
          document.execCommand("createLink", false, url.trim());
        } else {
          document.execCommand(command, false, null);
        }
        syncHtml();
        changed();
      });
    }

    // -- saved replies ---------------------------------------------------------------------
    const picker = compose.querySelector("[data-saved-replies]");
    if (picker) {
      const filter = picker.querySelector("[data-saved-filter]");
      const items = () => Array.from(picker.querySelectorAll("[data-saved-reply]"));
      const visible = () => items().filter((button) => !button.closest("li").hidden);

      // Not an edit of the message: keep it from starting an autosave.
      filter.addEventListener("input", (event) => {
        event.stopPropagation();
        const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
        for (const button of items()) {
          const text = button.textContent.toLowerCase();
          button.closest("li").hidden = !words.every((word) => text.includes(word));
        }
      });
      filter.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          const first = visible()[0];
          if (first) insert(first.dataset.body);
        } else if (event.key === "ArrowDown") {
          event.preventDefault();
          visible()[0]?.focus();
        } else if (event.key === "Escape") {
          picker.open = false;
        }
      });
      picker.addEventListener("keydown", (event) => {
        if (!event.target.matches("[data-saved-reply]")) return;
        const list = visible();
        const index = list.indexOf(event.target);
        if (event.key === "ArrowDown") list[index + 1]?.focus();
        else if (event.key === "ArrowUp") (list[index - 1] || filter).focus();
        else return;
        event.preventDefault();
      });
      picker.addEventListener("click", (event) => {
        const button = event.target.closest("[data-saved-reply]");
        if (button) insert(button.dataset.body);
      });
      picker.addEventListener("toggle", () => {
        if (picker.open) filter.focus();
      });

      function insert(text) {
        if (isRich()) {
          restoreRange();
          document.execCommand("insertHTML", false, textToHtml(text));
          syncHtml();
        } else {
          const start = plain.selectionStart ?? plain.value.length;
          const end = plain.selectionEnd ?? start;
          plain.setRangeText(text, start, end, "end");
          plain.focus();
        }
        picker.open = false;
        filter.value = "";
        for (const button of items()) button.closest("li").hidden = false;
        changed();
      }
    }
  }
})();
