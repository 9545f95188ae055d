// The kiosk touchscreen: renders the ScreenView the server pushes (server-sent events) and posts
// touches back. Holds no state of its own beyond the registration form being typed (dropped
// whenever the screen changes) and the large-text / high-contrast views (kept for the journey,
// reset at the attract screen). No timers: the server decides when screens time out.
//
// A view is drawn only when what it shows changed (its screen, language or content, not its
// version): the registration form keeps its DOM, focus and caret while the server re-sends the
// same screen (every keystroke's "activity" does), so a physical keyboard types normally.
// Icons are inline SVG: a stock Pi has no emoji font.
"use strict";

const T = {
  es: {
    other: "English", printerDown: "Impresora sin servicio: verá su número en pantalla",
    largeText: "Texto grande", contrast: "Contraste",
    assist: "Llamar a un asistente", assistCalled: "Asistente avisado",
    attractTitle: "Bienvenido", attractInvite: "¡Hola! Acerque su tarjeta de cliente",
    attractHint: "Acerque su tarjeta al lector o toque para continuar", start: "Continuar sin tarjeta",
    identifying: "Un momento…", hello: (n) => `Hola, ${n}`, continue: "Continuar", cancel: "Cancelar",
    consentsTitle: "Sus permisos", given: "Sí", notGiven: "No",
    offerTitle: "No conocemos esta tarjeta", offerText: "¿Quiere registrarse? Así le saludaremos y verá ofertas para usted.",
    register: "Registrarme", skip: "Ahora no",
    regTitle: "Registro", steps: "Pasos del registro", name: "Nombre", email: "Email", phone: "Teléfono", permissions: "Permisos",
    optional: "opcional", next: "Siguiente",
    nameHint: "Su nombre, como quiere que le saludemos.",
    emailHint: "Solo guardamos el email si acepta recibir ofertas por email.",
    phoneHint: "Solo guardamos el teléfono si acepta ofertas por SMS o avisos de su turno por SMS.",
    consentsHint: "Marque lo que acepta. Solo «guardar mi perfil» es necesario para registrarse.",
    policy: (v) => `Ver texto completo (versión ${v})`, submit: "Registrarme",
    keyboard: "Teclado", space: "espacio", del: "Borrar", shift: "Mayúscula", caps: "Bloq Mayús",
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
    takeTicket: "Recoja su ticket", coupon: "Su cupón",
    validUntil: (d) => `válido hasta el ${d.slice(8, 10)}/${d.slice(5, 7)}/${d.slice(0, 4)}`, surveyQ: "¿Nos recomendaría? (0 = nada, 10 = mucho)",
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
      assistance_called: "Hemos avisado al personal: enseguida vienen.",
      assistance_coming: "Un asistente viene hacia aquí.",
    },
    rateLater: "Cuando le hayamos atendido, escanee su ticket aquí para valorarnos.",
    surveyRefused: "Este turno ya tiene su valoración. ¡Gracias!",
  },
  en: {
    other: "Español", printerDown: "Printer out of service: your number will be shown on screen",
    largeText: "Large text", contrast: "Contrast",
    assist: "Call an assistant", assistCalled: "Staff called",
    attractTitle: "Welcome", attractInvite: "Hello! Tap your customer card",
    attractHint: "Tap your card on the reader or touch to continue", start: "Continue without a card",
    identifying: "One moment…", hello: (n) => `Hello, ${n}`, continue: "Continue", cancel: "Cancel",
    consentsTitle: "Your permissions", given: "Yes", notGiven: "No",
    offerTitle: "We do not know this card", offerText: "Would you like to register? We will greet you and show offers for you.",
    register: "Register", skip: "Not now",
    regTitle: "Registration", steps: "Registration steps", name: "Name", email: "Email", phone: "Phone", permissions: "Permissions",
    optional: "optional", next: "Next",
    nameHint: "Your name, as you would like us to greet you.",
    emailHint: "We only keep your email if you agree to receive offers by email.",
    phoneHint: "We only keep your phone if you agree to offers by SMS or to turn notices by SMS.",
    consentsHint: "Tick what you agree to. Only “keep my profile” is needed to register.",
    policy: (v) => `Read the full text (version ${v})`, submit: "Register",
    keyboard: "Keyboard", space: "space", del: "Delete", shift: "Shift", caps: "Caps lock",
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
    takeTicket: "Please take your ticket", coupon: "Your coupon",
    validUntil: (d) => `valid until ${d}`, surveyQ: "Would you recommend us? (0 = not at all, 10 = very much)",
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
      assistance_called: "We have told the staff: someone is coming.",
      assistance_coming: "A member of staff is on their way.",
    },
    rateLater: "Once you have been served, scan your ticket here to rate us.",
    surveyRefused: "This turn has its rating already. Thank you!",
  },
};

