import type { TemplatedApp } from 'uWebSockets.js';
import type { BoardConnection } from './board.js';
import { isControlFrame } from './frames.js';
import type { CommandHttp, RouteContext } from './http.js';
import type { CommandConnection, CommandRouter, ReplyOutcome } from './router.js';

/** What the WebSocket server needs from the command side; all of it optional for the server. */
export interface CommandChannel {
  /** Whether a client text frame is a control frame (a reply) rather than events. */
  isControlFrame(message: ArrayBuffer): boolean;
  attach(connection: CommandConnection): void;
  detach(connection: CommandConnection): void;
  /** A reply frame from a WebSocket connection. */
  replyFrame(connection: BoardConnection, text: string): Promise<ReplyOutcome>;
  /** Adds the command endpoints to the server. */
  routes(app: TemplatedApp, context: RouteContext): void;
}

/** The channel of a gateway process: delivery (when enabled) and the HTTP endpoints. */
export function commandChannel(router: CommandRouter | undefined, http: CommandHttp): CommandChannel {
  return {
    isControlFrame,
    attach: (connection) => router?.attach(connection),
    detach: (connection) => router?.detach(connection),
    replyFrame: (connection, text) =>
      router === undefined
        ? Promise.resolve({
            ok: false,
            reason: 'unknown_command',
            detail: 'this gateway does not deliver commands (GATEWAY_COMMANDS=false)',
          })
        : router.replyFrame(connection, text),
    routes: (app, context) => http.register(app, context),
  };
}
