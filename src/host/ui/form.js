// The create form: every field POST /v1/vms accepts, checked in the page
// against the daemon's own schema (CreateVm from /v1/openapi.json) and then by
// the daemon, whose error ("disks[0].limits.bps: must be at least 1") is shown
// next to the field it names.

import { $, el, fmtBytes } from './format.js';

/** Schema of a field path ("disks[0].limits.bps") inside CreateVm, or null. */
export function schemaAt(root, field) {
  let s = root;
  for (const part of field.replace(/\[\d+\]/g, '.[]').split('.').filter(Boolean)) {
    if (!s) return null;
    if (part === '[]') s = s.items;
    else s = s.properties ? s.properties[part] : null;
  }
  return s || null;
}

/** The daemon's wording for a value its schema refuses, or null when it fits. */
export function checkValue(schema, value, field) {
  if (!schema || value === undefined) return null;
  const unit = /(^|\.)memory$/.test(field) ? ' MiB' : '';
  if (schema.type === 'integer' && !Number.isInteger(value)) return `${field}: must be integer`;
  if (schema.type === 'number' && typeof value !== 'number') return `${field}: must be number`;
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return `${field}: must be a number`;
    if (schema.minimum !== undefined && value < schema.minimum) return `${field}: must be at least ${schema.minimum}${unit}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${field}: must be at most ${schema.maximum}${unit}`;
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength) return `${field}: must not be empty`;
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return `${field}: at most ${schema.maxLength} characters`;
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
      return field === 'name' ? 'name: must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit' : `${field}: has an invalid format`;
    }
    if (schema.enum && !schema.enum.includes(value)) return `${field}: must be one of ${schema.enum.join(', ')}`;
  }
  return null;
}

// ---- building the form

function hint(schema, extra = '') {
  if (!schema) return extra;
  const parts = [];
  if (schema.minimum !== undefined && schema.maximum !== undefined) parts.push(`${schema.minimum}-${schema.maximum}`);
  if (schema.description) parts.push(schema.description);
  if (extra) parts.push(extra);
  return parts.join('; ');
}

/** A labelled input bound to a field path; `kind`: text, number, checkbox, select, list (one entry per line). */
function field(schema, path, label, kind = 'text', opts = {}) {
  const s = schemaAt(schema, path.replace(/\[\d+\]/g, '[0]'));
  let input;
  if (kind === 'select') {
    input = el('select');
    for (const [value, text] of opts.choices) input.append(el('option', { value }, text));
  } else if (kind === 'list') {
    input = el('textarea', { rows: 2, spellcheck: false, placeholder: opts.placeholder || 'one per line' });
  } else {
    input = el('input', { type: kind, spellcheck: false, autocomplete: 'off' });
    if (kind === 'number') {
      input.step = s && s.type === 'integer' ? '1' : 'any';
      if (s && s.minimum !== undefined) input.min = String(s.minimum);
      if (s && s.maximum !== undefined) input.max = String(s.maximum);
    }
    if (opts.placeholder) input.placeholder = opts.placeholder;
  }
  if (opts.value !== undefined) {
    if (kind === 'checkbox') input.checked = opts.value;
    else input.value = String(opts.value);
  }
  input.dataset.field = path;
  input.dataset.kind = kind;
  input.title = hint(s, opts.hint);
  const err = el('span', { className: 'field-error', role: 'alert' });
  err.dataset.errorFor = path;
  const wrap = el('label', { className: kind === 'checkbox' ? 'field check' : 'field' }, el('span', { className: 'label' }, label), input, err);
  if (opts.note) wrap.append(el('small', {}, opts.note));
  return wrap;
}

function imageChoices(images, kinds, optional) {
  const sorted = [...images].sort((a, b) => (kinds.includes(b.kind) ? 1 : 0) - (kinds.includes(a.kind) ? 1 : 0));
  const out = optional ? [['', '(none)']] : [];
  for (const i of sorted) out.push([i.name, `${i.name} (${i.kind}, ${fmtBytes(i.size)})`]);
  return out;
}

function diskFieldset(schema, images, i) {
  const p = `disks[${i}]`;
  const fs = el('fieldset', { className: 'item' }, el('legend', {}, `Disk ${i} (vd${String.fromCharCode(97 + i)})`));
  fs.dataset.item = p;
  fs.append(
    field(schema, `${p}.path`, 'Image', 'select', { choices: imageChoices(images, ['qcow2', 'disk', 'other'], false) }),
    field(schema, `${p}.format`, 'Format', 'select', { choices: [['', 'read from the file'], ['raw', 'raw'], ['qcow2', 'qcow2']] }),
    field(schema, `${p}.readonly`, 'Read-only', 'checkbox'),
    field(schema, `${p}.serial`, 'Serial'),
    field(schema, `${p}.limits.bps`, 'Limit bytes/s', 'number'),
    field(schema, `${p}.limits.iops`, 'Limit requests/s', 'number'),
    field(schema, `${p}.limits.bpsBurst`, 'Burst bytes', 'number'),
    field(schema, `${p}.limits.iopsBurst`, 'Burst requests', 'number'),
    removeButton(fs),
  );
  return fs;
}

