// Look-alikes of network calls in TypeScript.
import { get } from "./http-cache";
import * as http from "./http";

const fetch = (url: string): string => url.toUpperCase();
fetch("https://example.com");
get("https://example.com");
http.get("https://example.com");

interface Fetcher {
  fetch(url: string): Promise<string>;
}

export async function use(f: Fetcher): Promise<string> {
  return f.fetch("https://example.com");
}

const params = new URLSearchParams("a=1");
params.get("a");
// axios.get("https://example.com")
const doc: string = "fetch('https://example.com')";
type Axios = { get(url: string): void };
