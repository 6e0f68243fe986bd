// Network access from TypeScript (ES modules).
import axios from "axios";
import * as http from "node:http";
import { connect as tcpConnect } from "net";
import nodeFetch from "node-fetch";
import got from "got";
import { fetch as undiciFetch } from "undici";

interface Item {
  id: number;
}

export async function load(url: string): Promise<Item[]> {
  const res: Response = await fetch(url); // HIT
  return (await res.json()) as Item[];
}

const res = await axios.get<Item[]>("https://example.com"); // HIT
const posted = await axios.post<Item>("https://example.com", { id: 1 }); // HIT
http.get("http://example.com"); // HIT
tcpConnect({ host: "example.com", port: 80 }); // HIT
await nodeFetch("https://example.com"); // HIT
await got("https://example.com"); // HIT
await undiciFetch("https://example.com"); // HIT

export class Client {
  private readonly base = "https://example.com";

  async get<T>(path: string): Promise<T> {
    const r = await fetch(`${this.base}${path}`)!; // HIT
    return (await r.json()) as T;
  }
}

const retry = async <T,>(f: () => Promise<T>): Promise<T> => f();
await retry(() => fetch("https://example.com")); // HIT
