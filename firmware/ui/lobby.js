// The lobby display: turns being served with their counter, the last calls, and (once someone
// switches it on: browsers need a gesture) a spoken announcement of each new call.
"use strict";

const serving = document.getElementById("serving");
const recent = document.getElementById("recent");
const store = document.getElementById("store");
const voice = document.getElementById("voice");
const lang = new URLSearchParams(location.search).get("lang") === "en" ? "en" : "es";
let speak = new URLSearchParams(location.search).get("voice") === "on";
let seen = null;

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

function render(v) {
  if (v.store_name) store.textContent = v.store_name;
  const fresh = seen === null ? new Set() : new Set(v.serving.map((s) => s.key).filter((k) => !seen.has(k)));
  serving.replaceChildren(...v.serving.map((s) => {
    const card = el("div", "call" + (fresh.has(s.key) ? " new" : ""));
    card.setAttribute("data-key", s.key);
    card.append(el("div", "label", s.label), el("div", "counter", atCounter(s.counter)));
    return card;
  }));
  recent.replaceChildren(...v.recent.filter((r) => !r.active).map((r) => el("span", "", `${r.label} · ${atCounter(r.counter)}`)));
  for (const s of v.serving) if (fresh.has(s.key)) say(s);
  seen = new Set([...(seen || []), ...v.serving.map((s) => s.key), ...v.recent.map((r) => r.key)]);
}

voice.addEventListener("click", () => {
  speak = !speak;
  voice.setAttribute("aria-pressed", speak ? "true" : "false");
  if (speak && "speechSynthesis" in window) window.speechSynthesis.speak(new SpeechSynthesisUtterance(""));
});
voice.setAttribute("aria-pressed", speak ? "true" : "false");

const events = new EventSource("/api/lobby/stream");
events.addEventListener("view", (e) => render(JSON.parse(e.data)));