// Icons as SVG paths on a 24x24 grid, stroked in the text colour ({d, fill} for solid parts).
const ICONS = {
  backspace: ["M21 5H9l-6 7 6 7h12z", "M12 9l6 6", "M18 9l-6 6"],
  shift: ["M12 3l-8 9h5v8h6v-8h5z"],
  caps: ["M12 3l-8 8h5v5h6v-5h5z", "M8 20h8"],
  check: ["M4 12l5 5L20 6"],
  warning: ["M12 3L2 21h20z", "M12 10v5", "M12 18v.5"],
  wheelchair: ["M11 2.5a1.6 1.6 0 1 0 .01 0", "M11 7v6h5l2.5 6", "M11 10h4", "M8 11.5a5 5 0 1 0 7 6"],
  text: ["M2 20L7 6l5 14", "M4 15h6", "M13 20l4-10 4 10", "M14.5 16.5h5"],
  contrast: ["M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18", { d: "M12 3a9 9 0 0 1 0 18z", fill: true }],
  person: ["M12 3a3.5 3.5 0 1 0 .01 0", "M5 21v-2a7 7 0 0 1 14 0v2", "M19 3v5", "M19 10.5v.5"],
};
const SVG = "http://www.w3.org/2000/svg";

function icon(name, cls) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.setAttribute("class", "icon" + (cls ? " " + cls : ""));
  for (const p of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", typeof p === "string" ? p : p.d);
    if (typeof p !== "string" && p.fill) path.setAttribute("class", "solid");
    svg.append(path);
  }
  return svg;
}

const app = document.getElementById("app");
const announce = document.getElementById("announce");
const langButton = document.getElementById("lang");
const largeButton = document.getElementById("large-text");
const contrastButton = document.getElementById("contrast");
const assistButton = document.getElementById("assist");
const printer = document.getElementById("printer");
const noticeSlot = document.getElementById("notice-slot");

let current = null;
let shown = null; // what the screen shows now: locale and body, without the state's version
let lastNotice = null;
let form = emptyForm();
let lastActivity = 0;
const views = { large: false, contrast: false };

// The registration's steps, in order; the server's error names the step to go back to.
const STEPS = ["name", "email", "phone", "consents"];
const ERROR_STEP = {
  name_missing: "name", name_invalid: "name", email_invalid: "email", phone_invalid: "phone",
  profile_consent_required: "consents",
};
const MAX_LEN = { name: 60, email: 254, phone: 20 };

