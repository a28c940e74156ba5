// Kotak's page behaviour beyond htmx: the "N new" marker of a live message list.

// The list scrolls on its own beside the reading pane on wide screens, with the page elsewhere.
function kotakListScroller() {
  const pane = document.querySelector(".list-pane");
  if (pane && pane.scrollHeight > pane.clientHeight && getComputedStyle(pane).overflowY === "auto") return pane;
  return null;
}
function kotakListTop() {
  const pane = kotakListScroller();
  return pane ? pane.scrollTop : window.scrollY;
}

// Live refreshes with a condition. htmx's trigger filters ("sse:x[expr]") need eval, which the
// CSP forbids; instead an element with data-live="<event names>" is sent "kotak:live" when one
// of those server-sent events arrives, unless its data-live-guard says "not now":
//   list-top     only while the list is scrolled to the top (else "kotak:live-held")
//   not-editing  not while a field inside it has the focus
(() => {
  let source = null;
  const registered = new Set();

  function liveNames() {
    const names = new Set();
    for (const element of document.querySelectorAll("[data-live]")) {
      for (const name of element.dataset.live.split(/\s+/)) if (name) names.add(name);
    }
    return names;
  }

  function register() {
    if (!source) return;
    for (const name of liveNames()) {
      if (registered.has(name)) continue;
      registered.add(name);
      source.addEventListener(name, (event) => deliver(name, event));
    }
  }

  function deliver(name, event) {
    for (const element of document.querySelectorAll("[data-live]")) {
      if (!element.dataset.live.split(/\s+/).includes(name)) continue;
      const guard = element.dataset.liveGuard;
      if (guard === "list-top" && kotakListTop() >= 120) {
        element.dispatchEvent(
          new CustomEvent("kotak:live-held", { bubbles: true, detail: { data: event.data } }),
        );
        continue;
      }
      const focused = document.activeElement;
      if (guard === "not-editing" && element.contains(focused) && !focused.matches("a, button")) {
        continue;
      }
      htmx.trigger(element, "kotak:live", { data: event.data });
    }
  }

  document.addEventListener("htmx:sseOpen", (event) => {
    source = event.detail.source;
    registered.clear();
    register();
  });
  document.addEventListener("htmx:afterSettle", register);
})();

(() => {
  let newCount = 0;

  function marker() {
    return document.getElementById("new-marker");
  }

  // A new message while the reader is scrolled down: say so instead of moving the list.
  document.addEventListener("kotak:live-held", (event) => {
    const button = marker();
    if (!button || event.target.id !== "message-list") return;
    const data = JSON.parse(event.detail.data || "{}");
    if (data.kind !== "messages_added") return;
    newCount += (data.messages || []).length || 1;
    button.textContent = `${newCount} new message${newCount === 1 ? "" : "s"} — show`;
    button.hidden = false;
  });

  document.addEventListener("click", (event) => {
    const button = marker();
    if (!button || event.target !== button) return;
    newCount = 0;
    button.hidden = true;
    (kotakListScroller() || window).scrollTo({ top: 0 });
    htmx.trigger(document.getElementById("message-list"), "kotak:refresh");
  });
})();

