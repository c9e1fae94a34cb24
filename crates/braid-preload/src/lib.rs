//! The LD_PRELOAD shim of `braid run --preload`.
//!
//! `connect()` of an AF_INET/AF_INET6 stream socket to a non-loopback destination is redirected
//! to braid: the shim binds the socket to a loopback port (if it is not bound yet), asks braid
//! over a Unix socket to open the upstream MPTCP connection to the original destination, and
//! waits for the verdict. Refused or unreachable: `connect()` fails with braid's errno (e.g.
//! ECONNREFUSED), as it would have without braid. Open: the socket is connected to braid's
//! loopback listener with the real `connect()` — blocking or non-blocking as the socket is
//! (a non-blocking socket gets EINPROGRESS as usual; the wait for the verdict itself blocks).
//! `getpeername()` reports the original destination. Everything else goes to libc untouched.
//!
//! Environment (set by braid): `BRAID_PRELOAD_SOCK` (path of braid's Unix socket) and
//! `BRAID_PRELOAD_PORT` (braid's listener on 127.0.0.1 and ::1). Without them the shim does
//! nothing.

use libc::{c_int, sockaddr, socklen_t};
use std::collections::HashMap;
use std::ffi::CString;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Mutex, OnceLock};

type ConnectFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type PeerNameFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;

struct Config {
    sock: CString,
    port: u16,
}

fn config() -> Option<&'static Config> {
    static C: OnceLock<Option<Config>> = OnceLock::new();
    C.get_or_init(|| {
        let sock = std::env::var("BRAID_PRELOAD_SOCK").ok()?;
        let port = std::env::var("BRAID_PRELOAD_PORT").ok()?.parse().ok()?;
        Some(Config {
            sock: CString::new(sock).ok()?,
            port,
        })
    })
    .as_ref()
}

/// The next definition of `name` after this library (libc's).
fn next_symbol(name: &'static std::ffi::CStr) -> usize {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only looks a symbol up.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
}

fn real_connect() -> Option<ConnectFn> {
    static F: OnceLock<usize> = OnceLock::new();
    let p = *F.get_or_init(|| next_symbol(c"connect"));
    // SAFETY: a non-null result of dlsym("connect") is libc's connect, of this signature.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, ConnectFn>(p) })
}

fn real_getpeername() -> Option<PeerNameFn> {
    static F: OnceLock<usize> = OnceLock::new();
    let p = *F.get_or_init(|| next_symbol(c"getpeername"));
    // SAFETY: a non-null result of dlsym("getpeername") is libc's getpeername.
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, PeerNameFn>(p) })
}

/// Original destinations of redirected sockets (the sockaddr bytes the program passed).
fn peers() -> &'static Mutex<HashMap<c_int, Vec<u8>>> {
    static P: OnceLock<Mutex<HashMap<c_int, Vec<u8>>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Reads a sockaddr the caller passed; `None` for anything but a well-formed IPv4/IPv6 one.
///
/// # Safety
/// `addr` must point at `len` readable bytes (the contract of connect(2)).
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() {
        return None;
    }
    match (*addr).sa_family as c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            let a = &*(addr as *const libc::sockaddr_in);
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            let a = &*(addr as *const libc::sockaddr_in6);
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// A sockaddr for `a`, as bytes of the family the socket has (`v6`: AF_INET6, mapping IPv4).
fn write_addr(a: SocketAddr, v6: bool) -> Vec<u8> {
    if !v6 {
        if let SocketAddr::V4(a) = a {
            // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
            let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            return as_bytes(&s);
        }
    }
    let ip = match a.ip() {
        IpAddr::V4(v) => v.to_ipv6_mapped(),
        IpAddr::V6(v) => v,
    };
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut s: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    s.sin6_port = a.port().to_be();
    s.sin6_addr.s6_addr = ip.octets();
    as_bytes(&s)
}

fn as_bytes<T>(v: &T) -> Vec<u8> {
    // SAFETY: `v` is a live value of `size_of::<T>()` bytes; sockaddr types have no padding
    // that matters to the kernel (it is zeroed above).
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()).to_vec() }
}

/// The socket is a TCP stream socket.
fn is_stream(fd: c_int) -> bool {
    let mut t: c_int = 0;
    let mut l = size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt writes at most `l` bytes into `t`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut t as *mut c_int as *mut libc::c_void,
            &mut l,
        )
    };
    r == 0 && t == libc::SOCK_STREAM
}

