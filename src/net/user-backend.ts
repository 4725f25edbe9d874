// `--net user,...`: the user-mode NAT backend, with its host port forwards open.

import type { NetBackend } from './backend.js';
import type { HostAccess } from './user/host-access.js';
import { parseUserNetOptions } from './user/options.js';
import { UserNet } from './user/user-net.js';

export async function createUserBackend(params: string[], hostAccess?: HostAccess): Promise<NetBackend> {
  const r = parseUserNetOptions(params);
  if (!r.ok) throw new Error(r.error);
  const n = new UserNet({ ...r.options, hostAccess });
  try {
    await n.listen();
  } catch (e) {
    await n.close();
    throw e;
  }
  return n;
}
