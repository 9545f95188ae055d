// The campaigns page: every campaign with its status and live per-variant results (polled),
// and an editor that saves through PUT /dashboard/api/campaigns/{id}: texts, dates, targets,
// the picture (read from a file, previewed, with its description in both languages), the
// coupon and its rules, the variants. Fields the editor does not show (services, signage
// content, a variant's own picture and ticket line) are kept as they are.
"use strict";
(() => {
  const REFRESH_MS = 5000;
  const SEGMENTS = ["new", "regular", "vip", "lapsed", "anonymous"];
  const STATUS = { running: "Running", scheduled: "Scheduled", paused: "Paused", ended: "Ended" };

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, children = []) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== false && v !== null && v !== undefined) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  let data = null;
  let editing = null; // the definition being edited (null: a new one)
  let picture = null; // the editor's picture: { mime, data } (base64), or null for none
  // What ContentImage carries: the types every kiosk browser shows, at most 512 KiB.
  const PICTURE_TYPES = ["image/png", "image/jpeg", "image/webp"];
  const MAX_PICTURE_BYTES = 512 * 1024;

  function problem(text) {
    $("problem").textContent = text;
    $("problem").hidden = !text;
  }

  const pct = (v) => (v === null || v === undefined ? "–" : `${v.toFixed(1)} %`);

  function verdictText(r) {
    const c = r.vs_control;
    if (!c) return null;
    const diff = `${c.difference_pts > 0 ? "+" : ""}${c.difference_pts.toFixed(1)} points`;
    switch (c.verdict) {
      case "better": return [`${r.variant} converts better than ${c.control}: ${diff}, p = ${c.p_value.toFixed(4)} (significant)`, "v-better"];
      case "worse": return [`${r.variant} converts worse than ${c.control}: ${diff}, p = ${c.p_value.toFixed(4)} (significant)`, "v-worse"];
      case "no_difference": return [`${r.variant} against ${c.control}: ${diff}, p = ${c.p_value.toFixed(4)}: no significant difference yet`, ""];
      default: return [`${r.variant} against ${c.control}: ${diff}: not enough data for the test yet`, ""];
    }
  }

  function card(v) {
    const c = v.campaign;
    const h = `h-${c.id}`;
    const rows = v.results.map((r) => el("tr", { "data-variant": r.variant }, [
      el("th", { scope: "row", text: r.variant }),
      el("td", { class: "num", text: String(r.weight) }),
      el("td", { class: "num exposures", text: String(r.exposures) }),
      el("td", { class: "num conversions", text: String(r.conversions) }),
      el("td", { class: "num rate", text: pct(r.rate_pct) }),
    ]));
    const verdicts = v.results.map(verdictText).filter(Boolean)
      .map(([t, cls]) => el("p", { class: `verdict ${cls}`, text: t }));
    const targets = [
      c.target_segments.length ? `segments ${c.target_segments.join(", ")}` : "every segment",
      c.stores.length || (c.regions || []).length
        ? [c.stores.length ? `stores ${c.stores.join(", ")}` : "", (c.regions || []).length ? `regions ${c.regions.join(", ")}` : ""]
          .filter(Boolean).join(", ")
        : "every store",
    ].join("; ");
    const cp = c.coupon;
    const coupon = cp
      ? [`coupon ${cp.code}`, cp.valid_days != null ? `valid ${cp.valid_days} days after issue` : "",
        cp.max_per_customer ? `at most ${cp.max_per_customer} per card holder` : ""].filter(Boolean).join(", ")
      : "no coupon";
    return el("article", { class: "card campaign", "data-campaign": c.id, "aria-labelledby": h }, [
      el("h2", { id: h }, [c.name, el("span", { class: `pill st-${v.status}`, text: STATUS[v.status] })]),
      el("p", { class: "meta", text: `${c.id} · ${c.starts_on} to ${c.ends_on} · ${targets}` }),
      el("p", { class: "meta rules", text: `${coupon}${c.image ? " · with a picture" : ""}` }),
      el("div", { class: "table-scroll" }, [el("table", { class: "queue results" }, [
        el("caption", { class: "visually-hidden", text: `Results of ${c.name} per variant` }),
        el("thead", {}, [el("tr", {}, [
          el("th", { scope: "col", text: "Variant" }), el("th", { scope: "col", class: "num", text: "Weight" }),
          el("th", { scope: "col", class: "num", text: "Exposures" }), el("th", { scope: "col", class: "num", text: "Conversions" }),
          el("th", { scope: "col", class: "num", text: "Rate" })])]),
        el("tbody", {}, rows)])]),
      ...verdicts,
      // Only HQ admins edit campaigns (the API refuses the others anyway).
      ...(canEdit ? [el("div", { class: "row-actions" }, [
        el("button", { type: "button", "aria-label": `Edit ${c.name}`, onclick: () => edit(c) }, ["Edit"]),
        el("button", { type: "button", class: "secondary toggle", "aria-label": `${c.active ? "Pause" : "Resume"} ${c.name}`,
          onclick: () => save({ ...c, active: !c.active }) }, [c.active ? "Pause" : "Resume"]),
      ])] : []),
    ]);
  }

  function render() {
    $("alpha").textContent = String(data.alpha);
    $("list").replaceChildren(...(data.campaigns.length ? data.campaigns.map(card)
      : [el("p", { class: "empty", text: "No campaign yet: create one with “New campaign”." })]));
  }

  async function load() {
    try {
      const r = await fetch("/dashboard/api/campaigns", { credentials: "same-origin" });
      if (r.status === 403) { location.href = "/dashboard"; return; }
      if (!r.ok) throw new Error(`the campaigns answered ${r.status}`);
      data = await r.json();
      render();
      problem("");
      $("live").dataset.state = "live";
      $("live").textContent = "Live";
      $("updated").textContent = `Updated ${new Date(data.now_ms).toLocaleTimeString()}`;
    } catch (e) {
      $("live").dataset.state = "reconnecting";
      $("live").textContent = "Retrying";
      problem(`Cannot load the campaigns: ${e.message || e}`);
    }
  }

  function variantRow(v) {
    const input = (cls, label, value, type = "text") =>
      el("input", { class: cls, type, value: value ?? "", "aria-label": label, ...(type === "number" ? { min: "0", max: "1000" } : {}) });
    const tr = el("tr", {}, [
      el("td", {}, [input("v-name", "Variant name", v.name)]),
      el("td", {}, [input("v-weight", "Weight", String(v.weight ?? 1), "number")]),
      el("td", {}, [input("v-es", "Variant screen text (Spanish)", v.screen_text?.es)]),
      el("td", {}, [input("v-en", "Variant screen text (English)", v.screen_text?.en)]),
      el("td", {}, [el("button", { type: "button", class: "secondary", "aria-label": "Remove this variant",
        onclick: () => tr.remove() }, ["Remove"])]),
    ]);
    return tr;
  }

  function formError(text) {
    $("form-error").textContent = text;
    $("form-error").hidden = !text;
  }

  // Shows the editor's picture (or that there is none).
  function showPicture() {
    const img = $("f-image-preview");
    img.hidden = !picture;
    $("f-image-none").hidden = !!picture;
    $("f-image-remove").hidden = !picture;
    if (picture) {
      img.src = `data:${picture.mime};base64,${picture.data}`;
      img.alt = `Preview: ${$("f-image-alt-en").value.trim() || "the campaign's picture"}`;
    } else {
      img.removeAttribute("src");
    }
  }

  // A file chosen: checked for its type and size here (the server checks its bytes too).
  function readPicture(file) {
    if (!file) return;
    if (!PICTURE_TYPES.includes(file.type)) {
      formError(`Not a picture the kiosks show: ${file.name} is ${file.type || "of an unknown type"}; choose a PNG, JPEG or WebP file.`);
      $("f-image").value = "";
      return;
    }
    if (file.size > MAX_PICTURE_BYTES) {
      formError(`The picture is too large: ${file.name} is ${Math.ceil(file.size / 1024)} KiB, at most 512 KiB.`);
      $("f-image").value = "";
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      picture = { mime: file.type, data: url.slice(url.indexOf(",") + 1) };
      formError("");
      showPicture();
    };
    reader.onerror = () => formError(`Cannot read ${file.name}.`);
    reader.readAsDataURL(file);
  }

  function couponShown() {
    const on = $("f-coupon").checked;
    $("coupon-fields").hidden = !on;
  }

  function checks(box, name, items, chosen) {
    box.replaceChildren(...items.map(([value, label]) => el("label", {}, [
      el("input", { type: "checkbox", name, value, checked: chosen.includes(value) }), label])));
  }

  function edit(c) {
    editing = c;
    const today = new Date().toISOString().slice(0, 10);
    const d = c || { id: "", name: "", starts_on: today, ends_on: today, target_segments: [], stores: [], regions: [],
      screen_text: { es: "", en: "" }, ticket_line: { es: "", en: "" }, variants: [] };
    $("h-editor").textContent = c ? `Edit ${c.name}` : "New campaign";
    $("f-id").value = d.id;
    $("f-id").readOnly = !!c;
    $("f-name").value = d.name;
    $("f-starts").value = d.starts_on;
    $("f-ends").value = d.ends_on;
    $("f-screen-es").value = d.screen_text.es;
    $("f-screen-en").value = d.screen_text.en;
    $("f-ticket-es").value = d.ticket_line.es;
    $("f-ticket-en").value = d.ticket_line.en;
    picture = d.image ? { mime: d.image.mime, data: d.image.data } : null;
    $("f-image").value = "";
    $("f-image-alt-es").value = d.image?.alt?.es || "";
    $("f-image-alt-en").value = d.image?.alt?.en || "";
    showPicture();
    const cp = d.coupon;
    $("f-coupon").checked = !!cp;
    $("f-coupon-code").value = cp?.code || "";
    $("f-coupon-es").value = cp?.text?.es || "";
    $("f-coupon-en").value = cp?.text?.en || "";
    $("f-coupon-days").value = cp?.valid_days ?? "";
    $("f-coupon-max").value = cp?.max_per_customer ?? "";
    couponShown();
    checks($("f-segments"), "segment", SEGMENTS.map((s) => [s, s]), d.target_segments);
    checks($("f-stores"), "store", data.stores.map(([id, name]) => [id, `${name} (${id})`]), d.stores);
    checks($("f-regions"), "region", data.regions.map((r) => [r, r]), d.regions || []);
    const variants = d.variants.length ? d.variants : [{ name: "a", weight: 1 }];
    $("f-variants").replaceChildren(...variants.map(variantRow));
    $("form-error").hidden = true;
    $("editor").hidden = false;
    (c ? $("f-name") : $("f-id")).focus();
  }

  function fromForm() {
    const base = editing ? { ...editing } : { active: true };
    const chosen = (name) => [...document.querySelectorAll(`input[name=${name}]:checked`)].map((i) => i.value);
    const variants = [...$("f-variants").querySelectorAll("tr")].map((tr) => {
      const v = { name: tr.querySelector(".v-name").value.trim(), weight: Number(tr.querySelector(".v-weight").value) };
      const es = tr.querySelector(".v-es").value.trim(), en = tr.querySelector(".v-en").value.trim();
      if (es || en) v.screen_text = { es, en };
      const old = (editing?.variants || []).find((o) => o.name === v.name);
      if (old?.ticket_line) v.ticket_line = old.ticket_line;
      return v;
    });
    // Absent when none: an optional field of the definition.
    delete base.image;
    delete base.coupon;
    const extra = {};
    if (picture) {
      extra.image = { ...picture, alt: { es: $("f-image-alt-es").value.trim(), en: $("f-image-alt-en").value.trim() } };
    }
    if ($("f-coupon").checked) {
      const number = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));
      extra.coupon = {
        code: $("f-coupon-code").value.trim(),
        text: { es: $("f-coupon-es").value.trim(), en: $("f-coupon-en").value.trim() },
        valid_days: number("f-coupon-days"),
        max_per_customer: number("f-coupon-max"),
      };
    }
    return {
      ...base,
      ...extra,
      id: $("f-id").value.trim(),
      name: $("f-name").value.trim(),
      starts_on: $("f-starts").value,
      ends_on: $("f-ends").value,
      target_segments: chosen("segment"),
      stores: chosen("store"),
      regions: chosen("region"),
      screen_text: { es: $("f-screen-es").value.trim(), en: $("f-screen-en").value.trim() },
      ticket_line: { es: $("f-ticket-es").value.trim(), en: $("f-ticket-en").value.trim() },
      variants,
    };
  }

  async function save(c, fromEditor = false) {
    const r = await fetch(`/dashboard/api/campaigns/${encodeURIComponent(c.id || "-")}`, {
      method: "PUT", credentials: "same-origin",
      headers: { "content-type": "application/json" }, body: JSON.stringify(c),
    });
    if (r.status === 403) { location.href = "/dashboard"; return false; }
    if (!r.ok) {
      let message = `saving answered ${r.status}`;
      try { message = (await r.json()).message || message; } catch (_) { /* not JSON */ }
      if (fromEditor) {
        $("form-error").textContent = `Not saved: ${message}`;
        $("form-error").hidden = false;
        $("form-error").focus?.();
      } else {
        problem(`Not saved: ${message}`);
      }
      return false;
    }
    await load();
    return true;
  }

  // Whether this account may edit (HQ admins): asked once, before the first list is drawn.
  let canEdit = false;
  async function loadMe() {
    try {
      const r = await fetch("/dashboard/api/me", { credentials: "same-origin" });
      if (r.ok) canEdit = (await r.json()).role === "hq-admin";
    } catch (_) { canEdit = false; }
    $("new").hidden = !canEdit;
    $("read-only").hidden = canEdit;
  }

  document.addEventListener("DOMContentLoaded", async () => {
    $("new").addEventListener("click", () => edit(null));
    $("add-variant").addEventListener("click", () => {
      const n = $("f-variants").querySelectorAll("tr").length;
      $("f-variants").append(variantRow({ name: String.fromCharCode(97 + n), weight: 1 }));
    });
    $("cancel").addEventListener("click", () => { $("editor").hidden = true; editing = null; $("new").focus(); });
    $("f-image").addEventListener("change", (ev) => readPicture(ev.target.files[0]));
    $("f-image-remove").addEventListener("click", () => {
      picture = null;
      $("f-image").value = "";
      showPicture();
      $("f-image").focus();
    });
    $("f-image-alt-en").addEventListener("input", () => { if (picture) showPicture(); });
    $("f-coupon").addEventListener("change", couponShown);
    $("form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (await save(fromForm(), true)) {
        $("editor").hidden = true;
        editing = null;
        $("new").focus();
      }
    });
    await loadMe();
    load();
    setInterval(() => { if ($("editor").hidden) load(); }, REFRESH_MS);
  });
})();
