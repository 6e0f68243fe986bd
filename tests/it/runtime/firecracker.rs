//! Tier 3: the Firecracker backend against Firecracker's official API description
//! (`../shared/spec/firecracker-api.yaml`, Swagger 2.0). A fake API server on a Unix socket
//! records every request the backend's real configuration sequence sends; each one must name a
//! path and method of the description, and its body must validate against the operation's body
//! schema, with every object held to its declared fields (Firecracker's server rejects unknown
//! fields). A booting end-to-end run needs KVM, a firecracker binary, a guest kernel and a rootfs
//! (`SYMBIONT_FIRECRACKER`, `SYMBIONT_FC_KERNEL`, `SYMBIONT_FC_ROOTFS`); without them it says
//! why and skips.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};
use symbiont_runtime::{
    sandbox::{
        firecracker::{self, api::ApiClient, guest, FirecrackerConfig, FirecrackerSandbox, VmLayout},
        LaunchSpec, Sandbox, SandboxError,
    },
    Limits,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixListener,
};

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    body: Option<Value>,
}

/// What the fake server answers: a status and a body.
type Answer = Arc<dyn Fn(&Recorded) -> (u16, Option<Value>) + Send + Sync>;

/// A fake Firecracker API: records every request and answers with `answer` (204 by default).
struct FakeApi {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApi {
    fn start(dir: &Path, answer: Answer) -> FakeApi {
        let socket = dir.join("api.sock");
        let listener = UnixListener::bind(&socket).expect("binding the fake API socket");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (recorded, answer) = (recorded.clone(), answer.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut reader = BufReader::new(read);
                    // Several requests may share a connection (HTTP/1.1 keep-alive).
                    while let Some(request) = read_request(&mut reader).await {
                        recorded.lock().unwrap().push(request.clone());
                        let (status, body) = answer(&request);
                        let body = body.map(|b| b.to_string()).unwrap_or_default();
                        let reason = if status == 204 { "No Content" } else { "Status" };
                        let mut response = format!("HTTP/1.1 {status} {reason}\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n");
                        if status != 204 {
                            response.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
                        }
                        response.push_str("\r\n");
                        response.push_str(&body);
                        if write.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeApi { socket, requests, task }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request with a `Content-Length` body; `None` at the end of the connection.
async fn read_request<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<Recorded> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut words = line.split_whitespace();
    let (method, path, version) = (words.next()?.to_string(), words.next()?.to_string(), words.next()?.to_string());
    assert_eq!(version, "HTTP/1.1", "request line {line:?}");
    let mut length = 0usize;
    let mut content_type = None;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        assert!(header.ends_with("\r\n"), "header lines end with CRLF: {header:?}");
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').expect("a header has a colon");
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().expect("a numeric Content-Length");
        }
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let body = if length > 0 {
        assert_eq!(content_type.as_deref(), Some("application/json"), "{method} {path} sends JSON");
        let mut bytes = vec![0; length];
        reader.read_exact(&mut bytes).await.ok()?;
        Some(serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{method} {path}: the body is not JSON: {e}")))
    } else {
        None
    };
    Some(Recorded { method, path, body })
}

fn no_content() -> Answer {
    Arc::new(|_| (204, None))
}

/// Firecracker's API description, as JSON.
fn api_description() -> Value {
    let path = symbiont_tests::repo_root().join("../shared/spec/firecracker-api.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("the API description is YAML");
    let json = yaml_to_json(yaml);
    assert_eq!(json["swagger"], "2.0", "a Swagger 2.0 description");
    json
}

/// YAML to JSON; the description's numeric keys (response codes) become strings.
fn yaml_to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(&n).expect("a JSON number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Number(n) => n.to_string(),
                        Y::Bool(b) => b.to_string(),
                        other => panic!("unexpected mapping key {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

/// The description's `definitions`, with every object that declares its properties closed to
/// others (`additionalProperties: false`): Firecracker's server rejects unknown fields, so a
/// misspelt field must fail here too.
fn strict_definitions(description: &Value) -> Value {
    let mut definitions = description["definitions"].clone();
    for definition in definitions.as_object_mut().expect("definitions is an object").values_mut() {
        close_objects(definition);
    }
    definitions
}

fn close_objects(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if object.contains_key("properties") && !object.contains_key("additionalProperties") {
        object.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(close_objects);
    }
}

/// The description's path template matching a concrete path (`/drives/{drive_id}` for
/// `/drives/rootfs`).
fn path_template<'d>(description: &'d Value, path: &str) -> Option<(&'d String, &'d Value)> {
    let parts: Vec<&str> = path.split('/').collect();
    description["paths"].as_object()?.iter().find(|(template, _)| {
        let pattern: Vec<&str> = template.split('/').collect();
        pattern.len() == parts.len()
            && pattern.iter().zip(&parts).all(|(p, a)| (p.starts_with('{') && p.ends_with('}') && !a.is_empty()) || p == a)
    })
}

/// Checks one request against the description: the path and method exist; a body is present
/// when the operation requires one, absent when it takes none, and valid against its schema
/// (with `#/definitions/...` resolved against the description's definitions).
fn validate(description: &Value, definitions: &Value, method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
    let (template, operations) = path_template(description, path).ok_or_else(|| format!("{method} {path}: no such path in the API"))?;
    let operation =
        operations.get(method.to_ascii_lowercase()).ok_or_else(|| format!("{method} {path}: the API has no {method} on {template}"))?;
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let body_parameter = parameters.iter().find(|p| p["in"] == "body");
    let (Some(parameter), Some(body)) = (body_parameter, body) else {
        return match (body_parameter, body) {
            (Some(p), None) if p["required"] == true => Err(format!("{method} {path}: the body is required")),
            (None, Some(_)) => Err(format!("{method} {path}: the operation takes no body")),
            _ => Ok(()),
        };
    };
    let schema = json!({ "allOf": [parameter["schema"]], "definitions": definitions });
    let validator = jsonschema::draft4::new(&schema).map_err(|e| format!("{method} {template}: the schema does not compile: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{method} {path} body {body} does not match the API: {}", errors.join("; ")))
    }
}

fn launch_spec(dir: &Path) -> LaunchSpec {
    LaunchSpec {
        run_id: "0123456789abcdef".into(),
        agent: "contract".into(),
        image: "symbiont/minimal:0000000000000000".into(),
        command: vec!["/agent/hello".into(), "it's".into()],
        env: vec![("SYMBIONT_AGENT".into(), "contract".into())],
        code_dir: dir.join("code"),
        broker_dir: dir.join("broker"),
        limits: Limits { memory_bytes: 300 << 20, cpus: 1.5, ..Limits::default() },
        labels: Vec::new(),
    }
}

fn layout(dir: &Path) -> VmLayout {
    VmLayout {
        kernel: dir.join("vmlinux").display().to_string(),
        initrd: Some(dir.join("initrd.cpio").display().to_string()),
        rootfs: dir.join("rootfs.ext4").display().to_string(),
        agent_drive: dir.join("agent.ext4").display().to_string(),
        vsock_uds: dir.join("vsock.sock").display().to_string(),
        log: Some(dir.join("firecracker.log").display().to_string()),
    }
}

#[tokio::test]
async fn every_request_of_the_boot_sequence_matches_the_api_description() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start(dir.path(), no_content());
    let spec = launch_spec(dir.path());
    let layout = layout(dir.path());
    firecracker::configure(&fake.socket, &spec, &layout).await.expect("the fake API accepts the configuration");
    let api = ApiClient::new(&fake.socket);
    api.instance_start().await.expect("InstanceStart");
    api.send_ctrl_alt_del().await.expect("SendCtrlAltDel");

    let requests = fake.requests();
    let sent: Vec<String> = requests.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(
        sent,
        [
            "PUT /logger",
            "PUT /machine-config",
            "PUT /boot-source",
            "PUT /drives/rootfs",
            "PUT /drives/agent",
            "PUT /vsock",
            "PUT /actions",
            "PUT /actions"
        ]
    );

    let description = api_description();
    let definitions = strict_definitions(&description);
    for request in &requests {
        if let Err(e) = validate(&description, &definitions, &request.method, &request.path, request.body.as_ref()) {
            panic!("{e}");
        }
    }

    let body = |path: &str| requests.iter().find(|r| r.path == path).and_then(|r| r.body.clone()).unwrap();
    // 1.5 CPUs round up to 2 vCPUs; 300 MiB of memory is the whole guest's.
    assert_eq!(body("/machine-config"), json!({"vcpu_count": 2, "mem_size_mib": 300, "smt": false}));
    let boot = body("/boot-source");
    assert_eq!(boot["kernel_image_path"], layout.kernel);
    // The initrd of `symbiont image build --tier 3`, which loads the drivers Debian builds as modules.
    assert_eq!(boot["initrd_path"], json!(layout.initrd));
    let args = boot["boot_args"].as_str().unwrap();
    for word in ["console=ttyS0", "reboot=k", "panic=1", "pci=off", "init=/bin/sh"] {
        assert!(args.split_whitespace().any(|w| w == word), "boot_args lack {word}: {args}");
    }
    assert_eq!(args.matches('"').count(), 2, "the bootstrap is one quoted init argument: {args}");
    assert!(args.len() < 2048, "Firecracker's command line holds 2048 bytes");
    assert_eq!(
        body("/drives/rootfs"),
        json!({"drive_id": "rootfs", "path_on_host": layout.rootfs, "is_root_device": true, "is_read_only": true})
    );
    assert_eq!(
        body("/drives/agent"),
        json!({"drive_id": "agent", "path_on_host": layout.agent_drive, "is_root_device": false, "is_read_only": true})
    );
    assert_eq!(body("/vsock"), json!({"guest_cid": firecracker::GUEST_CID, "uds_path": layout.vsock_uds}));
    let actions: Vec<&Value> = requests.iter().filter(|r| r.path == "/actions").filter_map(|r| r.body.as_ref()).collect();
    assert_eq!(actions, [&json!({"action_type": "InstanceStart"}), &json!({"action_type": "SendCtrlAltDel"})]);
    assert_eq!(firecracker::BROKER_VSOCK_PORT, 1024);
}

#[test]
fn the_validation_rejects_what_firecracker_would() {
    let description = api_description();
    let definitions = strict_definitions(&description);
    let check = |method: &str, path: &str, body: Value| validate(&description, &definitions, method, path, Some(&body));
    // The good bodies pass…
    check("PUT", "/machine-config", json!({"vcpu_count": 2, "mem_size_mib": 256})).unwrap();
    check("PUT", "/drives/x", json!({"drive_id": "x", "path_on_host": "/x", "is_root_device": false, "is_read_only": true})).unwrap();
    // …a wrong field type, a missing required field, an unknown field, an out-of-range value
    // and an unknown enum value do not.
    let rejected = [
        ("PUT", "/machine-config", json!({"vcpu_count": "2", "mem_size_mib": 256})),
        ("PUT", "/machine-config", json!({"vcpu_count": 64, "mem_size_mib": 256})),
        ("PUT", "/drives/x", json!({"drive_id": "x", "path_on_host": "/x", "is_read_only": true})),
        ("PUT", "/boot-source", json!({"kernel_image_path": "/k", "boot_arguments": "console=ttyS0"})),
        ("PUT", "/vsock", json!({"guest_cid": 2, "uds_path": "/v"})),
        ("PUT", "/actions", json!({"action_type": "Reboot"})),
    ];
    for (method, path, body) in rejected {
        let error = check(method, path, body.clone()).expect_err(&format!("{method} {path} {body} should be rejected"));
        assert!(error.contains("does not match the API"), "rejected by validation, not by a broken schema: {error}");
    }
    // Paths and methods the API does not have.
    assert!(check("PUT", "/drive/rootfs", json!({})).unwrap_err().contains("no such path"));
    assert!(check("DELETE", "/vsock", json!({})).unwrap_err().contains("no DELETE"));
    assert!(validate(&description, &definitions, "PUT", "/boot-source", None).unwrap_err().contains("required"));
}

#[tokio::test]
async fn api_errors_carry_firecrackers_fault_message() {
    let dir = tempfile::tempdir().unwrap();
    let answer: Answer = Arc::new(|request: &Recorded| {
        if request.path == "/boot-source" {
            (400, Some(json!({"fault_message": "The kernel file cannot be opened: No such file or directory (os error 2)"})))
        } else {
            (204, None)
        }
    });
    let fake = FakeApi::start(dir.path(), answer);
    let error = firecracker::configure(&fake.socket, &launch_spec(dir.path()), &layout(dir.path())).await.unwrap_err();
    let SandboxError::Backend(message) = error else { panic!("a backend error") };
    assert!(message.contains("PUT /boot-source") && message.contains("400"), "{message}");
    assert!(message.contains("The kernel file cannot be opened"), "{message}");
    // The sequence stops at the first refusal.
    assert_eq!(fake.requests().last().unwrap().path, "/boot-source");

    // A response with a body is read by its Content-Length, whatever the connection does next.
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeApi::start(dir.path(), Arc::new(|_| (200, Some(json!({"id": "vm", "state": "Running"})))));
    let response = ApiClient::new(&fake.socket).request("GET", "/", None).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&response.body).unwrap()["state"], "Running");

    // No server at all: a precise error, not a hang.
    let error = ApiClient::new(&dir.path().join("absent.sock")).instance_start().await.unwrap_err();
    assert!(error.to_string().contains("connecting to"), "{error}");
}

#[test]
fn machine_limits() {
    let config = |memory_bytes, cpus| firecracker::machine_config(&Limits { memory_bytes, cpus, ..Limits::default() });
    let c = config(256 << 20, 1.0).unwrap();
    assert_eq!((c.vcpu_count, c.mem_size_mib, c.smt), (1, 256, false));
    assert_eq!(config((100 << 20) + 1, 0.25).unwrap().mem_size_mib, 101, "memory rounds up to MiB");
    assert_eq!(config(256 << 20, 0.25).unwrap().vcpu_count, 1);
    assert_eq!(config(256 << 20, 2.01).unwrap().vcpu_count, 3);
    assert_eq!(config(256 << 20, 500.0).unwrap().vcpu_count, 32);
    assert!(
        matches!(config(32 << 20, 1.0), Err(SandboxError::Backend(m)) if m.contains("64 MiB")),
        "too little memory is refused, not exceeded"
    );
}

#[test]
fn the_init_script_runs_the_agent_unprivileged_with_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let spec = launch_spec(dir.path());
    let markers = guest::Markers::new("feedface");
    let script = guest::init_script(&spec, &markers).unwrap();
    assert!(script.contains("--reuid=65534 --regid=65534 --clear-groups --no-new-privs"), "{script}");
    assert!(script.contains("'/agent/hello' 'it'\\''s'"), "the command is quoted word by word: {script}");
    assert!(script.contains("'SYMBIONT_AGENT=contract'") && script.contains("'PATH=/usr/local/bin:/usr/bin:/bin'"), "{script}");
    assert!(script.contains(&format!("VSOCK-CONNECT:{}:{}", guest::HOST_CID, firecracker::BROKER_VSOCK_PORT)), "{script}");
    assert!(script.contains(&markers.start) && script.contains(&markers.exit));
    assert!(!guest::boot_args().contains("feedface"), "the markers stay off the world-readable kernel command line");
    // `sh -n` parses it without running it.
    let path = dir.path().join("init");
    std::fs::write(&path, &script).unwrap();
    let status = std::process::Command::new("sh").arg("-n").arg(&path).status().unwrap();
    assert!(status.success(), "the init script is valid sh");

