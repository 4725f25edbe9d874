// The web console's pages besides the VM list: create (#/create), a VM's
// details (#/vm/NAME: definition, devices with limits and live counters,
// edit, actions, graphs, events, console log) and the host (#/host: graphs,
// events, snapshots, images). The list page's refresh loop (app.js) calls
// refreshView() each round, so every page follows one poll and one offline
// state. Only a request the network could not carry rejects refreshView();
// an API error is shown on the page it belongs to.

import { $, el, fmtBytes, fmtTime, plainText, uptime, vmPath } from './format.js';
import { ChartSet } from './charts.js';
import { initFleet, refreshFleet } from './fleet.js';
import { buildCreateForm, checkCreateForm, clearFieldErrors, readCreateForm, showFieldError } from './form.js';

// Routes of other parts of the API: their buttons show only when the daemon's
// OpenAPI document has them (an older daemon has neither).
const MIGRATE_PATH = '/v1/vms/{name}/migrate';
const CLONES_PATH = '/v1/snapshots/{snapshot}/clones';
const MIGRATION_FINAL = ['completed', 'failed', 'cancelled'];
const NAME_PREFIX = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,50}$/;

/** VMs whose live migration this page follows: no details are asked for while they may leave. */
export const migrating = new Map(); // name -> destination
const movedAway = new Map(); // name -> destination, after a migration this page saw complete

let ctx; // { api, openConsole, refresh, showError }
let openapi = null;
let view = { kind: 'list' };
let charts = null;
let logLoadedFor = null; // "name/state" the log view shows

const VIEWS = ['list-view', 'create-view', 'vm-view', 'host-view', 'fleet-view'];

function show(id) {
  for (const v of VIEWS) $(v).hidden = v !== id;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('current', a.getAttribute('href') === `#/${id === 'list-view' ? '' : id.replace('-view', '')}`);
}

/** Fetch errors from the network reject; API errors resolve as { error }. */
async function tryApi(method, path, body) {
  try {
    return { value: await ctx.api(method, path, body) };
  } catch (e) {
    if (e instanceof TypeError) throw e; // network: the page goes offline
    return { error: e };
  }
}

async function loadOpenApi() {
  if (!openapi) openapi = await ctx.api('GET', '/v1/openapi.json');
  return openapi;
}

// ---- routing

function parseHash() {
  const h = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = h.split('?');
  const params = new URLSearchParams(query);
  if (path === 'create') return { kind: 'create', params };
  if (path === 'host') return { kind: 'host', params };
  if (path === 'fleet') return { kind: 'fleet' };
  const m = /^vm\/(.+)$/.exec(path);
  if (m) return { kind: 'vm', name: decodeURIComponent(m[1]) };
  return { kind: 'list' };
}

async function route() {
  if (charts) charts.destroy();
  charts = null;
  // What a page showed before is not what it shows now: no stale point counts, no old events.
  for (const id of ['vm-charts', 'host-charts']) delete $(id).dataset.points;
  $('host-events').textContent = '';
  logLoadedFor = null;
  view = parseHash();
  if (view.kind === 'list') show('list-view');
  else if (view.kind === 'create') {
    show('create-view');
    await openCreate(view.params).catch(networkOrShow);
  } else if (view.kind === 'vm') {
    show('vm-view');
    $('vm-title').textContent = view.name;
    for (const id of ['vm-facts', 'vm-disks', 'vm-nics', 'vm-events', 'vm-definition', 'vm-actions']) {
      $(id).textContent = '';
      delete $(id).dataset.key;
    }
    delete $('edit-form').dataset.for;
    $('vm-log').textContent = '';
    $('vm-message').textContent = '';
    $('migrate-form').hidden = true;
    $('migrate-form-message').textContent = '';
    $('vm-view').classList.remove('gone');
    charts = new ChartSet($('vm-charts'));
    ctx.refresh();
  } else if (view.kind === 'fleet') {
    show('fleet-view');
    ctx.refresh();
  } else {
    show('host-view');
    delete $('host-snapshots').dataset.key;
    $('clone-form').hidden = true;
    $('clone-message').textContent = '';
    charts = new ChartSet($('host-charts'));
    const clone = view.params.get('clone');
    if (clone) openClone(clone);
    ctx.refresh();
  }
  window.scrollTo(0, 0);
}

function networkOrShow(e) {
  if (e instanceof TypeError) return; // the list's poll shows the offline state
  ctx.showError(e.message);
}

// ---- create

