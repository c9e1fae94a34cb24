//! The relay behind `braid run` and `braid capture`: a captured application's TCP connection is
//! terminated by braid's own TCP (a transparent endpoint on the capture device) and carried over
//! a Multipath TCP connection on the paths (the driver's endpoint).
//!
//! The application's SYN is held (`Event::PendingSyn`) while braid opens the upstream
//! connection to the SYN's original destination; it is answered with a SYN/ACK only once that
//! handshake completed, and with a RST when the upstream refused *or* could not be reached
//! (timed out): the application's `connect()` then fails at once ("connection refused") instead
//! of hanging, which is what a RST says. Bytes and half-closes are relayed both ways; a reset on
//! either side resets the other.
//!
//! The upstream side is used only through [`Upstream`], a small set of calls that a library
//! stream type can provide as well.

use braid_io::capture::CaptureDev;
use braid_io::udp::{parse_udp, UdpRelay};
use braid_proto::endpoint::CloseReason;
use braid_proto::{
    ConnHandle, Endpoint, EndpointConfig, Error as EngineError, Event, Instant, PendingId,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

/// What the relay needs of the MPTCP side: open a connection, move bytes, close, and events.
pub trait Upstream {
    /// Opens a connection to `dst` (the handshake completes later: `UpEvent::Connected`).
    fn open(&mut self, now: Instant, dst: SocketAddr) -> Result<ConnHandle, EngineError>;
    fn recv(&mut self, h: ConnHandle, buf: &mut [u8]) -> Result<usize, EngineError>;
    fn send(&mut self, h: ConnHandle, data: &[u8]) -> Result<usize, EngineError>;
    fn send_capacity(&self, h: ConnHandle) -> usize;
    fn shutdown(&mut self, now: Instant, h: ConnHandle);
    fn abort(&mut self, now: Instant, h: ConnHandle);
    /// Forgets the handle; a connection closing in order finishes on its own.
    fn release(&mut self, now: Instant, h: ConnHandle);
    fn poll_event(&mut self) -> Option<Event>;
    /// How the connection is carried, for the capture log ("MPTCP", "TCP (fallback)").
    fn describe(&self, h: ConnHandle) -> String;
}

/// The driver's endpoint as the upstream: connections from the first path of the family.
pub struct EngineUpstream<'a> {
    pub ep: &'a mut Endpoint,
    /// Each path's local address and device name.
    pub locals: &'a [(IpAddr, String)],
    /// Every event polled is also kept here (for the control socket's monitors).
    pub seen: Vec<Event>,
}

impl Upstream for EngineUpstream<'_> {
    fn open(&mut self, now: Instant, dst: SocketAddr) -> Result<ConnHandle, EngineError> {
        let local = self
            .locals
            .iter()
            .find(|(a, _)| a.is_ipv4() == dst.is_ipv4())
            .map(|(a, _)| *a)
            .ok_or(EngineError::AddrNotAvailable)?;
        self.ep.connect(now, local, dst)
    }
    fn recv(&mut self, h: ConnHandle, buf: &mut [u8]) -> Result<usize, EngineError> {
        self.ep.recv(h, buf)
    }
    fn send(&mut self, h: ConnHandle, data: &[u8]) -> Result<usize, EngineError> {
        self.ep.send(h, data)
    }
    fn send_capacity(&self, h: ConnHandle) -> usize {
        self.ep.send_capacity(h)
    }
    fn shutdown(&mut self, now: Instant, h: ConnHandle) {
        let _ = self.ep.shutdown(now, h);
    }
    fn abort(&mut self, now: Instant, h: ConnHandle) {
        let _ = self.ep.abort(now, h);
    }
    fn release(&mut self, now: Instant, h: ConnHandle) {
        self.ep.release(now, h);
    }
    fn poll_event(&mut self) -> Option<Event> {
        let ev = self.ep.poll_event();
        if let Some(e) = ev {
            self.seen.push(e);
        }
        ev
    }
    fn describe(&self, h: ConnHandle) -> String {
        match self.ep.conn_info(h).and_then(|i| i.mptcp) {
            Some(m) if m.fallback => "TCP (the peer has no MPTCP)".to_string(),
            Some(m) => {
                let paths: Vec<String> = m
                    .subflows
                    .iter()
                    .filter_map(|s| {
                        self.locals
                            .iter()
                            .find(|(a, _)| *a == s.local.ip())
                            .map(|(_, d)| d.clone())
                    })
                    .collect();
                format!("MPTCP via {}", paths.join(", "))
            }
            None => "TCP".to_string(),
        }
    }
}

/// One captured connection.
#[derive(Debug)]
struct Relay {
    /// The application's address and the destination it asked for.
    app: SocketAddr,
    dst: SocketAddr,
    up: ConnHandle,
    up_done: bool,
    /// The held SYN, until the upstream handshake decides.
    pending: Option<PendingId>,
    down: Option<ConnHandle>,
    down_done: bool,
    /// The upstream's FIN was passed on to the application, and the other way.
    up_eof: bool,
    down_eof: bool,
    bytes_up: u64,
    bytes_down: u64,
}

