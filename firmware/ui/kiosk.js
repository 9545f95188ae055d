// The kiosk touchscreen: renders the ScreenView the server pushes (server-sent events) and posts
// touches back. Holds no state of its own beyond the registration form being typed, which is
// dropped whenever the screen changes. No timers: the server decides when screens time out.
"use strict";

const T = {
  es: {
    other: "English", printerDown: "Impresora sin servicio: verá su número en pantalla",
    attractTitle: "Bienvenido", attractInvite: "¡Hola! Acerque su tarjeta de cliente",
    attractHint: "Acerque su tarjeta al lector o toque para continuar", start: "Continuar sin tarjeta",
    identifying: "Un momento…", hello: (n) => `Hola, ${n}`, continue: "Continuar", cancel: "Cancelar",
    consentsTitle: "Sus permisos", given: "Sí", notGiven: "No",
    offerTitle: "No conocemos esta tarjeta", offerText: "¿Quiere registrarse? Así le saludaremos y verá ofertas para usted.",
    register: "Registrarme", skip: "Ahora no",
    regTitle: "Registro", name: "Nombre", email: "Email (opcional)", phone: "Teléfono (opcional)",
    emailHint: "Solo guardamos el email o el teléfono si acepta recibir ofertas por ese medio.",
    policy: (v) => `Ver texto completo (versión ${v})`, submit: "Registrarme", space: "espacio", del: "⌫ borrar",
    regErrors: {
      name_missing: "Escriba su nombre.", name_invalid: "El nombre es demasiado largo.",
      email_invalid: "Revise el email.", phone_invalid: "Revise el teléfono.",
      profile_consent_required: "Para registrarse, marque «guardar mi perfil» (o toque «Ahora no»).",
    },
    chooseTitle: "¿Qué necesita?", helloShort: (n) => `Hola, ${n}.`, priority: "Turno prioritario",
    issuing: "Sacando su número…", printing: (l) => `Imprimiendo su turno ${l}…`,
    yourTurn: "Su turno", ahead: (n) => (n === 0 ? "Es el siguiente" : `${n} por delante`),
    wait: (m) => (m === 0 ? "" : `Espera estimada: ${m} min`),
    notPrinted: "No hemos podido imprimir el ticket. Anote su número o fotografíe el código.",
    takeTicket: "Recoja su ticket", coupon: "Su cupón", surveyQ: "¿Nos recomendaría? (0 = nada, 10 = mucho)",
    reasonQ: "¿Por qué?", noReason: "Prefiero no decirlo", thanks: "¡Gracias por su opinión!", done: "Terminar",
    surveyTitle: (l) => `Su opinión sobre el turno ${l}`,
    errorIssue: "No hemos podido darle número. Inténtelo de nuevo o pregunte al personal.", ok: "Aceptar",
    notices: {
      coupon_redeemed: "Cupón aplicado", scan_ignored: "Termine este paso antes de escanear",
      product_not_supported: "Este quiosco no consulta productos", code_not_recognised: "Código no reconocido",
      tap_queued: "Tarjeta leída: le atendemos enseguida", lookup_slow: "No hemos podido cargar su perfil; continúe",
      printer_down: "Impresora sin servicio: su número está en pantalla",
      coupon_already_used: "Este cupón ya se utilizó. Cada cupón vale una vez.",
      survey_not_served_yet: "Podrá valorarnos cuando le hayamos atendido. Escanee su ticket a la salida.",
      survey_already_answered: "Ya valoró este turno. ¡Gracias!",
      survey_closed: "Este turno no llegó a atenderse; no hay nada que valorar.",
    },
    rateLater: "Cuando le hayamos atendido, escanee su ticket aquí para valorarnos.",
    surveyRefused: "Este turno ya tiene su valoración. ¡Gracias!",
  },
  en: {
    other: "Español", printerDown: "Printer out of service: your number will be shown on screen",
    attractTitle: "Welcome", attractInvite: "Hello! Tap your customer card",
    attractHint: "Tap your card on the reader or touch to continue", start: "Continue without a card",
    identifying: "One moment…", hello: (n) => `Hello, ${n}`, continue: "Continue", cancel: "Cancel",
    consentsTitle: "Your permissions", given: "Yes", notGiven: "No",
    offerTitle: "We do not know this card", offerText: "Would you like to register? We will greet you and show offers for you.",
    register: "Register", skip: "Not now",
    regTitle: "Registration", name: "Name", email: "Email (optional)", phone: "Phone (optional)",
    emailHint: "We only keep your email or phone if you agree to receive offers that way.",
    policy: (v) => `Read the full text (version ${v})`, submit: "Register", space: "space", del: "⌫ delete",
    regErrors: {
      name_missing: "Please type your name.", name_invalid: "The name is too long.",
      email_invalid: "Please check the email.", phone_invalid: "Please check the phone number.",
      profile_consent_required: "To register, tick “keep my profile” (or touch “Not now”).",
    },
    chooseTitle: "What do you need?", helloShort: (n) => `Hello, ${n}.`, priority: "Priority turn",
    issuing: "Getting your number…", printing: (l) => `Printing your turn ${l}…`,
    yourTurn: "Your turn", ahead: (n) => (n === 0 ? "You are next" : `${n} ahead of you`),
    wait: (m) => (m === 0 ? "" : `Estimated wait: ${m} min`),
    notPrinted: "We could not print your ticket. Note your number or take a photo of the code.",
    takeTicket: "Please take your ticket", coupon: "Your coupon", surveyQ: "Would you recommend us? (0 = not at all, 10 = very much)",
    reasonQ: "Why?", noReason: "I'd rather not say", thanks: "Thank you for your feedback!", done: "Finish",
    surveyTitle: (l) => `Your opinion about turn ${l}`,
    errorIssue: "We could not give you a number. Please try again or ask staff.", ok: "OK",
    notices: {
      coupon_redeemed: "Coupon applied", scan_ignored: "Finish this step before scanning",
      product_not_supported: "This kiosk does not look up products", code_not_recognised: "Code not recognised",
      tap_queued: "Card read: we will be with you in a moment", lookup_slow: "We could not load your profile; please continue",
      printer_down: "Printer out of service: your number is on screen",
      coupon_already_used: "This coupon was already used. Each coupon counts once.",
      survey_not_served_yet: "You can rate us after you are served. Scan your ticket on your way out.",
      survey_already_answered: "You already rated this turn. Thank you!",
      survey_closed: "This turn was not served; there is nothing to rate.",
    },
    rateLater: "Once you have been served, scan your ticket here to rate us.",
    surveyRefused: "This turn has its rating already. Thank you!",
  },
};