async function openCreate(params) {
  // The last visit's form must not show (or be submitted) while this one loads.
  $('create-fields').textContent = '';
  $('create-submit').disabled = true;
  $('create-message').textContent = 'Loading...';
  let doc, images, snapshots;
  try {
    doc = await loadOpenApi();
    [images, snapshots] = await Promise.all([ctx.api('GET', '/v1/images'), ctx.api('GET', '/v1/snapshots')]);
  } catch (e) {
    $('create-message').textContent = ''; // the page's error line says why
    throw e;
  }
  const snap = params.get('snapshot');
  const preset = {};
  if (snap) {
    const s = snapshots.find((x) => x.name === snap);
    Object.assign(preset, { snapshot: snap, memory: s?.memory ?? undefined, nics: s?.nics ?? 0, macs: s?.macs ?? [], name: `${snap}-restored` });
  }
  buildCreateForm($('create-fields'), doc.components.schemas.CreateVm, images, snapshots, preset);
  $('create-message').textContent = '';
  $('create-submit').disabled = false;
  $('create-fields').querySelector('[data-field="name"]').focus();
}

async function submitCreate(ev) {
  ev.preventDefault();
  const box = $('create-fields');
  const schema = (await loadOpenApi()).components.schemas.CreateVm;
  $('create-message').textContent = '';
  if (checkCreateForm(box, schema) > 0) {
    $('create-message').textContent = 'Fix the fields marked above.';
    return;
  }
  const body = readCreateForm(box);
  const submit = $('create-submit');
  submit.disabled = true;
  $('create-message').textContent = 'Creating...';
  try {
    const r = await tryApi('POST', '/v1/vms', body);
    if (r.error) {
      clearFieldErrors(box);
      const placed = showFieldError(box, r.error.message);
      $('create-message').textContent = placed ? 'The daemon refused a field (marked above).' : `The daemon refused: ${r.error.message}`;
      return;
    }
    const start = $('create-start').checked;
    if (start) {
      const s = await tryApi('POST', vmPath(body.name, '/start'));
      if (s.error) ctx.showError(`start ${body.name}: ${s.error.message}`);
    }
    location.hash = `#/vm/${encodeURIComponent(body.name)}`;
  } catch (e) {
    networkOrShow(e);
    $('create-message').textContent = 'The daemon cannot be reached.';
  } finally {
    submit.disabled = false;
  }
}

// ---- VM details

function fact(label, value, id) {
  const dd = el('dd', {}, value === null || value === undefined || value === '' ? '-' : String(value));
  if (id) dd.id = id;
  return [el('dt', {}, label), dd];
}

function limitInputs(kind, index, limits, keys) {
  const cell = el('td', { className: 'limits' });
  const form = el('form', { className: 'limit-form', noValidate: true });
  for (const k of keys) {
    const input = el('input', { type: 'number', min: '1', step: '1', placeholder: 'none', value: limits?.[k] ?? '' });
    input.dataset.limit = k;
    form.append(el('label', {}, `${k} `, input));
  }
  form.append(el('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const l = {};
    for (const i of form.querySelectorAll('input')) if (i.value.trim() !== '') l[i.dataset.limit] = Number(i.value);
    await patchVm({ [kind]: [{ index, limits: l }] }, `${kind === 'disks' ? 'disk' : 'NIC'} ${index} limits`);
  });
  cell.append(form);
  return cell;
}

async function patchVm(body, what) {
  const r = await tryApi('PATCH', vmPath(view.name), body);
  $('vm-message').textContent = r.error ? `${what}: ${r.error.message}` : `${what}: applied`;
  $('vm-message').className = r.error ? 'message bad' : 'message';
  ctx.refresh();
}

function diskCounters(s) {
  return s
    ? [fmtBytes(s.readBytes), fmtBytes(s.writeBytes), String(s.readOps + s.writeOps + s.otherOps), `${(s.throttledMs / 1000).toFixed(1)} s${s.throttled ? ' (now)' : ''}`]
    : ['-', '-', '-', '-'];
}

function nicCounters(s) {
  if (!s) return ['-', '-', '-'];
  const drops = s.device.txDropped + s.device.rxDropped + s.host.dropped + s.ringDrops.toHost + s.ringDrops.toGuest;
  return [`${fmtBytes(s.device.txBytes)} / ${s.device.txFrames}`, `${fmtBytes(s.device.rxBytes)} / ${s.device.rxFrames}`, String(drops)];
}

/**
 * The counters of a device table change in place while its definition stays
 * the same, so limits being typed are not wiped by the next poll.
 */
function updateCounters(box, key, values) {
  if (box.dataset.key !== key) return false;
  box.querySelectorAll('tbody tr').forEach((tr, i) => {
    tr.querySelectorAll('td.counter').forEach((td, j) => (td.textContent = values(i)[j]));
  });
  return true;
}