/// The socket's local port, binding it to a loopback address first when it is unbound.
fn local_port(fd: c_int, v6: bool, mapped: bool) -> Option<u16> {
    let get = || {
        // SAFETY: sockaddr_storage is plain old data; getsockname writes at most `l` bytes.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut l = size_of::<libc::sockaddr_storage>() as socklen_t;
        let r = unsafe { libc::getsockname(fd, &mut ss as *mut _ as *mut sockaddr, &mut l) };
        if r != 0 {
            return None;
        }
        // SAFETY: the kernel wrote a valid sockaddr of length `l` into `ss`.
        unsafe { read_addr(&ss as *const _ as *const sockaddr, l) }.map(|a| a.port())
    };
    match get()? {
        0 => {
            let lo = if !v6 || mapped {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
            } else {
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0)
            };
            let b = write_addr(lo, v6);
            // SAFETY: `b` holds a sockaddr of the socket's family, `b.len()` bytes.
            let r = unsafe { libc::bind(fd, b.as_ptr() as *const sockaddr, b.len() as socklen_t) };
            if r != 0 {
                return None;
            }
            get().filter(|&p| p != 0)
        }
        p => Some(p),
    }
}

/// Asks braid to open the upstream connection; `Err(errno)` when it could not.
fn ask_braid(real: ConnectFn, cfg: &Config, port: u16, dst: SocketAddr) -> Result<(), c_int> {
    // SAFETY: plain socket/connect/write/read/close calls on a descriptor we own; buffers are
    // live for each call with the lengths passed.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(libc::ENETUNREACH);
        }
        let mut un: libc::sockaddr_un = std::mem::zeroed();
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = cfg.sock.as_bytes();
        if path.len() >= un.sun_path.len() {
            libc::close(s);
            return Err(libc::ENETUNREACH);
        }
        for (d, &c) in un.sun_path.iter_mut().zip(path) {
            *d = c as libc::c_char;
        }
        let ul = size_of::<libc::sockaddr_un>() as socklen_t;
        if real(s, &un as *const _ as *const sockaddr, ul) != 0 {
            libc::close(s);
            return Err(libc::ENETUNREACH);
        }
        let req = format!("CONNECT {port} {dst}\n");
        let mut off = 0;
        while off < req.len() {
            let n = libc::write(s, req.as_ptr().add(off).cast(), req.len() - off);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                libc::close(s);
                return Err(libc::ENETUNREACH);
            }
            off += n as usize;
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 64];
        while !reply.contains(&b'\n') && reply.len() < 64 {
            let n = libc::read(s, buf.as_mut_ptr().cast(), buf.len());
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n <= 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(s);
        let line = String::from_utf8_lossy(&reply);
        let line = line.trim();
        if line == "OK" {
            return Ok(());
        }
        Err(line
            .strip_prefix("ERR ")
            .and_then(|e| e.parse().ok())
            .unwrap_or(libc::ECONNREFUSED))
    }
}

/// connect(2), redirected to braid for TCP to non-loopback destinations.
///
/// # Safety
/// The contract of connect(2): `addr` points at `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real) = real_connect() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let Some(cfg) = config() else {
        return real(fd, addr, len);
    };
    let Some(dst) = read_addr(addr, len) else {
        return real(fd, addr, len);
    };
    let v6 = dst.is_ipv6();
    // What the destination really is (an IPv4-mapped IPv6 address is IPv4).
    let (eff, mapped) = match dst {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => (SocketAddr::new(IpAddr::V4(v4), a.port()), true),
            None => (dst, false),
        },
        _ => (dst, false),
    };
    if eff.ip().is_loopback() || eff.ip().is_unspecified() || eff.port() == 0 || !is_stream(fd) {
        return real(fd, addr, len);
    }
    let Some(port) = local_port(fd, v6, mapped) else {
        return real(fd, addr, len);
    };
    if let Err(e) = ask_braid(real, cfg, port, eff) {
        set_errno(e);
        return -1;
    }
    let original = std::slice::from_raw_parts(addr as *const u8, len as usize).to_vec();
    if let Ok(mut p) = peers().lock() {
        p.insert(fd, original);
    }
    let lo = if !v6 || mapped {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), cfg.port)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), cfg.port)
    };
    let b = write_addr(lo, v6);
    real(fd, b.as_ptr() as *const sockaddr, b.len() as socklen_t)
}

/// getpeername(2): a redirected socket reports its original destination.
///
/// # Safety
/// The contract of getpeername(2): `addr` has room for `*len` bytes.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let Some(real) = real_getpeername() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let r = real(fd, addr, len);
    if r != 0 || len.is_null() {
        return r;
    }
    let Some(cfg) = config() else { return r };
    let Some(now) = read_addr(addr, *len) else {
        return r;
    };
    let braid = now.ip().is_loopback()
        || matches!(now.ip(), IpAddr::V6(v) if v.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
    if !braid || now.port() != cfg.port {
        return r;
    }
    let Some(orig) = peers().lock().ok().and_then(|p| p.get(&fd).cloned()) else {
        return r;
    };
    let room = *len as usize;
    std::ptr::copy_nonoverlapping(orig.as_ptr(), addr as *mut u8, room.min(orig.len()));
    *len = orig.len() as socklen_t;
    r
}
