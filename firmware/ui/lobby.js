// The lobby display: turns being served with their counter, the last calls, and (once someone
// switches it on: browsers need a gesture) a spoken announcement of each new call. Between calls
// it plays the store's campaign content the kiosk chooses for who is waiting (segments, never a
// name); a new call takes the screen at once and the content resumes after it.
"use strict";

const serving = document.getElementById("serving");
const recent = document.getElementById("recent");
const store = document.getElementById("store");
const voice = document.getElementById("voice");
const lobby = document.querySelector(".lobby");
const signage = document.getElementById("signage");
const slideBox = signage.querySelector(".slide");
const slideImg = document.getElementById("slide-img");
const slideText = document.getElementById("slide-text");
const params = new URLSearchParams(location.search);
const lang = params.get("lang") === "en" ? "en" : "es";
let speak = params.get("voice") === "on";
let seen = null;

// A call holds the screen this long before content plays again.
const CALL_HOLD_MS = Number(params.get("call_hold_ms")) || 15000;
// With nothing to play, ask again after this long.
const RETRY_MS = 30000;
let slide = null;
let slideStart = 0;
let timer = null;
let callUntil = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// "mostrador 2" / "counter 2": words, not an arrow, on the display as in the announcement.
function atCounter(counter) {
  return lang === "en" ? `counter ${counter}` : `mostrador ${counter}`;
}

function say(entry) {
  if (!speak || !("speechSynthesis" in window)) return;
  const spoken = entry.label.replace("-", " ");
  const text = `${lang === "en" ? "Ticket" : "Turno"} ${spoken}, ${atCounter(entry.counter)}`;
  const u = new SpeechSynthesisUtterance(text);
  u.lang = lang === "en" ? "en-GB" : "es-ES";
  window.speechSynthesis.speak(u);
}

async function signagePost(body) {
  try {
    const res = await fetch("/api/lobby/signage", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return res.status === 200 ? await res.json() : null;
  } catch (e) {
    return null;
  }
}

function finished() {
  if (!slide) return null;
  const done = { play: slide.play, shown_ms: Math.max(0, Math.round(Date.now() - slideStart)) };
  slide = null;
  return done;
}

function showCalls() {
  lobby.classList.remove("signage-on");
  signage.hidden = true;
  lobby.setAttribute("data-mode", "calls");
}

function showSlide(s) {
  slide = s;
  slideStart = Date.now();
  const text = s.text[s.lang] || s.text.es;
  slideText.textContent = text;
  slideText.setAttribute("lang", s.lang);
  if (s.image) {
    slideImg.src = s.image;
    slideImg.alt = s.alt ? s.alt[s.lang] || s.alt.es : "";
    slideImg.setAttribute("lang", s.lang);
    slideImg.hidden = false;
  } else {
    slideImg.hidden = true;
    slideImg.removeAttribute("src");
    slideImg.alt = "";
  }
  slideBox.setAttribute("data-content", `${s.campaign_id}/${s.content_id}`);
  slideBox.classList.remove("enter");
  void slideBox.offsetWidth;
  slideBox.classList.add("enter");
  signage.hidden = false;
  lobby.classList.add("signage-on");
  lobby.setAttribute("data-mode", "signage");
}

// The next play (reporting the one that ended), unless a call holds the screen.
async function advance() {
  clearTimeout(timer);
  const done = finished();
  const wait = callUntil - Date.now();
  if (wait > 0) {
    if (done) signagePost({ done, next: false });
    timer = setTimeout(advance, wait);
    return;
  }
  const next = await signagePost({ done, next: true });
  if (callUntil > Date.now()) {
    // A call came while asking: it wins; the play handed out is reported as not shown.
    if (next) signagePost({ done: { play: next.play, shown_ms: 0 }, next: false });
    timer = setTimeout(advance, callUntil - Date.now());
    return;
  }
  if (!next) {
    showCalls();
    timer = setTimeout(advance, RETRY_MS);
    return;
  }
  showSlide(next);
  timer = setTimeout(advance, next.duration_s * 1000);
}

function callCame() {
  callUntil = Date.now() + CALL_HOLD_MS;
  clearTimeout(timer);
  const done = finished();
  if (done) signagePost({ done, next: false });
  showCalls();
  timer = setTimeout(advance, CALL_HOLD_MS);
}

function render(v) {
  if (v.store_name) store.textContent = v.store_name;
  const first = seen === null;
  const fresh = first ? new Set() : new Set(v.serving.map((s) => s.key).filter((k) => !seen.has(k)));
  if (fresh.size > 0) callCame();
  serving.replaceChildren(...v.serving.map((s) => {
    const card = el("div", "call" + (fresh.has(s.key) ? " new" : ""));
    card.setAttribute("data-key", s.key);
    card.append(el("div", "label", s.label), el("div", "counter", atCounter(s.counter)));
    return card;
  }));
  recent.replaceChildren(...v.recent.filter((r) => !r.active).map((r) => el("span", "", `${r.label} · ${atCounter(r.counter)}`)));
  for (const s of v.serving) if (fresh.has(s.key)) say(s);
  seen = new Set([...(seen || []), ...v.serving.map((s) => s.key), ...v.recent.map((r) => r.key)]);
  if (first) timer = setTimeout(advance, 0);
}

voice.addEventListener("click", () => {
  speak = !speak;
  voice.setAttribute("aria-pressed", speak ? "true" : "false");
  if (speak && "speechSynthesis" in window) window.speechSynthesis.speak(new SpeechSynthesisUtterance(""));
});
voice.setAttribute("aria-pressed", speak ? "true" : "false");
lobby.setAttribute("data-mode", "calls");

// A display switched off or a tab closed mid-play reports what was on screen.
window.addEventListener("pagehide", () => {
  const done = finished();
  if (done) navigator.sendBeacon("/api/lobby/signage", new Blob([JSON.stringify({ done, next: false })], { type: "application/json" }));
});

const events = new EventSource("/api/lobby/stream");
events.addEventListener("view", (e) => render(JSON.parse(e.data)));