function renderDisks(vm, stats) {
  const disks = vm.config?.disks ?? [];
  const live = stats?.devices?.disks ?? [];
  const box = $('vm-disks');
  const key = `${vm.name}:${JSON.stringify(disks)}`;
  if (updateCounters(box, key, (i) => diskCounters(live[i]))) return;
  box.dataset.key = key;
  box.textContent = '';
  if (disks.length === 0) return box.append(el('p', { className: 'dim' }, 'No disks.'));
  const table = el('table', { className: 'devices' });
  table.append(el('thead', {}, el('tr', {}, ...['Disk', 'Image', 'Format', 'Read', 'Written', 'Requests', 'Throttled', 'Limits'].map((h) => el('th', {}, h)))));
  const tbody = el('tbody');
  disks.forEach((d, i) => {
    tbody.append(
      el('tr', {},
        el('td', {}, `vd${String.fromCharCode(97 + i)}`),
        el('td', { className: 'path', title: d.path }, d.path.split('/').pop()),
        el('td', {}, `${d.format ?? '?'}${d.readonly ? ' (ro)' : ''}`),
        ...diskCounters(live[i]).map((v) => el('td', { className: 'num counter' }, v)),
        limitInputs('disks', i, d.limits, ['bps', 'iops', 'bpsBurst', 'iopsBurst']),
      ),
    );
  });
  table.append(tbody);
  box.append(el('div', { className: 'table-wrap' }, table));
}

function renderNics(vm, stats) {
  const nics = vm.config?.nics ?? [];
  const live = stats?.devices?.nics ?? [];
  const box = $('vm-nics');
  const key = `${vm.name}:${JSON.stringify(nics)}`;
  if (updateCounters(box, key, (i) => nicCounters(live[i]))) return;
  box.dataset.key = key;
  box.textContent = '';
  if (nics.length === 0) return box.append(el('p', { className: 'dim' }, 'No NICs.'));
  const table = el('table', { className: 'devices' });
  table.append(el('thead', {}, el('tr', {}, ...['NIC', 'Mode', 'MAC', 'Forwards', 'Sent', 'Received', 'Dropped', 'Limits'].map((h) => el('th', {}, h)))));
  const tbody = el('tbody');
  nics.forEach((n, i) => {
    tbody.append(
      el('tr', {},
        el('td', {}, `eth${i}`),
        el('td', {}, n.mode + (n.switch ? ` ${n.switch}` : '') + (n.tap ? ` ${n.tap}` : '')),
        el('td', {}, n.mac ?? live[i]?.mac ?? '-'),
        el('td', { className: 'path' }, [...(n.hostfwd ?? []), ...(n.guestfwd ?? [])].join(', ') || '-'),
        ...nicCounters(live[i]).map((v) => el('td', { className: 'num counter' }, v)),
        limitInputs('nics', i, n.limits, ['txBps', 'rxBps', 'txPps', 'rxPps']),
      ),
    );
  });
  table.append(tbody);
  box.append(el('div', { className: 'table-wrap' }, table));
}

function renderEvents(box, events, withVm) {
  box.textContent = '';
  if (events.length === 0) return box.append(el('li', { className: 'dim' }, 'No events yet.'));
  for (const e of [...events].reverse()) {
    const li = el('li', { className: `event ${e.level}` }, el('time', { dateTime: e.time }, fmtTime(e.time)), ' ');
    li.dataset.kind = e.kind;
    if (withVm && e.vm) li.append(el('a', { href: `#/vm/${encodeURIComponent(e.vm)}` }, e.vm), ' ');
    li.append(el('span', {}, e.message));
    box.append(li);
  }
}

const LOG_SHOWN = 256 * 1024;

