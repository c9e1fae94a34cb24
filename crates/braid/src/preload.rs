//! `braid run --preload -- PROG`: PROG runs in braid's own namespace with the LD_PRELOAD shim
//! `libbraid_preload.so` (built by the workspace, found next to the braid binary; an existing
//! LD_PRELOAD is kept after it). The shim asks braid over a Unix socket to open the upstream
//! MPTCP connection for each connect() and waits for the verdict (OK, or the errno to fail
//! with: ECONNREFUSED, ETIMEDOUT, ...); it then connects the socket to braid's loopback
//! listener, where braid pairs the accepted connection with the upstream one by the socket's
//! local port and relays bytes and half-closes both ways. Programs that do not call libc's
//! connect() (static or Go binaries) are not redirected: use the namespace mode for them.

use crate::app::LoopControl;
use crate::relay::{EngineUpstream, Upstream};
use crate::run::{
    failure, linger, open_upstream, path_locals, refresh_locals, RunArgs, Supervisor, LINGER,
};
use braid_io::netns;
use braid_proto::endpoint::CloseReason;
use braid_proto::{ConnHandle, Error as EngineError, Event, Instant};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

/// File name of the shim.
pub const SHIM: &str = "libbraid_preload.so";
/// How long an opened upstream connection waits for the program's socket to arrive.
const ARRIVAL: Duration = Duration::from_secs(30);
const CHUNK: usize = 64 * 1024;
/// Most requests waiting for a verdict; beyond it new ones are closed (ECONNREFUSED for the shim).
const MAX_ASKS: usize = 1024;

/// A shim's request, waiting for the upstream verdict.
struct Ask {
    stream: UnixStream,
    buf: Vec<u8>,
    up: Option<ConnHandle>,
    port: u16,
    dst: Option<SocketAddr>,
    done: bool,
}

/// One redirected connection.
struct Relay {
    up: ConnHandle,
    dst: SocketAddr,
    port: u16,
    app: Option<TcpStream>,
    /// Until when the program's socket may take to arrive.
    arrive_by: Instant,
    to_app: Vec<u8>,
    to_app_off: usize,
    up_eof: bool,
    app_eof: bool,
    up_done: bool,
    app_done: bool,
    bytes_down: u64,
    bytes_up: u64,
}

/// errno for the shim, from why the upstream connection ended before it was established.
fn errno_of(reason: CloseReason) -> i32 {
    match reason {
        CloseReason::Refused => libc::ECONNREFUSED,
        CloseReason::TimedOut => libc::ETIMEDOUT,
        _ => libc::ECONNRESET,
    }
}

fn reply(s: &mut UnixStream, msg: &str) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = s.write_all(msg.as_bytes());
}

fn shim_path() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(std::path::Path::new("."));
    for cand in [dir.join(SHIM), dir.join("..").join(SHIM)] {
        if cand.is_file() {
            return Ok(cand);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "{SHIM} is not next to {} (build the workspace: cargo build --release)",
            exe.display()
        ),
    ))
}

