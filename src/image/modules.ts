// Kernel module selection for the initramfs. Debian's kernel package ships no
// modules.dep (depmod runs at install time), so dependencies are read from each
// module's own .modinfo ELF section ("depends=", "softdep=", "alias=").

import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export interface ModInfo {
  name: string;
  depends: string[];
  softdepPre: string[];
  softdepPost: string[];
  aliases: string[];
}

/** Parses the .modinfo section of an (uncompressed) ELF64 or ELF32 kernel module. */
export function parseModinfo(elf: Uint8Array, fallbackName: string): ModInfo {
  const info: ModInfo = { name: fallbackName, depends: [], softdepPre: [], softdepPost: [], aliases: [] };
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    throw new Error(`${fallbackName}: not an ELF file`);
  }
  const is64 = elf[4] === 2;
  const le = elf[5] === 1;
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, le);
  const u32 = (o: number): number => dv.getUint32(o, le);
  const uN = (o: number): number => (is64 ? Number(dv.getBigUint64(o, le)) : u32(o));
  const shoff = is64 ? uN(0x28) : u32(0x20);
  const shentsize = u16(is64 ? 0x3a : 0x2e);
  const shnum = u16(is64 ? 0x3c : 0x30);
  const shstrndx = u16(is64 ? 0x3e : 0x32);
  const sect = (i: number): { name: number; off: number; size: number } => {
    const b = shoff + i * shentsize;
    return is64
      ? { name: u32(b), off: uN(b + 0x18), size: uN(b + 0x20) }
      : { name: u32(b), off: u32(b + 0x10), size: u32(b + 0x14) };
  };
  const strtab = sect(shstrndx);
  const dec = new TextDecoder();
  const cstr = (o: number): string => {
    let e = o;
    while (e < elf.length && elf[e] !== 0) e++;
    return dec.decode(elf.subarray(o, e));
  };
  for (let i = 0; i < shnum; i++) {
    const s = sect(i);
    if (cstr(strtab.off + s.name) !== '.modinfo') continue;
    const text = dec.decode(elf.subarray(s.off, s.off + s.size));
    for (const kv of text.split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      const v = kv.slice(eq + 1);
      if (k === 'name') info.name = v;
      else if (k === 'depends') info.depends.push(...v.split(',').filter(Boolean));
      else if (k === 'alias') info.aliases.push(v);
      else if (k === 'softdep') {
        let bucket: string[] | undefined;
        for (const w of v.split(/\s+/).filter(Boolean)) {
          if (w === 'pre:') bucket = info.softdepPre;
          else if (w === 'post:') bucket = info.softdepPost;
          else bucket?.push(w);
        }
      }
    }
    break;
  }
  info.name = normalizeModName(info.name);
  info.depends = info.depends.map(normalizeModName);
  return info;
}

export function normalizeModName(n: string): string {
  return n.replace(/-/g, '_');
}

/** "kernel/x/virtio-rng.ko.xz" -> "virtio_rng" */
export function modNameOfPath(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1).replace(/\.ko(\.(xz|zst|gz))?$/, '');
  return normalizeModName(base);
}

