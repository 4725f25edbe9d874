// The web console of `tsvisor serve`: the VM list from the JSON API every
// 2 s, lifecycle buttons, and an xterm.js terminal on a VM's console
// WebSocket. Over TCP the API needs the daemon's bearer token: it is asked
// once and kept in sessionStorage; fetches send it as Authorization, the
// console WebSocket as the subprotocol tsvisor.bearer.<base64url token>.

import { Terminal } from './vendor/xterm.mjs';
import { FitAddon } from './vendor/addon-fit.mjs';
import { initViews, migrating, refreshView, renderSummary, startViews } from './views.js';
import { uptime } from './format.js';

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'tsvisor.token';
const POLL_MS = 2000;
const ACTIONS = [
  // [action, label, states it applies to]
  ['start', 'Start', ['created', 'stopped', 'failed']],
  ['pause', 'Pause', ['running']],
  ['resume', 'Resume', ['paused']],
  ['stop', 'Stop', ['running', 'paused']],
  ['reboot', 'Reboot', ['running']],
  ['kill', 'Kill', ['running', 'paused']],
];

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let timer = 0;
const rows = new Map(); // VM name -> { tr, cells, buttons }
const busy = new Set(); // VM names with an action in flight
let term = null;
let fit = null;
let ws = null;
let attached = null; // name of the VM whose console is shown
let consoleOpen = false; // its WebSocket is open
// The error banner belongs to one VM in one state: it goes when that state changes.
let errorFor = null; // { name, state } or null
// The page was served where the API needs a token (TCP): without one, ask first.
const TOKEN_NEEDED = document.documentElement.dataset.auth === 'token';

class AuthError extends Error {}

const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});

async function api(method, path, json) {
  const headers = authHeaders();
  const init = { method, headers, cache: 'no-store' };
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  const r = await fetch(path, init);
  if (r.status === 401) throw new AuthError('the token was refused');
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  return body;
}

const vmPath = (name, rest = '') => `/v1/vms/${encodeURIComponent(name)}${rest}`;

function showError(text, vm) {
  $('error-text').textContent = text;
  $('error').hidden = false;
  errorFor = vm || null;
}

function clearError() {
  $('error-text').textContent = '';
  $('error').hidden = true;
  errorFor = null;
}

// ---- the VM table

function makeRow(name) {
  const tr = document.createElement('tr');
  const cells = {};
  for (const k of ['name', 'state', 'uptime', 'mips', 'cpu', 'memory', 'failure', 'actions']) {
    const td = document.createElement('td');
    if (k === 'mips' || k === 'cpu' || k === 'memory') td.className = 'num';
    if (k === 'failure') td.className = 'failure';
    cells[k] = td;
    tr.append(td);
  }
  const link = document.createElement('a');
  link.href = `#/vm/${encodeURIComponent(name)}`;
  link.textContent = name;
  link.title = 'details, graphs, events and log';
  cells.name.append(link);
  const buttons = {};
  for (const [action, label] of ACTIONS) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    if (action === 'kill' || action === 'stop') b.className = 'danger';
    b.addEventListener('click', () => act(name, action));
    buttons[action] = b;
    cells.actions.append(b);
  }
  const c = document.createElement('button');
  c.type = 'button';
  c.textContent = 'Console';
  c.addEventListener('click', () => openConsole(name));
  buttons.console = c;
  cells.actions.append(c);
  return { tr, cells, buttons };
}

// The list's order: a column and a direction, chosen by clicking a header; by
// name by default, so rows stay put across polls and daemon restarts.
let sortKey = 'name';
let sortDir = 1;
const SORT_VALUE = {
  name: (vm) => vm.name,
  state: (vm) => vm.state,
  uptime: (vm, s) => (s ? s.uptimeSeconds : -1),
  mips: (vm, s) => (s ? s.mips : -1),
  cpu: (vm, s) => (s ? s.cpuShare : -1),
  memory: (vm) => (vm.config ? vm.config.memory : -1),
};

function sortedOrder(list, stats) {
  const key = SORT_VALUE[sortKey] ?? SORT_VALUE.name;
  return list
    .map((vm, i) => i)
    .sort((a, b) => {
      const x = key(list[a], stats[a]);
      const y = key(list[b], stats[b]);
      const byName = list[a].name < list[b].name ? -1 : list[a].name > list[b].name ? 1 : 0;
      return (x < y ? -1 : x > y ? 1 : 0) * sortDir || byName;
    });
}

const matchesFilter = (vm) => {
  const f = $('filter').value.trim().toLowerCase();
  return !f || vm.name.toLowerCase().includes(f) || vm.state.includes(f);
};

let lastPoll = null; // { list, stats, host }: redrawn at once when the sort or filter changes

