// Look-alikes of socket connections in TypeScript.
import { WebSocket } from "./mock-socket";

const s = new WebSocket("wss://example.com");
const state: number = WebSocket.CLOSED;
export function isOpen(ws: { readyState: number }): boolean {
  return ws.readyState === 1;
}
const doc = `new EventSource("https://example.com")`;
