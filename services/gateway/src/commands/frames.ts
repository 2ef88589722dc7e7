/**
 * The command frames a client receives (WebSocket text frames, or SSE `data:` lines) and the
 * test that tells a client's control frame from an events frame. docs/protocol.md, "Commands".
 */
import type { RejectionReasonCode } from '@dwell/protocol';
import type { BoardEntry } from './board.js';

/** `{"t":"command",…}`: args go out as the JSON text the backend stored, not re-encoded. */
export function commandFrame(entry: BoardEntry, nowMs: number): string {
  const { command } = entry;
  return (
    `{"t":"command","id":${JSON.stringify(command.id)},"name":${JSON.stringify(command.name)},"args":${command.args},` +
    `"deadline_ms":${entry.deadlineMs},"timeout_ms":${Math.max(0, entry.deadlineMs - nowMs)}}`
  );
}

/** `{"t":"cancel",…}`: the command needs no answer from this connection any more. */
export function cancelFrame(commandId: string, reason: 'settled' | 'expired'): string {
  return JSON.stringify({ t: 'cancel', id: commandId, reason });
}

/** A reply refused after the fact (it was forwarded from another gateway): names the command, not a frame. */
export function replyErrorFrame(commandId: string, reason: RejectionReasonCode, detail: string): string {
  return JSON.stringify({ t: 'error', id: commandId, reason, detail });
}

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * A client text frame whose JSON object opens with the member `"t"` is a control frame (a reply);
 * anything else is an events frame. Checked on the first bytes only, so events frames pay nothing.
 */
export function isControlFrame(message: ArrayBuffer): boolean {
  const bytes = new Uint8Array(message, 0, Math.min(message.byteLength, 64));
  let i = 0;
  const skip = (): void => {
    while (i < bytes.length && SPACE.has(bytes[i] as number)) i++;
  };
  skip();
  if (bytes[i++] !== 0x7b) return false; // {
  skip();
  return bytes[i] === 0x22 && bytes[i + 1] === 0x74 && bytes[i + 2] === 0x22; // "t"
}