function run(cmd: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'buffer', maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Reads a module file, decompressing .ko.xz / .ko.zst (host xz / zstd) or .ko.gz. */
export async function readModuleFile(path: string): Promise<Buffer> {
  if (path.endsWith('.ko')) return readFile(path);
  if (path.endsWith('.ko.gz')) return gunzipSync(await readFile(path));
  if (path.endsWith('.ko.xz')) return run('xz', ['-dc', '--', path]);
  if (path.endsWith('.ko.zst')) return run('zstd', ['-dcq', '--', path]);
  throw new Error(`unknown module file type: ${path}`);
}

export interface SelectedModule {
  name: string;
  /** Path relative to the modules dir, with the compression suffix removed ("kernel/fs/ext4/ext4.ko"). */
  path: string;
  /** Uncompressed contents. */
  data: Buffer;
  info: ModInfo;
}

export interface ModuleSelection {
  /** Selected modules in load order (dependencies first). */
  modules: SelectedModule[];
  /** Requested modules that are built into the kernel. */
  builtin: string[];
  /** Requested modules found nowhere. */
  missing: string[];
  /** modules.dep text for the selection (paths of the uncompressed files). */
  modulesDep: string;
  /** modules.alias text for the selection. */
  modulesAlias: string;
}

async function walk(dir: string, rel: string, out: string[]): Promise<void> {
  for (const d of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${d.name}` : d.name;
    if (d.isDirectory()) await walk(dir, r, out);
    else if (/\.ko(\.(xz|zst|gz))?$/.test(d.name)) out.push(r);
  }
}

/**
 * Picks `wanted` modules and everything they need (hard dependencies and
 * soft dependencies) from a modules directory (/lib/modules/<version>).
 */
export async function selectModules(modulesDir: string, wanted: string[]): Promise<ModuleSelection> {
  const files: string[] = [];
  await walk(modulesDir, '', files);
  const byName = new Map<string, string>();
  for (const f of files) byName.set(modNameOfPath(f), f);
  let builtinNames = new Set<string>();
  try {
    const b = await readFile(join(modulesDir, 'modules.builtin'), 'utf8');
    builtinNames = new Set(b.split('\n').filter(Boolean).map(modNameOfPath));
  } catch {
    /* no modules.builtin */
  }

  const loaded = new Map<string, SelectedModule>();
  const load = async (name: string): Promise<SelectedModule | undefined> => {
    const have = loaded.get(name);
    if (have) return have;
    const f = byName.get(name);
    if (!f) return undefined;
    const data = await readModuleFile(join(modulesDir, f));
    const info = parseModinfo(data, name);
    const m: SelectedModule = { name, path: f.replace(/\.(xz|zst|gz)$/, ''), data, info };
    loaded.set(name, m);
    return m;
  };
  // A soft dependency may name an alias ("crc32c") rather than a module:
  // try the name itself, then modules whose name starts with it (minus a "crypto-" prefix)
  // and that declare the alias.
  const resolveSoft = async (n: string): Promise<string | undefined> => {
    const nn = normalizeModName(n);
    if (byName.has(nn)) return nn;
    if (builtinNames.has(nn)) return undefined;
    const base = normalizeModName(n.replace(/^crypto-/, ''));
    const cands = [...byName.keys()].filter((k) => k.startsWith(base)).sort((a, b) => a.length - b.length);
    for (const c of cands) {
      const m = await load(c);
      if (m && m.info.aliases.some((a) => a === n || normalizeModName(a) === nn)) return c;
    }
    return undefined;
  };

  const builtin: string[] = [];
  const missing: string[] = [];
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = async (name: string): Promise<void> => {
    if (state.has(name)) return;
    state.set(name, 'visiting');
    const m = await load(name);
    if (!m) {
      state.set(name, 'done');
      return;
    }
    for (const s of m.info.softdepPre) {
      const r = await resolveSoft(s);
      if (r) await visit(r);
    }
    for (const d of m.info.depends) {
      if (byName.has(d)) await visit(d);
    }
    order.push(name);
    state.set(name, 'done');
    for (const s of m.info.softdepPost) {
      const r = await resolveSoft(s);
      if (r) await visit(r);
    }
  };
  for (const w of wanted) {
    const n = normalizeModName(w);
    if (byName.has(n)) await visit(n);
    else if (builtinNames.has(n)) builtin.push(n);
    else missing.push(n);
  }

  const modules = order.map((n) => loaded.get(n)!);
  // modules.dep: "path: deps..." where every transitive hard dependency is
  // listed, each module before the modules it needs (modprobe loads from the end).
  const depLines: string[] = [];
  for (const m of modules) {
    const closure: string[] = [];
    const seen = new Set<string>();
    const rec = (n: string): void => {
      const x = loaded.get(n);
      if (!x) return;
      for (const d of x.info.depends) {
        if (seen.has(d) || !loaded.has(d)) continue;
        seen.add(d);
        rec(d);
        closure.push(d);
      }
    };
    rec(m.name);
    // closure is dependencies-first; modules.dep wants the reverse
    const deps = closure.reverse().map((n) => loaded.get(n)!.path);
    depLines.push(`${m.path}:${deps.length ? ' ' + deps.join(' ') : ''}`);
  }
  const aliasLines: string[] = [];
  for (const m of modules) for (const a of m.info.aliases) aliasLines.push(`alias ${a} ${m.name}`);
  return {
    modules,
    builtin,
    missing,
    modulesDep: depLines.join('\n') + '\n',
    modulesAlias: aliasLines.join('\n') + (aliasLines.length ? '\n' : ''),
  };
}
