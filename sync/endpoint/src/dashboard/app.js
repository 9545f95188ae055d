// Store dashboard: listens to /dashboard/events (server-sent events) and draws the figures as
// inline SVG. No framework, no external request; everything from the server goes through
// textContent, never innerHTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let source = null;
  let stores = [];
  let current = null;

  function el(tag, attrs, children) {
    const node = tag.startsWith("svg:")
      ? document.createElementNS(SVG, tag.slice(4))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    }
    for (const c of children || []) {
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  const svgEl = (tag, attrs, children) => el("svg:" + tag, attrs, children);
  const titled = (node, text) => { node.append(svgEl("title", {}, [text])); return node; };

  function chart(name, width, height, summary) {
    return svgEl("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": summary,
      "data-chart": name,
      preserveAspectRatio: "xMidYMid meet",
    });
  }

  function empty(container, text) {
    container.replaceChildren(el("p", { class: "empty" }, [text]));
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(s);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  function ago(ms, now) {
    if (ms === null || ms === undefined) return "never";
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} days ago`;
  }

  function clock(ms, tz, withDate) {
    const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
    if (withDate) Object.assign(opts, { month: "short", day: "numeric" });
    try {
      return new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: tz }, opts)).format(new Date(ms));
    } catch (e) {
      return new Date(ms).toISOString().slice(11, 19) + " UTC";
    }
  }

  function pct(x) { return `${(100 * x).toFixed(x > 0 && x < 0.1 ? 1 : 0)} %`; }

  // Tickets per hour: stacked bars per service.
  function drawTickets(d) {
    const box = $("chart-tickets");
    const legend = $("legend-tickets");
    const services = d.tickets.services;
    legend.replaceChildren(...services.map((s, i) =>
      el("li", {}, [el("span", { class: `swatch sw-s${i % 6}` }), `Service ${s}`])));
    const buckets = d.tickets.buckets;
    if (!buckets.length) return empty(box, "No period to show.");
    const W = 760, H = 250, L = 40, R = 8, T = 12, B = 30;
    const max = niceMax(Math.max(1, ...buckets.map((b) => b.total)));
    const unit = d.tickets.bucket === "day" ? "day" : "hour";
    const svg = chart("tickets", W, H,
      `${d.tickets.total} tickets; busiest ${unit} ${busiest(buckets)}`);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const ticks = 4;
    const axis = svgEl("g", { class: "axis" });
    for (let i = 0; i <= ticks; i++) {
      const v = (max * i) / ticks;
      axis.append(svgEl("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      axis.append(svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" },
        [Number.isInteger(v) ? String(v) : v.toFixed(1)]));
    }
    svg.append(axis);
    const slot = (W - L - R) / buckets.length;
    const bw = Math.max(2, Math.min(36, slot * 0.72));
    const every = Math.ceil(buckets.length / 14);
    buckets.forEach((b, i) => {
      const x = L + i * slot + (slot - bw) / 2;
      let acc = 0;
      services.forEach((s, si) => {
        const n = b.by_service[s] || 0;
        if (!n) return;
        const top = y(acc + n);
        svg.append(titled(svgEl("rect", {
          class: `bar s${si % 6}`, x: x.toFixed(1), y: top.toFixed(1), width: bw.toFixed(1),
          height: (y(acc) - top).toFixed(1), "data-service": s, "data-value": n,
          "data-bucket": b.label,
        }), `${b.label} · service ${s}: ${n} tickets`));
        acc += n;
      });
      if (b.total > 0 && bw >= 14) {
        svg.append(svgEl("text", { class: "muted", x: (x + bw / 2).toFixed(1), y: y(b.total) - 3,
          "text-anchor": "middle" }, [String(b.total)]));
      }
      if (i % every === 0) {
        svg.append(svgEl("text", { class: "muted", x: (x + bw / 2).toFixed(1), y: H - B + 16,
          "text-anchor": "middle" }, [b.label]));
      }
    });
    svg.append(svgEl("line", { class: "baseline", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
    box.replaceChildren(svg);
    if (d.tickets.total === 0) {
      box.append(el("p", { class: "empty" }, ["No tickets issued in this period yet."]));
    }
  }

  function busiest(buckets) {
    let best = null;
    for (const b of buckets) if (!best || b.total > best.total) best = b;
    return best && best.total ? `${best.label} (${best.total})` : "none";
  }

  // Waiting and service times: per service, median bars with the 90th percentile behind.
  function drawTimes(d) {
    const box = $("chart-times");
    const rows = [];
    for (const t of d.times) {
      rows.push({ label: `${t.service} wait`, kind: "wait", v: t.wait });
      rows.push({ label: `${t.service} service`, kind: "service", v: t.service_time });
    }
    if (!rows.some((r) => r.v)) return empty(box, "No turn called yet in this period.");
    const W = 380, row = 26, L = 78, R = 70, T = 6;
    const H = T + rows.length * row + 6;
    const max = niceMax(Math.max(...rows.map((r) => (r.v ? r.v.p90_s : 0)), 1));
    const x = (s) => L + (W - L - R) * (s / max);
    const svg = chart("times", W, H, d.times.map((t) =>
      `service ${t.service}: median wait ${duration(t.wait && t.wait.median_s)}, median service ${duration(t.service_time && t.service_time.median_s)}`).join("; "));
    rows.forEach((r, i) => {
      const y0 = T + i * row;
      svg.append(svgEl("text", { x: L - 6, y: y0 + 16, "text-anchor": "end", class: "label" }, [r.label]));
      if (!r.v) {
        svg.append(svgEl("text", { x: L + 4, y: y0 + 16, class: "muted" }, ["no data"]));
        return;
      }
      svg.append(titled(svgEl("rect", { class: "p90", x: L, y: y0 + 4, height: 16,
        width: Math.max(1, x(r.v.p90_s) - L).toFixed(1), "data-value": r.v.p90_s }),
        `${r.label}: 90th percentile ${duration(r.v.p90_s)}`));
      svg.append(titled(svgEl("rect", { class: `bar ${r.kind}`, x: L, y: y0 + 4, height: 16,
        width: Math.max(1, x(r.v.median_s) - L).toFixed(1), "data-value": r.v.median_s,
        "data-kind": r.kind }), `${r.label}: median ${duration(r.v.median_s)} of ${r.v.count}`));
      svg.append(svgEl("text", { x: x(r.v.p90_s) + 4, y: y0 + 16 }, [duration(r.v.median_s)]));
    });
    box.replaceChildren(svg);
  }

  function arc(cx, cy, r, a0, a1) {
    const p = (a) => [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    const [x0, y0] = p(a0), [x1, y1] = p(a1);
    const large = a1 - a0 > Math.PI ? 1 : 0;
    return `M ${x0.toFixed(2)} ${y0.toFixed(2)} A ${r} ${r} 0 ${large} 1 ${x1.toFixed(2)} ${y1.toFixed(2)}`;
  }

  // Identified vs anonymous: a donut with the share in the middle.
  function drawVisitors(d) {
    const box = $("chart-visitors");
    const v = d.visitors;
    const total = v.identified + v.anonymous;
    if (!total) return empty(box, "No visitors yet in this period.");
    const W = 380, H = 190, cx = 95, cy = 95, r = 70;
    const svg = chart("visitors", W, H,
      `${v.identified} identified and ${v.anonymous} anonymous visitors`);
    const parts = [["identified", v.identified], ["anonymous", v.anonymous]];
    let a = -Math.PI / 2;
    for (const [name, n] of parts) {
      if (!n) continue;
      const span = (2 * Math.PI * n) / total;
      const seg = n === total
        ? svgEl("circle", { cx, cy, r, fill: "none", "stroke-width": 30 })
        : svgEl("path", { d: arc(cx, cy, r, a, a + span), fill: "none", "stroke-width": 30 });
      seg.setAttribute("class", `seg ${name}-stroke`);
      seg.setAttribute("stroke", name === "identified" ? "#0b5cad" : "#6b7483");
      seg.setAttribute("data-value", n);
      seg.setAttribute("data-part", name);
      svg.append(titled(seg, `${name}: ${n}`));
      a += span;
    }
    svg.append(svgEl("text", { x: cx, y: cy + 6, "text-anchor": "middle", class: "big" },
      [pct(v.identified / total)]));
    svg.append(svgEl("text", { x: cx, y: cy + 24, "text-anchor": "middle", class: "muted" }, ["identified"]));
    const lx = 200;
    const lines = [
      ["identified", `Identified: ${v.identified}`],
      ["anonymous", `Anonymous: ${v.anonymous}`],
    ];
    lines.forEach(([cls, text], i) => {
      svg.append(svgEl("rect", { class: cls, x: lx, y: 40 + i * 24, width: 12, height: 12 }));
      svg.append(svgEl("text", { x: lx + 18, y: 51 + i * 24, class: "label" }, [text]));
    });
    const by = Object.entries(v.identified_by || {});
    if (by.length) {
      svg.append(svgEl("text", { x: lx, y: 108, class: "muted" }, ["Recognised by"]));
      by.forEach(([how, n], i) => {
        svg.append(svgEl("text", { x: lx, y: 126 + i * 17 },
          [`${how.replace("_", " ")}: ${n}`]));
      });
    }
    box.replaceChildren(svg);
  }

  // Conversion per variant: horizontal bars on a 0–max scale.
  function drawCampaigns(d) {
    const box = $("chart-campaigns");
    const rows = d.campaigns;
    if (!rows.length) return empty(box, "No campaign shown in this period.");
    const W = 380, row = 40, L = 8, R = 8, T = 4;
    const H = T + rows.length * row + 4;
    const max = Math.max(0.05, ...rows.map((r) => r.conversion));
    const scale = niceMax(max * 100) / 100;
    const svg = chart("campaigns", W, H, rows.map((r) =>
      `${r.campaign_name || r.campaign_id} variant ${r.variant}: ${pct(r.conversion)}`).join("; "));
    rows.forEach((r, i) => {
      const y0 = T + i * row;
      const name = `${r.campaign_name || r.campaign_id} · variant ${r.variant}`;
      svg.append(svgEl("text", { x: L, y: y0 + 13, class: "label" }, [name]));
      const w = W - L - R - 120;
      svg.append(svgEl("rect", { class: "conv-track", x: L, y: y0 + 18, width: w, height: 14 }));
      svg.append(titled(svgEl("rect", { class: "bar conv", x: L, y: y0 + 18, height: 14,
        width: Math.max(0, (w * r.conversion) / scale).toFixed(1),
        "data-value": r.conversion, "data-variant": r.variant, "data-campaign": r.campaign_id }),
        `${name}: ${r.redeemed} redeemed of ${r.shown} shown`));
      svg.append(svgEl("text", { x: L + w + 6, y: y0 + 30 },
        [`${pct(r.conversion)} (${r.redeemed}/${r.shown})`]));
    });
    // The counts behind each rate, so a manager can judge how much a difference means.
    const table = el("table", { class: "queue figures", "data-testid": "campaign-figures" }, [
      el("caption", {}, ["One exposure per visit (screen and ticket together); one conversion per coupon."]),
      el("thead", {}, [el("tr", {}, [["Campaign", ""], ["Variant", ""], ["Exposures", "num"],
        ["Conversions", "num"], ["Rate", "num"]].map(([c, cls]) => el("th", { scope: "col", class: cls || null }, [c])))]),
      el("tbody", {}, rows.map((r) => el("tr", { "data-campaign": r.campaign_id, "data-variant": r.variant }, [
        el("td", {}, [r.campaign_name || r.campaign_id]),
        el("td", {}, [r.variant]),
        el("td", { class: "num", "data-field": "shown" }, [String(r.shown)]),
        el("td", { class: "num", "data-field": "redeemed" }, [String(r.redeemed)]),
        el("td", { class: "num", "data-field": "rate" }, [pct(r.conversion)]),
      ]))),
    ]);
    box.replaceChildren(svg, table);
  }

  // NPS: a half-circle gauge from −100 to 100 and the answers split below.
  function drawNps(d) {
    const box = $("chart-nps");
    const n = d.nps;
    if (!n.responses) return empty(box, "No survey answers in this period.");
    const W = 300, H = 215, cx = 150, cy = 130, r = 100;
    const svg = chart("nps", W, H, `NPS ${Math.round(n.score)} from ${n.responses} answers`);
    const ang = (v) => Math.PI + ((v + 100) / 200) * Math.PI;
    svg.append(svgEl("path", { class: "track", d: arc(cx, cy, r, Math.PI, 2 * Math.PI), "stroke-width": 22 }));
    for (const [cls, a, b] of [["nps-bad", -100, 0], ["nps-fair", 0, 30], ["nps-good", 30, 100]]) {
      svg.append(svgEl("path", { class: cls, fill: "none", "stroke-width": 8,
        d: arc(cx, cy, r + 17, ang(a), ang(b)) }));
    }
    const score = Math.max(-100, Math.min(100, n.score));
    const valueArc = svgEl("path", { fill: "none", "stroke-width": 22,
      class: score < 0 ? "nps-bad" : score < 30 ? "nps-fair" : "nps-good",
      d: score >= -99.5 ? arc(cx, cy, r, Math.PI, ang(score)) : "" });
    svg.append(valueArc);
    const [nx, ny] = [cx + (r - 28) * Math.cos(ang(score)), cy + (r - 28) * Math.sin(ang(score))];
    svg.append(titled(svgEl("line", { class: "needle", x1: cx, y1: cy, x2: nx.toFixed(1),
      y2: ny.toFixed(1), "data-value": n.score }), `NPS ${n.score.toFixed(1)}`));
    svg.append(svgEl("circle", { class: "hub", cx, cy, r: 5 }));
    svg.append(svgEl("text", { x: cx, y: cy + 34, "text-anchor": "middle", class: "big" },
      [String(Math.round(n.score))]));
    svg.append(svgEl("text", { x: cx - r - 14, y: cy + 16, "text-anchor": "middle", class: "muted" }, ["−100"]));
    svg.append(svgEl("text", { x: cx + r + 14, y: cy + 16, "text-anchor": "middle", class: "muted" }, ["100"]));
    const parts = [["promoters", n.promoters], ["passives", n.passives], ["detractors", n.detractors]];
    let x = 20;
    const w = W - 40;
    for (const [cls, k] of parts) {
      if (!k) continue;
      const bw = (w * k) / n.responses;
      svg.append(titled(svgEl("rect", { class: cls, x: x.toFixed(1), y: 182, width: bw.toFixed(1),
        height: 12, "data-value": k }), `${cls}: ${k}`));
      x += bw;
    }
    svg.append(svgEl("text", { x: 20, y: 210, class: "muted" },
      [`${n.promoters} promoters · ${n.passives} passives · ${n.detractors} detractors`]));
    box.replaceChildren(svg);
  }

  function drawKiosks(d) {
    const box = $("kiosks");
    if (!d.kiosks.length) return empty(box, "No kiosk enrolled in this store yet.");
    const tz = d.timezone;
    const head = el("tr", {}, ["Kiosk", "Health", "Last seen", "Backlog", "Printer", "Clock skew",
      "Store config", "Problems", "Last warnings and errors"].map((h) => el("th", { scope: "col" }, [h])));
    const body = d.kiosks.map((k) => {
      const printer = k.printer
        ? `${k.printer.status}${k.printer.reason ? ": " + k.printer.reason : ""}`
        : "no report";
      const skew = k.skew_ms === null ? "–"
        : Math.abs(k.skew_ms) < 1000 ? `${k.skew_ms} ms`
        : `${(k.skew_ms / 1000).toFixed(1)} s ${k.skew_ms > 0 ? "behind" : "ahead"}`;
      // The version the kiosk reported running against the store's newest at the CRM.
      const c = k.config || { running: 0 };
      const latest = d.store_config_version || 0;
      const config = [c.running ? `v${c.running}` : "site.toml only",
        latest > c.running ? ` (v${latest} at the CRM, not applied yet)` : "",
        c.refused ? `; v${c.refused} refused: ${c.refused_reason || ""}` : ""].join("");
      const problems = k.problems.length
        ? el("ul", { class: "problems" }, k.problems.map((p) => el("li", {}, [p])))
        : "none";
      const logs = k.logs.length
        ? el("ul", { class: "logs" }, k.logs.map((l) => el("li", { "data-level": l.level }, [
          el("span", { class: "log-time" }, [clock(l.at_ms, tz, true)]),
          el("span", { class: `lvl lvl-${l.level}` }, [l.level]),
          el("span", { class: "log-msg" }, [l.message]),
          l.reports > 1
            ? ` (${l.occurrences} times since ${clock(l.first_at_ms, tz, true)})`
            : l.occurrences > 1 ? ` ×${l.occurrences}` : "",
          " ",
          el("span", { class: "log-target" }, [l.target]),
        ])))
        : "none";
      return el("tr", { "data-kiosk": k.kiosk_id, "data-health": k.health }, [
        el("td", {}, [el("span", { class: "mono" }, [k.kiosk_id]), el("br"),
          el("small", {}, [`${k.hardware_profile} · ${k.firmware_version}`])]),
        el("td", {}, [el("span", { class: `pill h-${k.health}` }, [k.health])]),
        el("td", {}, [ago(k.last_seen_ms, d.now_ms)]),
        el("td", {}, [k.backlog === null ? "–" : String(k.backlog)]),
        el("td", { class: k.printer && k.printer.status !== "ok" ? "printer-bad" : "" }, [printer]),
        el("td", {}, [skew]),
        el("td", { "data-config": String(c.running) }, [config]),
        el("td", {}, [problems]),
        el("td", {}, [logs]),
      ]);
    });
    box.replaceChildren(el("table", { class: "kiosks" }, [el("thead", {}, [head]),
      el("tbody", {}, body)]));
  }

  // The live queue: tables with headers (a caption each), redrawn on every `queue` event.
  function table(caption, headers, rows, attrs) {
    const head = el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : undefined }, [h.text || h])));
    const body = rows.map((cells) => el("tr", cells.attrs || {}, cells.map((c, i) => {
      const content = typeof c === "object" && c !== null && !(c instanceof Node) ? c : { v: c };
      const v = content.v instanceof Node ? content.v : String(content.v);
      return el(i === 0 ? "th" : "td", Object.assign(i === 0 ? { scope: "row" } : {},
        headers[i].num ? { class: "num" } : {}, content.attrs || {}), [v]);
    })));
    return el("table", Object.assign({ class: "queue" }, attrs || {}),
      [el("caption", {}, [caption]), el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  const STATUS = { waiting: "waiting", called: "being served", parked: "parked", served: "served",
    no_show: "no-show", walked_out: "walked out", unknown: "unknown" };

  // Who is in the store: waiting customers by segment and weight, dwell per segment, people
  // counted, signage plays by audience, assistance requests and their response times.
  function renderPresence(p) {
    const num = (text) => ({ text, num: true });
    const median = p.assistance_median_ms === null ? "–" : duration(p.assistance_median_ms / 1000);
    const n = (count, one, many) => `${count} ${count === 1 ? one : many}`;
    $("presence-summary").textContent = `${n(p.waiting, "customer", "customers")} waiting now ` +
      `(${p.identified} identified, ${p.anonymous} anonymous) · ` +
      `${n(p.entries_today, "person", "people")} entered today · ` +
      `${n(p.assistance_requests, "assistance request", "assistance requests")} today, ` +
      `${p.assistance_open} open, median response ${median}.`;
    const segs = $("presence-segments");
    if (!p.segments.length) empty(segs, "Nobody waiting now.");
    else segs.replaceChildren(table("Waiting now per segment", ["Segment", num("Waiting"), num("Weight")],
      p.segments.map((s) => Object.assign([s.segment, s.waiting, `${Math.round(s.weight * 100)} %`],
        { attrs: { "data-segment": s.segment } })), { "data-table": "segments" }));
    const dwell = $("presence-dwell");
    if (!p.dwell.length) empty(dwell, "No served visits in the last 30 days.");
    else dwell.replaceChildren(table("Dwell per segment (issue to served, last 30 days)",
      ["Segment", num("Visits"), "Median"],
      p.dwell.map((d) => Object.assign([d.segment, d.visits, duration(d.median_s)],
        { attrs: { "data-segment": d.segment } })), { "data-table": "dwell" }));
    const content = $("presence-content");
    if (!p.content.length) empty(content, "No signage played today.");
    else content.replaceChildren(table("Signage played today, by audience",
      ["Campaign", "Content", num("Plays"), "Played to (people per segment)"],
      p.content.map((c) => Object.assign([c.campaign_id, c.content_id, c.plays,
        Object.entries(c.audience).map(([k, v]) => `${k} ${v}`).join(", ") || "–"],
        { attrs: { "data-content": `${c.campaign_id}/${c.content_id}` } })), { "data-table": "content" }));
    const help = $("presence-assistance");
    if (!p.recent_requests.length) empty(help, "No assistance requested today.");
    else help.replaceChildren(table("Assistance requests (newest first)",
      ["Place", "Asked at", "Taken by", "Response"],
      p.recent_requests.map((r) => [r.place_name, clock(r.at_ms, undefined, false),
        r.counter === null ? "open" : `counter ${r.counter}`,
        r.response_ms === null ? "–" : duration(r.response_ms / 1000)]), { "data-table": "assistance" }));
  }

  function renderQueue(q) {
    const tz = q.timezone;
    const open = q.counters_open.length;
    $("queue-summary").textContent = `${q.waiting} waiting now · ${open} counter${open === 1 ? "" : "s"} open · ` +
      `${q.issued} tickets today (${q.business_day}) · ${q.out_of_sequence} out of sequence · ` +
      `${q.conflicts} queue conflict${q.conflicts === 1 ? "" : "s"} · whole store, all kiosks.`;
    const num = (text) => ({ text, num: true });
    const services = $("queue-services");
    if (!q.services.length) {
      empty(services, "No turn today yet.");
    } else {
      services.replaceChildren(table("Waiting now per service",
        ["Service", num("Waiting"), num("Priority waiting"), num("Parked"), num("Being served"),
          "Longest wait", "Oldest waiting", num("Served"), num("No-show"), num("Walked out")],
        q.services.map((s) => Object.assign([
          s.service, s.waiting, s.priority_waiting, s.parked, s.called,
          duration(s.longest_wait_s),
          s.oldest_waiting || "–", s.served, s.no_show, s.walked_out,
        ], { attrs: { "data-service": s.service } })),
        { "data-table": "services" }));
    }
    const counters = $("queue-counters");
    if (!open) {
      empty(counters, "No counter open (none serving, none called in the last 30 minutes).");
    } else {
      counters.replaceChildren(table("Counters open (serving now, or called in the last 30 min)",
        ["Counter", "Serving", "Last call"],
        q.counters_open.map((c) => Object.assign([
          c.counter, c.serving ? { v: el("span", { class: "turn" }, [c.serving]) } : "–",
          c.last_call_ms === null ? "–" : clock(c.last_call_ms, tz, false),
        ], { attrs: { "data-counter": c.counter } })),
        { "data-table": "counters" }));
    }
    const calls = $("queue-calls");
    if (!q.calls.length) {
      empty(calls, "No turn called today yet.");
    } else {
      calls.replaceChildren(table("Latest calls", ["Turn", "Counter", "Called at", "Now"],
        q.calls.map((c) => Object.assign([
          c.turn, c.counter, clock(c.at_ms, tz, false), STATUS[c.status] || c.status,
        ], { attrs: { "data-turn": c.turn } })),
        { "data-table": "calls" }));
    }
    const kiosks = $("queue-kiosks");
    if (!q.kiosks.length) {
      empty(kiosks, "No kiosk enrolled in this store yet.");
    } else {
      kiosks.replaceChildren(table(`Tickets issued today per kiosk`,
        ["Kiosk", num("Tickets issued"), num("Out of sequence")],
        q.kiosks.map((k) => Object.assign([k.kiosk_id, k.issued, k.out_of_sequence],
          { attrs: { "data-kiosk": k.kiosk_id } })),
        { "data-table": "kiosks" }));
    }
    const conflicts = $("queue-conflicts");
    if (!q.recent_conflicts.length) {
      conflicts.replaceChildren();
    } else {
      conflicts.replaceChildren(table("Queue conflicts today (steps the store dropped)",
        ["Turn", "Counter", "Step", "Why", "When"],
        q.recent_conflicts.map((c) => [c.turn || "–", c.counter || "–", c.step, c.reason,
          clock(c.at_ms, tz, false)]),
        { "data-table": "conflicts" }));
    }
    document.body.dataset.queueUpdated = String(q.now_ms);
  }

  function render(d) {
    $("problem").hidden = true;
    const tzNote = d.timezone_known
      ? `Times in the store's time zone, ${d.timezone}.`
      : "Times in UTC: the store's time zone is not set (POST /v1/admin/stores with \"timezone\").";
    const rangeName = $("range").selectedOptions[0] ? $("range").selectedOptions[0].text : "";
    const scope = d.kiosk_id ? `kiosk ${d.kiosk_id}` : "all kiosks";
    $("period").textContent =
      `${d.store.name} · ${scope} · ${rangeName}, since ${clock(d.since_ms, d.timezone, true)}. ${tzNote}`;
    $("h-tickets").textContent = d.tickets.bucket === "day" ? "Tickets issued per day" : "Tickets issued per hour";
    $("kpi-tickets").textContent = String(d.tickets.total);
    const visitors = d.visitors.identified + d.visitors.anonymous;
    $("kpi-identified").textContent = visitors ? pct(d.visitors.identified / visitors) : "–";
    const waits = d.times.filter((t) => t.wait);
    let median = null;
    if (waits.length) {
      // Weighted by turns called: the store's overall typical wait.
      const n = waits.reduce((a, t) => a + t.wait.count, 0);
      median = waits.reduce((a, t) => a + t.wait.median_s * t.wait.count, 0) / n;
    }
    $("kpi-wait").textContent = duration(median);
    $("kpi-nps").textContent = d.nps.score === null ? "–" : String(Math.round(d.nps.score));
    const attention = d.kiosks.filter((k) => k.health !== "ok").length;
    $("kpi-kiosks").textContent = `${attention} of ${d.kiosks.length}`;
    drawTickets(d);
    drawTimes(d);
    drawVisitors(d);
    drawCampaigns(d);
    drawNps(d);
    drawKiosks(d);
    $("updated").textContent = `Updated ${clock(d.now_ms, d.timezone, true)} (${d.timezone})`;
    document.body.dataset.updated = String(d.now_ms);
  }

  function setLive(state, text) {
    const live = $("live");
    live.dataset.state = state;
    live.textContent = text;
  }

  function showProblem(text) {
    const p = $("problem");
    p.textContent = text;
    p.hidden = false;
  }

  function connect() {
    if (source) source.close();
    if (!current) return;
    const q = new URLSearchParams({ store: current.store, range: current.range });
    if (current.kiosk) q.set("kiosk", current.kiosk);
    history.replaceState(null, "", `/dashboard?${q}`);
    setLive("connecting", "Connecting…");
    source = new EventSource(`/dashboard/events?${q}`);
    source.addEventListener("open", () => setLive("live", "Live"));
    source.addEventListener("dashboard", (e) => {
      setLive("live", "Live");
      try { render(JSON.parse(e.data)); } catch (err) { showProblem(`Cannot draw the figures: ${err}`); }
    });
    source.addEventListener("queue", (e) => {
      try { renderQueue(JSON.parse(e.data)); } catch (err) { showProblem(`Cannot draw the live queue: ${err}`); }
    });
    source.addEventListener("presence", (e) => {
      try { renderPresence(JSON.parse(e.data)); } catch (err) { showProblem(`Cannot draw who is in the store: ${err}`); }
    });
    source.addEventListener("problem", (e) => showProblem(e.data));
    source.addEventListener("expired", () => { source.close(); location.reload(); });
    source.addEventListener("error", () => {
      setLive("reconnecting", "Reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        // A refused stream (logged out, store gone): find out why, else retry.
        fetch("/dashboard/api/stores", { credentials: "same-origin" }).then((r) => {
          if (r.status === 403) location.reload();
          else setTimeout(connect, 3000);
        }, () => setTimeout(connect, 3000));
      }
    });
  }

  function fillKiosks() {
    const store = stores.find((s) => s.id === current.store);
    const kiosks = store ? store.kiosks : [];
    if (current.kiosk && !kiosks.includes(current.kiosk)) current.kiosk = "";
    $("kiosk").replaceChildren(el("option", { value: "" }, ["All kiosks"]),
      ...kiosks.map((k) => el("option", { value: k }, [k])));
    $("kiosk").value = current.kiosk;
  }

  async function start() {
    const params = new URLSearchParams(location.search);
    const r = await fetch("/dashboard/api/stores", { credentials: "same-origin" });
    if (r.status === 403) { location.reload(); return; }
    if (!r.ok) { showProblem(`Cannot list the stores (${r.status}).`); return; }
    stores = await r.json();
    if (!stores.length) { showProblem("No store yet: create one with POST /v1/admin/stores."); return; }
    const wanted = params.get("store");
    current = {
      store: stores.some((s) => s.id === wanted) ? wanted : stores[0].id,
      kiosk: params.get("kiosk") || "",
      range: ["today", "24h", "7d", "30d"].includes(params.get("range")) ? params.get("range") : "today",
    };
    $("store").replaceChildren(...stores.map((s) => el("option", { value: s.id }, [`${s.name} (${s.id})`])));
    $("store").value = current.store;
    $("range").value = current.range;
    fillKiosks();
    $("store").addEventListener("change", () => { current.store = $("store").value; current.kiosk = ""; fillKiosks(); connect(); });
    $("kiosk").addEventListener("change", () => { current.kiosk = $("kiosk").value; connect(); });
    $("range").addEventListener("change", () => { current.range = $("range").value; connect(); });
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((e) => showProblem(`The dashboard failed to start: ${e}`));
  });
})();
