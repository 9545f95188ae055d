// The customers page (HQ admins): search, a profile, corrections, exports, erasure with each
// kiosk's progress, and the CSV import. Every call goes to /dashboard/api/customers… with the
// session cookie; the API refuses other roles (403) whatever this page shows.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const API = "/dashboard/api/customers";
  let current = null; // the card token shown
  let erasurePoll = null;

  function say(text, error) {
    const s = $("status");
    s.textContent = text;
    if (error) s.dataset.kind = "error";
    else delete s.dataset.kind;
  }

  async function call(method, url, body, type) {
    const headers = {};
    if (body !== undefined) headers["content-type"] = type || "application/json";
    const r = await fetch(url, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : (type ? body : JSON.stringify(body)),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* no JSON */ }
    if (!r.ok) {
      const e = new Error((data && data.message) || "HTTP " + r.status);
      e.data = data;
      throw e;
    }
    return data;
  }

  const when = (ms) => (ms == null ? "—" : new Date(ms).toLocaleString());

  function row(tbody, cells) {
    const tr = document.createElement("tr");
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.appendChild(c);
      else td.textContent = c == null ? "—" : String(c);
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
    return tr;
  }

  function empty(tbody, cols, text) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = cols;
    td.textContent = text;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  async function search(ev) {
    ev.preventDefault();
    const q = $("q").value.trim();
    if (!q) return;
    try {
      const res = await call("GET", API + "?q=" + encodeURIComponent(q));
      const rows = $("result-rows");
      rows.replaceChildren();
      for (const c of res.customers) {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Open";
        b.setAttribute("aria-label", "Open the profile of " + (c.display_name || "card " + c.card_token.slice(0, 8)));
        b.addEventListener("click", () => open(c.card_token));
        row(rows, [c.display_name, c.email, c.phone, c.segment, c.visits, b]);
      }
      if (!res.customers.length) empty(rows, 6, "Nobody found.");
      $("results").hidden = false;
      // One customer (a card tapped): their profile at once, then the status.
      if (res.customers.length === 1) await open(res.customers[0].card_token);
      const as = res.searched.length ? " (read as " + res.searched.join(", ") + ")" : "";
      say(res.customers.length + " found" + as + ".");
    } catch (e) {
      say(e.message, true);
    }
  }

  function show(p) {
    const c = p.customer;
    current = c.card_token;
    $("h-profile").textContent = "Profile: " + (c.display_name || "(no name)");
    const facts = $("facts");
    facts.replaceChildren();
    const fact = (k, v) => {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = v == null || v === "" ? "—" : String(v);
      facts.append(dt, dd);
    };
    fact("Card token", c.card_token);
    fact("Email", c.email);
    fact("Phone", c.phone);
    fact("Language", c.locale);
    fact("Segment", c.segment + (c.segment_manual ? " (set by hand)" : " (computed)"));
    fact("Visits", c.visits);
    fact("Last visit", when(c.last_visit_ms));
    fact("Stores", c.stores.join(", "));
    $("c-name").value = c.display_name || "";
    $("c-email").value = c.email || "";
    $("c-phone").value = c.phone || "";
    $("c-locale").value = c.locale || "es";
    $("export-json").href = API + "/" + c.card_token + "/export?format=json";
    $("export-csv").href = API + "/" + c.card_token + "/export?format=csv";
    const cons = $("consent-rows");
    cons.replaceChildren();
    for (const k of p.consents) row(cons, [when(k.at_ms), k.purpose, k.given ? "given" : "withdrawn", k.policy_version, k.kiosk_id || "admin or import"]);
    if (!p.consents.length) empty(cons, 5, "No consent recorded.");
    $("services").textContent = p.services.length
      ? "Services: " + p.services.map((s) => s.service + " × " + s.turns).join(", ")
      : "";
    const turns = $("turn-rows");
    turns.replaceChildren();
    for (const t of p.turns) row(turns, [when(t.issued_ms), t.label, t.service, t.store_id, t.kiosk_id, t.served_ms ? when(t.served_ms) : "not served"]);
    if (!p.turns.length) empty(turns, 6, "No turns.");
    const surveys = $("survey-rows");
    surveys.replaceChildren();
    for (const s of p.surveys) row(surveys, [when(s.at_ms), s.score, s.reason, s.kiosk_id]);
    if (!p.surveys.length) empty(surveys, 4, "No survey answers.");
    const coupons = $("coupon-rows");
    coupons.replaceChildren();
    for (const k of p.coupons) row(coupons, [when(k.issued_ms), k.code, k.campaign_id, k.redeemed_ms ? when(k.redeemed_ms) : "not yet"]);
    if (!p.coupons.length) empty(coupons, 4, "No coupons.");
    $("profile").hidden = false;
    $("erasure").hidden = true;
  }

  async function open(token) {
    try {
      show(await call("GET", API + "/" + token));
      $("profile").scrollIntoView({ block: "nearest" });
    } catch (e) {
      say(e.message, true);
    }
  }

  async function correct(ev) {
    ev.preventDefault();
    if (!current) return;
    const body = {
      display_name: $("c-name").value.trim(),
      email: $("c-email").value.trim() || null,
      phone: $("c-phone").value.trim() || null,
      locale: $("c-locale").value,
    };
    try {
      show(await call("PUT", API + "/" + current, body));
      say("Saved. The kiosks get the corrected profile with their next feed poll.");
    } catch (e) {
      say(e.message, true);
    }
  }

  function showErasure(st) {
    const rows = $("erasure-rows");
    rows.replaceChildren();
    let applied = 0;
    for (const k of st.kiosks) {
      if (k.status === "applied") applied += 1;
      const label = { applied: "applied", pending: "waiting for its next feed poll", unknown: "unknown (not polled since the erasure was recorded)" }[k.status] || k.status;
      row(rows, [k.kiosk_id, k.store_id, label, when(k.last_poll_ms)]);
    }
    if (!st.kiosks.length) empty(rows, 4, "No kiosk enrolled.");
    $("erasure-summary").textContent = "Erased " + when(st.erased_ms) + ". Applied at " + applied + " of " + st.kiosks.length + " kiosks.";
    $("erasure").hidden = false;
    return applied === st.kiosks.length;
  }

  async function erase() {
    if (!current) return;
    const name = $("c-name").value || current;
    if (!window.confirm("Erase " + name + "? Their personal data is deleted here and on every kiosk. This cannot be undone.")) return;
    try {
      const token = current;
      const st = await call("POST", API + "/" + token + "/erase");
      $("profile").hidden = true;
      current = null;
      // The search's answer showed her name, email and phone: gone with her.
      $("result-rows").replaceChildren();
      $("results").hidden = true;
      say("Erased. Each kiosk removes the person at its next feed poll.");
      showErasure(st);
      if (erasurePoll) clearInterval(erasurePoll);
      erasurePoll = setInterval(async () => {
        try {
          if (showErasure(await call("GET", API + "/" + token + "/erasure"))) clearInterval(erasurePoll);
        } catch (_) { /* try again */ }
      }, 3000);
    } catch (e) {
      say(e.message, true);
    }
  }

  async function importCsv(ev) {
    ev.preventDefault();
    const file = $("i-file").files[0];
    const list = $("import-errors");
    list.replaceChildren();
    list.hidden = true;
    if (!file) return;
    try {
      const text = await file.text();
      const res = await call("POST", API + "/import?format=" + $("i-format").value, text, "text/csv");
      say(res.imported + " customers imported.");
    } catch (e) {
      say(e.message, true);
      for (const r of (e.data && e.data.rows) || []) {
        const li = document.createElement("li");
        li.textContent = "Line " + r.line + (r.column ? ", " + r.column : "") + ": " + r.message;
        list.appendChild(li);
      }
      list.hidden = !list.children.length;
    }
  }

  $("search").addEventListener("submit", search);
  $("correct").addEventListener("submit", correct);
  $("erase").addEventListener("click", erase);
  $("import").addEventListener("submit", importCsv);
})();
