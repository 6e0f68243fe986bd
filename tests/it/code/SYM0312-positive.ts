// WebSocket connections from TypeScript.
import WebSocket from "ws";
import { WebSocket as Socket } from "ws";

const a: WebSocket = new WebSocket("wss://example.com"); // HIT
const b = new Socket("wss://example.com"); // HIT

export class Feed {
  private socket?: EventSource;

  open(url: string): void {
    this.socket = new EventSource(url); // HIT
  }
}

const connect = (url: string) => new WebSocket(url); // HIT
