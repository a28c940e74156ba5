// Kotak's page behaviour beyond htmx: the "N new" marker of a live message list.
(() => {
  let newCount = 0;

  function marker() {
    return document.getElementById("new-marker");
  }

  // A new message while the reader is scrolled down: say so instead of moving the list.
  document.addEventListener("htmx:sseMessage", (event) => {
    const list = document.getElementById("message-list");
    const button = marker();
    if (!list || !button || event.detail.type !== `folder-${list.dataset.folder}`) return;
    const data = JSON.parse(event.detail.data || "{}");
    if (data.kind !== "messages_added" || window.scrollY < 120) return;
    newCount += (data.messages || []).length || 1;
    button.textContent = `${newCount} new message${newCount === 1 ? "" : "s"} — show`;
    button.hidden = false;
  });

  document.addEventListener("click", (event) => {
    const button = marker();
    if (!button || event.target !== button) return;
    newCount = 0;
    button.hidden = true;
    window.scrollTo({ top: 0 });
    htmx.trigger(document.getElementById("message-list"), "kotak:refresh");
  });
})();