/// Counts for the closing line.
#[derive(Clone, Copy, Debug, Default)]
pub struct RelayStats {
    pub connections: u64,
    pub refused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub other_packets: u64,
}

/// The capture side: device, transparent endpoint, UDP relay and the connections in flight.
pub struct Capture {
    pub dev: CaptureDev,
    pub ep: Endpoint,
    pub udp: UdpRelay,
    relays: Vec<Relay>,
    by_up: HashMap<ConnHandle, usize>,
    by_down: HashMap<ConnHandle, usize>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    buf: Vec<u8>,
    pub stats: RelayStats,
    pub quiet: bool,
}

/// Packets read from the capture device per wake-up.
const RX_BATCH: usize = 256;
const CHUNK: usize = 64 * 1024;
/// IP protocol number of TCP.
const IPPROTO_TCP: u8 = 6;

impl Capture {
    pub fn new(dev: CaptureDev, seed: u64, quiet: bool) -> Capture {
        let mut cfg = EndpointConfig::default();
        cfg.mptcp.enabled = false;
        cfg.tcp.mss = (braid_io::capture::MTU - 40) as u16;
        let mut ep = Endpoint::new(cfg, seed);
        ep.listen_transparent();
        Capture {
            dev,
            ep,
            udp: UdpRelay::new(),
            relays: Vec::new(),
            by_up: HashMap::new(),
            by_down: HashMap::new(),
            rx: vec![0; 65536],
            tx: Vec::with_capacity(65536),
            buf: vec![0; CHUNK],
            stats: RelayStats::default(),
            quiet,
        }
    }

    /// Descriptors to watch: the device and the UDP flows.
    pub fn fds(&self, out: &mut Vec<RawFd>) {
        out.push(self.dev.tun.as_raw_fd());
        self.udp.fds(out);
    }

