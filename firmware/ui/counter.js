// The counter page for staff: call the next turn per service (the whole store's queue, whichever
// kiosk issued it), call by number or scanned ticket, recall, served, no-show, park and call
// back, transfer to another service, walkout, reprint, the customer's name and campaign script
// for identified tickets, what a network cut changed, calls for assistance to take, and the
// manager report.
"use strict";

const nameInput = document.getElementById("counter-name");
const message = document.getElementById("message");
const current = document.getElementById("current");
const services = document.getElementById("services");
const others = document.getElementById("others");
let board = null;

nameInput.value = localStorage.getItem("counter") || "1";

// Who is logged in: a member's own PIN names them (their calls carry their id); the store-wide
// PIN names nobody.
(async () => {
  try {
    const res = await fetch("/api/counter/me");
    if (!res.ok) return;
    const me = await res.json();
    if (me.staff) {
      document.getElementById("staff-name").textContent = me.staff.name;
      document.getElementById("staff-who").hidden = false;
    }
  } catch (_) {
    // The board's own requests report a lost link.
  }
})();
nameInput.addEventListener("change", () => {
  localStorage.setItem("counter", nameInput.value.trim());
  if (board) render(board);
});

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function btn(text, command, cls) {
  const b = el("button", cls || "", text);
  b.type = "button";
  b.setAttribute("data-action", command.action);
  b.addEventListener("click", () => act(command));
  return b;
}

async function act(command) {
  const counter = nameInput.value.trim();
  try {
    const res = await fetch("/api/counter/command", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ counter, command }),
    });
    if (res.status === 401) { location.reload(); return; }
    const type = res.headers.get("content-type") || "";
    const body = type.includes("json") ? await res.json() : { ok: res.ok, message: await res.text() };
    message.className = body.ok ? "" : "error";
    message.textContent = body.ok ? [body.label, body.message].filter(Boolean).join(" · ") || "OK" : body.message || res.statusText;
  } catch (e) {
    message.className = "error";
    message.textContent = "Sin conexión con el quiosco · No connection to the kiosk";
  }
}

// A USB scanner at the counter types the ticket's QR text and Enter into this field.
document.getElementById("scan-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("scan-code");
  const code = input.value.trim();
  input.value = "";
  if (code) act({ action: "call_scanned", code });
});

// A coupon: its printed code typed by staff, or its QR text typed by a USB scanner. It counts once
// in the store; the kiosk answers "already used" for a second time.
// The answer is also shown beside the field, where staff look.
document.getElementById("coupon-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("coupon-code");
  const code = input.value.trim();
  input.value = "";
  if (!code) return;
  await act({ action: "redeem_coupon", code });
  const beside = document.getElementById("coupon-message");
  beside.className = message.className;
  beside.textContent = message.textContent;
});