// Toasts: what an action did, with Undo while it can still be taken back. A toast that comes
// with a page change (the next message after an archive) is kept in sessionStorage meanwhile.
(() => {
  const KEY = "kotak:toast";
  let lastUndo = "";

  function show(detail) {
    const box = document.getElementById("toasts");
    if (!box || !detail || !detail.text) return;
    box.replaceChildren();
    const toast = document.createElement("div");
    toast.className = `toast toast-${detail.level || "success"}`;
    const text = document.createElement("span");
    text.textContent = detail.text;
    toast.append(text);
    // Undo is offered exactly as long as the server takes it back: `seconds` from when the
    // action was answered (less the time a page change took, for a toast carried over).
    const undoMs = detail.undo && detail.seconds ? detail.seconds * 1000 - (detail.elapsed || 0) : 0;
    const offerUndo = detail.undo && (!detail.seconds || undoMs > 0);
    lastUndo = offerUndo ? detail.undo : "";
    if (offerUndo) {
      const undo = document.createElement("button");
      undo.type = "button";
      undo.className = "link";
      undo.textContent = "Undo";
      undo.addEventListener("click", () => runUndo(detail.undo));
      toast.append(" ", undo);
      if (undoMs > 0) {
        setTimeout(() => {
          undo.remove();
          if (lastUndo === detail.undo) lastUndo = "";
        }, undoMs);
      }
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => toast.remove());
    toast.append(close);
    box.append(toast);
    const ttl = Math.max(detail.level === "error" ? 20000 : 8000, undoMs);
    setTimeout(() => {
      toast.remove();
      if (lastUndo === detail.undo) lastUndo = "";
    }, ttl);
  }

  function runUndo(url) {
    if (!url) return;
    lastUndo = "";
    htmx.ajax("POST", url, { swap: "none", source: document.body });
  }

  document.body.addEventListener("kotak:toast", (event) => {
    const { text, level, undo, seconds } = event.detail || {};
    sessionStorage.setItem(KEY, JSON.stringify({ text, level, undo, seconds, at: Date.now() }));
    show({ text, level, undo, seconds });
  });

  document.addEventListener("DOMContentLoaded", () => {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    sessionStorage.removeItem(KEY);
    if (saved && Date.now() - saved.at < 5000) show({ ...saved, elapsed: Date.now() - saved.at });
  });

  // The server refused a change (another client deleted the folder, a full quota…).
  document.addEventListener("htmx:sseMessage", (event) => {
    if (event.detail.type !== "action-failed") return;
    const data = JSON.parse(event.detail.data || "{}");
    show({ text: `The server refused a change: ${data.reason || "no reason given"}`, level: "error" });
    htmx.trigger(document.body, "kotak:refresh");
  });

  window.kotakUndo = () => runUndo(lastUndo);
})();

