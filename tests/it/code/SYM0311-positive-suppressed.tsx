// Suppressed findings are still findings: reported as suppressed, with their reason.
import axios from "axios";

// symbiont: allow network_access -- the health check goes through the sidecar (the call below)
fetch("https://health.internal/status"); // HIT
fetch("https://example.com/cached"); // symbiont: allow network_access -- served by the cache proxy (HIT)
axios.get("https://example.com/a"); /* symbiont: allow all -- reviewed (HIT) */
// symbiont: allow file_system_write -- a suppression of another operation does not apply
axios.post("https://example.com/b"); // HIT
// symbiont: allow network_access
axios.put("https://example.com/c"); // HIT (suppressed without a reason: check reports SYM0403)

export function Badge() {
  return (
    <div>
      {/* symbiont: allow network_access -- a beacon the runtime proxies (the call below) */}
      <img onLoad={() => fetch("/beacon")} /> {/* HIT */}
    </div>
  );
}