async function loadLog(name) {
  const headers = ctx.authHeaders();
  const r = await fetch(vmPath(name, '/log'), { headers, cache: 'no-store' });
  if (!r.ok) throw new Error(`log: HTTP ${r.status}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  const shown = bytes.length > LOG_SHOWN ? bytes.subarray(bytes.length - LOG_SHOWN) : bytes;
  const pre = $('vm-log');
  pre.textContent = (bytes.length > LOG_SHOWN ? `[first ${fmtBytes(bytes.length - LOG_SHOWN)} not shown]\n` : '') + plainText(shown);
  $('vm-log-size').textContent = bytes.length ? `${fmtBytes(bytes.length)}` : 'empty';
  pre.scrollTop = pre.scrollHeight;
}

function renderActions(vm) {
  const box = $('vm-actions');
  const key = `${vm.name}:${vm.state}:${Boolean(openapi)}`;
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.textContent = '';
  const states = vm.state;
  const add = (label, enabled, fn, cls = '') => {
    const b = el('button', { type: 'button', className: cls, disabled: !enabled }, label);
    b.dataset.action = label.toLowerCase();
    b.addEventListener('click', fn);
    box.append(b);
  };
  for (const [action, label, ok] of ctx.actions) add(label, ok.includes(states), () => ctx.act(vm.name, action), action === 'kill' || action === 'stop' ? 'danger' : '');
  add('Restart', states === 'running' || states === 'paused', () => ctx.act(vm.name, 'restart'));
  add('Console', states === 'running' || states === 'paused', () => {
    // The list page is shown before the terminal opens: xterm.js cannot measure itself in a hidden box.
    view = { kind: 'list' };
    show('list-view');
    location.hash = '#/';
    ctx.openConsole(vm.name);
  });
  add('Snapshot', states === 'running' || states === 'paused', () => {
    $('snapshot-form').hidden = false;
    $('snapshot-name').value ||= `${vm.name}-${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`;
    $('snapshot-name').focus();
  });
  if (openapi?.paths?.[MIGRATE_PATH]?.post) {
    // Only a running VM in a thread of the daemon can move so far (the daemon says why otherwise too).
    add('Migrate', states === 'running' && vm.isolation !== 'process' && !migrating.has(vm.name), openMigrate);
    if (vm.isolation === 'process') box.lastChild.title = 'only VMs in a thread of the daemon can migrate so far';
  }
  add('Delete', true, () => removeVm(vm), 'danger');
}

/** A long action: the button row shows it is under way, with the time it has taken. */
async function withProgress(what, fn) {
  const p = $('vm-progress');
  const started = Date.now();
  p.hidden = false;
  $('vm-progress-text').textContent = `${what}...`;
  const tick = setInterval(() => ($('vm-progress-text').textContent = `${what}... ${Math.round((Date.now() - started) / 1000)} s`), 500);
  try {
    return await fn();
  } finally {
    clearInterval(tick);
    p.hidden = true;
  }
}

// ---- live migration (POST /v1/vms/NAME/migrate, then its progress from GET until it ends)

function openMigrate() {
  $('migrate-form').hidden = false;
  $('migrate-form-message').textContent = '';
  $('migrate-to').focus();
}

function migrateFieldError(input, text) {
  input.setAttribute('aria-invalid', 'true');
  $('migrate-form-message').textContent = text;
  input.focus();
}

async function submitMigrate(ev) {
  ev.preventDefault();
  const name = view.name;
  const toInput = $('migrate-to');
  const tokenInput = $('migrate-token');
  const dlInput = $('migrate-downtime');
  for (const i of [toInput, tokenInput, dlInput]) i.removeAttribute('aria-invalid');
  $('migrate-form-message').textContent = '';
  // The daemon checks the same; checked here first so the token is never sent with a mistyped address.
  const to = toInput.value.trim().replace(/\/$/, '');
  if (!/^http:\/\/[^\s/]+$/.test(to)) return migrateFieldError(toInput, 'Destination: the other daemon as http://HOST:PORT (its --listen address)');
  const token = tokenInput.value;
  if (token.trim() === '' || /\s/.test(token)) return migrateFieldError(tokenInput, "Token: the destination daemon's bearer token (no spaces)");
  const body = { to, token };
  const dl = dlInput.value.trim();
  if (dl !== '') {
    const n = Number(dl);
    if (!Number.isInteger(n) || n < 1 || n > 60000) return migrateFieldError(dlInput, 'Downtime limit: whole milliseconds from 1 to 60000');
    body.downtimeLimitMs = n;
  }
  const r = await tryApi('POST', vmPath(name, '/migrate'), body);
  if (r.error) {
    $('migrate-form-message').textContent = `The daemon refused: ${r.error.message}`;
    return;
  }
  $('migrate-form').hidden = true;
  tokenInput.value = '';
  // What an earlier attempt said is not about this one; and one migration at a time.
  $('vm-message').textContent = '';
  const button = $('vm-actions').querySelector('button[data-action="migrate"]');
  if (button) button.disabled = true;
  await followMigration(name, to, r.value);
}

function migrationText(p) {
  const s = Math.round((Date.now() - p.startedAt) / 1000);
  const parts = [`${p.phase}`, `round ${p.round}`, `${fmtBytes(p.bytesSent)} sent`];
  if (p.round > 0) parts.push(`${p.dirtyPages} pages dirtied in the last round`);
  if (p.throttlePercent > 0) parts.push(`guest throttled ${p.throttlePercent}%`);
  parts.push(`${s} s`);
  return `Migrating to ${p.to}: ${parts.join(', ')}`;
}

async function followMigration(name, to, first) {
  migrating.set(name, to);
  const here = () => view.kind === 'vm' && view.name === name;
  $('migrate-progress').hidden = !here();
  $('migrate-abort').disabled = false;
  let p = first;
  try {
    while (!MIGRATION_FINAL.includes(p.phase)) {
      if (here()) {
        $('migrate-progress').hidden = false;
        $('migrate-text').textContent = migrationText({ ...p, to });
      }
      await new Promise((res) => setTimeout(res, 300));
      try {
        const r = await tryApi('GET', vmPath(name, '/migrate'));
        if (r.error) p = { ...p, phase: 'failed', error: r.error.message };
        else p = r.value;
      } catch {
        // The network: the list's poll shows the page offline; keep asking.
      }
    }
  } finally {
    migrating.delete(name);
    $('migrate-progress').hidden = true;
    delete $('vm-actions').dataset.key; // drawn again: the buttons fit the state after it
  }
  if (p.phase === 'completed') movedAway.set(name, to);
  if (!here()) return ctx.refresh();
  const msg = $('vm-message');
  msg.textContent = '';
  if (p.phase === 'completed') {
    msg.className = 'message';
    msg.append(
      `${name} migrated to ${to} in ${((p.totalMs ?? 0) / 1000).toFixed(1)} s (downtime ${Math.round(p.downtimeMs ?? 0)} ms, ` +
        `${fmtBytes(p.bytesSent)} in ${p.round} round${p.round === 1 ? '' : 's'}${p.throttlePercent > 0 ? `, guest throttled up to ${p.throttlePercent}%` : ''}); it runs there now: `,
      el('a', { href: `${to}/ui/#/vm/${encodeURIComponent(name)}`, rel: 'noopener', target: '_blank' }, 'open it there'),
    );
  } else {
    msg.className = 'message bad';
    msg.textContent = `Migration to ${to} ${p.phase}${p.error ? `: ${p.error}` : ''}. The VM runs on here.`;
  }
  ctx.refresh();
}