// Selection and the keyboard: j/k move, x selects, Enter/o opens, e # ! s u v act, ? helps.
(() => {
  const rows = () => Array.from(document.querySelectorAll("#message-list .message-row"));
  const picked = () => Array.from(document.querySelectorAll("#message-list .pick:checked"));

  function updateCount() {
    const count = document.querySelector("[data-selection-count]");
    const n = picked().length;
    if (count) count.textContent = n ? `${n} selected` : "";
    document.body.classList.toggle("has-selection", n > 0);
    for (const row of rows()) {
      const box = row.querySelector(".pick");
      row.classList.toggle("picked", Boolean(box && box.checked));
    }
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-select-all]")) {
      for (const box of document.querySelectorAll("#message-list .pick")) box.checked = event.target.checked;
    }
    if (event.target.matches(".pick, [data-select-all]")) updateCount();
  });
  document.addEventListener("htmx:afterSwap", updateCount);

  // The cursor is held by message, not by position: a refresh renders the list again, new
  // mail on top, and a key must still act on the message it did.
  let cursorId = null;
  let cursorAt = -1; // where it was, for when its message leaves the list
  function currentIndex() {
    const list = rows();
    const cursor = list.findIndex((row) => row.dataset.message === cursorId);
    if (cursor >= 0) return cursor;
    return list.findIndex((row) => row.classList.contains("open"));
  }
  function moveCursor(step) {
    const list = rows();
    if (!list.length) return;
    let index = currentIndex();
    index = index < 0 ? 0 : Math.min(list.length - 1, Math.max(0, index + step));
    cursorId = list[index].dataset.message;
    cursorAt = index;
    for (const row of list) row.classList.remove("cursor");
    list[index].classList.add("cursor");
    list[index].querySelector("a").focus();
  }
  // So is the selection, on the messages still there; an action on it ends it (the form's
  // answer comes before the refresh it asks for).
  let kept = null;
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt.id !== "bulk-form" || !event.detail.successful) return;
    for (const box of picked()) box.checked = false;
    updateCount();
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target.id === "message-list") kept = picked().map((box) => box.value);
  });
  // The server renders neither in a refreshed list.
  document.addEventListener("htmx:afterSettle", () => {
    const list = rows();
    if (kept) {
      for (const box of document.querySelectorAll("#message-list .pick")) {
        if (kept.includes(box.value)) box.checked = true;
      }
      kept = null;
      updateCount();
    }
    if (cursorId !== null && list.length) {
      // Archived or deleted: the cursor goes to the message that took its place.
      const at = list.findIndex((row) => row.dataset.message === cursorId);
      cursorAt = at >= 0 ? at : Math.min(cursorAt, list.length - 1);
      cursorId = list[cursorAt].dataset.message;
    }
    for (const row of list) row.classList.toggle("cursor", row.dataset.message === cursorId);
  });

  function readerOpenFor(row) {
    return row && row.classList.contains("open") && document.getElementById("reader-form");
  }

  // Act on the selection, else on the row under the cursor, else on the open message.
  function act(kind) {
    const readerForm = document.getElementById("reader-form");
    const bulk = document.getElementById("bulk-form");
    const row = rows()[currentIndex()];
    let form = null;
    let button = null;
    if (picked().length && bulk) {
      form = bulk;
    } else if (readerForm && (!row || readerOpenFor(row) || document.activeElement.closest("#reader"))) {
      form = readerForm;
    } else if (row && bulk) {
      const box = row.querySelector(".pick");
      if (!box) return;
      box.checked = true;
      updateCount();
      form = bulk;
    }
    if (!form) return;
    if (kind === "u" && form === bulk) {
      const allUnread = picked().every((b) => b.closest(".message-row").classList.contains("unread"));
      button = form.querySelector(allUnread ? "[data-key-read]" : "[data-key-unread]");
    } else if (kind === "s" && form === bulk) {
      const allFlagged = picked().every((b) => b.closest(".message-row").classList.contains("flagged"));
      button = form.querySelector(allFlagged ? "[data-key-unflag]" : "[data-key-flag]");
    } else if (kind === "v") {
      form.querySelector('select[name="target"]')?.focus();
      return;
    } else {
      button = form.querySelector(`[data-key="${CSS.escape(kind)}"]`);
    }
    if (button) button.click();
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest("input, textarea, select, [contenteditable]") && !target.matches(".pick, [data-select-all]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const dialog = document.getElementById("shortcuts");
    if (dialog && dialog.open) return;
    switch (event.key) {
      case "j": moveCursor(1); break;
      case "k": moveCursor(-1); break;
      case "o":
      case "Enter": {
        const row = rows()[currentIndex()];
        if (!row || target.tagName === "BUTTON") return;
        row.querySelector("a").click();
        break;
      }
      case "x": {
        const row = rows()[currentIndex()];
        const box = row && row.querySelector(".pick");
        if (!box) return;
        box.checked = !box.checked;
        updateCount();
        break;
      }
      case "e": case "#": case "!": case "s": case "u": case "v": act(event.key); break;
      case "z": window.kotakUndo && window.kotakUndo(); break;
      case "?": if (dialog) dialog.showModal(); break;
      case "Escape": {
        const back = document.querySelector("[data-back]");
        if (back && document.body.classList.contains("reading")) back.click();
        return;
      }
      default: return;
    }
    event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-shortcuts]")) document.getElementById("shortcuts")?.showModal();
  });
})();

// Small behaviours that would otherwise be inline handlers (the CSP allows no inline script).
document.addEventListener("click", (event) => {
  const toggle = event.target.closest(".folders-toggle");
  if (!toggle) return;
  const open = document.body.classList.toggle("show-folders");
  toggle.setAttribute("aria-expanded", String(open));
});
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-autosubmit]")) event.target.form.requestSubmit();
});
