{% if f.function == "fetch_url" %}
    if "fetch" in task:
        print(f"fetched {len(fetch_url(str(task['fetch'])))} characters")
{% elif f.function == "read_file" %}
    if "read" in task:
        print(read_file(str(task["read"])))
{% elif f.function == "write_file" %}
    if "write" in task:
        written = write_file(str(task["write"]["path"]), str(task["write"]["content"]))
        print(f"wrote {written} bytes")
{% elif f.function == "read_env" %}
    if "env" in task:
        print(read_env(str(task["env"])))
{% elif f.function == "read_secret" %}
    if "secret" in task:
        found = read_secret(str(task["secret"])) is not None
        print(f"secret {task['secret']}: {'set' if found else 'not set'}")
{% elif f.function == "send_message" %}
    if "send" in task:
        print(f"sent message {send_message(str(task['send']['to']), task['send']['payload'])}")
{% elif f.function == "receive_message" %}
    if "receive" in task:
        print(receive_message(int(task["receive"])))
{% endif %}