async function abortMigration() {
  $('migrate-abort').disabled = true;
  const r = await tryApi('DELETE', vmPath(view.name, '/migrate'));
  // The progress loop sees the end; an error (too late: committing) is shown beside it.
  if (r.error) $('migrate-text').textContent += ` (cannot cancel: ${r.error.message})`;
}

// ---- clones of a snapshot (host page)

function openClone(snap) {
  const f = $('clone-form');
  f.hidden = false;
  f.dataset.snapshot = snap;
  $('clone-snapshot').textContent = snap;
  $('clone-prefix').value = snap.slice(0, 51);
  $('clone-message').textContent = '';
  $('clone-message').className = 'message';
  $('clone-count').focus();
}

async function submitClone(ev) {
  ev.preventDefault();
  const snap = $('clone-form').dataset.snapshot;
  const count = Number($('clone-count').value);
  const prefix = $('clone-prefix').value.trim();
  const msg = $('clone-message');
  msg.className = 'message bad';
  for (const id of ['clone-count', 'clone-prefix']) $(id).removeAttribute('aria-invalid');
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    $('clone-count').setAttribute('aria-invalid', 'true');
    msg.textContent = 'How many: a whole number from 1 to 64';
    return $('clone-count').focus();
  }
  if (!NAME_PREFIX.test(prefix)) {
    $('clone-prefix').setAttribute('aria-invalid', 'true');
    msg.textContent = 'Name prefix: letters, digits, _ . - (at most 51, starting with a letter or digit); clones are named PREFIX-1, PREFIX-2, ...';
    return $('clone-prefix').focus();
  }
  const submit = $('clone-submit');
  submit.disabled = true;
  msg.className = 'message';
  const started = Date.now();
  const tick = setInterval(() => (msg.textContent = `Cloning ${snap} (${count})... ${Math.round((Date.now() - started) / 1000)} s`), 500);
  msg.textContent = `Cloning ${snap} (${count})...`;
  let r;
  try {
    r = await tryApi('POST', `/v1/snapshots/${encodeURIComponent(snap)}/clones`, { count, prefix, start: $('clone-start').checked });
  } finally {
    clearInterval(tick);
    submit.disabled = false;
  }
  if (r.error) {
    msg.className = 'message bad';
    msg.textContent = `The daemon refused: ${r.error.message}`;
    return;
  }
  $('clone-form').hidden = true;
  msg.className = 'message';
  msg.textContent = `Made ${r.value.vms.length} clone${r.value.vms.length === 1 ? '' : 's'} of ${snap} in ${((Date.now() - started) / 1000).toFixed(1)} s: `;
  r.value.vms.forEach((v, i) => msg.append(i ? ', ' : '', el('a', { href: `#/vm/${encodeURIComponent(v.name)}` }, v.name), ` (${v.state})`));
  ctx.refresh();
}

