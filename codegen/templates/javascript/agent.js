{% filter comment("//") %}{% include "header.txt" %}

Run it with `symbiont run {{ name }}.sym --input '{...}'`: the input names what to do (see `main`).
{% endfilter %}
"use strict";

const symbiont = require("symbiont");
{% for f in functions %}

{% include "javascript/function.js" %}
{% endfor %}

/**
 * Does what the run's input asks, one key per capability: {% for f in functions %}`{{ f.input }}`{% if not loop.last %}, {% endif %}{% endfor %}{% if not functions %}none{% endif %}.
 * @returns {Promise<void>}
 */
async function main() {
  const input = symbiont.input();
  const task = typeof input === "object" && input !== null ? input : {};
{% for f in functions %}
{% include "javascript/call.js" %}
{% endfor %}
  await symbiont.log("{{ name }}: done");
}

module.exports = { {% for f in functions %}{{ f.camel }}, {% endfor %}main };

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
