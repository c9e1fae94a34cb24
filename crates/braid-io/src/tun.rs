//! A TUN device carrying raw IP packets (IFF_TUN | IFF_NO_PI), non-blocking.
//!
//! braid only ever creates its own devices: a device that already exists (a persistent TUN made
//! with `ip tuntap add`, or any other interface of that name) is refused, never taken over,
//! because braid configures the device and expects it to vanish with it at exit.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An open TUN device; the kernel removes the device when this is dropped.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

/// The error every caller shows when the device cannot be made.
fn privilege_error(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => io::Error::new(
            e.kind(),
            format!("opening TUN device needs root (CAP_NET_ADMIN): {e}"),
        ),
        _ => io::Error::new(e.kind(), format!("opening TUN device: {e}")),
    }
}

/// The error for a device name that is taken.
fn exists_error(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "network device {name} already exists: braid creates its own TUN device for each \
             path and removes it at exit, so it will not take over {name} (choose another \
             tun=NAME, or remove it with `ip link del {name}`)"
        ),
    )
}

/// True when an interface called `name` exists in this network namespace.
pub fn device_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

impl Tun {
    /// Creates the TUN device `name`; refuses (`AlreadyExists`) when a device of that name
    /// exists already.
    pub fn open(name: &str) -> io::Result<Tun> {
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name.contains('\0')
            || name.contains('/')
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?}"),
            ));
        }
        // TUNSETIFF attaches to an existing persistent TUN device without complaint; look
        // first for a clear message, and let IFF_TUN_EXCL close the race after the look.
        if device_exists(name) {
            return Err(exists_error(name));
        }
        let path = c"/dev/net/tun";
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(privilege_error(io::Error::last_os_error()));
        }
        // SAFETY: open succeeded: `raw` is an open descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `ifr` is, alive for the call;
        // the name is NUL-terminated (shorter than IFNAMSIZ, rest zero).
        let r = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETIFF,
                &mut ifr as *mut libc::ifreq,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            // EBUSY: the device appeared after the look (IFF_TUN_EXCL); EINVAL: an interface
            // of that name that is no TUN device.
            if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::EINVAL))
                && device_exists(name)
            {
                return Err(exists_error(name));
            }
            return Err(privilege_error(e));
        }
        let name = ifr
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8 as char)
            .collect();
        Ok(Tun { fd, name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one packet; `WouldBlock` when none is waiting.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a live, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one packet.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        // SAFETY: `packet` is a live buffer of `packet.len()` bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