async function takeSnapshot(ev) {
  ev.preventDefault();
  const dir = $('snapshot-name').value.trim();
  const name = view.name;
  const r = await withProgress(`Snapshot ${dir}`, () => tryApi('PUT', vmPath(name, '/snapshot'), { dir }));
  if (r.error) {
    $('vm-message').textContent = `snapshot: ${r.error.message}`;
    $('vm-message').className = 'message bad';
    return;
  }
  $('snapshot-form').hidden = true;
  $('snapshot-name').value = '';
  const msg = $('vm-message');
  msg.className = 'message';
  msg.textContent = `Snapshot ${r.value.name} written in ${Math.round(r.value.ms ?? 0)} ms. `;
  msg.append(el('a', { href: `#/create?snapshot=${encodeURIComponent(r.value.name)}` }, 'Restore it as a new VM'));
  if (openapi?.paths?.[CLONES_PATH]) msg.append(' or ', el('a', { href: `#/host?clone=${encodeURIComponent(r.value.name)}` }, 'make clones of it'));
  ctx.refresh();
}

async function removeVm(vm) {
  const running = vm.state === 'running' || vm.state === 'paused';
  const ok = confirm(
    running
      ? `Delete VM '${vm.name}'? It is ${vm.state}: it will be killed first, then its definition and console log are removed.`
      : `Delete VM '${vm.name}'? Its definition and console log are removed.`,
  );
  if (!ok) return;
  // Leave the page first, so that no poll asks for the VM once it is gone.
  view = { kind: 'list' };
  const r = await tryApi('DELETE', vmPath(vm.name, running ? '?force=true' : ''));
  if (r.error) {
    view = parseHash();
    $('vm-message').textContent = `delete: ${r.error.message}`;
    $('vm-message').className = 'message bad';
    return;
  }
  location.hash = '#/';
}

function renderEdit(vm, stats) {
  const f = $('edit-form');
  if (f.dataset.for !== vm.name) {
    // Filled once per VM, so what the user is typing is not overwritten by the poll.
    f.dataset.for = vm.name;
    $('edit-weight').value = vm.config?.cpu?.weight ?? '';
    $('edit-cap').value = vm.config?.cpu?.cap ?? '';
    $('edit-balloon').value = '';
  }
  $('edit-balloon-row').hidden = !vm.config?.balloon;
  const b = stats?.devices?.balloon;
  $('edit-balloon-now').textContent = b ? JSON.stringify(b).slice(0, 200) : '';
}

async function submitEdit(ev) {
  ev.preventDefault();
  const body = {};
  const cpu = {};
  const w = $('edit-weight').value.trim();
  const c = $('edit-cap').value.trim();
  if (w !== '') cpu.weight = Number(w);
  // An empty cap removes the one the VM has (none to remove: nothing is sent).
  if (c !== '') cpu.cap = Number(c);
  else if (shownVm?.config?.cpu?.cap !== undefined) cpu.cap = null;
  if (Object.keys(cpu).length > 0) body.cpu = cpu;
  const t = $('edit-balloon').value.trim();
  if (t !== '' && !$('edit-balloon-row').hidden) body.balloon = { targetMiB: Number(t) };
  if (Object.keys(body).length === 0) {
    $('vm-message').textContent = 'Nothing to change.';
    return;
  }
  await patchVm(body, 'change');
}

let shownVm = null; // the VM as the details page last showed it