const app = document.getElementById("app");
const announce = document.getElementById("announce");
const langButton = document.getElementById("lang");
const printer = document.getElementById("printer");
const noticeSlot = document.getElementById("notice-slot");

let current = null;
let lastNotice = null;
let form = emptyForm();
let lastActivity = 0;

function emptyForm() {
  return { name: "", email: "", phone: "", consents: new Set(), field: "name" };
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function send(action, extra) {
  return fetch("/api/kiosk/touch", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ action, ...(extra || {}) }),
  }).catch(() => {});
}

function button(label, action, extra, cls) {
  return h("button", { type: "button", class: cls || "", "data-action": action, onclick: () => send(action, extra) }, label);
}

// Typing keeps the registration screen alive; tell the server at most every 10 s.
function activity() {
  const now = Date.now();
  if (now - lastActivity > 10000) {
    lastActivity = now;
    send("activity");
  }
}

function survey(t, s) {
  if (s.state.state === "asking") {
    return h("section", { class: "card", "aria-label": t.surveyQ },
      h("p", {}, t.surveyQ),
      h("div", { class: "scores" }, [...Array(11).keys()].map((n) => button(String(n), "survey_score", { score: n }))));
  }
  if (s.state.state === "scored") {
    return h("section", { class: "card" },
      h("p", {}, t.reasonQ),
      h("div", { class: "actions" },
        s.reasons.map((r) => button(r.label, "survey_reason", { reason: r.id })),
        button(t.noReason, "survey_reason", { reason: null })));
  }
  if (s.state.state === "refused") return h("p", { role: "status" }, t.surveyRefused);
  return h("p", { role: "status" }, t.thanks);
}

