// The Socket.IO connection (DESIGN §2): same origin, authenticated by the
// cookie, joined to the user's room by the server. It only hands events and
// connection changes to the caller; the state module decides what they mean.

import { io } from "socket.io-client";
import { EVENT_TYPES } from "./state.js";

const RETRY_AFTER_REFUSAL_MS = 5000;

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
    close() {
      closed = true;
      clearTimeout(retry);
      socket.close();
    },
  };
}
