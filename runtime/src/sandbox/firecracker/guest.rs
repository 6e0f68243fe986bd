//! What runs inside the microVM, and how its console is read.
//!
//! The guest boots the rootfs image read-only (`/dev/vda`) with the kernel's `init` set to
//! `/bin/sh` running [`BOOTSTRAP`]: it mounts a tmpfs on `/run` and the run's agent drive
//! (`/dev/vdb`, ext4, read-only) on [`DRIVE_MOUNT`], then runs the drive's `init`, a script
//! written per run by [`init_script`]. That script mounts `/proc`, `/sys`, `/dev` and a
//! size-limited `/tmp` (noexec, nosuid, nodev), bind-mounts the drive's `code/` read-only on
//! [`CODE_MOUNT`], bridges [`BROKER_SOCKET`] to the host's broker over vsock with `socat`, and
//! runs the agent's command as user nobody with no capabilities and no-new-privileges. It then
//! prints the agent's exit status between per-run markers on the serial console and reboots,
//! which ends the Firecracker process.
//!
//! The rootfs image must therefore hold `/bin/sh`, `mount`, `setpriv` and `prlimit`
//! (util-linux), `env`, `socat` built with vsock support, the directories `/agent`, `/run`,
//! `/tmp`, `/proc`, `/sys`, `/dev`, and the agent's interpreter. The guest kernel needs
//! virtio-mmio block and vsock devices, ext4, devtmpfs mounted on `/dev` before the bootstrap runs
//! (by the kernel, `CONFIG_DEVTMPFS_MOUNT`, or by an initrd), magic SysRq and the 8250 serial
//! console, as Firecracker's recommended guest configurations have. `symbiont image build --tier 3`
//! makes such a rootfs, kernel and initrd ([`crate::image::tier3`]): with an initrd the kernel runs
//! its `/init`, which passes the same arguments on to `/bin/sh` once the root drive is mounted.

use std::{
    fmt::Write as _,
    fs,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::{
    sandbox::{LaunchSpec, SandboxError, AGENT_UID, BROKER_MOUNT, BROKER_SOCKET, CODE_MOUNT},
    OutputStream,
};

/// The vsock port the broker listens on: the guest connects to the host (CID 2) on this port,
/// and Firecracker forwards the connection to the host's Unix socket `{uds_path}_1024`.
pub const BROKER_VSOCK_PORT: u32 = 1024;
/// The host's vsock context id, as the guest sees it.
pub const HOST_CID: u32 = 2;
/// Every VM gets the first non-reserved guest CID: each Firecracker vsock device is private to
/// its VM (it is backed by the VM's own Unix sockets), so CIDs never clash between VMs.
pub const GUEST_CID: u32 = 3;
/// Where the agent drive is mounted in the guest while the init script runs.
pub const DRIVE_MOUNT: &str = "/run/symbiont-drive";

/// The agent's `PATH` when its environment names none (Docker takes it from the image).
pub const AGENT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Runs as PID 1 (`init=/bin/sh -- -c BOOTSTRAP`): no double quotes, so that it is one argument
/// on the kernel command line. Firecracker appends `root=/dev/vda ro` to the command line; after
/// `--` those words only become the shell's positional parameters, which the bootstrap ignores.
pub const BOOTSTRAP: &str = "mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run && mkdir /run/symbiont-drive && mount -t ext4 -o ro,nosuid,nodev /dev/vdb /run/symbiont-drive && exec /bin/sh /run/symbiont-drive/init";

/// The kernel command line: serial console on ttyS0 (the Firecracker process's stdout),
/// `reboot=k` and `panic=1` so that a reboot or a panic ends the VM, no PCI (Firecracker has
/// only virtio-mmio), `quiet` so that kernel messages do not mix with the agent's output.
pub fn boot_args() -> String {
    format!("console=ttyS0 reboot=k panic=1 pci=off quiet init=/bin/sh -- -c \"{BOOTSTRAP}\"")
}

/// The markers the init script prints around the agent's output, unique per run so that the
/// agent cannot forge its end (the script holding them is readable only by its owner, which is
/// never the agent's user, and the nonce is not on the kernel command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub start: String,
    pub exit: String,
}

impl Markers {
    pub fn new(nonce: &str) -> Markers {
        Markers { start: format!("symbiont-{nonce}-start"), exit: format!("symbiont-{nonce}-exit") }
    }
}

