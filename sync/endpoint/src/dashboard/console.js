// The HQ admins' console pages: accounts (list, create, disable/enable, reset a password; the
// stores' names, regions and coordinates) and the audit log (newest first, by account). Every
// call goes to the admin API with the session cookie; the API refuses other roles (403).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const ROLE = {
    "hq-admin": "HQ admin",
    "regional-manager": "Regional manager",
    "store-manager": "Store manager",
    "analyst": "Analyst",
  };

  function say(text, error) {
    const s = $("status");
    s.textContent = text;
    if (error) s.dataset.kind = "error";
    else delete s.dataset.kind;
  }

  async function call(method, url, body) {
    const r = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!r.ok) {
      let msg = "HTTP " + r.status;
      try { msg = (await r.json()).message || msg; } catch (_) { /* not JSON */ }
      throw new Error(msg);
    }
    return r.status === 204 ? null : r.json();
  }

  function cell(tr, text) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  // ---- accounts page ----
  let stores = [];

  async function loadAccounts() {
    const accounts = await call("GET", "/v1/admin/accounts");
    const rows = $("account-rows");
    rows.replaceChildren();
    const reset = $("reset-name");
    const keep = reset.value;
    reset.replaceChildren();
    for (const a of accounts) {
      const tr = document.createElement("tr");
      tr.dataset.account = a.name;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = a.name;
      tr.appendChild(th);
      cell(tr, ROLE[a.role] || a.role);
      cell(tr, a.store_id ? "store " + a.store_id : a.region ? "region " + a.region : "every store");
      cell(tr, a.disabled ? "Disabled" : "Active");
      const td = cell(tr, "");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = a.disabled ? "Enable" : "Disable";
      b.setAttribute("aria-label", (a.disabled ? "Enable " : "Disable ") + a.name);
      b.addEventListener("click", async () => {
        try {
          await call("PUT", "/v1/admin/accounts/" + encodeURIComponent(a.name), { disabled: !a.disabled });
          say((a.disabled ? "Enabled " : "Disabled ") + a.name + ".");
          await loadAccounts();
        } catch (e) { say(e.message, true); }
      });
      td.appendChild(b);
      rows.appendChild(tr);
      option(reset, a.name, a.name);
    }
    if (keep) reset.value = keep;
  }

  async function loadStores() {
    stores = await call("GET", "/dashboard/api/stores");
    const rows = $("store-rows");
    rows.replaceChildren();
    const pick = $("new-store");
    const loc = $("loc-store");
    const keep = loc.value;
    pick.replaceChildren();
    loc.replaceChildren();
    for (const s of stores) {
      const tr = document.createElement("tr");
      tr.dataset.store = s.id;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = s.id;
      tr.appendChild(th);
      cell(tr, s.name);
      cell(tr, s.region || "–");
      cell(tr, s.latitude == null ? "–" : String(s.latitude));
      cell(tr, s.longitude == null ? "–" : String(s.longitude));
      rows.appendChild(tr);
      option(pick, s.id, s.name + " (" + s.id + ")");
      option(loc, s.id, s.name + " (" + s.id + ")");
    }
    if (keep) loc.value = keep;
    fillLocation();
  }

  function fillLocation() {
    const s = stores.find((x) => x.id === $("loc-store").value);
    if (!s) return;
    $("loc-name").value = s.name;
    $("loc-region").value = s.region || "";
    $("loc-lat").value = s.latitude == null ? "" : s.latitude;
    $("loc-lon").value = s.longitude == null ? "" : s.longitude;
  }

  function showRoleFields() {
    const role = $("new-role").value;
    for (const el of document.querySelectorAll("#new-account [data-for]")) {
      el.hidden = el.dataset.for !== role;
    }
    $("new-region").required = role === "regional-manager";
  }

  function accountsPage() {
    $("new-role").addEventListener("change", showRoleFields);
    showRoleFields();
    $("new-account").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const role = $("new-role").value;
      const body = { name: $("new-name").value.trim(), role, password: $("new-password").value };
      if (role === "store-manager") body.store_id = $("new-store").value;
      if (role === "regional-manager") body.region = $("new-region").value.trim();
      try {
        await call("POST", "/v1/admin/accounts", body);
        say("Created " + body.name + " (" + (ROLE[role] || role) + ").");
        $("new-account").reset();
        showRoleFields();
        await loadAccounts();
      } catch (e) { say(e.message, true); }
    });
    $("reset-password").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const name = $("reset-name").value;
      try {
        await call("PUT", "/v1/admin/accounts/" + encodeURIComponent(name) + "/password", { password: $("reset-password-input").value });
        say("New password set for " + name + "; their sessions ended.");
        $("reset-password-input").value = "";
      } catch (e) { say(e.message, true); }
    });
    $("loc-store").addEventListener("change", fillLocation);
    $("store-location").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const id = $("loc-store").value;
      const num = (v) => (v.trim() === "" ? null : Number(v.replace(",", ".")));
      const body = {
        name: $("loc-name").value.trim(),
        region: $("loc-region").value.trim() || null,
        latitude: num($("loc-lat").value),
        longitude: num($("loc-lon").value),
      };
      try {
        await call("PUT", "/v1/admin/stores/" + encodeURIComponent(id) + "/location", body);
        say("Saved store " + id + ".");
        await loadStores();
      } catch (e) { say(e.message, true); }
    });
    Promise.all([loadAccounts(), loadStores()]).catch((e) => say(e.message, true));
  }

  // ---- audit page ----
  function when(ms) {
    return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  async function loadAudit() {
    const user = $("audit-user").value;
    const q = user ? "?limit=200&user=" + encodeURIComponent(user) : "?limit=200";
    const lines = await call("GET", "/v1/admin/audit" + q);
    const rows = $("audit-rows");
    rows.replaceChildren();
    for (const l of lines) {
      const tr = document.createElement("tr");
      tr.dataset.user = l.user || "";
      tr.dataset.action = l.action;
      cell(tr, when(l.at_ms));
      cell(tr, l.user || l.actor);
      cell(tr, l.action);
      cell(tr, l.target);
      cell(tr, l.outcome);
      rows.appendChild(tr);
    }
    say(lines.length + " lines" + (user ? " of " + user : "") + ", newest first.");
  }

  async function auditPage() {
    try {
      const accounts = await call("GET", "/v1/admin/accounts");
      for (const a of accounts) option($("audit-user"), a.name, a.name);
    } catch (e) { say(e.message, true); }
    $("audit-filter").addEventListener("submit", (ev) => {
      ev.preventDefault();
      loadAudit().catch((e) => say(e.message, true));
    });
    loadAudit().catch((e) => say(e.message, true));
  }

  if (document.body.dataset.page === "accounts") accountsPage();
  if (document.body.dataset.page === "audit") auditPage();
})();