function nicFieldset(schema, i) {
  const p = `nics[${i}]`;
  const fs = el('fieldset', { className: 'item' }, el('legend', {}, `NIC ${i} (eth${i})`));
  fs.dataset.item = p;
  fs.append(
    field(schema, `${p}.mode`, 'Mode', 'select', { choices: [['user', 'user (NAT)'], ['switch', 'switch'], ['tap', 'TAP']] }),
    field(schema, `${p}.mac`, 'MAC', 'text', { placeholder: 'chosen by the daemon' }),
    field(schema, `${p}.switch`, 'Switch name'),
    field(schema, `${p}.tap`, 'TAP device'),
    field(schema, `${p}.hostfwd`, 'Forwards (host to guest)', 'list', { placeholder: 'tcp:127.0.0.1:2222-:22' }),
    field(schema, `${p}.guestfwd`, 'Guest forwards', 'list', { placeholder: 'tcp:10.0.2.100:80-127.0.0.1:8080' }),
    field(schema, `${p}.allow`, 'Allow (user mode)', 'list', { placeholder: '192.0.2.0/24' }),
    field(schema, `${p}.hostLoopback`, 'Gateway is host loopback', 'checkbox'),
    field(schema, `${p}.limits.txBps`, 'Send bytes/s', 'number'),
    field(schema, `${p}.limits.rxBps`, 'Receive bytes/s', 'number'),
    field(schema, `${p}.limits.txPps`, 'Send frames/s', 'number'),
    field(schema, `${p}.limits.rxPps`, 'Receive frames/s', 'number'),
    removeButton(fs),
  );
  return fs;
}

function removeButton(fs) {
  const b = el('button', { type: 'button', className: 'danger remove-item' }, 'Remove');
  b.addEventListener('click', () => {
    const list = fs.parentElement;
    fs.remove();
    renumber(list);
  });
  return b;
}

/** After a removal, items are numbered 0..n-1 again (the API's indexes). */
function renumber(list) {
  [...list.querySelectorAll(':scope > fieldset.item')].forEach((fs, i) => {
    const old = fs.dataset.item;
    const now = old.replace(/\[\d+\]/, `[${i}]`);
    fs.dataset.item = now;
    const legend = fs.querySelector('legend');
    legend.textContent = legend.textContent.replace(/\d+ \((vd|eth)\w+\)/, (m, k) => `${i} (${k === 'vd' ? `vd${String.fromCharCode(97 + i)}` : `eth${i}`})`);
    for (const e of fs.querySelectorAll('[data-field], [data-error-for]')) {
      if (e.dataset.field) e.dataset.field = e.dataset.field.replace(old, now);
      if (e.dataset.errorFor) e.dataset.errorFor = e.dataset.errorFor.replace(old, now);
    }
  });
}

/**
 * Fill `box` with the form. `images`: GET /v1/images; `snapshots`: GET
 * /v1/snapshots; `preset`: values to start with (a restore: snapshot and memory).
 */
export function buildCreateForm(box, schema, images, snapshots, preset = {}) {
  box.textContent = '';
  const kernels = imageChoices(images, ['kernel'], false);
  const main = el('fieldset', { className: 'group' }, el('legend', {}, 'Machine'));
  main.append(
    field(schema, 'name', 'Name', 'text', { value: preset.name ?? '', placeholder: 'web-1' }),
    field(schema, 'memory', 'Memory (MiB)', 'number', { value: preset.memory ?? 256 }),
    field(schema, 'kernel', 'Kernel', 'select', { choices: kernels }),
    field(schema, 'initrd', 'Initramfs', 'select', { choices: imageChoices(images, ['initrd'], true) }),
    field(schema, 'append', 'Kernel command line', 'text', { placeholder: 'console=ttyS0' }),
    field(schema, 'rootDisk', 'First disk is the root file system', 'checkbox'),
    field(schema, 'balloon', 'Memory balloon', 'checkbox'),
    field(schema, 'snapshot', 'Start from snapshot', 'select', {
      choices: [['', '(boot the kernel)'], ...snapshots.filter((s) => !s.error && s.memory != null).map((s) => [s.name, `${s.name} (${s.memory} MiB, ${s.nics} NIC${s.nics === 1 ? '' : 's'})`])],
    }),
  );
  const run = el('fieldset', { className: 'group' }, el('legend', {}, 'Running'));
  run.append(
    field(schema, 'cpu.weight', 'CPU weight', 'number', { placeholder: '1024' }),
    field(schema, 'cpu.cap', 'CPU cap (cores)', 'number', { placeholder: 'none' }),
    field(schema, 'restart.policy', 'Restart policy', 'select', { choices: [['', 'no (default)'], ['no', 'no'], ['on-failure', 'on failure'], ['always', 'always']] }),
    field(schema, 'restart.maxRetries', 'Max restarts', 'number'),
    field(schema, 'isolation', 'Isolation', 'select', { choices: [['', 'thread (default)'], ['thread', 'thread'], ['process', 'process']] }),
    field(schema, 'stallTimeout', 'Stall timeout (s)', 'number', { placeholder: '60' }),
    field(schema, 'jit', 'JIT', 'checkbox', { value: true }),
    field(schema, 'deterministic', 'Deterministic', 'checkbox'),
  );
  const disks = el('div', { className: 'items', id: 'create-disks' });
  const nics = el('div', { className: 'items', id: 'create-nics' });
  const addDisk = el('button', { type: 'button', id: 'add-disk' }, 'Add disk');
  addDisk.addEventListener('click', () => {
    const n = disks.querySelectorAll(':scope > fieldset.item').length;
    if (n < (schemaAt(schema, 'disks')?.maxItems ?? 6)) disks.append(diskFieldset(schema, images, n));
  });
  const addNic = el('button', { type: 'button', id: 'add-nic' }, 'Add NIC');
  addNic.addEventListener('click', () => {
    const n = nics.querySelectorAll(':scope > fieldset.item').length;
    if (n < (schemaAt(schema, 'nics')?.maxItems ?? 4)) nics.append(nicFieldset(schema, n));
  });
  const devices = el('fieldset', { className: 'group wide' }, el('legend', {}, 'Disks and NICs'), disks, addDisk, nics, addNic);
  box.append(main, run, devices);
  if (preset.snapshot) box.querySelector('[data-field="snapshot"]').value = preset.snapshot;
  // A restore: as many NICs as the snapshot has, each with the MAC it was saved with.
  for (let i = 0; i < (preset.nics ?? 0); i++) {
    addNic.click();
    const mac = preset.macs?.[i];
    if (mac) box.querySelector(`[data-field="nics[${i}].mac"]`).value = mac;
  }
}

