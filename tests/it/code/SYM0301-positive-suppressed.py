# Suppressed findings are still findings: reported as suppressed, with their reason.
import requests

requests.get("https://example.com/#top")  # symbiont: allow network_access -- the docs mirror (HIT)
# symbiont: allow network_access, file_system_write -- the broker proxies it (the call below)
requests.post("https://example.com")  # HIT
# symbiont: allow env_access -- not this operation
requests.put("https://example.com")  # HIT
