/** WebSocket close codes the gateway uses, with the reason text sent alongside. One table. */
export const CloseCode = {
  /** The gateway is shutting down or restarting: reconnect (to any node) after the hinted delay. */
  reconnect: { code: 1012, reason: 'reconnect' },
  /** The client did not read its acks fast enough (backpressure bound exceeded). */
  slow_client: { code: 1008, reason: 'slow_client' },
  /** The client kept sending past its rate limit. */
  rate_limited: { code: 1008, reason: 'rate_limited' },
  /** A frame was larger than the hard limit (uWebSockets.js closes these itself with 1009). */
  frame_too_large: { code: 1009, reason: 'frame_too_large' },
  /** The token expired while the connection was open: fetch a new one and reconnect. */
  token_expired: { code: 4001, reason: 'token_expired' },
} as const;
