// Fleet alerts: every store, worst first, and every firmware release's rollout, from
// /dashboard/api/fleet, refreshed every 5 s.
// Text only through textContent: alert details come from kiosks.
'use strict';

const REFRESH_MS = 5000;
const COUNTS = [
  ['assigned', 'Assigned'],
  ['downloaded', 'Downloaded'],
  ['installed', 'Installed'],
  ['healthy', 'Healthy'],
  ['rolled_back', 'Rolled back'],
  ['pinned', 'Pinned'],
];
const KIND_NAMES = {
  kiosk_offline: 'Kiosk offline',
  printer_paper_out: 'Printer out of paper',
  printer_cover_open: 'Printer cover open',
  backlog: 'Events not sent',
  dead_letters: 'Dead-lettered events',
  clock_skew: 'Clock wrong',
  queue_wait: 'Long wait',
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function ago(ms, now) {
  const min = Math.max(0, Math.round((now - ms) / 60000));
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  return h < 48 ? `${h} h ${min % 60} min` : `${Math.floor(h / 24)} days`;
}

function status(store) {
  if (store.alerts.some((a) => a.severity === 'critical')) return ['critical', 'Critical'];
  if (store.alerts.length > 0) return ['warning', 'Warning'];
  return ['ok', 'OK'];
}

function draw(fleet) {
  const now = fleet.now_ms;
  const rows = document.getElementById('fleet-rows');
  rows.replaceChildren();
  let critical = 0;
  let warning = 0;
  let open = 0;
  for (const s of fleet.stores) {
    const [cls, label] = status(s);
    if (cls === 'critical') critical += 1;
    if (cls === 'warning') warning += 1;
    open += s.alerts.length;
    const list = el('ul', { class: 'fleet-alerts' });
    for (const a of s.alerts) {
      list.append(el('li', { class: `sev-${a.severity}` },
        el('strong', {}, KIND_NAMES[a.kind] || a.kind), ': ', a.detail,
        el('span', { class: 'since' }, ` (for ${ago(a.since_ms, now)})`)));
    }
    if (s.alerts.length === 0) list.append(el('li', { class: 'none' }, 'Nothing to report'));
    const store = el("a", { href: `/dashboard?store=${encodeURIComponent(s.store_id)}` }, s.name);
    rows.append(el('tr', { 'data-store': s.store_id, class: `row-${cls}` },
      el('th', { scope: 'row' }, store, el('span', { class: 'store-id' }, ` ${s.store_id}`)),
      el('td', {}, el('span', { class: `badge badge-${cls}` }, label)),
      el('td', { class: 'num' }, s.kiosks),
      el('td', {}, list)));
  }
  document.getElementById('kpi-stores').textContent = fleet.stores.length;
  document.getElementById('kpi-critical').textContent = critical;
  document.getElementById('kpi-warning').textContent = warning;
  document.getElementById('kpi-alerts').textContent = open;
  drawRollouts(fleet.releases || [], now);
  document.getElementById('updated').textContent = `Updated ${new Date(now).toLocaleTimeString()}`;
}

function rolloutState(r, now) {
  const ro = r.rollout;
  if (!ro) return [el('span', { class: 'badge badge-idle' }, 'Not rolled out'), ''];
  const scope = `${ro.percent} % of ${ro.store_id ? `store ${ro.store_id}` : 'every store'}, halts after ${ro.max_failures} failed`;
  if (ro.halted_ms) {
    return [el('span', { class: 'badge badge-critical' }, 'Halted'),
      el('span', { class: 'why' }, ` ${ago(ro.halted_ms, now)} ago: ${ro.halted_reason || 'no reason recorded'}. `),
      el('span', { class: 'scope' }, scope)];
  }
  if (ro.percent === 0) return [el('span', { class: 'badge badge-idle' }, 'Stopped'), el('span', { class: 'scope' }, ` ${scope}`)];
  return [el('span', { class: 'badge badge-ok' }, 'Rolling out'), el('span', { class: 'scope' }, ` ${scope}`)];
}

function drawRollouts(releases, now) {
  const rows = document.getElementById('rollout-rows');
  rows.replaceChildren();
  document.getElementById('rollouts-empty').hidden = releases.length > 0;
  for (const r of releases) {
    const cells = COUNTS.map(([key, label]) => el('td', { class: 'num', 'data-label': label, 'data-count': key },
      r.kiosks ? r.kiosks[key] : 0));
    rows.append(el('tr', { 'data-release': r.version, 'data-arch': r.arch, class: r.rollout && r.rollout.halted_ms ? 'row-halted' : '' },
      el('th', { scope: 'row' }, r.version, el('span', { class: 'store-id' }, ` ${r.arch}`)),
      el('td', { class: 'rollout-state', 'data-label': 'Rollout' }, ...rolloutState(r, now)),
      ...cells));
  }
}

async function refresh() {
  const live = document.getElementById('live');
  const problem = document.getElementById('problem');
  try {
    const resp = await fetch('/dashboard/api/fleet', { credentials: 'same-origin' });
    if (resp.status === 403) { window.location.href = '/dashboard'; return; }
    if (!resp.ok) throw new Error(`the endpoint answered ${resp.status}`);
    draw(await resp.json());
    problem.hidden = true;
    live.dataset.state = 'live';
    live.textContent = 'Up to date';
  } catch (e) {
    problem.textContent = `Could not load the fleet: ${e.message}`;
    problem.hidden = false;
    live.dataset.state = 'reconnecting';
    live.textContent = 'Retrying';
  }
}

document.addEventListener('DOMContentLoaded', () => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
