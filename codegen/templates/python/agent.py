"""{% include "header.txt" %}

Run it with ``symbiont run {{ name }}.sym --input '{...}'``; the input names what to do
(see :func:`main`).
"""

from __future__ import annotations

from typing import Any

import symbiont
{% for f in functions %}


{% include "python/function.py" %}
{% endfor %}


def main() -> None:
    """Does what the run's input asks, one key per capability.

    The keys: {% for f in functions %}``{{ f.input }}``{% if not loop.last %}, {% endif %}{% endfor %}{% if not functions %}none{% endif %}.
    """
    task: Any = symbiont.input()
    if not isinstance(task, dict):
        task = {}
{% for f in functions %}
{% include "python/call.py" %}
{% endfor %}
    symbiont.log("{{ name }}: done")


if __name__ == "__main__":
    main()
