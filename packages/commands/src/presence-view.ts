/**
 * The requester's picture of who is connected where, built from the compacted presence topic.
 * Pure: records and the clock come in as arguments (docs/commands.md, "Presence").
 *
 * A user counts as online while some gateway holds a user record for them AND that gateway's own
 * record has the same epoch and an unexpired lease. So a gateway that dies without a word (kill -9,
 * a lost machine) takes its users offline when its lease runs out, and records left from an
 * earlier run of the same gateway id never count.
 */
import type { Presence } from '@dwell/protocol';

interface GatewayLease {
  readonly epoch: string;
  readonly atMs: number;
  readonly leaseMs: number;
}

interface UserPlacement {
  readonly userId: string;
  readonly siteId: string | null;
  readonly gatewayId: string;
  readonly epoch: string;
}

export interface PresenceViewOptions {
  /** Allowance for clock skew between gateways and this process, ms. Default 1000. */
  readonly skewToleranceMs?: number;
  /** Called after a record changed what `isOnline` may answer: with the user, or undefined for a gateway. */
  readonly onChange?: (userId: string | undefined) => void;
}

export class PresenceView {
  private readonly gateways = new Map<string, GatewayLease>();
  /** Presence key → placement, for tombstones (they carry only the key). */
  private readonly byKey = new Map<string, UserPlacement>();
  private readonly byUser = new Map<string, Map<string, UserPlacement>>();
  private readonly skewToleranceMs: number;
  private readonly onChange: ((userId: string | undefined) => void) | undefined;

  constructor(options: PresenceViewOptions = {}) {
    this.skewToleranceMs = options.skewToleranceMs ?? 1000;
    this.onChange = options.onChange;
  }

  /** Applies one record of the presence topic; `value` null is a tombstone. Unknown keys are ignored. */
  apply(key: string, value: Presence | null): void {
    if (key.startsWith('g ')) {
      const gatewayId = key.slice(2);
      if (value === null || value.kind !== 'gateway') this.gateways.delete(gatewayId);
      else this.gateways.set(gatewayId, { epoch: value.epoch, atMs: value.at_ms, leaseMs: value.lease_ms });
      this.onChange?.(undefined);
      return;
    }
    if (!key.startsWith('u ')) return;
    const previous = this.byKey.get(key);
    if (previous !== undefined) {
      this.byKey.delete(key);
      const placements = this.byUser.get(previous.userId);
      placements?.delete(key);
      if (placements?.size === 0) this.byUser.delete(previous.userId);
    }
    if (value !== null && value.kind === 'user' && value.user_id !== null) {
      const placement: UserPlacement = {
        userId: value.user_id,
        siteId: value.site_id,
        gatewayId: value.gateway_id,
        epoch: value.epoch,
      };
      this.byKey.set(key, placement);
      let placements = this.byUser.get(placement.userId);
      if (placements === undefined) {
        placements = new Map();
        this.byUser.set(placement.userId, placements);
      }
      placements.set(key, placement);
    }
    const userId = value?.user_id ?? previous?.userId;
    if (userId !== undefined && userId !== null) this.onChange?.(userId);
  }

  /** Whether a live gateway holds a connection of the user (of that site, when given). */
  isOnline(userId: string, siteId: string | null, nowMs: number): boolean {
    const placements = this.byUser.get(userId);
    if (placements === undefined) return false;
    for (const placement of placements.values()) {
      if (siteId !== null && placement.siteId !== siteId) continue;
      if (this.alive(placement.gatewayId, placement.epoch, nowMs)) return true;
    }
    return false;
  }

  /** The gateways this view counts as alive now. */
  liveGateways(nowMs: number): string[] {
    return [...this.gateways.entries()]
      .filter(([id, lease]) => this.alive(id, lease.epoch, nowMs))
      .map(([id]) => id);
  }

  /** User records held (live or not): what the topic costs to read. */
  get size(): number {
    return this.byKey.size;
  }

  private alive(gatewayId: string, epoch: string, nowMs: number): boolean {
    const lease = this.gateways.get(gatewayId);
    return (
      lease !== undefined &&
      lease.epoch === epoch &&
      lease.leaseMs > 0 &&
      nowMs <= lease.atMs + lease.leaseMs + this.skewToleranceMs
    );
  }
}