/// Quotes a word for `sh`.
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The guest's init script for one run.
pub fn init_script(spec: &LaunchSpec, markers: &Markers) -> Result<String, SandboxError> {
    if spec.command.is_empty() {
        return Err(SandboxError::Backend("the agent has no command".into()));
    }
    let mut env = String::new();
    for (name, value) in &spec.env {
        if !valid_env_name(name) {
            return Err(SandboxError::Backend(format!("environment variable name {name:?} cannot be passed to the microVM")));
        }
        if value.contains('\0') {
            return Err(SandboxError::Backend(format!("environment variable {name} holds a NUL byte")));
        }
        let _ = write!(env, " {}", shell_quote(&format!("{name}={value}")));
    }
    if !spec.env.iter().any(|(name, _)| name == "PATH") {
        let _ = write!(env, " {}", shell_quote(&format!("PATH={AGENT_PATH}")));
    }
    let command: Vec<String> = spec.command.iter().map(|w| shell_quote(w)).collect();
    let limits = &spec.limits;
    let uid = AGENT_UID;
    let (start, exit) = (shell_quote(&markers.start), shell_quote(&markers.exit));
    let broker_dir = BROKER_MOUNT;
    let broker = BROKER_SOCKET;
    let drive = DRIVE_MOUNT;
    let port = BROKER_VSOCK_PORT;
    let host = HOST_CID;
    let tmpfs = limits.tmpfs_bytes;
    let pids = limits.pids.max(1);
    let command = command.join(" ");
    let run_id = &spec.run_id;
    Ok(format!(
        r#"#!/bin/sh
# PID 1 of the microVM of run {run_id}, written by symbiont (runtime/src/sandbox/firecracker/guest.rs).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
end() {{
    printf '\n%s %d %d\n' {exit} "$1" "$2"
    echo b > /proc/sysrq-trigger 2>/dev/null
    exit "$1"
}}
fail() {{
    printf '\n%s\n' {start}
    printf 'symbiont-init: %s\n' "$1"
    end 125 0
}}
mount -t proc -o nosuid,nodev,noexec proc /proc || fail 'cannot mount /proc'
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys || fail 'cannot mount /sys'
[ -c /dev/null ] || mount -t devtmpfs -o nosuid,noexec devtmpfs /dev || fail 'cannot mount /dev'
mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size={tmpfs} tmpfs /tmp || fail 'cannot mount /tmp'
[ -d {code} ] || fail 'the rootfs has no {code} directory'
mount --bind {drive}/code {code} && mount -o remount,bind,ro,nosuid,nodev {code} || fail 'cannot mount the code on {code}'
setpriv=$(command -v setpriv) || fail 'the rootfs has no setpriv (util-linux)'
prlimit=$(command -v prlimit) || fail 'the rootfs has no prlimit (util-linux)'
envbin=$(command -v env) || fail 'the rootfs has no env'
command -v socat >/dev/null || fail 'the rootfs has no socat'
mkdir -p {broker_dir} || fail 'cannot make {broker_dir}'
socat UNIX-LISTEN:{broker},fork,mode=0666 VSOCK-CONNECT:{host}:{port} </dev/null >/dev/null 2>&1 &
i=0
while [ ! -S {broker} ]; do
    i=$((i + 1))
    [ "$i" -le 200 ] || fail 'the broker bridge (socat) did not start'
    sleep 0.01
done
oom_kills() {{
    n=0
    while read -r key value; do
        [ "$key" = oom_kill ] && n=$value
    done < /proc/vmstat
    echo "$n"
}}
oom_before=$(oom_kills)
cd /tmp || fail 'cannot enter /tmp'
agent=
trap '[ -n "$agent" ] && kill -TERM "$agent" 2>/dev/null' INT TERM
printf '\n%s\n' {start}
"$envbin" -i{env} "$prlimit" --nproc={pids}:{pids} "$setpriv" --reuid={uid} --regid={uid} --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- {command} </dev/null &
agent=$!
wait "$agent"
code=$?
while kill -0 "$agent" 2>/dev/null; do
    wait "$agent"
    code=$?
done
oom=0
[ "$(oom_kills)" -gt "$oom_before" ] && oom=1
end "$code" "$oom"
"#,
        code = CODE_MOUNT,
    ))
}

/// What the console said about the end of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleExit {
    pub code: i64,
    pub oom_killed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Boot messages: dropped.
    Booting,
    /// The agent's output: forwarded.
    Running,
    /// After the exit marker: dropped.
    Ended,
}

