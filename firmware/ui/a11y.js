// Accessible mode and time limits on the kiosk screen (EN 301 549 closed functionality).
// The kiosk binary owns the devices: it forwards the USB keypad's keys on the screen's event
// stream ("key" events) and speaks with its own TTS what this page posts to /api/kiosk/speak.
// This page owns rendering and focus: keys move the focus among the screen's real controls, and
// what is spoken is the text the screen shows (its title and text, the focused control's label
// and position), so speech and screen cannot drift apart. Also the time-limit banner ("More
// time"), shown in every mode: the server decides the limits; the countdown here is cosmetic.
"use strict";

(() => {
  const A = {
    es: {
      on: "Modo accesible activado. Flechas o más y menos para moverse, Intro para elegir, Retroceso para volver, asterisco para repetir. Mantenga pulsado el 5 para salir.",
      off: "Modo accesible desactivado.",
      badge: "Modo accesible",
      of: (i, n) => `${i} de ${n}`,
      choices: (n) => (n === 1 ? "1 opción." : `${n} opciones.`),
      warnText: (s) => `La pantalla se cerrará en ${s} s por inactividad.`,
      warnSpeech: (s) => `Atención: la pantalla se cerrará en ${s} segundos. Pulse Intro para tener más tiempo.`,
      more: "Más tiempo",
      checked: "marcado", unchecked: "sin marcar",
    },
    en: {
      on: "Accessible mode on. Arrows or plus and minus to move, Enter to choose, Backspace to go back, star to repeat. Hold the 5 to leave.",
      off: "Accessible mode off.",
      badge: "Accessible mode",
      of: (i, n) => `${i} of ${n}`,
      choices: (n) => (n === 1 ? "1 option." : `${n} options.`),
      warnText: (s) => `This screen will close in ${s} s for inactivity.`,
      warnSpeech: (s) => `Attention: this screen will close in ${s} seconds. Press Enter for more time.`,
      more: "More time",
      checked: "checked", unchecked: "not checked",
    },
  };

  const app = document.getElementById("app");
  const banner = document.createElement("div");
  banner.id = "time-warning";
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  const bannerText = document.createElement("p");
  const moreButton = document.createElement("button");
  moreButton.type = "button";
  moreButton.className = "primary";
  // data-action only while shown: probes that check every control's size skip a hidden one.
  banner.append(bannerText, moreButton);
  const badge = document.createElement("span");
  badge.id = "a11y-badge";
  badge.hidden = true;
  document.body.append(banner);
  const topbar = document.querySelector(".topbar");
  if (topbar) topbar.prepend(badge); else document.body.prepend(badge);

  let view = null;
  let keyed = false; // someone used the keypad in this journey: show where its focus is
  let screens = 0; // counts screen changes, so a late echo of a click is not said on a new one
  let focusKey = null; // which control has the keypad focus: survives re-renders
  let countdown = null;
  let lastActivity = 0;

  const t = () => A[(view && view.locale) || "es"] || A.es;
  const send = (action, extra) => (window.kiosk ? window.kiosk.send(action, extra) : Promise.resolve());

  // `personal`: what the customer typed; the kiosk says it only into a private headset.
  // Utterances reach the kiosk in the order they were said: one request at a time. Two
  // concurrent requests can arrive swapped, and a new screen's utterance arriving after the
  // focus that follows it would flush that focus from the queue (it did, under load).
  let spoken_so_far = Promise.resolve();
  function say(text, cls, newScreen, personal) {
    if (!view || !text) return;
    // Screen and focus speech only in accessible mode (the server enforces it too); cues always.
    if (cls !== "cue" && !view.accessible) return;
    const body = JSON.stringify({ text: spoken(text), personal: personal || null, lang: view.locale, class: cls, new_screen: !!newScreen });
    spoken_so_far = spoken_so_far
      .then(() => fetch("/api/kiosk/speak", { method: "POST", headers: { "content-type": "application/json" }, body }))
      .catch(() => {});
  }

  // Turn labels as a person reads them: "A-007" is "A 7", not "A minus zero zero seven".
  function spoken(text) {
    return text.replace(/\b([A-Z][0-9]?)-0*([0-9]+)\b/g, "$1 $2").replace(/[·⌫✔♿]/g, " ");
  }

  const isControl = (el) => el.matches("button, input, select, textarea, summary, [role=checkbox]");
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && !el.closest("[hidden]");
  };

  function controls() {
    const list = [];
    if (!banner.hidden) list.push(moreButton);
    for (const el of app.querySelectorAll("button, input, summary, [role=checkbox]")) if (visible(el)) list.push(el);
    const lang = document.getElementById("lang");
    if (lang && visible(lang)) list.push(lang);
    // "Call an assistant" last: always reachable from the keypad, never the first offered.
    const assist = document.getElementById("assist");
    if (assist && visible(assist)) list.push(assist);
    return [...new Set(list)];
  }

  function keyOf(el) {
    return `${el.dataset.action || el.id || el.tagName}:${el.textContent.trim()}`;
  }

  function label(el) {
    if (el.tagName === "INPUT") {
      const l = el.closest("label");
      return (l ? l.firstChild.textContent : el.name || "").trim();
    }
    let text = el.getAttribute("aria-label") || el.textContent.trim();
    if (el.getAttribute("role") === "checkbox") {
      const c = el.closest(".consent");
      const title = c ? c.querySelector("strong") : null;
      text = `${title ? title.textContent : ""} ${el.getAttribute("aria-checked") === "true" ? t().checked : t().unchecked}`;
    }
    return text;
  }

  // The screen's own words: everything shown in the main area that is not a control.
  function screenText() {
    const parts = [];
    const walk = (node) => {
      for (const child of node.children) {
        if (isControl(child) || child.classList.contains("keyboard") || !visible(child)) continue;
        if (child.querySelector("button, input, summary, [role=checkbox]")) walk(child);
        else if (child.innerText.trim()) parts.push(child.innerText.trim());
      }
    };
    walk(app);
    const notice = document.querySelector("#notice-slot .notice");
    if (notice) parts.push(notice.innerText.trim());
    return parts.map(sentence).join(" ");
  }

  const sentence = (s) => (/[.!?…:]$/.test(s.trim()) ? s.trim() : `${s.trim()}.`);

  function mark(el) {
    for (const old of document.querySelectorAll(".a11y-focus")) if (old !== el) old.classList.remove("a11y-focus");
    if (!el) return;
    el.classList.add("a11y-focus");
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function focusAt(i, speak) {
    const list = controls();
    if (!list.length) return;
    const n = list.length;
    const k = ((i % n) + n) % n;
    const el = list[k];
    focusKey = keyOf(el);
    mark(el);
    if (speak) say(`${label(el)}, ${t().of(k + 1, n)}`, "focus", false, el.tagName === "INPUT" ? el.value : null);
  }

  function current() {
    const list = controls();
    const i = list.findIndex((el) => keyOf(el) === focusKey);
    return { list, i };
  }

  function sayScreen(prefix) {
    const list = controls();
    const text = [prefix, screenText(), list.length ? t().choices(list.length) : ""].filter(Boolean).map(sentence).join(" ");
    say(text, "screen", true);
    if (list.length) focusAt(preferred(list), true);
  }

  // The first thing to offer: the main action, else the first control.
  function preferred(list) {
    const main = list.findIndex((el) => el !== moreButton && el.classList.contains("primary"));
    return main >= 0 ? main : 0;
  }

  function activityPing() {
    const now = Date.now();
    if (!banner.hidden) {
      send("more_time");
      lastActivity = now;
    } else if (now - lastActivity > 5000) {
      lastActivity = now;
      send("activity");
    }
  }

  function onKey(k) {
    if (!view) return;
    keyed = true;
    activityPing();
    const { list, i } = current();
    switch (k.key) {
      case "next": focusAt(i < 0 ? 0 : i + 1, true); break;
      case "prev": focusAt(i < 0 ? list.length - 1 : i - 1, true); break;
      case "enter": {
        const el = i >= 0 ? list[i] : null;
        if (!el) { focusAt(preferred(list), true); break; }
        if (el.tagName === "INPUT") { el.focus(); break; }
        const before = screens;
        el.click();
        // Same screen (a box ticked, a key typed): say what changed on the control.
        setTimeout(() => {
          const c = current();
          if (screens === before && c.i >= 0) say(label(c.list[c.i]), "focus", false);
        }, 300);
        break;
      }
      case "back": {
        const back = app.querySelector("[data-action=cancel], [data-action=skip_registration], [data-action=done]");
        if (back) back.click();
        break;
      }
      case "help": sayScreen(view.accessible ? t().on : ""); break;
      case "digit": {
        const choices = [...app.querySelectorAll(".services [data-action=choose_service], .scores button")].filter(visible);
        const pool = choices.length ? choices : list;
        const el = pool[(k.n === 0 ? 10 : k.n) - 1];
        if (el) { const at = list.indexOf(el); focusAt(at, true); }
        break;
      }
      default: break;
    }
  }

  function showWarning(v) {
    const w = v.time_warning;
    clearInterval(countdown);
    if (!w) {
      const had = !banner.hidden;
      banner.hidden = true;
      delete moreButton.dataset.action;
      document.body.classList.remove("time-warning");
      if (had && focusKey && focusKey.startsWith("more_time")) focusAt(preferred(controls()), false);
      return;
    }
    let left = w.seconds_left;
    const draw = () => { bannerText.textContent = t().warnText(left); };
    moreButton.textContent = t().more;
    draw();
    const appeared = banner.hidden;
    banner.hidden = false;
    moreButton.dataset.action = "more_time";
    document.body.classList.add("time-warning");
    countdown = setInterval(() => { left = Math.max(0, left - 1); draw(); }, 1000);
    if (appeared) {
      say(t().warnSpeech(w.seconds_left), "cue", false);
      if (v.accessible) focusAt(0, false);
    }
  }

  moreButton.addEventListener("click", () => send("more_time"));
  // Any touch or key on the screen while the warning shows is "still here".
  document.addEventListener("pointerdown", (e) => { if (!banner.hidden && e.target !== moreButton) send("more_time"); }, true);
  document.addEventListener("keydown", () => { if (!banner.hidden) send("more_time"); }, true);

  document.addEventListener("kiosk:render", (e) => {
    const v = e.detail.view;
    const before = view;
    view = v;
    document.body.classList.toggle("accessible", !!v.accessible);
    badge.hidden = !v.accessible;
    badge.textContent = t().badge;
    const toggled = !before || before.accessible !== v.accessible;
    const relanguaged = !!before && before.locale !== v.locale;
    if (toggled && before && !v.accessible && before.accessible) say(t().off, "cue", false);
    showWarning(v);
    if (e.detail.changed || (toggled && v.accessible) || relanguaged) {
      screens += 1;
      focusKey = null;
      if (v.body.screen === "attract" && !v.accessible) keyed = false;
      if (v.accessible) sayScreen(toggled ? t().on : "");
      else if (keyed) focusAt(preferred(controls()), false);
      else mark(null);
      return;
    }
    // The same screen drawn again: keep the focus where it was; say a new error or notice.
    const { list, i } = current();
    if (i >= 0) mark(list[i]);
    const alert = app.querySelector("[role=alert]");
    if (alert && v.accessible) say(alert.innerText, "screen", false);
    if (v.notice && (!before || !before.notice || before.notice.id !== v.notice.id)) {
      const n = document.querySelector("#notice-slot .notice");
      if (n) say(n.innerText, "screen", false);
    }
  });

  function attach() {
    if (!window.kiosk || !window.kiosk.events) return setTimeout(attach, 50);
    window.kiosk.events.addEventListener("key", (e) => onKey(JSON.parse(e.data)));
  }
  attach();
})();
