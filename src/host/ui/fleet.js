// The fleet page (#/fleet): the fleet's hosts (drain, undrain) and VMs
// (migrate to a chosen host, or one placement picks), and its last events,
// through the daemon's /v1/fleet API. A daemon outside a fleet says so.

import { $, el, fmtTime } from './format.js';

let ctx; // { api, showError }
// Each poll redraws the tables: the destination picked for a VM is kept here so it survives.
const chosen = new Map();

/** A table cell that names its column: at phone width the header row is hidden and the name shows in the cell. */
function cell(label, text) {
  return el('td', { dataset: { label } }, text);
}

export function initFleet(c) {
  ctx = c;
}

async function act(what, method, path, body) {
  $('fleet-message').textContent = `${what}…`;
  try {
    await ctx.api(method, path, body);
    $('fleet-message').textContent = `${what}: requested`;
  } catch (e) {
    // Unreachable daemon: said here; the list's poll shows the page offline.
    $('fleet-message').textContent = e instanceof TypeError ? `${what}: the daemon cannot be reached` : `${what}: ${e.message}`;
    return;
  }
  await refreshFleet().catch(() => {});
}

export async function refreshFleet() {
  let hosts;
  try {
    hosts = await ctx.api('GET', '/v1/fleet/hosts');
  } catch (e) {
    if (e instanceof TypeError) throw e;
    $('fleet-off').textContent = e.message;
    $('fleet-off').hidden = false;
    $('fleet-body').hidden = true;
    return;
  }
  $('fleet-off').hidden = true;
  $('fleet-body').hidden = false;
  const [vms, events] = await Promise.all([ctx.api('GET', '/v1/fleet/vms'), ctx.api('GET', '/v1/fleet/events')]);
  const live = hosts.filter((h) => h.alive).map((h) => h.name);

  const hb = $('fleet-hosts');
  hb.textContent = '';
  for (const h of hosts) {
    const state = !h.alive ? 'dead' : h.unschedulable ? 'drained' : 'ready';
    const labels = Object.entries(h.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
    const actions = el('td');
    if (h.alive && !h.unschedulable) actions.append(el('button', { type: 'button', 'aria-label': `Drain ${h.name}`, onclick: () => void act(`drain ${h.name}`, 'POST', `/v1/fleet/hosts/${encodeURIComponent(h.name)}/drain`, {}) }, 'Drain'));
    if (h.unschedulable) actions.append(el('button', { type: 'button', 'aria-label': `Undrain ${h.name}`, onclick: () => void act(`undrain ${h.name}`, 'POST', `/v1/fleet/hosts/${encodeURIComponent(h.name)}/undrain`) }, 'Undrain'));
    hb.append(el('tr', { dataset: { host: h.name, state } }, cell('Host', h.name), cell('State', state), cell('Cores', h.cores === undefined ? '-' : String(h.cores)),
      cell('Allocated', `${h.allocatedMiB} / ${h.memoryBudgetMiB ?? '-'} MiB`), cell('VMs', String(h.allocatedVms)), cell('Labels', labels || '-'), actions));
  }

  const vb = $('fleet-vms');
  vb.textContent = '';
  for (const v of vms) {
    const select = el('select', { 'aria-label': `destination of ${v.name}`, onchange: () => chosen.set(v.name, select.value) }, el('option', { value: '' }, 'any host'), ...live.filter((n) => n !== v.host).map((n) => el('option', { value: n }, n)));
    if (live.includes(chosen.get(v.name)) && chosen.get(v.name) !== v.host) select.value = chosen.get(v.name);
    const go = el('button', { type: 'button', 'aria-label': `Migrate ${v.name}`, onclick: () => void act(`migrate ${v.name}`, 'POST', `/v1/fleet/vms/${encodeURIComponent(v.name)}/migrate`, select.value ? { to: select.value } : {}) }, 'Migrate');
    const actions = v.state === 'running' ? el('td', {}, select, ' ', go) : el('td', { className: 'dim' }, '-');
    vb.append(el('tr', { dataset: { vm: v.name, host: v.host, state: v.state } }, cell('Name', v.name), cell('Host', v.host), cell('State', v.state), cell('Memory', `${v.memory} MiB`), cell('HA', v.ha ? 'yes' : 'no'), actions));
  }

  const ul = $('fleet-events');
  ul.textContent = '';
  for (const e of events.slice(-50).reverse()) ul.append(el('li', { dataset: { kind: e.kind } }, el('span', { className: 'dim' }, `${fmtTime(e.time)} ${e.kind} `), e.message));
}