/// Reads the serial console: drops everything before the start marker, forwards the agent's
/// output (stdout and stderr share the console; both are reported as stdout), with the serial
/// line's `\r\n` turned back into `\n`, and stops at the exit marker, whose status it keeps.
#[derive(Debug)]
pub struct Console {
    markers: Markers,
    phase: Phase,
    /// Bytes not yet forwarded or dropped: a possible partial marker, or a pending `\r`.
    pending: Vec<u8>,
    exit: Option<ConsoleExit>,
}

impl Console {
    pub fn new(markers: Markers) -> Console {
        Console { markers, phase: Phase::Booting, pending: Vec::new(), exit: None }
    }

    pub fn exit(&self) -> Option<ConsoleExit> {
        self.exit
    }

    /// Feeds bytes from the console; returns what the agent wrote, ready to forward.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.phase == Phase::Ended {
            return out;
        }
        for &b in bytes {
            if b == b'\n' && self.pending.last() == Some(&b'\r') {
                self.pending.pop();
            }
            self.pending.push(b);
        }
        loop {
            match self.phase {
                Phase::Booting => {
                    let marker = format!("\n{}\n", self.markers.start);
                    match find(&self.pending, marker.as_bytes()) {
                        Some(at) => {
                            self.pending.drain(..at + marker.len());
                            self.phase = Phase::Running;
                        }
                        None => {
                            let keep = partial_suffix(&self.pending, marker.as_bytes());
                            let drop = self.pending.len() - keep;
                            self.pending.drain(..drop);
                            return out;
                        }
                    }
                }
                Phase::Running => {
                    let marker = format!("\n{} ", self.markers.exit);
                    match find(&self.pending, marker.as_bytes()) {
                        Some(at) => {
                            let rest = &self.pending[at + marker.len()..];
                            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                                // The status line is not complete yet: forward what precedes it.
                                out.extend(self.pending.drain(..at));
                                return out;
                            };
                            let status = String::from_utf8_lossy(&rest[..end]).into_owned();
                            let mut words = status.split_whitespace();
                            let code = words.next().and_then(|w| w.parse().ok()).unwrap_or(-1);
                            let oom_killed = words.next() == Some("1");
                            out.extend_from_slice(&self.pending[..at]);
                            self.pending.clear();
                            self.exit = Some(ConsoleExit { code, oom_killed });
                            self.phase = Phase::Ended;
                            return out;
                        }
                        None => {
                            let mut keep = partial_suffix(&self.pending, marker.as_bytes());
                            if keep == 0 && self.pending.last() == Some(&b'\r') {
                                keep = 1;
                            }
                            let forward = self.pending.len() - keep;
                            out.extend(self.pending.drain(..forward));
                            return out;
                        }
                    }
                }
                Phase::Ended => return out,
            }
        }
    }

    /// The console closed: whatever is still held back was the agent's (a lone `\r`, or a
    /// partial marker that never completed).
    pub fn finish(&mut self) -> Vec<u8> {
        match self.phase {
            Phase::Running => {
                self.phase = Phase::Ended;
                std::mem::take(&mut self.pending)
            }
            _ => {
                self.pending.clear();
                Vec::new()
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest suffix of `bytes` that is a proper prefix of `marker`.
fn partial_suffix(bytes: &[u8], marker: &[u8]) -> usize {
    (1..marker.len().min(bytes.len() + 1)).rev().find(|&n| bytes.ends_with(&marker[..n])).unwrap_or(0)
}

/// Output stream the console's bytes are reported on.
pub const CONSOLE_STREAM: OutputStream = OutputStream::Stdout;

/// Builds the agent drive at `image`: an ext4 filesystem (made by `mkfs.ext4 -d`, e2fsprogs
/// 1.43 or later) holding `init` (mode 0700: readable by its owner only, never by the agent's
/// user) and `code/`, a copy of the run's code directory.
pub async fn build_drive(mkfs: &Path, spec: &LaunchSpec, markers: &Markers, staging: &Path, image: &Path) -> Result<(), SandboxError> {
    let script = init_script(spec, markers)?;
    let backend = |what: &str, path: &Path| {
        let what = format!("{what} {}", path.display());
        move |e: std::io::Error| SandboxError::Backend(format!("{what}: {e}"))
    };
    fs::DirBuilder::new().mode(0o755).create(staging).map_err(backend("creating", staging))?;
    let init = staging.join("init");
    fs::write(&init, script).map_err(backend("writing", &init))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o700)).map_err(backend("chmod", &init))?;
    let code = staging.join("code");
    let (bytes, entries) = copy_tree(&spec.code_dir, &code)?;
    // Room for the files, their metadata and ext4's own: twice the content plus 8 MiB, in MiB.
    let size = ((bytes * 2 + (8 << 20)) >> 20) << 20;
    let inodes = (entries * 2 + 256).max(1024);
    let file = fs::File::create(image).map_err(backend("creating", image))?;
    file.set_len(size).map_err(backend("sizing", image))?;
    drop(file);
    let output = tokio::process::Command::new(mkfs)
        .args(["-q", "-F", "-t", "ext4", "-L", "symbiont", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0"])
        .arg("-N")
        .arg(inodes.to_string())
        .arg("-d")
        .arg(staging)
        .arg(image)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| SandboxError::Backend(format!("running {}: {e}", mkfs.display())))?;
    let _ = fs::remove_dir_all(staging);
    if !output.status.success() {
        return Err(SandboxError::Backend(format!(
            "{} could not build the agent drive ({}): {}",
            mkfs.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    fs::set_permissions(image, fs::Permissions::from_mode(0o644)).map_err(backend("chmod", image))?;
    Ok(())
}

/// Copies a directory tree (regular files and directories; symbolic links are refused, since
/// the code directory is staged by the runtime and holds none). Returns bytes and entries.
fn copy_tree(from: &Path, to: &Path) -> Result<(u64, u64), SandboxError> {
    let err = |path: &Path| {
        let path: PathBuf = path.to_path_buf();
        move |e: std::io::Error| SandboxError::Backend(format!("copying the code {}: {e}", path.display()))
    };
    fs::DirBuilder::new().mode(0o755).create(to).map_err(err(to))?;
    let (mut bytes, mut entries) = (0, 1);
    for entry in fs::read_dir(from).map_err(err(from))? {
        let entry = entry.map_err(err(from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(err(&source))?;
        if kind.is_dir() {
            let (b, e) = copy_tree(&source, &target)?;
            bytes += b;
            entries += e;
        } else if kind.is_file() {
            bytes += fs::copy(&source, &target).map_err(err(&source))?;
            let mode = fs::metadata(&source).map_err(err(&source))?.permissions().mode() & 0o755;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o444)).map_err(err(&target))?;
            entries += 1;
        } else {
            return Err(SandboxError::Backend(format!("{} is neither a file nor a directory", source.display())));
        }
    }
    Ok((bytes, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> Console {
        Console::new(Markers::new("n0nce"))
    }

    #[test]
    fn drops_boot_noise_and_keeps_the_agents_output_and_status() {
        let mut c = console();
        let mut out = c.feed(b"[    0.1] booting\r\nnoise\r\n\r\nsymbiont-n0nce-start\r\nhello\r\nwor");
        out.extend(c.feed(b"ld\r\n\r\nsymbiont-n0nce-exit 3 0\r\n[panic] ..."));
        assert_eq!(String::from_utf8(out).unwrap(), "hello\nworld\n");
        assert_eq!(c.exit(), Some(ConsoleExit { code: 3, oom_killed: false }));
        assert!(c.feed(b"more").is_empty());
    }

    #[test]
    fn markers_split_across_reads_and_forged_markers() {
        let mut c = console();
        let mut out = Vec::new();
        let text = b"\nsymbiont-n0nce-start\nsymbiont-other-exit 0 0\nno newline\nsymbiont-n0nce-exit 137 1\n";
        for b in text.iter() {
            out.extend(c.feed(std::slice::from_ref(b)));
        }
        assert_eq!(String::from_utf8(out).unwrap(), "symbiont-other-exit 0 0\nno newline");
        assert_eq!(c.exit(), Some(ConsoleExit { code: 137, oom_killed: true }));
    }

    #[test]
    fn a_console_that_closes_early_hands_back_what_it_held() {
        let mut c = console();
        let mut out = c.feed(b"\nsymbiont-n0nce-start\nlast\r");
        out.extend(c.finish());
        assert_eq!(out, b"last\r");
        assert_eq!(c.exit(), None);
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert!(valid_env_name("A_1") && !valid_env_name("1A") && !valid_env_name("A-B") && !valid_env_name(""));
    }
}
