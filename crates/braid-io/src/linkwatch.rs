//! Watching the link state of braid's TUN devices: a device set down (`ip link set bt1 down`),
//! or removed (`ip link del bt1`), also inside the namespace the device was moved to.
//!
//! One [`LinkWatch`] per network namespace holds two sockets made inside that namespace (a
//! socket stays in the namespace it was created in, whichever the thread that uses it): a
//! netlink socket subscribed to link changes (`RTMGRP_LINK`), which only wakes the event loop —
//! its messages are drained unread — and a datagram socket for `SIOCGIFFLAGS`, which tells each
//! device's state by name. Where netlink cannot be had, the caller polls [`LinkWatch::state`]
//! on a short period instead.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A device's state as braid uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Administratively up with carrier.
    Up,
    /// Exists but is down (or has no carrier).
    Down,
    /// No such device in its namespace any more.
    Gone,
}

/// The link-state sockets of one network namespace.
#[derive(Debug)]
pub struct LinkWatch {
    netns: Option<String>,
    netlink: Option<OwnedFd>,
    ctl: OwnedFd,
}

/// A new socket; the error names what was asked for.
fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netlink socket that receives link change notifications, non-blocking.
fn link_notifier() -> io::Result<OwnedFd> {
    let fd = socket(
        libc::AF_NETLINK,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::NETLINK_ROUTE,
    )?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: `sa` is a live sockaddr_nl and the length passed is its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Both sockets, made in the calling thread's namespace.
fn make() -> io::Result<(Option<OwnedFd>, OwnedFd)> {
    let ctl = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
        .or_else(|_| socket(libc::AF_INET6, libc::SOCK_DGRAM, 0))?;
    Ok((link_notifier().ok(), ctl))
}

impl LinkWatch {
    /// The sockets of namespace `netns` (`/run/netns/NAME`), or of braid's own namespace.
    pub fn open(netns: Option<&str>) -> io::Result<LinkWatch> {
        let (netlink, ctl) = match netns {
            None => make()?,
            Some(ns) => {
                let path = std::path::Path::new("/run/netns").join(ns);
                let f = File::open(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                // A thread of its own enters the namespace, so that braid's threads stay where
                // they are; the sockets it makes keep the namespace after it ends.
                std::thread::scope(|s| {
                    s.spawn(|| {
                        // SAFETY: setns(2) takes an open namespace descriptor (`f`, alive for
                        // the call) and a flag; it changes only this thread's namespace.
                        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                        if r < 0 {
                            let e = io::Error::last_os_error();
                            return Err(io::Error::new(
                                e.kind(),
                                format!("entering namespace {ns}: {e}"),
                            ));
                        }
                        make()
                    })
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("link watch thread panicked")))
                })?
            }
        };
        Ok(LinkWatch {
            netns: netns.map(str::to_string),
            netlink,
            ctl,
        })
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The netlink descriptor to poll for readability (None: poll [`LinkWatch::state`]).
    pub fn fd(&self) -> Option<RawFd> {
        self.netlink.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Empties the netlink socket (the messages only said that something changed).
    pub fn drain(&self) {
        let Some(fd) = &self.netlink else { return };
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            // ENOBUFS (messages lost) needs nothing more: the caller reads every state anew.
            if n <= 0 && io::Error::last_os_error().raw_os_error() != Some(libc::ENOBUFS) {
                break;
            }
        }
    }

    /// The state of the device `name` in this namespace.
    pub fn state(&self, name: &str) -> LinkState {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return LinkState::Gone;
        }
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name and writes the flags of one
        // `ifreq`, which `ifr` is, alive for the call.
        let r = unsafe {
            libc::ioctl(
                self.ctl.as_raw_fd(),
                libc::SIOCGIFFLAGS,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if r < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENODEV) | Some(libc::ENXIO) => LinkState::Gone,
                // Anything else tells nothing: take the device as it was configured.
                _ => LinkState::Up,
            };
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = i32::from(unsafe { ifr.ifr_ifru.ifru_flags });
        if flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0 {
            LinkState::Up
        } else {
            LinkState::Down
        }
    }
}