function emptyForm() {
  return {
    name: "", email: "", phone: "", consents: new Set(), step: "name",
    shift: true, caps: false, error: null, errorCleared: false, submitted: false,
  };
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

// ---- registration -------------------------------------------------------------------------

// The on-screen keyboard of each field: rows of keys; a name starts each word in capitals.
const LAYOUTS = {
  name: ["qwertyuiop", "asdfghjklñ", ["shift", ..."zxcvbnm", "-", "'"], [..."áéíóúü", "."], ["caps", "space", "del"]],
  email: ["1234567890", "qwertyuiop", "asdfghjkl_", ["shift", ..."zxcvbnm", "-", "."], ["@", ".com", ".es", "del"]],
  phone: ["123", "456", "789", ["+", "0", "del"]],
};

function upper() {
  return form.caps !== form.shift;
}

// A new word of the name starts with a capital (the shift key overrides it).
function autoShift(input) {
  if (form.step !== "name" || form.caps) return;
  const at = input.selectionStart ?? input.value.length;
  const before = input.value.slice(0, at);
  form.shift = before === "" || /[\s\-']$/.test(before);
}

function paintKeys() {
  for (const k of app.querySelectorAll(".key[data-key]")) {
    const key = k.dataset.key;
    if (key.length === 1) k.textContent = upper() ? key.toLocaleUpperCase("es") : key;
  }
  const shift = app.querySelector(".key[data-key-fn=shift]");
  if (shift) shift.setAttribute("aria-pressed", form.shift ? "true" : "false");
  const caps = app.querySelector(".key[data-key-fn=caps]");
  if (caps) caps.setAttribute("aria-pressed", form.caps ? "true" : "false");
}

function clearError(field) {
  if (form.error && ERROR_STEP[form.error] === field) {
    form.errorCleared = true;
    const msg = document.getElementById(`msg-${field}`);
    if (msg) msg.hidden = true;
  }
}

function press(key) {
  const f = form.step;
  const input = document.getElementById(`f-${f}`);
  if (!input) return;
  activity();
  if (key === "shift") { form.shift = !form.shift; paintKeys(); return; }
  if (key === "caps") { form.caps = !form.caps; form.shift = false; paintKeys(); return; }
  const v = input.value;
  let start = input.selectionStart ?? v.length;
  const end = input.selectionEnd ?? v.length;
  let text = "";
  if (key === "del") {
    if (start === end && start > 0) start -= [...v.slice(0, start)].slice(-1)[0].length;
  } else {
    text = key === "space" ? " " : key;
    if (text.length === 1 && upper()) text = text.toLocaleUpperCase("es");
    if ([...v].length - (end - start) + [...text].length > MAX_LEN[f]) return;
  }
  input.value = v.slice(0, start) + text + v.slice(end);
  const at = start + text.length;
  input.setSelectionRange(at, at);
  form[f] = input.value;
  if (key !== "del") form.shift = false;
  autoShift(input);
  paintKeys();
  clearError(f);
}

function keyboard(t, field) {
  const label = { shift: t.shift, caps: t.caps, del: t.del, space: t.space };
  const iconOf = { shift: "shift", caps: "caps", del: "backspace" };
  const key = (k) => {
    const fn = ["shift", "caps", "del", "space"].includes(k);
    const wide = fn || k.length > 1;
    const b = h("button", {
      type: "button", class: "key" + (wide ? " wide" : "") + (k === "space" ? " space" : ""),
      "data-key": fn ? null : k, "data-key-fn": fn ? k : null,
      "aria-label": fn && k !== "space" ? label[k] : null,
      "aria-pressed": k === "shift" || k === "caps" ? "false" : null,
    }, iconOf[k] ? icon(iconOf[k]) : fn ? label[k] : k);
    // Keep the focus (and caret) in the field: a key is pressed, not focused.
    b.addEventListener("mousedown", (e) => e.preventDefault());
    b.addEventListener("click", () => press(k));
    return b;
  };
  return h("div", { class: `keyboard keyboard-${field}`, role: "group", "aria-label": t.keyboard },
    LAYOUTS[field].map((row) => h("div", { class: "row" }, [...row].map(key))));
}

function stepLabel(t, s) {
  return { name: t.name, email: t.email, phone: t.phone, consents: t.permissions }[s];
}

function goStep(s) {
  form.step = s;
  form.shift = s === "name";
  paint();
}

function textStep(t, f) {
  const optional = f !== "name";
  const showError = form.error && ERROR_STEP[form.error] === f && !form.errorCleared;
  const input = h("input", {
    id: `f-${f}`, type: f === "phone" ? "tel" : "text", inputmode: "none", autocomplete: "off",
    autocapitalize: "off", spellcheck: "false", class: "active", name: f,
    maxlength: String(MAX_LEN[f]), "aria-describedby": `msg-${f}`, "aria-invalid": showError ? "true" : null,
  });
  input.value = form[f];
  input.addEventListener("input", () => { form[f] = input.value; autoShift(input); paintKeys(); clearError(f); activity(); });
  input.addEventListener("click", () => { autoShift(input); paintKeys(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); goStep(STEPS[STEPS.indexOf(f) + 1]); }
  });
  const hint = { name: t.nameHint, email: t.emailHint, phone: t.phoneHint }[f];
  return [
    h("div", { class: "field" },
      h("label", { for: `f-${f}` }, stepLabel(t, f), optional ? h("span", { class: "muted" }, ` (${t.optional})`) : null),
      input,
      h("button", { type: "button", class: "primary next", "data-testid": "next", onclick: () => goStep(STEPS[STEPS.indexOf(f) + 1]) }, t.next)),
    showError
      ? h("p", { id: `msg-${f}`, class: "msg error", role: "alert" }, icon("warning"), " ", t.regErrors[form.error] || form.error)
      : h("p", { id: `msg-${f}`, class: "msg muted" }, hint),
    keyboard(t, f),
  ];
}

function consentsStep(t, body) {
  const consent = (c) => {
    const id = `consent-${c.purpose}`;
    const on = form.consents.has(c.purpose);
    const box = h("button", {
      type: "button", id, class: "box", role: "checkbox", "aria-checked": on ? "true" : "false",
      "aria-labelledby": `${id}-title`, "data-purpose": c.purpose,
    }, icon("check", "tick"));
    box.addEventListener("click", () => {
      if (form.consents.has(c.purpose)) form.consents.delete(c.purpose); else form.consents.add(c.purpose);
      box.setAttribute("aria-checked", form.consents.has(c.purpose) ? "true" : "false");
      if (c.purpose === "profile") clearError("consents");
      activity();
    });
    return h("div", { class: "consent" }, box,
      h("div", {}, h("label", { id: `${id}-title`, for: id, class: "consent-title" }, c.title),
        h("details", {}, h("summary", {}, t.policy(c.version)), h("p", {}, c.text))));
  };
  const showError = form.error === "profile_consent_required" && !form.errorCleared;
  const submit = () => {
    form.submitted = true;
    send("submit_registration", {
      name: form.name, email: form.email || null, phone: form.phone || null, consents: [...form.consents],
    });
  };
  return [
    h("p", { class: "msg muted consents-hint" }, t.consentsHint),
    h("div", { class: "consents" }, body.consents.map(consent)),
    showError ? h("p", { id: "msg-consents", class: "msg error", role: "alert" }, icon("warning"), " ", t.regErrors[form.error]) : null,
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", "data-action": "submit_registration", onclick: submit }, t.submit)),
  ];
}

function registration(t, body) {
  // A new answer from the server (an error after "Register") opens the step it is about.
  if (form.submitted || body.error !== form.error) {
    form.submitted = false;
    form.errorCleared = false;
    form.error = body.error;
    if (body.error) form.step = ERROR_STEP[body.error] || form.step;
  }
  const steps = h("nav", { class: "steps", "aria-label": t.steps },
    STEPS.map((s, i) => h("button", {
      type: "button", "data-step": s, "aria-current": s === form.step ? "step" : null, onclick: () => goStep(s),
    }, h("span", { class: "step-n" }, String(i + 1)), " ", stepLabel(t, s))));
  return [
    h("div", { class: "reg-head" }, h("h1", {}, t.regTitle), steps, button(t.skip, "skip_registration")),
    form.step === "consents" ? consentsStep(t, body) : textStep(t, form.step),
  ];
}

// ---- browse point (kiosk.role = "browse"): content and offers for a tapped card, no turn ------

const TB = {
  es: {
    invite: "Acerque su tarjeta y vea sus ofertas", hint: "Sin tarjeta, toque para ver las novedades",
    see: "Ver novedades", news: "Novedades", loading: "Buscando sus ofertas…", nothing: "Hoy no hay novedades para usted.",
    turn: (l, a) => a === null ? `Su turno ${l}` : `Su turno ${l}: ${a === 0 ? "es el siguiente" : `${a} por delante`}`,
    called: (l, c) => `Su turno ${l}: mostrador ${c}`, of: (i, n) => `${i} de ${n}`, next: "Siguiente", done: "Terminar",
  },
  en: {
    invite: "Tap your card to see your offers", hint: "No card? Touch to see what is new",
    see: "See what is new", news: "What is new", loading: "Finding your offers…", nothing: "Nothing new for you today.",
    turn: (l, a) => a === null ? `Your turn ${l}` : `Your turn ${l}: ${a === 0 ? "you are next" : `${a} ahead`}`,
    called: (l, c) => `Your turn ${l}: counter ${c}`, of: (i, n) => `${i} of ${n}`, next: "Next", done: "Done",
  },
};

function browse(v) {
  const tb = TB[v.locale] || TB.es;
  const b = v.body;
  const turn = b.turn
    ? h("p", { class: "campaign", "data-testid": "browse-turn" },
      b.turn.counter ? tb.called(b.turn.label, b.turn.counter) : tb.turn(b.turn.label, b.turn.ahead))
    : null;
  const item = b.item
    ? h("figure", { class: "browse-item", "data-content": `${b.item.campaign_id}/${b.item.content_id}` },
      b.item.image ? h("img", { src: b.item.image, alt: b.item.alt || "" }) : null,
      h("figcaption", {}, b.item.text))
    : h("p", {}, b.loading ? tb.loading : tb.nothing);
  return [
    h("h1", {}, b.name ? (T[v.locale] || T.es).hello(b.name) : tb.news),
    turn, item,
    b.count > 1 ? h("p", { class: "muted" }, tb.of(b.position, b.count)) : null,
    h("div", { class: "actions" },
      b.count > 1 && b.position < b.count ? button(tb.next, "next", null, "primary") : null,
      button(tb.done, "done")),
  ];
}

// ---- screens ------------------------------------------------------------------------------

// A campaign's picture (its text alternative is its accessible name). One the kiosk cannot
// serve (checked on each request) leaves the screen to the text.
function picture(p, cls) {
  if (!p) return null;
  const img = h("img", { src: p.url, alt: p.alt, class: cls, "data-testid": "campaign-picture" });
  img.addEventListener("error", () => img.remove());
  return img;
}

function coupon(t, c) {
  return h("div", { class: "coupon" }, h("strong", {}, t.coupon + ": "), c.text,
    h("div", { class: "muted code" }, c.code),
    c.expires_on ? h("div", { class: "muted valid-until" }, t.validUntil(c.expires_on)) : null);
}

function screen(v) {
  const t = T[v.locale] || T.es;
  const b = v.body;
  switch (b.screen) {
    case "attract":
      if (v.role === "browse") {
        const tb = TB[v.locale] || TB.es;
        return [h("h1", {}, tb.invite), h("p", {}, tb.hint),
          h("div", { class: "actions" }, button(tb.see, "start", null, "primary"))];
      }
      return [h("h1", {}, b.inviting ? t.attractInvite : t.attractTitle), h("p", {}, t.attractHint),
        h("div", { class: "actions" }, button(t.start, "start", null, "primary"))];
    case "identifying":
      return [h("h1", {}, t.identifying)];
    case "greeting":
      return [h("h1", {}, t.hello(b.name)),
        b.campaign ? h("p", { class: "campaign" }, b.campaign) : null,
        b.campaign ? picture(b.campaign_image, "campaign-picture") : null,
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
          s.priority_allowed
            ? button([icon("wheelchair"), " ", t.priority], "choose_service", { service: s.letter, priority: true })
            : null))),
        h("div", { class: "actions" }, button(t.cancel, "cancel"))];
    case "issuing":
      return [h("h1", {}, t.issuing)];
    case "printing":
      return [h("h1", {}, t.printing(b.turn.label))];
    case "goodbye": {
      const qr = b.qr_svg ? h("div", { class: "qr", role: "img", "aria-label": b.turn.label }) : null;
      if (qr) qr.innerHTML = b.qr_svg; // server-made SVG of the signed ticket payload
      const about = [b.turn.service_name, t.ahead(b.turn.position), t.wait(b.turn.estimated_wait_min)];
      return [h("p", {}, b.name ? t.hello(b.name) : t.yourTurn),
        h("div", { class: "turn", "data-testid": "turn" }, b.turn.label),
        h("p", { "data-testid": "turn-about" }, about.filter(Boolean).join(" · ")),
        b.printed ? h("p", {}, t.takeTicket) : h("p", { class: "error", role: "alert" }, icon("warning"), " ", t.notPrinted),
        qr,
        // With the number and QR on screen (no paper) there is room for the coupon only.
        b.campaign && b.printed
          ? h("p", { class: "campaign", "data-testid": "campaign" }, picture(b.campaign_image, "thumb"), b.campaign) : null,
        b.coupon ? coupon(t, b.coupon) : null,
        b.printed ? h("p", { class: "muted", "data-testid": "rate-later" }, t.rateLater) : null,
        h("div", { class: "actions" }, button(t.done, "done", null, "primary"))];
    }
    case "browse":
      return browse(v);
    case "survey":
      return [h("h1", {}, t.surveyTitle(b.turn_label)), survey(t, b.survey), h("div", { class: "actions" }, button(t.done, "done"))];
    case "error":
      return [h("h1", {}, t.errorIssue), h("div", { class: "actions" }, button(t.ok, "done", null, "primary"))];
    default:
      return [h("h1", {}, "…")];
  }
}