async function refreshVm(name, listed) {
  const vm = listed;
  shownVm = vm ?? null;
  // While it may be leaving for another daemon, its details are not asked for (they could vanish mid-request).
  if (migrating.has(name)) return;
  if (!vm) {
    if (movedAway.has(name)) {
      $('vm-state').textContent = 'migrated away';
      $('vm-state').className = 'state state-stopped';
      for (const b of $('vm-actions').querySelectorAll('button')) b.disabled = true;
      // What the page showed was the copy that left: only its last state, greyed out.
      $('vm-facts').textContent = '';
      $('vm-facts').append(...fact('State', `runs at ${movedAway.get(name)} now`));
      $('vm-view').classList.add('gone');
      return;
    }
    $('vm-message').textContent = `No VM named '${name}' (deleted?).`;
    $('vm-message').className = 'message bad';
    return;
  }
  await loadOpenApi();
  const [stats, history, events] = await Promise.all([
    vm.config ? tryApi('GET', vmPath(name, '/stats')) : { value: null },
    vm.config ? tryApi('GET', vmPath(name, '/history')) : { value: null },
    tryApi('GET', vmPath(name, '/events')),
  ]);
  if (view.kind !== 'vm' || view.name !== name) return; // the user moved on meanwhile
  const s = stats.value;
  $('vm-title').textContent = name;
  $('vm-state').textContent = vm.state;
  $('vm-state').className = `state state-${vm.state}`;
  const facts = $('vm-facts');
  facts.textContent = '';
  const c = vm.config ?? {};
  const touched = s && typeof s.memoryTouchedMiB === 'number' ? `${Math.round(s.memoryTouchedMiB)} MiB touched of ` : '';
  facts.append(
    ...fact('State', vm.state + (s && s.runState && vm.state === 'running' ? ` (${s.runState})` : '')),
    ...fact('Created', vm.createdAt ? fmtTime(vm.createdAt) : null),
    ...fact('Uptime', s ? uptime(s.uptimeSeconds) : null),
    ...fact('Process id', vm.pid ?? (vm.isolation === 'thread' && (vm.state === 'running' || vm.state === 'paused') ? 'a thread of the daemon' : null)),
    ...fact('Isolation', vm.isolation),
    ...fact('Restarts', vm.restarts, 'vm-restarts'),
    ...fact('Memory', c.memory !== undefined ? `${touched}${c.memory} MiB` : null),
    ...fact('CPU', s ? `${(s.cpuShare * 100).toFixed(1)}% of a core, ${s.mips.toFixed(1)} MIPS, weight ${s.weight}${s.cap ? `, cap ${s.cap}` : ''}` : null),
    ...fact('Instructions', s ? s.instructions.toLocaleString() : null, 'vm-instructions'),
    ...fact('Kernel', c.kernel ? `${c.kernel.split('/').pop()}${c.initrd ? ` + ${c.initrd.split('/').pop()}` : ''}` : null),
    ...fact('Restart policy', c.restart ? `${c.restart.policy}${c.restart.maxRetries !== undefined ? `, at most ${c.restart.maxRetries}` : ''}` : 'no'),
    ...fact('Last exit', vm.lastExit),
    ...fact('Last failure', vm.lastFailure || vm.reason, 'vm-last-failure'),
  );
  $('vm-last-failure').classList.toggle('bad', Boolean(vm.lastFailure || vm.reason));
  renderActions(vm);
  renderEdit(vm, s);
  renderDisks(vm, s);
  renderNics(vm, s);
  if (history.value && charts) {
    charts.update(history.value);
    $('vm-charts').dataset.points = String(charts.points());
  }
  if (events.value) renderEvents($('vm-events'), events.value, false);
  $('vm-definition').textContent = JSON.stringify(vm.config, null, 2);
  // The log again when the state changed (a failure just written) or on first view.
  const key = `${name}/${vm.state}/${vm.restarts}`;
  if (vm.config && logLoadedFor !== key) {
    logLoadedFor = key;
    await loadLog(name).catch((e) => {
      if (e instanceof TypeError) throw e;
      $('vm-log').textContent = e.message;
    });
  }
}

// ---- host

async function refreshHost() {
  await loadOpenApi();
  const [history, events, snapshots, images] = await Promise.all([
    tryApi('GET', '/v1/host/history'),
    tryApi('GET', '/v1/host/events'),
    tryApi('GET', '/v1/snapshots'),
    tryApi('GET', '/v1/images'),
  ]);
  if (view.kind !== 'host') return;
  if (history.value && charts) {
    charts.update(history.value);
    $('host-charts').dataset.points = String(charts.points());
  }
  if (events.value) renderEvents($('host-events'), events.value, true);
  renderSnapshots(snapshots.value ?? []);
  const imgs = $('host-images');
  imgs.textContent = '';
  for (const i of images.value ?? []) imgs.append(el('li', {}, `${i.name} `, el('span', { className: 'dim' }, `${i.kind}, ${fmtBytes(i.size)}`)));
}

