// The Socket.IO connection (DESIGN §2): same origin, authenticated by the
// cookie, joined to the user's room by the server. It hands events and
// connection changes to the caller, and carries a cancel with its acknowledgement;
// the state module decides what they mean.

import { io } from "socket.io-client";
import { EVENT_TYPES } from "./state.js";

const RETRY_AFTER_REFUSAL_MS = 5000;
/** How long a cancel waits for the server's acknowledgement before the caller asks over HTTP. */
export const CANCEL_ACK_MS = 2000;

/**
 * @param {{onEvent: (payload: object) => void, onConnection: (connected: boolean) => void, onRefused?: (data: any) => void}} handlers
 */
export function connectSocket({ onEvent, onConnection, onRefused }) {
  const socket = io({
    path: "/socket.io/",
    transports: ["websocket", "polling"],
    tryAllTransports: true,
    withCredentials: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  let retry = null;
  let closed = false;

  for (const name of EVENT_TYPES) {
    socket.on(name, (payload) => {
      if (payload && typeof payload === "object") onEvent({ ...payload, type: payload.type ?? name });
    });
  }
  socket.on("connect", () => onConnection(true));
  socket.on("disconnect", () => onConnection(false));
  socket.on("connect_error", (error) => {
    onConnection(false);
    // A refusal by the server (e.g. the cookie expired) is not retried by the
    // client library; try again later, polling covers the meantime.
    if (!socket.active && !closed) {
      onRefused?.(error?.data ?? null);
      clearTimeout(retry);
      retry = setTimeout(() => { if (!closed) socket.connect(); }, RETRY_AFTER_REFUSAL_MS);
    }
  });

  return {
    get connected() {
      return socket.connected;
    },
    /**
     * `export:cancel` with its acknowledgement: the server's answer (the HTTP cancel's body, or
     * the error shape with `code`), or null when the socket is down or no answer came in time.
     * @returns {Promise<any|null>}
     */
    async cancel(jobId, projectId) {
      if (!socket.connected) return null;
      try {
        const answer = await socket.timeout(CANCEL_ACK_MS).emitWithAck("export:cancel", { jobId, projectId });
        return answer && typeof answer === "object" ? answer : null;
      } catch {
        return null;
      }
    },
    close() {
      closed = true;
      clearTimeout(retry);
      socket.close();
    },
  };
}