// Draws the current view into the screen. On the registration form the focus goes to the step's
// field, with the caret back where it was when that field was being typed in.
function paint() {
  const v = current;
  const active = document.activeElement;
  const typing = active && active.tagName === "INPUT" && app.contains(active)
    ? { id: active.id, start: active.selectionStart, end: active.selectionEnd } : null;
  app.setAttribute("data-screen", v.body.screen);
  app.replaceChildren(...screen(v).flat().filter(Boolean));
  app.removeAttribute("aria-busy");
  if (v.body.screen !== "registering") return;
  const field = document.getElementById(`f-${form.step}`);
  if (!field && form.step === "consents" && !app.contains(document.activeElement)) {
    const first = app.querySelector("[role=checkbox]");
    if (first) first.focus({ preventScroll: true });
  }
  if (field) {
    field.focus({ preventScroll: true });
    const back = typing && typing.id === field.id;
    const at = field.value.length;
    field.setSelectionRange(back ? typing.start : at, back ? typing.end : at);
    autoShift(field);
  }
  paintKeys();
}

function paintTools(t) {
  langButton.textContent = t.other;
  const called = !!(current && current.assistance_called);
  assistButton.replaceChildren(called ? icon("check") : icon("person"), h("span", { class: "tool-label" }, called ? t.assistCalled : t.assist));
  assistButton.classList.toggle("called", called);
  largeButton.replaceChildren(icon("text"), h("span", { class: "tool-label" }, t.largeText), icon("check", "on"));
  contrastButton.replaceChildren(icon("contrast"), h("span", { class: "tool-label" }, t.contrast), icon("check", "on"));
  largeButton.setAttribute("aria-pressed", views.large ? "true" : "false");
  contrastButton.setAttribute("aria-pressed", views.contrast ? "true" : "false");
  document.body.classList.toggle("large-text", views.large);
  document.body.classList.toggle("high-contrast", views.contrast);
}