pub fn main(args: RunArgs) -> ExitCode {
    let net = &args.net;
    let shim = match shim_path() {
        Ok(p) => p,
        Err(e) => return failure(&e.to_string()),
    };
    let (mut drv, _seed) = match open_upstream(net) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let pid = std::process::id();
    let dir = PathBuf::from(format!("/run/braid/run-{pid}"));
    let sock_path = dir.join("preload.sock");
    let setup = || -> io::Result<(UnixListener, TcpListener, Option<TcpListener>)> {
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions("/run/braid", std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let u = UnixListener::bind(&sock_path)?;
        // The program may run as another user.
        std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o777))?;
        u.set_nonblocking(true)?;
        let t4 = TcpListener::bind("127.0.0.1:0")?;
        t4.set_nonblocking(true)?;
        let port = t4.local_addr()?.port();
        let t6 = TcpListener::bind(("::1", port)).ok();
        if let Some(t) = &t6 {
            t.set_nonblocking(true)?;
        }
        Ok((u, t4, t6))
    };
    let (ctl, l4, l6) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return failure(&format!("setting up {}: {e}", dir.display()));
        }
    };
    let port = l4.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut preload = shim.display().to_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        preload = format!("{preload}:{}", old.to_string_lossy());
    }
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .env("LD_PRELOAD", &preload)
        .env("BRAID_PRELOAD_SOCK", &sock_path)
        .env("BRAID_PRELOAD_PORT", port.to_string());
    let who = netns::invoking_user();
    let child = match netns::spawn_in(None, None, who.as_ref(), &mut cmd) {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("braid: cannot run {}: {e}", args.command[0]);
            return ExitCode::from(127);
        }
    };
    if !net.quiet {
        let paths: Vec<String> = drv.paths().map(|p| p.tun.clone()).collect();
        eprintln!(
            "braid: running {} (pid {}) with {SHIM}: its connect() goes to braid (127.0.0.1:{port}) and over MPTCP on {}",
            args.command[0],
            child.id(),
            paths.join(", ")
        );
    }
    let mut locals = path_locals(&drv);
    let mut sup = Supervisor::new(child);
    let mut asks: Vec<Ask> = Vec::new();
    let mut relays: Vec<Relay> = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    let (mut connections, mut refused, mut bytes_down, mut bytes_up) = (0u64, 0u64, 0u64, 0u64);
    let mut fds: Vec<RawFd> = Vec::new();
    let mut wfds: Vec<RawFd> = Vec::new();
    let status =
        match LoopControl::open(args.net.control.as_deref(), args.net.quiet, "run", &mut drv) {
            Ok(c) => c,
            Err(code) => {
                sup.kill();
                return code;
            }
        };
    loop {
        status.serve(&mut drv, &mut relays.iter().map(|r| r.up), true);
        refresh_locals(&drv, &mut locals);
        let now = drv.now();
        let mut up = EngineUpstream {
            ep: &mut drv.endpoint,
            locals: &locals,
            seen: Vec::new(),
        };
        // New requests from the shim.
        while let Ok((s, _)) = ctl.accept() {
            if asks.len() < MAX_ASKS && s.set_nonblocking(true).is_ok() {
                asks.push(Ask {
                    stream: s,
                    buf: Vec::new(),
                    up: None,
                    port: 0,
                    dst: None,
                    done: false,
                });
            }
        }
        for a in asks.iter_mut().filter(|a| a.up.is_none() && !a.done) {
            let mut b = [0u8; 256];
            match a.stream.read(&mut b) {
                Ok(0) => a.done = true,
                Ok(n) => a.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => a.done = true,
            }
            if a.buf.len() > 200 {
                a.done = true;
                continue;
            }
            let Some(end) = a.buf.iter().position(|&c| c == b'\n') else {
                continue;
            };
            let line = String::from_utf8_lossy(&a.buf[..end]).to_string();
            let mut w = line.split_whitespace();
            let parsed = match (w.next(), w.next(), w.next()) {
                (Some("CONNECT"), Some(p), Some(d)) => p.parse::<u16>().ok().zip(d.parse().ok()),
                _ => None,
            };
            let Some((p, dst)) = parsed else {
                reply(&mut a.stream, &format!("ERR {}\n", libc::EINVAL));
                a.done = true;
                continue;
            };
            match up.open(now, dst) {
                Ok(h) => {
                    a.up = Some(h);
                    a.port = p;
                    a.dst = Some(dst);
                }
                Err(_) => {
                    refused += 1;
                    reply(&mut a.stream, &format!("ERR {}\n", libc::ENETUNREACH));
                    a.done = true;
                }
            }
        }
        // Upstream verdicts and closes.
        while let Some(ev) = up.poll_event() {
            match ev {
                Event::Connected(h) => {
                    if let Some(a) = asks.iter_mut().find(|a| a.up == Some(h) && !a.done) {
                        reply(&mut a.stream, "OK\n");
                        a.done = true;
                        let dst = a.dst.expect("set with up");
                        relays.push(Relay {
                            up: h,
                            dst,
                            port: a.port,
                            app: None,
                            arrive_by: now + ARRIVAL,
                            to_app: Vec::new(),
                            to_app_off: 0,
                            up_eof: false,
                            app_eof: false,
                            up_done: false,
                            app_done: false,
                            bytes_down: 0,
                            bytes_up: 0,
                        });
                    }
                }
                Event::Closed(h, reason) => {
                    if let Some(a) = asks.iter_mut().find(|a| a.up == Some(h) && !a.done) {
                        refused += 1;
                        reply(&mut a.stream, &format!("ERR {}\n", errno_of(reason)));
                        a.done = true;
                        up.release(now, h);
                        if !net.quiet {
                            eprintln!(
                                "braid: connect to {}: {reason:?} upstream",
                                a.dst.expect("set with up")
                            );
                        }
                    } else if let Some(r) = relays.iter_mut().find(|r| r.up == h) {
                        r.up_done = true;
                        if reason != CloseReason::Normal {
                            if let Some(s) = r.app.take() {
                                netns::reset_on_close(s.as_raw_fd());
                            }
                            r.app_done = true;
                        }
                    }
                }
                _ => {}
            }
        }
        asks.retain(|a| !a.done);
        // The program's sockets arrive at the listener.
        for l in std::iter::once(&l4).chain(l6.iter()) {
            while let Ok((s, peer)) = l.accept() {
                let r = relays
                    .iter_mut()
                    .find(|r| r.app.is_none() && !r.app_done && r.port == peer.port());
                match r {
                    Some(r) if s.set_nonblocking(true).is_ok() => {
                        let _ = s.set_nodelay(true);
                        connections += 1;
                        if !net.quiet {
                            eprintln!(
                                "braid: captured connect() to {} over {}",
                                r.dst,
                                up.describe(r.up)
                            );
                        }
                        r.app = Some(s);
                    }
                    _ => netns::reset_on_close(s.as_raw_fd()),
                }
            }
        }
        for r in relays.iter_mut() {
            pump(now, r, &mut up, &mut buf);
        }
        relays.retain_mut(|r| {
            let finished = (r.up_eof && r.app_eof && r.to_app_off >= r.to_app.len())
                || (r.up_done && r.app_done)
                || (r.app.is_none() && now >= r.arrive_by);
            if finished {
                if !r.up_done && (r.app.is_none() || r.app_done) {
                    up.abort(now, r.up);
                }
                up.release(now, r.up);
                bytes_down += r.bytes_down;
                bytes_up += r.bytes_up;
            }
            !finished
        });
        for ev in std::mem::take(&mut up.seen) {
            status.event(&drv, now, &ev);
        }
        if sup.check(now, relays.len()) {
            break;
        }
        fds.clear();
        wfds.clear();
        fds.push(ctl.as_raw_fd());
        fds.push(l4.as_raw_fd());
        if let Some(l) = &l6 {
            fds.push(l.as_raw_fd());
        }
        fds.extend(asks.iter().map(|a| a.stream.as_raw_fd()));
        for r in &relays {
            if let Some(s) = &r.app {
                if r.to_app_off < r.to_app.len() {
                    wfds.push(s.as_raw_fd());
                }
                if !r.app_eof {
                    fds.push(s.as_raw_fd());
                }
            }
        }
        let max_wait = sup.max_wait(now, &mut fds);
        if let Err(e) = drv.wait_rw(Some(max_wait), &fds, &wfds) {
            eprintln!("braid: event loop: {e}");
            sup.kill();
            break;
        }
    }
    let now = drv.now();
    for r in relays.drain(..) {
        let _ = drv.endpoint.abort(now, r.up);
        drv.endpoint.release(now, r.up);
    }
    linger(&mut drv, LINGER);
    let _ = drv.drain(Duration::from_millis(500));
    if let Err(e) = drv.finish_capture() {
        eprintln!("braid: writing capture: {e}");
    }
    if !net.quiet {
        eprintln!(
            "braid: {connections} connections captured ({refused} refused), {bytes_down} bytes to PROG, {bytes_up} from it"
        );
    }
    drop(ctl);
    let _ = std::fs::remove_dir_all(&dir);
    sup.exit_code()
}