function render(b) {
  board = b;
  renderCalls(b);
  const me = nameInput.value.trim();
  const mine = b.serving.find((s) => s.counter === me);
  if (mine) {
    const box = el("div");
    box.append(el("div", "turn", mine.label));
    if (mine.customer) {
      box.append(el("p", "", `Cliente · Customer: ${mine.customer.name}` + (mine.customer.segment ? ` · ${mine.customer.segment}` : "")));
      if (mine.customer.campaign_script) box.append(el("p", "script", mine.customer.campaign_script));
    }
    const row = el("div", "row");
    row.append(
      btn("Volver a llamar · Recall", { action: "recall", turn_id: mine.turn_id }),
      btn("Atendido · Served", { action: "served", turn_id: mine.turn_id }, "primary"),
      btn("No se presentó · No-show", { action: "no_show", turn_id: mine.turn_id }, "danger"),
      btn("Aparcar · Park", { action: "park", turn_id: mine.turn_id }),
      btn("Reimprimir · Reprint", { action: "reprint", turn_id: mine.turn_id }));
    box.append(row);
    // Transfer to another service: it keeps its number and its place by issue time.
    const move = el("div", "row");
    const label = el("label", "", "Pasar a · Transfer to");
    label.htmlFor = "transfer-to";
    const select = el("select");
    select.id = "transfer-to";
    for (const s of b.services.filter((s) => s.letter !== mine.service)) {
      const o = el("option", "", `${s.letter} · ${s.name.es}`);
      o.value = s.letter;
      select.append(o);
    }
    const go = el("button", "", "Transferir · Transfer");
    go.type = "button";
    go.setAttribute("data-action", "transfer");
    go.addEventListener("click", () => act({ action: "transfer", turn_id: mine.turn_id, to: select.value }));
    go.disabled = select.options.length === 0;
    move.append(label, select, go);
    if (go.disabled) move.append(el("span", "help", "No hay otro servicio al que pasarlo · There is no other service to transfer to"));
    box.append(move);
    current.replaceChildren(box);
  } else {
    current.replaceChildren(el("p", "muted", "—"));
  }
  const table = el("table");
  const head = el("tr");
  for (const t of ["Servicio · Service", "Esperando · Waiting", "Siguiente · Next", "Espera · Wait", "Llamar · Call"]) head.append(el("th", "", t));
  table.append(head);
  for (const s of b.services) {
    const tr = el("tr");
    tr.append(el("td", "", `${s.letter} · ${s.name.es}`), el("td", "", `${s.waiting}` + (s.priority_waiting ? ` (${s.priority_waiting} prioritario(s) · priority)` : "")),
      el("td", "", s.next || "—"), el("td", "", `${Math.ceil(s.estimated_wait_s / 60)} min`));
    const cell = el("td");
    const call = btn(`Llamar ${s.letter} · Call ${s.letter}`, { action: "call_next", services: [s.letter] }, "primary");
    call.disabled = !!mine || s.waiting === 0;
    cell.append(call);
    // A disabled button says why, in words (the general reason while serving is under "call next").
    if (!mine && s.waiting === 0) cell.append(el("span", "help", " Nadie espera · Nobody waiting"));
    tr.append(cell);
    table.append(tr);
  }
  services.replaceChildren(table);
  document.getElementById("call-any").disabled = !!mine;
  const why = document.getElementById("call-any-why");
  why.hidden = !mine;
  why.textContent = mine
    ? `Termine antes el turno ${mine.label}: Atendido, No se presentó o Aparcar · First finish turn ${mine.label}: Served, No-show or Park`
    : "";
  const list = el("ul");
  for (const s of b.serving.filter((s) => s.counter !== me)) list.append(el("li", "", `${s.label} · mostrador · counter ${s.counter}`));
  others.replaceChildren(list);
  document.getElementById("open-counters").textContent =
    `Mostradores abiertos · Open counters: ${b.open_counters || 0}`;

  const parked = document.getElementById("parked");
  if (b.parked && b.parked.length) {
    const ul = el("ul", "plain");
    for (const p of b.parked) {
      const li = el("li", "row");
      li.append(el("span", "turn-small", p.label), el("span", "muted", `(${p.counter})`));
      const back = btn(`Llamar de nuevo ${p.label} · Call ${p.label} back`, { action: "call", turn_id: p.turn_id }, "primary");
      back.disabled = !!mine;
      li.append(back);
      ul.append(li);
    }
    parked.replaceChildren(ul);
  } else {
    parked.replaceChildren(el("p", "muted", "—"));
  }

  const alert = document.getElementById("store-alert");
  const away = b.unreachable_kiosks || [];
  alert.hidden = away.length === 0;
  alert.textContent = away.length
    ? `Sin conexión con ${away.length} quiosco(s) de la tienda: sus turnos aparecerán al volver la red · ` +
      `${away.length} kiosk(s) of the store out of reach: their turns appear when the network is back`
    : "";
  const conflicts = b.conflicts || [];
  document.getElementById("conflicts-card").hidden = conflicts.length === 0;
  document.getElementById("conflicts").replaceChildren(...conflicts.map((c) =>
    el("li", "", `${c.label} · ${c.step} · ${c.counter ? "mostrador · counter " + c.counter + " · " : ""}${c.reason}`)));
}