function render(v) {
  const t = T[v.locale] || T.es;
  const before = current ? current.body.screen : null;
  const changed = before !== v.body.screen;
  if (changed) form = emptyForm();
  // The views a customer chose last for their journey; the next one starts plain.
  if (changed && v.body.screen === "attract") { views.large = false; views.contrast = false; }
  current = v;
  document.documentElement.lang = v.locale;
  paintTools(t);
  printer.hidden = v.printer_ok;
  printer.replaceChildren(...(v.printer_ok ? [] : [icon("warning"), " ", t.printerDown]));
  const what = JSON.stringify([v.locale, v.body]);
  if (what !== shown || (form.submitted && v.body.screen === "registering")) {
    shown = what;
    paint();
  }
  if (changed) {
    const title = app.querySelector("h1");
    announce.textContent = title ? title.textContent : "";
    // A new screen starts screen readers at its top; the registration starts in its field.
    if (v.body.screen !== "registering") app.focus({ preventScroll: true });
  }
  // "Printer out of service" is in the top bar already while it lasts: not said twice.
  const twice = v.notice && v.notice.kind === "printer_down" && !v.printer_ok;
  if (v.notice && !twice && (!lastNotice || lastNotice.id !== v.notice.id)) {
    noticeSlot.replaceChildren(h("p", { class: "notice", role: "status" }, t.notices[v.notice.kind] || v.notice.kind));
  } else if (!v.notice || twice) {
    noticeSlot.replaceChildren();
  }
  lastNotice = v.notice;
  // Accessible mode and the time-limit banner (a11y.js) follow every render.
  document.dispatchEvent(new CustomEvent("kiosk:render", { detail: { view: v, changed } }));
}