/// Moves bytes between the program's socket and the upstream connection.
fn pump(now: Instant, r: &mut Relay, up: &mut dyn Upstream, buf: &mut [u8]) {
    let Some(s) = r.app.as_mut() else { return };
    // Upstream → program.
    while !r.app_done {
        if r.to_app_off < r.to_app.len() {
            match s.write(&r.to_app[r.to_app_off..]) {
                Ok(n) => {
                    r.to_app_off += n;
                    r.bytes_down += n as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    up.abort(now, r.up);
                    r.up_done = true;
                    r.app_done = true;
                    break;
                }
            }
        }
        if r.up_eof {
            break;
        }
        match up.recv(r.up, buf) {
            Ok(0) => {
                r.up_eof = true;
                let _ = s.shutdown(Shutdown::Write);
            }
            Ok(n) => {
                r.to_app.clear();
                r.to_app.extend_from_slice(&buf[..n]);
                r.to_app_off = 0;
            }
            Err(EngineError::WouldBlock) => break,
            Err(_) => {
                netns::reset_on_close(s.as_raw_fd());
                r.app = None;
                r.up_done = true;
                r.app_done = true;
                return;
            }
        }
    }
    // Program → upstream.
    while !r.app_eof && !r.up_done && !r.app_done {
        let room = up.send_capacity(r.up).min(buf.len());
        if room == 0 {
            break;
        }
        match s.read(&mut buf[..room]) {
            Ok(0) => {
                r.app_eof = true;
                up.shutdown(now, r.up);
            }
            Ok(n) => match up.send(r.up, &buf[..n]) {
                Ok(m) if m == n => r.bytes_up += n as u64,
                _ => {
                    up.abort(now, r.up);
                    r.up_done = true;
                    r.app_done = true;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                up.abort(now, r.up);
                r.up_done = true;
                r.app_done = true;
            }
        }
    }
}