const LIST_SPLIT = /[\n,]+/;

/** The request body the form describes (empty fields left out). */
export function readCreateForm(box) {
  const body = {};
  const set = (path, value) => {
    const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
    let o = body;
    for (let i = 0; i < parts.length - 1; i++) {
      const k = parts[i];
      if (o[k] === undefined) o[k] = /^\d+$/.test(parts[i + 1]) ? [] : {};
      o = o[k];
    }
    o[parts[parts.length - 1]] = value;
  };
  // Each disk and NIC exists as soon as its fieldset does, even with every field empty.
  for (const fs of box.querySelectorAll('fieldset.item')) set(`${fs.dataset.item}.__item`, true);
  for (const input of box.querySelectorAll('[data-field]')) {
    const kind = input.dataset.kind;
    const path = input.dataset.field;
    if (kind === 'checkbox') {
      // Only what differs from the default is sent.
      if (path === 'jit' ? !input.checked : input.checked) set(path, input.checked);
      continue;
    }
    const raw = input.value.trim();
    if (raw === '') continue;
    if (kind === 'number') set(path, Number(raw));
    else if (kind === 'list') set(path, raw.split(LIST_SPLIT).map((x) => x.trim()).filter(Boolean));
    else set(path, raw);
  }
  const strip = (o) => {
    if (Array.isArray(o)) o.forEach(strip);
    else if (o && typeof o === 'object') {
      delete o.__item;
      Object.values(o).forEach(strip);
    }
  };
  strip(body);
  return body;
}

/** Check every field against the schema; shows each refusal by its field and returns how many there were. */
export function checkCreateForm(box, schema) {
  clearFieldErrors(box);
  let bad = 0;
  for (const input of box.querySelectorAll('[data-field]')) {
    const kind = input.dataset.kind;
    if (kind === 'checkbox' || kind === 'list' || input.value.trim() === '') continue;
    const path = input.dataset.field;
    const value = kind === 'number' ? Number(input.value.trim()) : input.value.trim();
    const msg = checkValue(schemaAt(schema, path), value, path);
    if (msg) {
      showFieldError(box, msg);
      bad++;
    }
  }
  for (const required of schema.required ?? []) {
    const input = box.querySelector(`[data-field="${required}"]`);
    if (input && input.value.trim() === '') {
      showFieldError(box, `${required}: is required`);
      bad++;
    }
  }
  return bad;
}

export function clearFieldErrors(box) {
  for (const e of box.querySelectorAll('.field-error')) e.textContent = '';
  for (const e of box.querySelectorAll('[aria-invalid]')) e.removeAttribute('aria-invalid');
}

/**
 * Put an API message "FIELD: problem" next to FIELD (or the nearest enclosing
 * field the form has). Returns false when no field matches.
 */
export function showFieldError(box, message) {
  const m = /^([A-Za-z0-9_.[\]]+): /.exec(message);
  if (!m) return false;
  let path = m[1];
  while (path) {
    const slot = box.querySelector(`[data-error-for="${CSS.escape(path)}"]`);
    if (slot) {
      slot.textContent = message;
      const input = box.querySelector(`[data-field="${CSS.escape(path)}"]`);
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        if (!box.querySelector('[aria-invalid]:focus')) input.focus();
      }
      return true;
    }
    // "disks[0].limits.bps" -> "disks[0].limits" -> "disks[0]" -> "disks"
    path = path.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
  }
  return false;
}

export { $ };