function keyboard(t) {
  const rows = ["1234567890", "qwertyuiop", "asdfghjklñ", "zxcvbnm@.-", "áéíóúü_+'"];
  const press = (ch) => () => {
    const f = form.field;
    if (ch === "del") form[f] = form[f].slice(0, -1);
    else form[f] = (form[f] + ch).slice(0, f === "name" ? 60 : 254);
    document.getElementById(`f-${f}`).value = form[f];
    activity();
  };
  return h("div", { class: "keyboard", "aria-label": "keyboard" },
    rows.map((r) => h("div", { class: "row" }, [...r].map((c) => h("button", { type: "button", onclick: press(c) }, c)))),
    h("div", { class: "row" },
      h("button", { type: "button", class: "wide", onclick: press(" ") }, t.space),
      h("button", { type: "button", class: "wide", onclick: press("del") }, t.del)));
}

function registration(t, body) {
  const field = (name, label, type) => {
    const input = h("input", { id: `f-${name}`, type, inputmode: "none", autocomplete: "off", class: form.field === name ? "active" : "" });
    input.value = form[name];
    input.addEventListener("focus", () => {
      form.field = name;
      for (const el of app.querySelectorAll("input")) el.classList.toggle("active", el === input);
    });
    input.addEventListener("input", () => { form[name] = input.value; activity(); });
    return h("label", {}, label, input);
  };
  const consent = (c) => {
    const on = form.consents.has(c.purpose);
    const box = h("button", { type: "button", class: "box", role: "checkbox", "aria-checked": on ? "true" : "false", "data-purpose": c.purpose,
      onclick: () => {
        if (form.consents.has(c.purpose)) form.consents.delete(c.purpose); else form.consents.add(c.purpose);
        box.setAttribute("aria-checked", form.consents.has(c.purpose) ? "true" : "false");
        box.textContent = form.consents.has(c.purpose) ? "✔" : "";
        activity();
      } }, on ? "✔" : "");
    return h("div", { class: "consent" }, box,
      h("div", {}, h("strong", {}, c.title), h("details", {}, h("summary", {}, t.policy(c.version)), h("p", {}, c.text))));
  };
  const submit = () => send("submit_registration", {
    name: form.name, email: form.email || null, phone: form.phone || null, consents: [...form.consents],
  });
  return [
    h("h1", {}, t.regTitle),
    body.error ? h("p", { class: "error", role: "alert" }, t.regErrors[body.error] || body.error) : null,
    h("div", { class: "form-grid" }, field("name", t.name, "text"), field("email", t.email, "email"), field("phone", t.phone, "tel")),
    h("p", { class: "muted" }, t.emailHint),
    body.consents.map(consent),
    keyboard(t),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", "data-action": "submit_registration", onclick: submit }, t.submit),
      button(t.skip, "skip_registration")),
  ];
}

