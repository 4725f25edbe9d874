// Drives a VM's console from a test: collects its output, waits for text,
// types commands. Used by the tests that run VMs in-process through VmHandle.

import { VmHandle, defaultWasmPath, type VmHandleOptions } from '../../src/vm/vm-handle.js';
import { ensureDefaultGuest } from '../../src/image/default-guest.js';
import type { VmConfig } from '../../src/vm/protocol.js';
import type { ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { budget } from './budget.js';

/**
 * VMs booted through this module. A test that fails half-way (a timed-out wait,
 * a failed assertion) may leave its VM running, and a live worker thread keeps
 * the test file's process, and so the whole suite, from ever ending: every VM
 * still running when the file's tests are done is killed.
 */
const booted = new Set<VmHandle>();
after(async () => {
  await Promise.all([...booted].filter((vm) => vm.running).map((vm) => vm.kill('left running by a test')));
});

/** Where a console's bytes come from and go to: a VmHandle or a child `tsvisor run`. */
interface ConsoleLink {
  onOutput(cb: (b: Uint8Array) => void): void;
  onExit(cb: () => void): void;
  send(b: Uint8Array): void;
  readonly running: boolean;
}

/** How many times its stall limit a wait may last while output keeps coming. */
const STALL_CAP = 10;

export class Console {
  out = '';
  /** Date.now() of the latest output. */
  private lastOutputAt = 0;
  private waiters: (() => void)[] = [];

  constructor(private readonly link: ConsoleLink) {
    link.onOutput((b) => {
      this.out += Buffer.from(b).toString('latin1');
      this.lastOutputAt = Date.now();
      for (const w of this.waiters.splice(0)) w();
    });
    link.onExit(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /**
   * Wait until `re` matches the output after position `from`; returns the match.
   * `ms` bounds a stall, not the whole wait: every new output extends the
   * deadline to `ms` after it, so a guest slowed by a loaded host still passes
   * while it makes progress (a boot prints all the way). A guest that keeps
   * printing without ever matching fails after STALL_CAP times `ms`.
   */
  async waitFor(re: RegExp, stallMs: number, from = 0): Promise<RegExpMatchArray> {
    // A loaded host slows the guest's every step (e.g. 64 MiB through tr at load 20): the stall limit grows with it.
    const ms = budget(stallMs);
    const start = Date.now();
    const cap = start + ms * STALL_CAP;
    for (;;) {
      const m = this.out.slice(from).match(re);
      if (m) return m;
      if (!this.link.running) throw new Error(`VM ended while waiting for ${re}; output:\n${this.out.slice(-2000)}`);
      const now = Date.now();
      const end = Math.min(cap, Math.max(start, this.lastOutputAt) + ms);
      const left = end - now;
      if (left <= 0) {
        const why = now >= cap ? `${Math.round((now - start) / 1000)} s of output` : `${Math.round((now - Math.max(start, this.lastOutputAt)) / 1000)} s without output`;
        // The output since `from` first (e.g. whether a typed command was even echoed), then the tail.
        const since = this.out.slice(from);
        const shown = since.length > 2000 ? `[${since.length - 2000} bytes before]…${since.slice(-2000)}` : since;
        throw new Error(`timed out waiting for ${re} (${why}); ${since.length} bytes of output since the wait began:\n${shown}\n--- tail of all output:\n${this.out.slice(-1000)}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Type a command line; resolves with the output position before it, for waitFor(…, from). */
  type(line: string): number {
    const at = this.out.length;
    this.link.send(Buffer.from(line.endsWith('\n') ? line : `${line}\n`));
    return at;
  }

  /**
   * After the guest's ready line, wait for its shell's first prompt. A line typed
   * before the console shell starts is echoed by the guest's tty and then lost
   * (measured: typed within 400 ms of the ready line it never ran, every time),
   * so a test that types right after, e.g., the DHCP line would wait for ever.
   * A shell that never prompts in this form is not waited for past the limit.
   */
  private async shellStarted(): Promise<void> {
    const ready = this.out.lastIndexOf('tsvisor guest ready');
    if (ready < 0) return;
    try {
      await this.waitFor(/[#$] /, 30_000, ready);
    } catch {
      // no prompt of this form: type anyway
    }
  }

  /** Run a shell command and wait for a marker it prints at the end; returns its output. */
  async run(cmd: string, ms = 60_000): Promise<string> {
    await this.shellStarted();
    const tag = `END${Math.random().toString(36).slice(2, 8)}`;
    const at = this.type(`${cmd}; echo ${tag.slice(0, 3)}""${tag.slice(3)} $?`);
    const m = await this.waitFor(new RegExp(`${tag} (\\d+)`), ms, at);
    const text = this.out.slice(at, this.out.indexOf(m[0], at));
    return `${text}\nstatus ${m[1]}`;
  }
}

export class VmConsole extends Console {
  constructor(readonly vm: VmHandle) {
    super({
      onOutput: (cb) => vm.on('output', cb),
      onExit: (cb) => vm.on('exit', cb),
      send: (b) => vm.sendInput(b),
      get running() {
        return vm.running;
      },
    });
  }
}

/** The console of a child process (e.g. `tsvisor run` started by the test). */
export class ChildConsole extends Console {
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    let alive = true;
    super({
      onOutput: (cb) => {
        child.stdout!.on('data', cb);
        child.stderr!.on('data', cb);
      },
      onExit: (cb) => child.on('exit', cb),
      send: (b) => child.stdin!.write(b),
      get running() {
        return alive;
      },
    });
    this.exited = new Promise((r) =>
      child.on('exit', (code) => {
        alive = false;
        r(code);
      }),
    );
  }
}

/** Boot the default guest in-process; resolves once its shell is ready. */
export async function bootDefaultGuest(
  extra: Partial<VmConfig> = {},
  options: VmHandleOptions = {},
  bootMs = 240_000,
): Promise<VmConsole> {
  const guest = await ensureDefaultGuest({});
  const vm = new VmHandle(
    {
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: 'console=ttyS0',
      memMiB: 128,
      deterministic: false,
      wasmPath: defaultWasmPath(),
      ...extra,
    },
    options,
  );
  const c = new VmConsole(vm);
  booted.add(vm);
  vm.start();
  try {
    await c.waitFor(/tsvisor guest ready/, bootMs);
    await c.waitFor(/# /, 30_000);
  } catch (e) {
    await vm.kill('the guest did not boot');
    throw e;
  }
  return c;
}
