{% filter comment("//") %}{% include "header.txt" %}

Build with `npm run build`, then run `symbiont run {{ name }}.sym --input '{...}'`: the input names
what to do (see `main`).
{% endfilter %}
import * as symbiont from "symbiont";
{% for f in functions %}

{% include "typescript/function.ts" %}
{% endfor %}

/** What the run's input may ask, one key per capability. */
export interface Task {
{% for f in functions %}
{% if f.function == "fetch_url" %}
  fetch?: string;
{% elif f.function == "read_file" %}
  read?: string;
{% elif f.function == "write_file" %}
  write?: { path: string; content: string };
{% elif f.function == "read_env" %}
  env?: string;
{% elif f.function == "read_secret" %}
  secret?: string;
{% elif f.function == "send_message" %}
  send?: { to: string; payload: unknown };
{% elif f.function == "receive_message" %}
  receive?: number;
{% endif %}
{% endfor %}
}

/** Does what the run's input asks. */
export async function main(): Promise<void> {
  const task: Task = symbiont.input<Task | null>() ?? {};
{% for f in functions %}
{% include "typescript/call.ts" %}
{% endfor %}
  await symbiont.log("{{ name }}: done");
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
