// Search: "/" puts the cursor in the top bar's search box; on the search page the results
// follow what is typed (after a pause), and the address bar keeps up.
(function () {
  "use strict";
  const input = document.querySelector(".topbar-search input[type=search]");
  if (!input) return;

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (document.querySelector("dialog[open]")) return;
    event.preventDefault();
    input.focus();
    input.select();
  });

  if (!document.getElementById("search-page") || !window.htmx) return;
  input.setAttribute("hx-get", input.form.getAttribute("action"));
  input.setAttribute("hx-include", "closest form");
  input.setAttribute("hx-trigger", "input changed delay:350ms, search");
  input.setAttribute("hx-target", "#search-main");
  input.setAttribute("hx-swap", "outerHTML");
  input.setAttribute("hx-sync", "this:replace");
  input.setAttribute("hx-push-url", "true");
  window.htmx.process(input);
})();