function render(list, stats, host) {
  lastPoll = { list, stats, host };
  const tbody = $('vms').tBodies[0];
  const seen = new Set();
  for (const i of sortedOrder(list, stats)) {
    const vm = list[i];
    const s = stats[i];
    seen.add(vm.name);
    let row = rows.get(vm.name);
    if (!row) {
      row = makeRow(vm.name);
      rows.set(vm.name, row);
    }
    tbody.append(row.tr);
    row.tr.hidden = !matchesFilter(vm);
    const c = row.cells;
    c.state.textContent = vm.state;
    c.state.className = `state-${vm.state}`;
    c.uptime.textContent = s ? uptime(s.uptimeSeconds) : '';
    c.mips.textContent = s ? s.mips.toFixed(1) : '';
    c.cpu.textContent = s ? `${(s.cpuShare * 100).toFixed(1)}%` : '';
    // Touched (backed by host memory) of reserved, when the host can tell.
    const touched = s && typeof s.memoryTouchedMiB === 'number' ? `${Math.round(s.memoryTouchedMiB)} / ` : '';
    c.memory.textContent = vm.config ? `${touched}${vm.config.memory} MiB` : '-';
    c.memory.title = touched ? 'guest RAM touched / reserved' : 'guest RAM reserved';
    c.failure.textContent = vm.lastFailure || vm.reason || '';
    c.failure.title = vm.lastFailure || vm.reason || '';
    for (const [action, , states] of ACTIONS) row.buttons[action].disabled = busy.has(vm.name) || !states.includes(vm.state);
    row.buttons.console.disabled = !(vm.state === 'running' || vm.state === 'paused');
    row.tr.classList.toggle('selected', vm.name === attached);
    if (errorFor && errorFor.name === vm.name && errorFor.state !== vm.state) clearError();
    if (vm.name === attached && consoleOpen) showConsoleState(vm.state);
  }
  if (errorFor && !seen.has(errorFor.name)) clearError();
  for (const [name, row] of rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      rows.delete(name);
    }
  }
  $('empty').hidden = list.length > 0;
  $('no-match').hidden = list.length === 0 || list.some(matchesFilter);
  for (const th of $('vms').tHead.rows[0].cells) {
    th.setAttribute('aria-sort', th.dataset.sort === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
  }
  renderSummary(list, host);
  const reserved = host.memoryReservedMiB;
  $('host').textContent =
    `${host.vms} VM${host.vms === 1 ? '' : 's'}, ${host.byState.running} running · ` +
    `memory ${reserved} of ${host.memoryBudgetMiB} MiB reserved · ${host.cpus} CPU${host.cpus === 1 ? '' : 's'} · ` +
    `${host.mips.toFixed(0)} MIPS`;
}

// One refresh at a time: a refresh asked for while one runs (after an action,
// say) follows right after it instead of starting a second polling loop.
let refreshing = false;
let refreshAgain = false;

async function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = true;
  clearTimeout(timer);
  let refused = false;
  try {
    if (!document.hidden) {
      const [list, host] = await Promise.all([api('GET', '/v1/vms'), api('GET', '/v1/host/stats')]);
      // Stats only for VMs that run: the others have none worth a request.
      const stats = await Promise.all(
        list.map((vm) =>
          // A VM migrating away may be gone by the time its stats are asked for: the list shows what it had.
          (vm.state === 'running' || vm.state === 'paused') && !migrating.has(vm.name) ? api('GET', vmPath(vm.name, '/stats')).catch(() => null) : null,
        ),
      );
      render(list, stats, host);
      await refreshView(list);
      $('main').classList.remove('offline');
      $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    }
  } catch (e) {
    if (e instanceof AuthError) refused = true;
    else {
      // The list is what was last seen, not live: say so and grey it out.
      if (!$('main').classList.contains('offline')) $('status').textContent = `offline since ${new Date().toLocaleTimeString()}: the daemon cannot be reached`;
      $('main').classList.add('offline');
    }
  } finally {
    refreshing = false;
  }
  const soon = refreshAgain;
  refreshAgain = false;
  if (refused) return showLogin(token ? 'The daemon refused this token; enter it again.' : null);
  if (!$('main').hidden) timer = setTimeout(refresh, soon ? 0 : POLL_MS);
}

async function act(name, action) {
  if (action === 'kill' && !confirm(`Kill VM '${name}'? Its guest gets no chance to shut down.`)) return;
  const stateBefore = rows.get(name)?.cells.state.textContent || '';
  busy.add(name);
  for (const b of Object.values(rows.get(name)?.buttons ?? {})) b.disabled = true;
  clearError();
  try {
    await api('POST', vmPath(name, `/${action}`));
  } catch (e) {
    if (e instanceof AuthError) return showLogin('The daemon refused this token; enter it again.');
    showError(`${action} ${name}: ${e.message}`, { name, state: stateBefore });
  } finally {
    busy.delete(name);
  }
  refresh();
}

