import type { Gateway, Identity, ServiceKeys } from './api.ts';

/** A signed-in session: the key lives only inside `gateway`, in this tab's memory. */
export interface Session {
  readonly gateway: Gateway;
  readonly identity: Identity;
  /** The service's published signing keys; null when they could not be fetched. */
  readonly serviceKeys: ServiceKeys | null;
}
