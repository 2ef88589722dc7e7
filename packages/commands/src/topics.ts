import type { TopicSpec } from '@dwell/kafka';

/** The three topics of the command channel (docs/commands.md). */
export interface CommandTopics {
  /** Commands, settle records and forwarded replies; key user_id. */
  readonly commands: string;
  /** Outcomes for requesters; key requester. */
  readonly replies: string;
  /** Who is connected where; compacted. */
  readonly presence: string;
}

export const DEFAULT_COMMAND_TOPICS: CommandTopics = {
  commands: 'dwell.commands.v1',
  replies: 'dwell.replies.v1',
  presence: 'dwell.presence.v1',
};

/**
 * How the topics are created when missing. Commands and replies are short-lived (a command matters
 * until its deadline; a day is kept for inspection). Presence is compacted: the latest record per
 * key is the state, tombstones are dropped after a day, and small segments let compaction run.
 */
export function commandTopicSpecs(topics: CommandTopics): TopicSpec[] {
  return [
    { topic: topics.commands, configEntries: { 'retention.ms': String(24 * 3600_000) } },
    { topic: topics.replies, configEntries: { 'retention.ms': String(24 * 3600_000) } },
    {
      topic: topics.presence,
      configEntries: {
        'cleanup.policy': 'compact',
        'segment.ms': String(3600_000),
        'min.cleanable.dirty.ratio': '0.1',
        'delete.retention.ms': String(24 * 3600_000),
      },
    },
  ];
}

/** The key of a gateway's heartbeat record on the presence topic. */
export function presenceGatewayKey(gatewayId: string): string {
  return `g ${gatewayId}`;
}

/** The key of "this gateway holds connections of this user" (site and user ids contain no spaces). */
export function presenceUserKey(siteId: string, userId: string, gatewayId: string): string {
  return `u ${siteId} ${userId} ${gatewayId}`;
}
