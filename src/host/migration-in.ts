// The destination of a live migration: a stream arrives on the API port (an
// HTTP upgrade authenticated with this daemon's token). The VM is checked like
// a create request, built in a worker from the pages and the device state, and
// started only after COMMIT, once the source has let go of the disk images.
// Anything that goes wrong before that drops everything made here.

import type { Duplex } from 'node:stream';
import type { Host } from './registry.js';
import type { VmSupervisor } from './vm-supervisor.js';
import type { VmHandle } from '../vm/vm-handle.js';
import { diskSize } from './migration-out.js';
import { createDiskCopies, type DiskCopies } from './migration-disks.js';
import { FramedSocket } from '../vm/migration/framed-socket.js';
import {
  FrameType, MIGRATION_MAGIC, MIGRATION_VERSION, PAGE_SIZE, decodeJson, decodePages, encodeJson, frameTypeName, MigrationStreamError,
} from '../vm/migration/stream.js';

type IncomingState = 'receiving' | 'starting' | 'running' | 'aborted';

interface Incoming {
  state: IncomingState;
  name: string;
  /** Settles when the state leaves 'starting'. */
  settled: Promise<void>;
  abort: () => void;
}

/** Waiting for the source's first frame, and for any frame later. */
const HELLO_TIMEOUT_MS = 30_000;
const FRAME_TIMEOUT_MS = 120_000;
const ID = /^[A-Za-z0-9-]{8,64}$/;
/** PAGES batches handed to the worker and not yet applied, at most. */
const LOAD_WINDOW = 4;

export class IncomingMigrations {
  private readonly byId = new Map<string, Incoming>();

  constructor(private readonly host: Host, private readonly log: (m: string) => void) {}

  /**
   * The answer to a source that lost the connection after COMMIT: 'running'
   * once the VM runs here, else 'aborted', and from then on it never starts.
   */
  async status(id: string): Promise<{ state: IncomingState } | null> {
    const m = this.byId.get(id);
    if (!m) return null;
    if (m.state === 'receiving') m.abort();
    await m.settled;
    return { state: m.state };
  }

  accept(socket: Duplex, head: Buffer): void {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: tsvisor-migration\r\nconnection: upgrade\r\n\r\n');
    const conn = new FramedSocket(socket, head);
    void this.run(conn).catch((e: unknown) => this.log(`incoming migration: ${e instanceof Error ? e.message : String(e)}`));
  }

