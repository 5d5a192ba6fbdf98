// QueryWarden console: small progressive enhancement. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Ask before changing a decision: a block cuts a customer off.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      const button = event.submitter;
      const action = button && button.value ? button.value : "change";
      if (!window.confirm(`${action.charAt(0).toUpperCase()}${action.slice(1)} this principal? It is recorded in the audit log.`)) {
        event.preventDefault();
      }
    });
  }
  // Pages that watch live activity (the overview) reload themselves while visible and idle.
  const main = document.querySelector("main[data-refresh]");
  if (main) {
    const seconds = Number(main.dataset.refresh) || 30;
    let touched = Date.now();
    document.addEventListener("input", () => { touched = Date.now(); });
    setInterval(() => {
      if (document.visibilityState === "visible" && Date.now() - touched > seconds * 1000) window.location.reload();
    }, seconds * 1000);
  }
  // Filter the rows of a table on the current page as you type.
  for (const input of document.querySelectorAll("input.tablefilter")) {
    const table = document.getElementById(input.dataset.table);
    if (!table) continue;
    input.addEventListener("input", () => {
      const needle = input.value.trim().toLowerCase();
      for (const row of table.tBodies[0].rows) {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      }
    });
  }
});