// ---- the console

function base64url(text) {
  let bin = '';
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function sendBytes(bytes) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(bytes);
}

// The terminal's size goes to the guest's console (a text frame; keys travel as binary ones).
function sendSize() {
  if (ws && ws.readyState === WebSocket.OPEN && term) ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
}

function ensureTerminal() {
  if (term) return;
  // A line height above 1 leaves room under the baseline: with 1.0 the row box
  // clipped underscores at normal pixel density.
  term = new Terminal({
    scrollback: 5000,
    fontSize: 14,
    lineHeight: 1.2,
    fontFamily: '"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    cursorBlink: true,
  });
  fit = new FitAddon();
  term.loadAddon(fit);
  term.open($('term'));
  const enc = new TextEncoder();
  term.onData((d) => sendBytes(enc.encode(d)));
  term.onBinary((d) => sendBytes(Uint8Array.from(d, (ch) => ch.charCodeAt(0) & 0xff)));
  term.onResize(() => sendSize());
  window.addEventListener('resize', () => fit.fit());
}

function closeConsole() {
  const old = ws;
  ws = null;
  consoleOpen = false;
  if (old) old.close();
}

// Keys typed while the VM is paused wait in the daemon and reach the guest on resume.
function showConsoleState(state) {
  $('console-state').textContent =
    state === 'paused' ? 'VM paused: keys wait and reach the guest when it resumes' : 'attached (keys go to the guest)';
  $('console').classList.toggle('paused', state === 'paused');
}

function openConsole(name) {
  closeConsole();
  attached = name;
  for (const [n, row] of rows) row.tr.classList.toggle('selected', n === name);
  $('console').hidden = false;
  $('console-name').textContent = name;
  $('console-state').textContent = 'connecting...';
  ensureTerminal();
  term.reset();
  fit.fit();
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const protocols = ['tsvisor.console'];
  if (token) protocols.push(`tsvisor.bearer.${base64url(token)}`);
  const sock = new WebSocket(`${scheme}//${location.host}${vmPath(name, '/console')}`, protocols);
  sock.binaryType = 'arraybuffer';
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    consoleOpen = true;
    sendSize();
    showConsoleState(rows.get(name)?.cells.state.textContent || 'running');
    term.focus();
  };
  sock.onmessage = (ev) => {
    if (ws === sock) term.write(new Uint8Array(ev.data));
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    consoleOpen = false;
    $('console').classList.remove('paused');
    const why = ev.reason || (ev.code === 1006 ? 'connection refused or lost' : `code ${ev.code}`);
    $('console-state').textContent = `closed: ${why}`;
    term.write(`\r\n\x1b[2m[console closed: ${why}]\x1b[0m\r\n`);
    refresh();
  };
}

$('detach').addEventListener('click', () => {
  closeConsole();
  attached = null;
  $('console').hidden = true;
  for (const row of rows.values()) row.tr.classList.remove('selected');
});

// ---- the token

function showLogin(message) {
  clearTimeout(timer);
  closeConsole();
  $('main').hidden = true;
  $('logout').hidden = true;
  $('nav').hidden = true;
  $('login').hidden = false;
  if (message) $('login-message').textContent = message;
  $('token').focus();
}

function showMain() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = !token;
  $('nav').hidden = false;
  startViews();
  refresh();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const entered = $('token').value.trim();
  $('token').value = '';
  if (!entered) {
    $('login-message').textContent = 'The token cannot be empty or only spaces: enter the contents of the --token-file.';
    $('token').focus();
    return;
  }
  token = entered;
  sessionStorage.setItem(TOKEN_KEY, token);
  showMain();
});

$('logout').addEventListener('click', () => {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  $('console').hidden = true;
  attached = null;
  showLogin('Token forgotten. Enter it again to continue.');
});

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !$('main').hidden) refresh();
});

$('error-close').addEventListener('click', clearError);

for (const th of $('vms').tHead.rows[0].cells) {
  if (!th.dataset.sort) continue;
  th.tabIndex = 0;
  const sortBy = () => {
    if (sortKey === th.dataset.sort) sortDir = -sortDir;
    else [sortKey, sortDir] = [th.dataset.sort, 1];
    if (lastPoll) render(lastPoll.list, lastPoll.stats, lastPoll.host);
  };
  th.addEventListener('click', sortBy);
  th.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      sortBy();
    }
  });
}
$('filter').addEventListener('input', () => lastPoll && render(lastPoll.list, lastPoll.stats, lastPoll.host));

initViews({ api, authHeaders, openConsole, refresh, showError, act, actions: ACTIONS });

// On the Unix socket no token is needed: the first refresh shows the list. On
// TCP without a token the page asks for it before any API request.
if (TOKEN_NEEDED && !token) showLogin(null);
else showMain();
