// Placeholder until the user-mode NAT stack lands (src/net/user/).
import type { NetBackend } from './backend.js';

export async function createUserBackend(_params: string[]): Promise<NetBackend> {
  throw new Error('--net user: user-mode networking is not available in this build');
}
