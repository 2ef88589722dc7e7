export { CommandBoard, type BoardConnection, type BoardEffect, type BoardEntry } from './board.js';
export { type CommandChannel } from './channel.js';
export { outcomeJson } from './http.js';
export { type CommandConnection, type ReplyOutcome } from './router.js';
export { parseServiceTokens, serviceFor, type ServiceTokens } from './service-auth.js';
