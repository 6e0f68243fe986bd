// WebSocket and event-source connections from JavaScript.
const WS = require("ws");
const { WebSocket: NodeWebSocket } = require("ws");

const a = new WebSocket("wss://example.com"); // HIT
const b = new WS("wss://example.com"); // HIT
const c = new NodeWebSocket("wss://example.com"); // HIT
const d = new EventSource("https://example.com/events"); // HIT
const e = new window.WebSocket("wss://example.com"); // HIT

function connect(url) {
  return new WebSocket(url); // HIT
}

class Live {
  start() {
    this.socket = new WebSocket(this.url); // HIT
  }
}