    let mut bad = spec.clone();
    bad.env.push(("NOT-A-NAME".into(), "x".into()));
    assert!(guest::init_script(&bad, &markers).is_err());
}

#[tokio::test]
async fn unavailable_says_precisely_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let config = FirecrackerConfig {
        firecracker: None,
        kernel: Some(dir.path().join("no-vmlinux")),
        rootfs: None,
        initrd: None,
        manifest_dir: None,
        mkfs: Some(dir.path().join("no-mkfs")),
        jailer: None,
        kvm_device: dir.path().join("no-kvm"),
        work_root: dir.path().join("work"),
    };
    let sandbox = FirecrackerSandbox::new(config);
    let Err(SandboxError::Unavailable(why)) = sandbox.available().await else { panic!("unavailable") };
    for expected in ["no-kvm", "no firecracker binary", "SYMBIONT_FIRECRACKER", "no-vmlinux", "SYMBIONT_FC_ROOTFS", "no-mkfs"] {
        assert!(why.contains(expected), "{expected:?} missing from: {why}");
    }
    let spec = launch_spec(dir.path());
    let Err(SandboxError::Unavailable(_)) = sandbox.create(&spec).await else { panic!("create refuses too") };
    assert!(!dir.path().join("work").exists(), "a refused create makes nothing");
}

