//! Whether this host can run KVM guests: `/dev/kvm` opens read-write, speaks the stable KVM API
//! (version 12), and creates a VM.

use std::{
    fs::OpenOptions,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

/// The only KVM API version there has ever been since Linux 2.6.22.
pub const KVM_API_VERSION: i32 = 12;
/// `_IO(KVMIO, 0x00)`, KVMIO = 0xAE: no argument.
const KVM_GET_API_VERSION: u64 = 0xAE00;
/// `_IO(KVMIO, 0x01)`: the argument is the machine type (0: the default); returns a VM fd.
const KVM_CREATE_VM: u64 = 0xAE01;

/// Checks the KVM device at `device` (normally `/dev/kvm`); the error says what is missing.
pub fn check(device: &Path) -> Result<(), String> {
    let kvm = OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(device).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound => {
                " (no KVM: enable virtualization, or nested virtualization on a VM host, and load kvm_intel or kvm_amd)"
            }
            std::io::ErrorKind::PermissionDenied => " (add this user to the device's group, usually `kvm`)",
            _ => "",
        };
        format!("cannot open {} read-write: {e}{hint}", device.display())
    })?;
    let fd = kvm.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `kvm`, which outlives the call. The request
    // takes no argument: the kernel reads and writes no memory of this process (the 0 passed is
    // never dereferenced; were the file not a KVM device and the request number meant something
    // else to its driver, a pointer argument of 0 is rejected by the kernel with EFAULT, not
    // written through). The return value is an int, with -1 and errno on failure.
    let version = unsafe { libc::ioctl(fd, KVM_GET_API_VERSION as _, 0) };
    if version < 0 {
        return Err(format!("{} does not answer the KVM API (KVM_GET_API_VERSION): {}", device.display(), std::io::Error::last_os_error()));
    }
    if version != KVM_API_VERSION {
        return Err(format!("{} speaks KVM API version {version}, not {KVM_API_VERSION}", device.display()));
    }
    // SAFETY: as above, `fd` is open for the duration; KVM_CREATE_VM takes an integer (the
    // machine type, 0 = default), not a pointer, and returns a new file descriptor or -1.
    let vm = unsafe { libc::ioctl(fd, KVM_CREATE_VM as _, 0) };
    if vm < 0 {
        return Err(format!("{} cannot create a VM (KVM_CREATE_VM): {}", device.display(), std::io::Error::last_os_error()));
    }
    // SAFETY: `vm` is a descriptor the kernel just returned to us and nothing else owns; the
    // OwnedFd closes it exactly once, here.
    drop(unsafe { OwnedFd::from_raw_fd(vm) });
    Ok(())
}
