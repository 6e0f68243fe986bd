// Look-alikes of socket connections.
const socket = new LocalChannel("wss://example.com");
class WebSocket {
  constructor(url) {
    this.url = url;
  }
}
const fake = new WebSocket("wss://example.com");
const open = WebSocket.OPEN;
const kind = typeof EventSource;
// new WebSocket("wss://example.com")
const doc = "new WebSocket('wss://example.com')";
