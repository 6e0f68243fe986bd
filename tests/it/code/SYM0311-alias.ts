// Alias forms: TypeScript `import x = require()`, dynamic `import()`, inline `require()`.
import web = require("axios");
import type { AxiosResponse } from "axios";

const undici = await import("undici");
const { request } = await import("node:https");

web.get("https://example.com"); // HIT
undici.fetch("https://example.com"); // HIT
request("https://example.com"); // HIT
require("node:http").get("http://example.com"); // HIT

export function typed(r: AxiosResponse): number {
  return r.status;
}
