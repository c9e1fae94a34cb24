//! Network namespaces and programs run inside them, for `braid run`: a named namespace
//! (`ip netns add`, removed on drop), and a child process that enters it, gets a mount namespace
//! of its own where a file replaces /etc/resolv.conf, drops root for the invoking user and
//! execs the program. The child's exit is watched through a pidfd (pollable).

use crate::netconf::ip;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A named network namespace (`/run/netns/NAME`), deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` with its loopback device up.
    pub fn create(name: &str) -> io::Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Who the program runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// The user who invoked braid: SUDO_UID/SUDO_GID (with SUDO_USER's groups) when braid runs
/// through sudo, else `None` (the program keeps braid's own identity).
pub fn invoking_user() -> Option<Identity> {
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid: u32 = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    let mut groups = vec![gid];
    if let Some(user) = std::env::var("SUDO_USER")
        .ok()
        .and_then(|u| CString::new(u).ok())
    {
        let mut n: libc::c_int = 64;
        let mut buf = vec![0 as libc::gid_t; n as usize];
        // SAFETY: `user` is NUL-terminated; `buf` has room for `n` entries, and getgrouplist
        // writes at most `n` of them (updating `n`); on -1 `n` is the size needed.
        let r = unsafe { libc::getgrouplist(user.as_ptr(), gid, buf.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups = buf[..n.max(0) as usize].to_vec();
        }
    }
    Some(Identity { uid, gid, groups })
}

/// Starts `cmd` inside the network namespace `ns` (braid's own when `None`); with `resolv`, in a
/// mount namespace of its own where that file is bind-mounted over /etc/resolv.conf; as `who`
/// when given. stdio and the process group are inherited (the terminal's Ctrl-C reaches the
/// program).
pub fn spawn_in(
    ns: Option<&Netns>,
    resolv: Option<&Path>,
    who: Option<&Identity>,
    cmd: &mut Command,
) -> io::Result<Child> {
    let ns_file = ns
        .map(|ns| {
            File::open(ns.path()).map_err(|e| {
                io::Error::new(e.kind(), format!("opening {}: {e}", ns.path().display()))
            })
        })
        .transpose()?;
    let resolv = resolv
        .map(|p| CString::new(p.as_os_str().as_encoded_bytes()))
        .transpose()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
    let who = who.cloned();
    let ns_fd = ns_file.as_ref().map_or(-1, |f| f.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // (setns, unshare, mount, setgroups, setgid, setuid, prctl) on values prepared before the
    // fork: it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            if ns_fd >= 0 && libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(r) = &resolv {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Our mounts must not propagate back to the host.
                let root = c"/";
                if libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                let target = c"/etc/resolv.conf";
                if libc::mount(
                    r.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(w) = &who {
                if libc::setgroups(w.groups.len(), w.groups.as_ptr()) != 0
                    || libc::setgid(w.gid) != 0
                    || libc::setuid(w.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // The program dies with braid (after the identity change, which clears it).
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(ns_file);
    child
}

/// A descriptor that becomes readable when process `pid` exits (pidfd_open(2)).
pub fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall succeeded: `r` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Sends signal `sig` to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid and signal number has no memory effects.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The terminal on stdin delivers Ctrl-C to our process group itself (we are in its foreground
/// group): a SIGINT braid receives has then reached the program as well.
pub fn terminal_sends_sigint() -> bool {
    // SAFETY: tcgetpgrp and getpgrp take no pointers; tcgetpgrp fails harmlessly (-1) when stdin
    // is no terminal.
    unsafe {
        let fg = libc::tcgetpgrp(0);
        fg > 0 && fg == libc::getpgrp()
    }
}

/// Makes closing `fd` (a TCP socket) send a RST instead of a FIN (SO_LINGER with zero time).
pub fn reset_on_close(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one `linger` from a live value of its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
