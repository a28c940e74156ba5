// The team's screens beyond htmx: picking conversations for a bulk action, keeping the picks
// while the list refreshes itself live, and confirming removals.

(() => {
  const LIST = "#conversation-list";
  const boxes = () => Array.from(document.querySelectorAll(`${LIST} .pick`));
  const picked = () => boxes().filter((box) => box.checked);
  let keep = [];

  function updateCount() {
    const count = document.querySelector("[data-team-selection-count]");
    if (!count) return;
    const n = picked().length;
    count.textContent = n ? `${n} selected` : "";
    for (const box of boxes()) box.closest(".conversation-row")?.classList.toggle("picked", box.checked);
    const all = document.querySelector("[data-team-select-all]");
    if (all) all.checked = n > 0 && n === boxes().length;
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-team-select-all]")) {
      for (const box of boxes()) box.checked = event.target.checked;
    }
    if (event.target.matches(`${LIST} .pick, [data-team-select-all]`)) updateCount();
  });

  // A teammate's change refreshes the list under the pointer: what was picked stays picked.
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target && event.detail.target.matches(LIST)) keep = picked().map((box) => box.value);
  });
  document.addEventListener("htmx:afterSwap", () => {
    if (!document.querySelector(LIST)) return;
    for (const box of boxes()) if (keep.includes(box.value)) box.checked = true;
    updateCount();
  });

  // Done with this selection: the list that comes next starts with nothing picked.
  document.addEventListener("htmx:afterRequest", (event) => {
    if (event.detail.elt?.id !== "team-bulk-form" || !event.detail.successful) return;
    for (const box of picked()) box.checked = false;
    keep = [];
    updateCount();
  });

  // The one-time set-password link: one click selects it for copying.
  document.addEventListener("focusin", (event) => {
    if (event.target.matches("[data-select-on-focus]")) event.target.select();
  });

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
