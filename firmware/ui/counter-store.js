// The counter page's "In the store": customers waiting now by profile (segments, never names),
// each profile's share of those waiting and usual stay, and the people counter's entries today,
// live from the kiosk's store picture.
"use strict";

(function () {
  const names = {
    new: "Nuevo · New", regular: "Habitual · Regular", vip: "VIP", lapsed: "Inactivo · Lapsed",
    anonymous: "Sin tarjeta · No card",
  };
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  function minutes(s) { return `${Math.round(s / 60)} min`; }

  function render(p) {
    text("store-waiting", String(p.waiting));
    text("store-identified", String(p.identified));
    text("store-anonymous", String(p.anonymous));
    const row = document.getElementById("store-entries-row");
    row.hidden = p.people_entered_today === null || p.people_entered_today === undefined;
    if (!row.hidden) text("store-entries", String(p.people_entered_today));
    const body = document.getElementById("store-segments");
    body.replaceChildren(...p.segments.map((s) => {
      const tr = document.createElement("tr");
      tr.setAttribute("data-segment", s.segment);
      const stay = s.dwell_source === "learned"
        ? `${minutes(s.dwell_s)} (${s.visits} visitas · visits)`
        : `${minutes(s.dwell_s)} (previsto · expected)`;
      for (const v of [names[s.segment] || s.segment, String(s.waiting), `${Math.round(s.weight * 100)} %`, stay]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.append(td);
      }
      return tr;
    }));
  }

  const events = new EventSource("/api/counter/store/stream");
  events.addEventListener("view", (e) => render(JSON.parse(e.data)));
})();