    /// Connections in flight (held SYNs included).
    /// The upstream (MPTCP) connections of the captured ones, for `braid status`.
    pub fn upstream_handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.by_up.keys().copied()
    }

    pub fn active(&self) -> usize {
        self.relays.len()
    }

    /// When the capture endpoint wants to run its timers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ep.poll_timeout()
    }

    /// Reads what the device and the UDP sockets have, runs due timers, relays, and sends.
    pub fn service(&mut self, now: Instant, up: &mut dyn Upstream) {
        for _ in 0..RX_BATCH {
            let n = match self.dev.tun.read(&mut self.rx) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            let p = &self.rx[..n];
            match p.first().map(|b| b >> 4) {
                Some(4) if p.len() > 9 && p[9] == IPPROTO_TCP => self.ep.handle_packet(now, p),
                Some(6) if p.len() > 6 && p[6] == IPPROTO_TCP => self.ep.handle_packet(now, p),
                _ => match parse_udp(p) {
                    Some(d) => self.udp.send(&d, now),
                    None => self.stats.other_packets += 1,
                },
            }
            self.flush(now);
        }
        let tun = &self.dev.tun;
        self.udp.poll(now, |pkt| {
            let _ = tun.write(pkt);
        });
        if self.ep.poll_timeout().is_some_and(|t| t <= now) {
            self.ep.handle_timeout(now);
        }
        self.events(now, up);
        self.pump(now, up);
        self.flush(now);
    }

    fn flush(&mut self, now: Instant) {
        while self.ep.poll_transmit(now, &mut self.tx).is_some() {
            let _ = self.dev.tun.write(&self.tx);
        }
    }

    fn log(&self, msg: &str) {
        if !self.quiet {
            eprintln!("braid: {msg}");
        }
    }

    fn events(&mut self, now: Instant, up: &mut dyn Upstream) {
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                Event::PendingSyn { id, local, remote } => match up.open(now, local) {
                    Ok(h) => {
                        self.by_up.insert(h, self.relays.len());
                        self.relays.push(Relay {
                            app: remote,
                            dst: local,
                            up: h,
                            up_done: false,
                            pending: Some(id),
                            down: None,
                            down_done: false,
                            up_eof: false,
                            down_eof: false,
                            bytes_up: 0,
                            bytes_down: 0,
                        });
                    }
                    Err(e) => {
                        self.stats.refused += 1;
                        self.log(&format!("{remote} -> {local}: refused ({e})"));
                        let _ = self.ep.refuse_pending(id);
                    }
                },
                Event::Closed(c, reason) => {
                    if let Some(&i) = self.by_down.get(&c) {
                        let r = &mut self.relays[i];
                        r.down_done = true;
                        if reason != CloseReason::Normal && !r.up_done {
                            up.abort(now, r.up);
                            r.up_done = true;
                        }
                    }
                }
                _ => {}
            }
        }
        while let Some(ev) = up.poll_event() {
            match ev {
                Event::Connected(h) => {
                    let Some(&i) = self.by_up.get(&h) else {
                        continue;
                    };
                    let Some(id) = self.relays[i].pending.take() else {
                        continue;
                    };
                    match self.ep.accept_pending(now, id) {
                        Ok(c) => {
                            self.by_down.insert(c, i);
                            self.relays[i].down = Some(c);
                            self.stats.connections += 1;
                            let r = &self.relays[i];
                            let how = up.describe(h);
                            self.log(&format!("captured {} -> {} over {how}", r.app, r.dst));
                        }
                        Err(_) => {
                            up.abort(now, h);
                            self.relays[i].up_done = true;
                            self.relays[i].down_done = true;
                        }
                    }
                }
                Event::Closed(h, reason) => {
                    let Some(&i) = self.by_up.get(&h) else {
                        continue;
                    };
                    let r = &mut self.relays[i];
                    r.up_done = true;
                    if let Some(id) = r.pending.take() {
                        // RST for refused and for unreachable alike: connect() fails at once.
                        let _ = self.ep.refuse_pending(id);
                        r.down_done = true;
                        self.stats.refused += 1;
                        let what = match reason {
                            CloseReason::Refused => "connection refused",
                            CloseReason::TimedOut => "timed out",
                            _ => "reset",
                        };
                        let (app, dst) = (r.app, r.dst);
                        self.log(&format!(
                            "{app} -> {dst}: {what} upstream, answered with RST"
                        ));
                    } else if reason != CloseReason::Normal {
                        if let Some(c) = r.down.filter(|_| !r.down_done) {
                            let _ = self.ep.abort(now, c);
                            r.down_done = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Moves bytes both ways as far as the buffers allow; passes FINs on; retires finished
    /// connections.
    fn pump(&mut self, now: Instant, up: &mut dyn Upstream) {
        let buf = &mut self.buf;
        for r in self.relays.iter_mut() {
            let Some(c) = r.down else { continue };
            // Upstream → application.
            while !r.up_eof && !r.down_done {
                let room = self.ep.send_capacity(c).min(buf.len());
                if room == 0 {
                    break;
                }
                match up.recv(r.up, &mut buf[..room]) {
                    Ok(0) => {
                        r.up_eof = true;
                        let _ = self.ep.shutdown(now, c);
                    }
                    Ok(n) => match self.ep.send(c, &buf[..n]) {
                        Ok(m) if m == n => {
                            r.bytes_down += n as u64;
                        }
                        _ => {
                            // Cannot happen with `room` bytes free; reset both rather than lose data.
                            up.abort(now, r.up);
                            let _ = self.ep.abort(now, c);
                            r.up_done = true;
                            r.down_done = true;
                        }
                    },
                    Err(EngineError::WouldBlock) => break,
                    Err(_) => {
                        let _ = self.ep.abort(now, c);
                        r.up_done = true;
                        r.down_done = true;
                    }
                }
            }
            // Application → upstream.
            while !r.down_eof && !r.up_done {
                let room = up.send_capacity(r.up).min(buf.len());
                if room == 0 {
                    break;
                }
                match self.ep.recv(c, &mut buf[..room]) {
                    Ok(0) => {
                        r.down_eof = true;
                        up.shutdown(now, r.up);
                    }
                    Ok(n) => match up.send(r.up, &buf[..n]) {
                        Ok(m) if m == n => {
                            r.bytes_up += n as u64;
                        }
                        _ => {
                            up.abort(now, r.up);
                            let _ = self.ep.abort(now, c);
                            r.up_done = true;
                            r.down_done = true;
                        }
                    },
                    Err(EngineError::WouldBlock) => break,
                    Err(_) => {
                        up.abort(now, r.up);
                        r.up_done = true;
                        r.down_done = true;
                    }
                }
            }
        }
        // Retire: both FINs passed on (the endpoints finish the closing handshakes on their
        // own), or either side gone.
        let mut i = 0;
        while i < self.relays.len() {
            let r = &self.relays[i];
            let finished = (r.up_eof && r.down_eof) || (r.up_done && r.down_done);
            let refused = r.pending.is_none() && r.down.is_none() && r.up_done;
            if finished || refused {
                let r = self.relays.swap_remove(i);
                self.retire(now, &r, up);
                if let Some(m) = self.relays.get(i) {
                    self.by_up.insert(m.up, i);
                    if let Some(c) = m.down {
                        self.by_down.insert(c, i);
                    }
                }
                continue;
            }
            i += 1;
        }
    }

    fn retire(&mut self, now: Instant, r: &Relay, up: &mut dyn Upstream) {
        self.by_up.remove(&r.up);
        up.release(now, r.up);
        if let Some(c) = r.down {
            self.by_down.remove(&c);
            self.ep.release(now, c);
        }
        self.stats.bytes_up += r.bytes_up;
        self.stats.bytes_down += r.bytes_down;
    }

    /// Resets every connection in flight (at exit).
    pub fn abort_all(&mut self, now: Instant, up: &mut dyn Upstream) {
        for r in std::mem::take(&mut self.relays) {
            if let Some(id) = r.pending {
                let _ = self.ep.refuse_pending(id);
            }
            if !r.up_done {
                up.abort(now, r.up);
            }
            if let Some(c) = r.down.filter(|_| !r.down_done) {
                let _ = self.ep.abort(now, c);
            }
            self.retire(now, &r, up);
        }
        self.flush(now);
    }
}