/// Boots a trivial agent in a real microVM, when this machine can.
#[tokio::test]
async fn end_to_end_agent_in_a_microvm() {
    let sandbox = FirecrackerSandbox::from_environment();
    if let Err(why) = sandbox.available().await {
        eprintln!("skipping the Firecracker end-to-end test: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = launch_spec(dir.path());
    spec.run_id = format!("e2e{}", std::process::id());
    spec.command = vec!["/bin/sh".into(), "/agent/hello.sh".into()];
    std::fs::create_dir_all(&spec.code_dir).unwrap();
    std::fs::write(spec.code_dir.join("hello.sh"), "echo \"hello from $SYMBIONT_AGENT as $(id -u)\"\nexit 7\n").unwrap();
    std::fs::create_dir_all(&spec.broker_dir).unwrap();
    let _broker = UnixListener::bind(spec.broker_dir.join("broker.sock")).unwrap();

    let mut instance = match sandbox.create(&spec).await {
        Ok(instance) => instance,
        Err(SandboxError::Unavailable(why)) => {
            eprintln!("skipping the Firecracker end-to-end test: {why}");
            return;
        }
        Err(e) => panic!("creating the microVM: {e}"),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    instance.start(tx).await.expect("booting");
    let exit = tokio::time::timeout(Duration::from_secs(60), instance.wait()).await.expect("the VM ends within a minute");
    let mut output = Vec::new();
    while let Ok((_, bytes)) = rx.try_recv() {
        output.extend(bytes);
    }
    instance.remove().await.expect("removing the microVM");
    let output = String::from_utf8_lossy(&output);
    let exit = exit.unwrap_or_else(|e| panic!("{e}\noutput:\n{output}"));
    assert_eq!(exit.code, 7, "output:\n{output}");
    assert!(output.contains("hello from contract as 65534"), "output:\n{output}");
    let work = sandbox.config().work_root.join(&spec.run_id);
    assert!(!work.exists(), "{} is left behind", work.display());
}

/// A stand-in for the firecracker binary: serves the API on `--api-sock` (answering 204),
/// reads the markers from the agent drive's init script (with debugfs), and on `InstanceStart`
/// prints boot noise, connects to the broker through the vsock forwarding socket, prints the
/// agent's output and its exit status, and exits. Ctrl-Alt-Del makes it report 143 and exit.
const FAKE_FIRECRACKER: &str = r#"#!/usr/bin/env python3
import json, os, re, socket, subprocess, sys, threading, time
args = sys.argv[1:]
api = args[args.index("--api-sock") + 1]
config = {}
def say(text):
    os.write(1, text.encode())
def boot(hang):
    script = subprocess.run([DEBUGFS, "-R", "cat /init", config["/drives/agent"]["path_on_host"]], capture_output=True, text=True).stdout
    start = re.search(r"symbiont-[0-9a-f]+-start", script).group(0)
    exit_marker = start[: -len("start")] + "exit"
    config["exit"] = exit_marker
    say("[    0.000000] Linux version 6.1\r\nsymbiont-0000-exit 0 0\r\n\r\n" + start + "\r\n")
    broker = socket.socket(socket.AF_UNIX)
    broker.connect(config["/vsock"]["uds_path"] + "_1024")
    broker.sendall(b"hello broker\n")
    broker.close()
    say("hello from the guest\r\nsecond line")
    if hang:
        return
    say("\r\n" + exit_marker + " 7 0\r\n[    1.0] reboot: Restarting system\r\n")
    os._exit(0)
server = socket.socket(socket.AF_UNIX)
server.bind(api)
server.listen(8)
while True:
    conn, _ = server.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    if not data:
        conn.close()
        continue
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ")
    length = 0
    for line in lines[1:]:
        name, value = line.split(":", 1)
        if name.lower() == "content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)
    config[path] = json.loads(body) if body else None
    conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    conn.close()
    action = (config.get("/actions") or {}).get("action_type") if path == "/actions" else None
    if action == "InstanceStart":
        threading.Thread(target=boot, args=(HANG,), daemon=True).start()
    elif action == "SendCtrlAltDel":
        say("\r\n" + config["exit"] + " 143 0\r\n")
        os._exit(0)
"#;

/// The backend's whole lifecycle, process management included, against the fake binary.
#[tokio::test]
async fn lifecycle_with_a_fake_firecracker_binary() {
    let tools = ["python3", "debugfs"];
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]).collect();
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let (Some(mkfs), Some(debugfs), true) = (find("mkfs.ext4"), find("debugfs"), tools.iter().all(|t| find(t).is_some())) else {
        let why = "it needs python3, debugfs and mkfs.ext4 (e2fsprogs; scripts/test installs them)";
        // Unlike the end-to-end test, nothing here needs KVM: in CI it must run.
        assert!(std::env::var_os("CI").is_none(), "CI is set but the fake-firecracker lifecycle test cannot run: {why}");
        eprintln!("skipping the fake-firecracker lifecycle test: {why}");
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = |hang: bool| {
        let binary = dir.path().join(format!("firecracker-{}", if hang { "hanging" } else { "exiting" }));
        let text =
            FAKE_FIRECRACKER.replace("(HANG,)", if hang { "(True,)" } else { "(False,)" }).replace("DEBUGFS", &format!("{debugfs:?}"));
        std::fs::write(&binary, text).unwrap();
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
        binary
    };
    for file in ["vmlinux", "rootfs.ext4"] {
        std::fs::write(dir.path().join(file), b"image").unwrap();
    }
    let work_root = dir.path().join("work");
    let sandbox = |hang: bool| {
        FirecrackerSandbox::new(FirecrackerConfig {
            firecracker: Some(fake(hang)),
            kernel: Some(dir.path().join("vmlinux")),
            rootfs: Some(dir.path().join("rootfs.ext4")),
            initrd: None,
            manifest_dir: None,
            mkfs: Some(mkfs.clone()),
            jailer: None,
            kvm_device: "/dev/kvm".into(),
            work_root: work_root.clone(),
        })
    };
    for hang in [false, true] {
        let mut spec = launch_spec(dir.path());
        spec.run_id = format!("fake{}", u8::from(hang));
        std::fs::create_dir_all(spec.code_dir.join("lib")).unwrap();
        std::fs::write(spec.code_dir.join("lib/agent.py"), "print('hi')\n").unwrap();
        std::fs::create_dir_all(&spec.broker_dir).unwrap();
        let broker_socket = spec.broker_dir.join("broker.sock");
        let _ = std::fs::remove_file(&broker_socket);
        let broker = UnixListener::bind(&broker_socket).unwrap();
        let sandbox = sandbox(hang);
        let mut instance = sandbox.create(&spec).await.unwrap_or_else(|e| panic!("create: {e}"));
        assert_eq!(instance.id(), format!("symbiont-{}", spec.run_id));
        let identify = instance.identify();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        instance.start(tx).await.unwrap_or_else(|e| panic!("start: {e}"));

        // The guest's connection reaches the broker from the Firecracker process, and only it
        // is the agent.
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), broker.accept()).await.expect("the guest connects").unwrap();
        let peer = stream.peer_cred().unwrap().pid().unwrap();
        assert!(identify(symbiont_runtime::sandbox::Peer::Process { pid: peer }), "the VM's process is the agent");
        assert!(!identify(symbiont_runtime::sandbox::Peer::Process { pid: std::process::id() as i32 }), "the host is not");
        assert!(!identify(symbiont_runtime::sandbox::Peer::Vsock { cid: firecracker::GUEST_CID }));

        if hang {
            instance.kill().await.unwrap();
        }
        let exit = tokio::time::timeout(Duration::from_secs(10), instance.wait()).await.expect("the VM ends").unwrap();
        let mut output = Vec::new();
        while let Ok((_, bytes)) = rx.try_recv() {
            output.extend(bytes);
        }
        let output = String::from_utf8(output).unwrap();
        if hang {
            // Ctrl-Alt-Del stops the agent (143); on a loaded machine the fake may miss the grace
            // period and be killed instead (137). Either way the VM ends and reports a status.
            assert!([143, 137].contains(&exit.code), "exit {exit:?}, output {output:?}");
            assert!("hello from the guest\nsecond line".starts_with(&output), "only the agent's output: {output:?}");
        } else {
            assert_eq!((exit.code, exit.oom_killed), (7, false));
            assert_eq!(output, "hello from the guest\nsecond line", "boot noise and markers are not the agent's output");
        }
        assert!(!identify(symbiont_runtime::sandbox::Peer::Process { pid: peer }), "an ended VM identifies nobody");
        instance.remove().await.unwrap();
        instance.remove().await.expect("remove is idempotent");
        assert!(!work_root.join(&spec.run_id).exists(), "remove leaves nothing");
        assert!(broker_socket.exists(), "the broker's own socket is the runtime's to remove");
    }
}
