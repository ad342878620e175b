// The write context of the signed-in user on this device.
import { deviceId, loadSession } from './api';
import { database } from './db/database';
import type { Ctx } from './db/writes';

export function ctx(): Ctx {
  const s = loadSession();
  if (!s) throw new Error('not signed in');
  return { db: database(), userId: s.user.id, deviceId: deviceId() };
}
