{% if f.function == "fetch_url" %}
  if (task.fetch !== undefined) console.log(`fetched ${(await fetchUrl(task.fetch)).length} characters`);
{% elif f.function == "read_file" %}
  if (task.read !== undefined) console.log(await readFile(task.read));
{% elif f.function == "write_file" %}
  if (task.write !== undefined) console.log(`wrote ${await writeFile(task.write.path, task.write.content)} bytes`);
{% elif f.function == "read_env" %}
  if (task.env !== undefined) console.log(await readEnv(task.env));
{% elif f.function == "read_secret" %}
  if (task.secret !== undefined) console.log(`secret ${task.secret}: ${(await readSecret(task.secret)) === null ? "not set" : "set"}`);
{% elif f.function == "send_message" %}
  if (task.send !== undefined) console.log(`sent message ${await sendMessage(task.send.to, task.send.payload)}`);
{% elif f.function == "receive_message" %}
  if (task.receive !== undefined) console.log(JSON.stringify(await receiveMessage(task.receive)));
{% endif %}