// Calls for assistance (a kiosk's button, a Step-In device): shown until one counter takes them,
// at any kiosk of the store. A new one is said once (role=alert), flashes and plays a short tone.
const seenCalls = new Set();
let callsAt = 0;
let calls = [];
let firstBoard = true;

function ago(s) {
  if (s < 60) return `hace ${s} s · ${s} s ago`;
  const m = Math.floor(s / 60);
  return `hace ${m} min ${s % 60} s · ${m} min ${s % 60} s ago`;
}

// Browsers keep a page's audio suspended until someone touches it: the first touch or key on the
// counter page unlocks the tone for the calls that come after.
let audio = null;
function audioContext() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!audio && Ctx) audio = new Ctx();
  return audio;
}
for (const ev of ["pointerdown", "keydown"]) {
  document.addEventListener(ev, () => { const ctx = audioContext(); if (ctx) ctx.resume().catch(() => {}); });
}

function tone() {
  try {
    const ctx = audioContext();
    if (!ctx) return;
    for (const [at, f] of [[0, 880], [0.25, 660], [0.5, 880]]) {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.frequency.value = f;
      g.gain.value = 0.2;
      o.connect(g).connect(ctx.destination);
      o.start(ctx.currentTime + at);
      o.stop(ctx.currentTime + at + 0.18);
    }
  } catch (e) {
    // No sound device: the frame and the alert text remain.
  }
}

function drawAges() {
  const since = Math.floor((Date.now() - callsAt) / 1000);
  for (const li of document.querySelectorAll("#assist-list li[data-age]")) {
    li.querySelector(".age").textContent = ago(Number(li.dataset.age) + since);
  }
}
setInterval(drawAges, 1000);

function renderCalls(b) {
  calls = b.assistance || [];
  callsAt = Date.now();
  const card = document.getElementById("assist-card");
  card.hidden = calls.length === 0;
  const fresh = calls.filter((c) => !seenCalls.has(c.request_id));
  for (const c of calls) seenCalls.add(c.request_id);
  document.getElementById("assist-list").replaceChildren(...calls.map((c) => {
    const li = el("li");
    li.dataset.age = String(c.age_s);
    li.setAttribute("data-testid", "assist-call");
    const where = el("div");
    const kind = c.source === "step_in" ? "dispositivo · device" : "quiosco · kiosk";
    where.append(el("span", "place", c.place_name), el("span", "muted", ` (${kind}${c.turn_label ? " · turno · turn " + c.turn_label : ""}) `),
      el("span", "age", ago(c.age_s)));
    li.append(where, btn(`Voy yo · On my way (${c.place_name})`, { action: "acknowledge_assistance", request_id: c.request_id }, "primary"));
    return li;
  }));
  if (fresh.length && !firstBoard) {
    card.classList.remove("new");
    void card.offsetWidth;
    card.classList.add("new");
    tone();
  }
  if (fresh.length) {
    document.getElementById("assist-live").textContent =
      fresh.map((c) => `Piden ayuda en ${c.place_name} · Assistance requested at ${c.place_name}`).join(". ");
  }
  firstBoard = false;
}

document.getElementById("label-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const label = document.getElementById("turn-label").value.trim();
  if (label) act({ action: "call_label", label });
});
document.getElementById("walk-out").addEventListener("click", () => {
  const label = document.getElementById("turn-label").value.trim();
  if (label) act({ action: "walk_out_label", label });
});

document.getElementById("call-any").addEventListener("click", () => act({ action: "call_next", services: [] }));
document.getElementById("report").addEventListener("click", () => act({ action: "print_report" }));

const events = new EventSource("/api/counter/stream");
events.addEventListener("view", (e) => render(JSON.parse(e.data)));
events.addEventListener("error", () => {
  message.className = "error";
  message.textContent = "Reconectando… · Reconnecting…";
});
events.addEventListener("open", () => { if (message.textContent.startsWith("Reconectando")) message.textContent = ""; });