function screen(v) {
  const t = T[v.locale] || T.es;
  const b = v.body;
  switch (b.screen) {
    case "attract":
      return [h("h1", {}, b.inviting ? t.attractInvite : t.attractTitle), h("p", {}, t.attractHint),
        h("div", { class: "actions" }, button(t.start, "start", null, "primary"))];
    case "identifying":
      return [h("h1", {}, t.identifying)];
    case "greeting":
      return [h("h1", {}, t.hello(b.name)),
        b.campaign ? h("p", { class: "campaign" }, b.campaign) : null,
        h("section", { "aria-label": t.consentsTitle }, h("p", { class: "muted" }, t.consentsTitle + ": ",
          b.consents.map((c) => `${c.title}: ${c.given ? t.given : t.notGiven}`).join(" · "))),
        h("div", { class: "actions" }, button(t.continue, "continue", null, "primary"), button(t.cancel, "cancel"))];
    case "offer_registration":
      return [h("h1", {}, t.offerTitle), h("p", {}, t.offerText),
        h("div", { class: "actions" }, button(t.register, "register", null, "primary"), button(t.skip, "skip_registration"))];
    case "registering":
      return registration(t, b);
    case "choose_service":
      return [h("h1", {}, (b.name ? t.helloShort(b.name) + " " : "") + t.chooseTitle),
        h("div", { class: "services" }, b.services.map((s) => h("div", { class: "service" },
          button(`${s.letter} · ${s.name}`, "choose_service", { service: s.letter, priority: false }, "main primary"),
          s.priority_allowed ? button(`♿ ${t.priority}`, "choose_service", { service: s.letter, priority: true }) : null))),
        h("div", { class: "actions" }, button(t.cancel, "cancel"))];
    case "issuing":
      return [h("h1", {}, t.issuing)];
    case "printing":
      return [h("h1", {}, t.printing(b.turn.label))];
    case "goodbye": {
      const qr = b.qr_svg ? h("div", { class: "qr", role: "img", "aria-label": b.turn.label }) : null;
      if (qr) qr.innerHTML = b.qr_svg; // server-made SVG of the signed ticket payload
      return [h("p", {}, b.name ? t.hello(b.name) : t.yourTurn),
        h("div", { class: "turn", "data-testid": "turn" }, b.turn.label),
        h("p", {}, `${b.turn.service_name} · ${t.ahead(b.turn.position)} ${t.wait(b.turn.estimated_wait_min)}`),
        b.printed ? h("p", {}, t.takeTicket) : h("p", { class: "error", role: "alert" }, t.notPrinted),
        qr,
        // With the number and QR on screen (no paper) there is room for the coupon only.
        b.campaign && b.printed ? h("p", { class: "campaign", "data-testid": "campaign" }, b.campaign) : null,
        b.coupon ? h("div", { class: "coupon" }, h("strong", {}, t.coupon + ": "), b.coupon.text, h("div", { class: "muted" }, b.coupon.code)) : null,
        b.printed ? h("p", { class: "muted", "data-testid": "rate-later" }, t.rateLater) : null,
        h("div", { class: "actions" }, button(t.done, "done", null, "primary"))];
    }
    case "survey":
      return [h("h1", {}, t.surveyTitle(b.turn_label)), survey(t, b.survey), h("div", { class: "actions" }, button(t.done, "done"))];
    case "error":
      return [h("h1", {}, t.errorIssue), h("div", { class: "actions" }, button(t.ok, "done", null, "primary"))];
    default:
      return [h("h1", {}, "…")];
  }
}

function render(v) {
  const t = T[v.locale] || T.es;
  const changed = !current || current.body.screen !== v.body.screen;
  const sameForm = current && current.body.screen === "registering" && v.body.screen === "registering";
  if (!sameForm) form = emptyForm();
  current = v;
  document.documentElement.lang = v.locale;
  langButton.textContent = t.other;
  printer.hidden = v.printer_ok;
  printer.textContent = v.printer_ok ? "" : t.printerDown;
  app.setAttribute("data-screen", v.body.screen);
  app.replaceChildren(...screen(v).flat().filter(Boolean));
  app.removeAttribute("aria-busy");
  if (changed) {
    const title = app.querySelector("h1");
    announce.textContent = title ? title.textContent : "";
    app.focus({ preventScroll: true });
  }
  if (v.notice && (!lastNotice || lastNotice.id !== v.notice.id)) {
    noticeSlot.replaceChildren(h("div", { class: "notice", role: "status" }, t.notices[v.notice.kind] || v.notice.kind));
  } else if (!v.notice) {
    noticeSlot.replaceChildren();
  }
  lastNotice = v.notice;
}

langButton.addEventListener("click", () => send("set_locale", { locale: current && current.locale === "en" ? "es" : "en" }));
document.addEventListener("contextmenu", (e) => e.preventDefault());
document.addEventListener("gesturestart", (e) => e.preventDefault());

const events = new EventSource("/api/kiosk/stream");
events.addEventListener("view", (e) => render(JSON.parse(e.data)));
