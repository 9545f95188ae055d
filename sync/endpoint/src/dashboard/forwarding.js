// Forwarding to the CRM: endpoints and dead letters from /dashboard/api/forwarding, refreshed
// every 15 s; a Replay button per dead letter. Text only through textContent.
'use strict';

const REFRESH_MS = 15000;
// Endpoint id -> enabled, as last drawn.
const enabled = {};
const TYPE_NAMES = {
  'customer.registered': 'Customer registered',
  'customer.updated': 'Customer changed',
  'consent.changed': 'Consent changed',
  'turn.issued': 'Turn issued',
  'turn.called': 'Turn called',
  'turn.served': 'Turn served',
  'survey.answered': 'Survey answered',
  'coupon.redeemed': 'Coupon redeemed',
  'customer.erased': 'Customer erased',
};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : '–';
}

function endpointName(ep) {
  const kind = ep.kind === 'hubspot' ? 'HubSpot' : 'Webhook';
  let host = ep.url;
  try { host = new URL(ep.url).host; } catch (_) { /* shown as stored */ }
  return `${kind} ${host}`;
}

async function replay(endpointId, seq, button) {
  const notice = document.getElementById('notice');
  button.disabled = true;
  try {
    const resp = await fetch('/dashboard/api/forwarding/replay', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint_id: endpointId, seq }),
    });
    if (resp.status === 403) { window.location.href = '/dashboard/forwarding'; return; }
    if (!resp.ok) throw new Error(`the endpoint answered ${resp.status}`);
    const answer = await resp.json();
    if (answer.replayed === 0) notice.textContent = 'Nothing to send again.';
    else if (enabled[endpointId]) notice.textContent = 'Sent again: it will be delivered shortly.';
    else notice.textContent = 'Sent again: it waits until the endpoint is enabled.';
    await refresh();
  } catch (e) {
    notice.textContent = `Could not replay: ${e.message}`;
    button.disabled = false;
  }
}

function draw(view) {
  const names = {};
  const rows = document.getElementById('endpoint-rows');
  rows.replaceChildren();
  let disabled = 0;
  let pending = 0;
  let dead = 0;
  for (const ep of view.endpoints) {
    names[ep.id] = endpointName(ep);
    const on = ep.state === 'enabled';
    enabled[ep.id] = on;
    if (!on) disabled += 1;
    pending += ep.pending;
    dead += ep.dead;
    const state = el('span', { class: `badge badge-${on ? 'ok' : 'critical'}` }, on ? 'Enabled' : 'Disabled');
    const problem = on ? (ep.last_error || 'None') : (ep.state_reason || 'Disabled');
    rows.append(el('tr', { 'data-endpoint': ep.id, class: on ? 'row-ok' : 'row-critical' },
      el('th', { scope: 'row' }, names[ep.id], el('span', { class: 'store-id' }, ` ${ep.event_types.length} message type${ep.event_types.length === 1 ? '' : 's'}`)),
      el('td', {}, state),
      el('td', { class: 'num' }, ep.pending),
      el('td', { class: 'num' }, ep.delivered),
      el('td', { class: 'num' }, ep.dead),
      el('td', {}, problem)));
  }
  if (view.endpoints.length === 0) {
    rows.append(el('tr', {}, el('td', { colspan: '6' }, 'No endpoint yet: add one with the admin API (docs/CONSOLE.md).')));
  }
  const deadRows = document.getElementById('dead-rows');
  deadRows.replaceChildren();
  for (const d of view.dead_letters) {
    const label = `Replay ${TYPE_NAMES[d.event_type] || d.event_type} ${d.msg_id}`;
    const button = el('button', { type: 'button', class: 'replay', 'aria-label': label }, 'Replay');
    button.addEventListener('click', () => replay(d.endpoint_id, d.seq, button));
    deadRows.append(el('tr', { 'data-seq': String(d.seq) },
      el('th', { scope: 'row' }, TYPE_NAMES[d.event_type] || d.event_type, el('span', { class: 'store-id' }, ` ${d.msg_id}`)),
      el('td', {}, names[d.endpoint_id] || d.endpoint_id),
      el('td', {}, when(d.dead_ms)),
      el('td', { class: 'num' }, d.attempts),
      el('td', {}, d.last_error || '–'),
      el('td', {}, button)));
  }
  if (view.dead_letters.length === 0) {
    deadRows.append(el('tr', {}, el('td', { colspan: '6' }, 'No dead letters.')));
  }
  document.getElementById('kpi-endpoints').textContent = view.endpoints.length;
  document.getElementById('kpi-disabled').textContent = disabled;
  document.getElementById('kpi-pending').textContent = pending;
  document.getElementById('kpi-dead').textContent = dead;
  document.getElementById('updated').textContent = `Updated ${new Date(view.now_ms).toLocaleTimeString()}`;
}

async function refresh() {
  const live = document.getElementById('live');
  const problem = document.getElementById('problem');
  try {
    const resp = await fetch('/dashboard/api/forwarding', { credentials: 'same-origin' });
    if (resp.status === 403) { window.location.href = '/dashboard/forwarding'; return; }
    if (!resp.ok) throw new Error(`the endpoint answered ${resp.status}`);
    draw(await resp.json());
    problem.hidden = true;
    live.dataset.state = 'live';
    live.textContent = 'Up to date';
  } catch (e) {
    problem.textContent = `Could not load the forwarding: ${e.message}`;
    problem.hidden = false;
    live.dataset.state = 'reconnecting';
    live.textContent = 'Retrying';
  }
}

document.addEventListener('DOMContentLoaded', () => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
