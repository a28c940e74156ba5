// Team pages beyond htmx: the notification bell's live count, and the conversation page's
// timeline (what stays open across live refreshes, bodies loaded on opening, Ctrl+Enter,
// @mention completion).

// The bell sits in the top bar, outside the element holding the page's event stream, so it
// cannot use hx-trigger="sse:…" itself: listen on the stream and nudge it.
(() => {
  document.addEventListener("htmx:sseOpen", (event) => {
    const source = event.detail && event.detail.source;
    if (!source || source.kotakBell) return;
    source.kotakBell = true;
    source.addEventListener("notifications", () => htmx.trigger(document.body, "kotak:notifications"));
  });
})();

(() => {
  // A refresh of the timeline waits while someone edits a note in it (it would wipe their
  // words); it runs when they are done.
  let missed = false;
  document.addEventListener("htmx:beforeRequest", (event) => {
    const timeline = event.detail.elt;
    if (!timeline || timeline.id !== "timeline") return;
    if (timeline.querySelector("details.note-edit[open]")) {
      missed = true;
      event.preventDefault();
    }
  });

  function loadBodies(root) {
    for (const frame of root.querySelectorAll("details[open] iframe[data-src]:not([src])")) {
      frame.src = frame.dataset.src;
    }
  }

  // <details> fire "toggle" without bubbling: listen in the capture phase.
  document.addEventListener(
    "toggle",
    (event) => {
      const details = event.target;
      if (!(details instanceof HTMLDetailsElement)) return;
      if (details.open) loadBodies(details.parentElement || details);
      if (!details.open && details.matches(".note-edit") && missed) {
        missed = false;
        htmx.trigger(document.body, "kotak:refresh");
      }
    },
    true,
  );

  // Keep what the reader opened and ticked when the timeline is swapped for a fresher one.
  let kept = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "timeline") {
      const timeline = event.detail.target;
      kept = {
        open: Array.from(timeline.querySelectorAll("details.message-card[open]"), (d) => d.dataset.message),
        picked: Array.from(timeline.querySelectorAll(".pick:checked"), (box) => box.value),
      };
    }
  });
  document.addEventListener("htmx:afterSettle", () => {
    const timeline = document.getElementById("timeline");
    if (!timeline) return;
    if (kept) {
      for (const id of kept.open) {
        const details = timeline.querySelector(`details.message-card[data-message="${CSS.escape(id)}"]`);
        if (details) details.open = true;
      }
      for (const value of kept.picked) {
        const box = timeline.querySelector(`.pick[value="${CSS.escape(value)}"]`);
        if (box) box.checked = true;
      }
      kept = null;
    }
    loadBodies(timeline);
  });

  // The note box is emptied once the server took it; an edited note's form closes.
  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (!(form instanceof HTMLFormElement) || !event.detail.successful) return;
    if (form.matches("[data-reset-on-success]")) form.reset();
    const editing = form.closest("details.note-edit");
    if (editing) editing.open = false;
  });

  // A refused request (a viewer's click, a note that is not yours) says why instead of nothing.
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    const text =
      status === 403
        ? "Your role in this mailbox does not allow that."
        : status === 404
          ? "That is gone: reload the page."
          : "Something went wrong; try again.";
    htmx.trigger(document.body, "kotak:toast", { text, level: "error" });
  });

  // Ctrl+Enter (⌘+Enter) in a note submits it.
  document.addEventListener("keydown", (event) => {
    const field = event.target;
    if (!(field instanceof HTMLTextAreaElement) || !field.matches("[data-ctrl-enter]")) return;
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      field.form.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const timeline = document.getElementById("timeline");
    if (timeline) loadBodies(timeline);
  });
})();

// @mention completion in the note box: the members named in data-mentions, as a listbox.
(() => {
  let menu = null;
  let field = null;

  function close() {
    if (menu) menu.remove();
    menu = null;
  }

  function partial(textarea) {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const match = /(^|[^\w@])@([\w.+-]*)$/.exec(before);
    return match ? match[2] : null;
  }

  function choose(name) {
    const at = field.selectionStart;
    const before = field.value.slice(0, at).replace(/@[\w.+-]*$/, `@${name} `);
    field.value = before + field.value.slice(at);
    field.selectionStart = field.selectionEnd = before.length;
    field.focus();
    close();
  }

  function show(textarea, names) {
    close();
    field = textarea;
    menu = document.createElement("ul");
    menu.className = "mention-menu";
    menu.setAttribute("role", "listbox");
    menu.setAttribute("aria-label", "Mention");
    names.forEach((name, index) => {
      const item = document.createElement("li");
      item.setAttribute("role", "option");
      item.textContent = `@${name}`;
      item.dataset.name = name;
      if (index === 0) item.setAttribute("aria-selected", "true");
      item.addEventListener("mousedown", (event) => {
        event.preventDefault();
        choose(name);
      });
      menu.append(item);
    });
    textarea.insertAdjacentElement("afterend", menu);
  }

  document.addEventListener("input", (event) => {
    const textarea = event.target;
    if (!(textarea instanceof HTMLTextAreaElement) || !textarea.dataset.mentions) return;
    const typed = partial(textarea);
    if (typed === null) return close();
    const names = textarea.dataset.mentions
      .split(" ")
      .filter((name) => name && name.toLowerCase().startsWith(typed.toLowerCase()));
    if (names.length) show(textarea, names.slice(0, 8));
    else close();
  });

  document.addEventListener("keydown", (event) => {
    if (!menu || event.target !== field) return;
    const items = Array.from(menu.children);
    const current = items.findIndex((item) => item.getAttribute("aria-selected") === "true");
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const next = (current + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      items.forEach((item, index) => item.setAttribute("aria-selected", String(index === next)));
    } else if ((event.key === "Enter" || event.key === "Tab") && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      choose(items[Math.max(current, 0)].dataset.name);
    } else if (event.key === "Escape") {
      close();
    }
  });

  document.addEventListener("focusout", (event) => {
    if (event.target === field) setTimeout(close, 100);
  });
})();
