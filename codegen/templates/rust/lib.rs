{% filter comment("//!") %}{% include "header.txt" %}

`src/main.rs` is the entry point; it calls these with what the run's input asks.
{% endfilter %}
{% for f in functions %}

{% include "rust/function.rs" %}
{% endfor %}
