//! A TUN device carrying raw IP packets (IFF_TUN | IFF_NO_PI), non-blocking.
//!
//! [`Tun::open_offload`] adds `IFF_VNET_HDR`: every packet is preceded by a `virtio_net_hdr`
//! ([`braid_wire::vnet`]) through which braid writes TCP super-segments of up to 64 KiB with the
//! checksum left to the kernel, and (after `TUNSETOFFLOAD` with `TUN_F_CSUM | TUN_F_TSO4 |
//! TUN_F_TSO6`) the kernel hands braid its own super-segments and packets with partial
//! checksums. Where the kernel refuses a step the device is opened with less (see
//! [`Tun::vnet`] and [`Tun::rx_offload`]).
//!
//! braid only ever creates its own devices: a device that already exists (a persistent TUN made
//! with `ip tuntap add`, or any other interface of that name) is refused, never taken over,
//! because braid configures the device and expects it to vanish with it at exit.

use braid_wire::vnet;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An open TUN device; the kernel removes the device when this is dropped.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
    vnet: bool,
    rx_offload: u32,
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
        Self::create(name, false)
    }

    /// [`Tun::open`] with offloads: a `virtio_net_hdr` before every packet, and the kernel
    /// asked to hand over TCP super-segments and partial checksums. A kernel that refuses the
    /// header gets a plain device ([`Tun::vnet`] false); one that refuses TSO gets checksum
    /// offload only, or none ([`Tun::rx_offload`]).
    pub fn open_offload(name: &str) -> io::Result<Tun> {
        match Self::create(name, true) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && !device_exists(name) => {
                Self::create(name, false)
            }
            r => r,
        }
    }

    /// Packets carry a `virtio_net_hdr` (read includes it; use [`Tun::write_vnet`]).
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// The `TUN_F_*` flags the kernel accepted: what it may hand over on reads.
    pub fn rx_offload(&self) -> u32 {
        self.rx_offload
    }

    fn create(name: &str, vnet: bool) -> io::Result<Tun> {
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
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
        if vnet {
            flags |= libc::IFF_VNET_HDR;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
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
        let mut tun = Tun {
            fd,
            name,
            vnet,
            rx_offload: 0,
        };
        if vnet {
            let size = vnet::HDR_LEN as libc::c_int;
            // SAFETY: TUNSETVNETHDRSZ reads one c_int, which `size` is, alive for the call.
            let r = unsafe {
                libc::ioctl(
                    tun.fd.as_raw_fd(),
                    libc::TUNSETVNETHDRSZ,
                    &size as *const libc::c_int,
                )
            };
            if r < 0 {
                return Err(io::Error::other(format!(
                    "setting the virtio header size of {}: {}",
                    tun.name,
                    io::Error::last_os_error()
                )));
            }
            let full = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
            for want in [full, libc::TUN_F_CSUM] {
                // SAFETY: TUNSETOFFLOAD takes its flags by value, no memory is passed.
                let r = unsafe {
                    libc::ioctl(
                        tun.fd.as_raw_fd(),
                        libc::TUNSETOFFLOAD,
                        want as libc::c_ulong,
                    )
                };
                if r == 0 {
                    tun.rx_offload = want;
                    break;
                }
            }
        }
        Ok(tun)
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

    /// Writes one complete packet (checksums done, at most the MTU), with an empty
    /// `virtio_net_hdr` in front on a [`Tun::vnet`] device.
    pub fn write(&self, packet: &[u8]) -> io::Result<usize> {
        if self.vnet {
            return self.write_vnet(&vnet::VnetHdr::default(), packet);
        }
        // SAFETY: `packet` is a live buffer of `packet.len()` bytes.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Tun {
    /// Writes `packet` behind the header `hdr` (a [`Tun::vnet`] device only): one writev(2),
    /// no copy in userspace. Returns the packet bytes written.
    pub fn write_vnet(&self, hdr: &vnet::VnetHdr, packet: &[u8]) -> io::Result<usize> {
        let h = hdr.to_bytes();
        let iov = [
            libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: h.len(),
            },
            libc::iovec {
                iov_base: packet.as_ptr() as *mut libc::c_void,
                iov_len: packet.len(),
            },
        ];
        // SAFETY: both iovecs point at live buffers of the given lengths (`h` and `packet`,
        // alive for the call); writev only reads them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize).saturating_sub(h.len()))
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