// "Call an assistant": on every screen; the kiosk says staff were told (a notice, spoken in
// accessible mode) and every counter page of the store shows the call until someone takes it.
assistButton.addEventListener("click", () => send("call_assistant"));
langButton.addEventListener("click", () => send("set_locale", { locale: current && current.locale === "en" ? "es" : "en" }));
largeButton.addEventListener("click", () => { views.large = !views.large; paintTools(T[current ? current.locale : "es"] || T.es); });
contrastButton.addEventListener("click", () => { views.contrast = !views.contrast; paintTools(T[current ? current.locale : "es"] || T.es); });
document.addEventListener("contextmenu", (e) => e.preventDefault());
document.addEventListener("gesturestart", (e) => e.preventDefault());

const events = new EventSource("/api/kiosk/stream");
events.addEventListener("view", (e) => render(JSON.parse(e.data)));
// For a11y.js: the keypad's keys arrive on this stream, and touches go out the same way.
window.kiosk = { events, send };

// The screen never blanks while the kiosk page is up (a screen that stays black after hours of
// blanking is the classic kiosk failure): hold a screen wake lock, taken again whenever the page
// becomes visible (the browser drops it when the page is hidden). The unit and the kernel keep
// the console blanker off too; this covers the compositor's idle handling.
async function keepAwake() {
  if (!("wakeLock" in navigator) || document.visibilityState !== "visible") return;
  try {
    const lock = await navigator.wakeLock.request("screen");
    lock.addEventListener("release", () => setTimeout(keepAwake, 1000));
  } catch (e) {
    // Refused (no permission, or the page is hidden): try again on the next visibility change.
  }
}
document.addEventListener("visibilitychange", keepAwake);
keepAwake();