function renderSnapshots(list) {
  const snaps = $('host-snapshots');
  // Drawn again only when the list changes, so a focused button keeps its focus across polls.
  const key = JSON.stringify(list.map((s) => [s.name, s.error ?? '', s.memory, s.nics, s.usedBy ?? []]));
  if (snaps.dataset.key === key) return;
  snaps.dataset.key = key;
  snaps.textContent = '';
  const canClone = Boolean(openapi?.paths?.[CLONES_PATH]);
  for (const s of list) {
    const li = el('li', {}, `${s.name} `, el('span', { className: 'dim' }, s.error ? s.error : `${s.memory} MiB, ${s.nics} NIC${s.nics === 1 ? '' : 's'} `));
    li.dataset.snapshot = s.name;
    if (!s.error) {
      li.append(el('a', { className: 'button', href: `#/create?snapshot=${encodeURIComponent(s.name)}` }, 'Restore as new VM'));
      if (canClone) {
        const b = el('button', { type: 'button' }, 'Clone');
        b.dataset.action = 'clone';
        b.setAttribute('aria-label', `Clone ${s.name}`);
        b.addEventListener('click', () => openClone(s.name));
        li.append(' ', b);
      }
    }
    const used = s.usedBy ?? [];
    const del = el('button', { type: 'button', className: 'danger', disabled: used.length > 0 }, 'Delete');
    del.dataset.action = 'delete';
    del.setAttribute('aria-label', `Delete snapshot ${s.name}`);
    // The daemon refuses while VMs are defined from it: say which, instead of offering a request that fails.
    if (used.length > 0) {
      del.title = `used by ${used.join(', ')}: delete those VMs first`;
      li.append(' ', del, ' ', el('span', { className: 'dim' }, `used by ${used.join(', ')}`));
    } else li.append(' ', del);
    del.addEventListener('click', () => void deleteSnapshot(s.name).catch(networkOrShow));
    snaps.append(li);
  }
  if (snaps.children.length === 0) snaps.append(el('li', { className: 'dim' }, 'No snapshots yet (take one from a running VM\'s page).'));
}

async function deleteSnapshot(name) {
  if (!confirm(`Delete snapshot '${name}'? Its directory goes; the disk images it names stay.`)) return;
  const r = await tryApi('DELETE', `/v1/snapshots/${encodeURIComponent(name)}`);
  const msg = $('clone-message');
  msg.className = r.error ? 'message bad' : 'message';
  msg.textContent = r.error ? `delete ${name}: ${r.error.message}` : `Snapshot ${name} deleted.`;
  if (!r.error && $('clone-form').dataset.snapshot === name) $('clone-form').hidden = true;
  ctx.refresh();
}

// ---- host summary on the list page

export function renderSummary(list, host) {
  const box = $('summary');
  box.textContent = '';
  const card = (label, value, extra) => {
    const c = el('div', { className: 'card' }, el('div', { className: 'label' }, label), el('div', { className: 'value' }, value));
    if (extra) c.append(extra);
    box.append(c);
  };
  card('Cores for VMs', String(host.cpus), el('div', { className: 'dim' }, `${(host.cpuShare ?? 0).toFixed(2)} in use`));
  const meter = el('meter', { min: 0, max: host.memoryBudgetMiB, value: host.memoryReservedMiB });
  card('Memory budget', `${host.memoryReservedMiB} / ${host.memoryBudgetMiB} MiB`, el('div', {}, meter, el('div', { className: 'dim' }, `${Math.round(host.memoryTouchedMiB ?? 0)} MiB touched`)));
  const states = Object.entries(host.byState).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s}`).join(', ');
  card('VMs', String(host.vms), el('div', { className: `dim`, id: 'summary-states' }, states || 'none'));
  card('Guest MIPS', host.mips.toFixed(0), el('div', { className: 'dim' }, `daemon up ${uptime(host.uptimeSeconds)}`));
}

/** Called by the list's poll with what it fetched; fetches what the page shown needs. */
export async function refreshView(list) {
  if (view.kind === 'vm') await refreshVm(view.name, list.find((v) => v.name === view.name));
  else if (view.kind === 'host') await refreshHost();
  else if (view.kind === 'fleet') await refreshFleet();
}

export function initViews(c) {
  ctx = c;
  initFleet(c);
  window.addEventListener('hashchange', () => void route());
  $('create-form').addEventListener('submit', (ev) => void submitCreate(ev).catch(networkOrShow));
  $('edit-form').addEventListener('submit', (ev) => void submitEdit(ev).catch(networkOrShow));
  $('snapshot-form').addEventListener('submit', (ev) => void takeSnapshot(ev).catch(networkOrShow));
  $('snapshot-cancel').addEventListener('click', () => ($('snapshot-form').hidden = true));
  $('vm-log-refresh').addEventListener('click', () => void loadLog(view.name).catch(networkOrShow));
  $('migrate-form').addEventListener('submit', (ev) => void submitMigrate(ev).catch(networkOrShow));
  $('migrate-form-cancel').addEventListener('click', () => ($('migrate-form').hidden = true));
  $('migrate-abort').addEventListener('click', () => void abortMigration().catch(networkOrShow));
  $('clone-form').addEventListener('submit', (ev) => void submitClone(ev).catch(networkOrShow));
  $('clone-cancel').addEventListener('click', () => ($('clone-form').hidden = true));
}

/** Show the page the address names (after login). */
export function startViews() {
  void route();
}
