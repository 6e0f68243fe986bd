{% if f.function == "fetch_url" %}
  if ("fetch" in task) console.log(`fetched ${(await fetchUrl(String(task.fetch))).length} characters`);
{% elif f.function == "read_file" %}
  if ("read" in task) console.log(await readFile(String(task.read)));
{% elif f.function == "write_file" %}
  if ("write" in task) console.log(`wrote ${await writeFile(String(task.write.path), String(task.write.content))} bytes`);
{% elif f.function == "read_env" %}
  if ("env" in task) console.log(await readEnv(String(task.env)));
{% elif f.function == "read_secret" %}
  if ("secret" in task) console.log(`secret ${task.secret}: ${(await readSecret(String(task.secret))) === null ? "not set" : "set"}`);
{% elif f.function == "send_message" %}
  if ("send" in task) console.log(`sent message ${await sendMessage(String(task.send.to), task.send.payload)}`);
{% elif f.function == "receive_message" %}
  if ("receive" in task) console.log(JSON.stringify(await receiveMessage(Number(task.receive))));
{% endif %}