  private async run(conn: FramedSocket): Promise<void> {
    let vm: VmSupervisor | null = null;
    let handle: VmHandle | null = null;
    let entry: Incoming | null = null;
    /** The definition written ahead (DefinitionStore.stage), until it is put in place. */
    let staged: string | null = null;
    let copies: DiskCopies | null = null;
    let settle = () => {};
    const refuse = async (why: string) => {
      await conn.send(encodeJson(FrameType.REFUSE, { error: why })).catch(() => {});
      void conn.close();
    };
    try {
      const hf = await conn.next(HELLO_TIMEOUT_MS);
      if (hf.type !== FrameType.HELLO) throw new MigrationStreamError(`expected HELLO, got ${frameTypeName(hf.type)}`);
      const hello = decodeJson(hf);
      if (hello.magic !== MIGRATION_MAGIC) return await refuse('not a tsvisor migration stream (bad magic)');
      if (hello.version !== MIGRATION_VERSION) return await refuse(`migration stream version ${String(hello.version)} is not the one this daemon speaks (${MIGRATION_VERSION})`);
      if (typeof hello.id !== 'string' || !ID.test(hello.id) || this.byId.has(hello.id)) return await refuse('bad or reused migration id');
      const sizes = hello.diskSizes;
      if (!Array.isArray(sizes) || sizes.length > 6 || !sizes.every((n) => Number.isSafeInteger(n) && n >= 0)) return await refuse('diskSizes: a list of byte counts');
      if (hello.copyStorage !== undefined) {
        // --copy-storage: new images of this daemon's own, filled by the stream (made before the definition is checked, which needs them).
        try {
          copies = createDiskCopies(hello.copyStorage, sizes as number[], this.host.opts.imagesDir);
        } catch (e) {
          return await refuse(e instanceof Error ? e.message : String(e));
        }
      }
      try {
        vm = this.host.reserveIncoming(hello.definition);
      } catch (e) {
        copies?.discard();
        return await refuse(e instanceof Error ? e.message : String(e));
      }
      const memMiB = vm.config.memory;
      if (hello.memMiB !== memMiB) {
        this.host.dropIncoming(vm.name);
        copies?.discard();
        return await refuse('memMiB does not match the definition');
      }
      // Shared storage: the images must be here, at the same paths, and the same size.
      const disks = vm.config.disks ?? [];
      if (disks.length !== sizes.length) {
        this.host.dropIncoming(vm.name);
        copies?.discard();
        return await refuse(`the source sent ${sizes.length} disk sizes for ${disks.length} disks`);
      }
      for (const [i, d] of disks.entries()) {
        let size: number;
        try {
          size = await diskSize(d.path, d.format, this.host.opts.imagesDir);
        } catch (e) {
          this.host.dropIncoming(vm.name);
          copies?.discard();
          return await refuse(`disks[${i}]: ${d.path} cannot be opened on the destination (shared storage expected): ${e instanceof Error ? e.message : String(e)}`);
        }
        if (size !== sizes[i]) {
          this.host.dropIncoming(vm.name);
          copies?.discard();
          return await refuse(`disks[${i}]: ${d.path} has ${size} bytes here, ${String(sizes[i])} at the source: not the same image`);
        }
      }
      const id = hello.id;
      const settled = new Promise<void>((r) => (settle = r));
      entry = { state: 'receiving', name: vm.name, settled, abort: () => conn.destroy() };
      this.byId.set(id, entry);
      // Forget the answer after a while; a source asks within seconds.
      setTimeout(() => this.byId.delete(id), 3_600_000).unref();
      handle = await vm.startIncoming(sizes as number[]);
      const exited = handle.exited;
      // Written (and fsynced) now, put in place by a rename once the VM runs: no fsync in the downtime.
      staged = this.host.stageIncoming(vm);
      if (copies) await copies.open();
      await conn.send(encodeJson(FrameType.ACCEPT, copies ? { copyStorage: true } : {}));
      const pageCount = Math.floor((memMiB * 1024 * 1024) / PAGE_SIZE);
      let haveState = false;
      // Batches on their way into the worker: a few at once, so decoding the next overlaps writing this one.
      const loading: Promise<unknown>[] = [];
      const loaded = async () => {
        while (loading.length) await loading.shift();
      };
      for (;;) {
        const f = await Promise.race([conn.next(FRAME_TIMEOUT_MS), exited.then((x) => Promise.reject(new Error(`the VM worker ended: ${x.reason}`)))]);
        if (f.type === FrameType.PAGES) {
          if (haveState) throw new MigrationStreamError('pages after the device state');
          const b = decodePages(f.payload, pageCount);
          // A payload that owns its whole buffer (a frame joined from many reads) moves to the worker uncopied.
          const whole = b.data.byteOffset === 0 && b.data.byteLength === b.data.buffer.byteLength;
          const load = handle.command({ type: 'migrateLoad', indexes: b.indexes, offsets: b.offsets, data: b.data },
            whole ? [b.data.buffer as ArrayBuffer, b.indexes.buffer as ArrayBuffer, b.offsets.buffer as ArrayBuffer] : []);
          load.catch(() => {}); // awaited below; never unhandled meanwhile
          loading.push(load);
          if (loading.length >= LOAD_WINDOW) await loading.shift();
        } else if (f.type === FrameType.DISK) {
          if (!copies) throw new MigrationStreamError('disk blocks in a migration without --copy-storage');
          if (haveState) throw new MigrationStreamError('disk blocks after the device state');
          copies.apply(f.payload);
        } else if (f.type === FrameType.ROUND) {
          const j = decodeJson(f);
          if (!Number.isSafeInteger(j.round)) throw new MigrationStreamError('ROUND: bad round number');
          // The final round (the guest is stopped) is acknowledged at once: the device state
          // follows, and its ACK comes only once the worker, which takes commands in order,
          // has applied these pages too. One wait for the worker less in the downtime.
          if (j.final !== true) await loaded();
          if (!haveState) await conn.send(encodeJson(FrameType.ACK, { round: j.round }));
        } else if (f.type === FrameType.STATE) {
          if (haveState) throw new MigrationStreamError('the device state arrived twice');
          const j = decodeJson(f);
          // Posted behind the pages still on their way: the worker applies them first.
          const applied = handle.command({ type: 'migrateState', machine: j.machine });
          applied.catch(() => {}); // awaited below; never unhandled meanwhile
          await loaded();
          // The copied images are complete: on disk and closed before the VM opens them.
          copies?.finish();
          await applied;
          haveState = true;
          await conn.send(encodeJson(FrameType.ACK, { state: true }));
        } else if (f.type === FrameType.COMMIT) {
          if (!haveState) throw new MigrationStreamError('COMMIT before the device state');
          break;
        } else if (f.type === FrameType.CANCEL) {
          const j = decodeJson(f);
          throw new Error(`the source cancelled: ${typeof j.reason === 'string' ? j.reason.slice(0, 500) : 'no reason'}`);
        } else {
          throw new MigrationStreamError(`unexpected ${frameTypeName(f.type)} frame`);
        }
      }
      // COMMIT: from here the VM starts unless it cannot; the connection no longer matters.
      entry.state = 'starting';
      try {
        vm.lockForIncoming();
        const started = new Promise<void>((resolve, reject) => {
          handle!.once('migrated', () => resolve());
          void exited.then((x) => reject(new Error(`the VM did not start: ${x.reason}`)));
        });
        // If migrateStart itself fails, `started` is never awaited: its later rejection must not be unhandled.
        started.catch(() => {});
        await handle.command({ type: 'migrateStart' });
        await started;
      } catch (e) {
        entry.state = 'aborted';
        throw e;
      }
      vm.adoptIncoming(handle);
      copies?.keep();
      this.host.registerIncoming(vm, staged);
      staged = null;
      entry.state = 'running';
      settle();
      this.log(`${vm.name}: arrived by live migration and runs`);
      await conn.send(encodeJson(FrameType.RUNNING, {})).catch(() => {});
      void conn.close();
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (entry) entry.state = 'aborted';
      if (staged) this.host.dropStaged(staged);
      settle();
      if (handle) await handle.kill(`migration dropped: ${why}`);
      if (vm) {
        vm.releaseImagesForMigration();
        this.host.dropIncoming(vm.name);
      }
      copies?.discard();
      await conn.send(encodeJson(FrameType.FAILED, { error: why })).catch(() => {});
      conn.destroy();
      throw new Error(`${vm?.name ?? 'unknown VM'}: dropped: ${why}`);
    }
  }
}
