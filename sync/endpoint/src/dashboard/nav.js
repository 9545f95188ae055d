// The pages' header: who is logged in, and the HQ admins' links (accounts, audit). The links
// are hidden from other roles; the pages and the API behind them refuse those roles anyway.
"use strict";
(function () {
  const ROLE = {
    "hq-admin": "HQ admin",
    "regional-manager": "regional manager",
    "store-manager": "store manager",
    "analyst": "analyst (read only)",
  };
  fetch("/dashboard/api/me", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((me) => {
      if (!me) return;
      const who = document.getElementById("who");
      if (who) {
        let scope = "";
        if (me.scope.kind === "region") scope = " · region " + me.scope.value;
        if (me.scope.kind === "store") scope = " · store " + me.scope.value;
        who.textContent = (me.user || "admin token") + " · " + (ROLE[me.role] || me.role) + scope;
        who.dataset.role = me.role;
      }
      for (const el of document.querySelectorAll("[data-hq]")) el.hidden = me.role !== "hq-admin";
    })
    .catch(() => {});
})();
