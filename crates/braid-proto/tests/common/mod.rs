//! A two-host harness for engine tests: packets travel with a fixed one-way delay through a
//! filter that may drop, duplicate or rewrite them. Virtual time, no simulator crate needed.
#![allow(dead_code)]

use braid_proto::{ConnHandle, Endpoint, EndpointConfig, Event, Instant};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
/// The second address of each host (MPTCP tests), in a subnet of its own.
pub const A2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
pub const B2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2));

/// Which way a packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    AtoB,
    BtoA,
}

/// What the filter decides for one packet.
pub enum Verdict {
    Pass,
    Drop,
    /// Deliver these bytes instead (rewritten, or several packets).
    Replace(Vec<Vec<u8>>),
}

type Filter = Box<dyn FnMut(Dir, &[u8]) -> Verdict>;

pub struct Pair {
    pub a: Endpoint,
    pub b: Endpoint,
    pub now: Instant,
    pub delay: Duration,
    /// (arrival time, sequence) -> (direction, packet)
    in_flight: BTreeMap<(Instant, u64), (Dir, Vec<u8>)>,
    seq: u64,
    pub filter: Option<Filter>,
    /// Every packet put on the wire, with its direction (before the filter).
    pub log: Vec<(Instant, Dir, Vec<u8>)>,
    pub keep_log: bool,
    pub events_a: Vec<Event>,
    pub events_b: Vec<Event>,
}

impl Pair {
    pub fn new(cfg_a: EndpointConfig, cfg_b: EndpointConfig, delay: Duration) -> Self {
        let mut a = Endpoint::new(cfg_a, 1);
        let mut b = Endpoint::new(cfg_b, 2);
        a.add_local_addr(A);
        b.add_local_addr(B);
        Pair {
            a,
            b,
            now: Instant::ZERO,
            delay,
            in_flight: BTreeMap::new(),
            seq: 0,
            filter: None,
            log: Vec::new(),
            keep_log: true,
            events_a: Vec::new(),
            events_b: Vec::new(),
        }
    }

    pub fn default_pair() -> Self {
        Self::new(
            EndpointConfig::default(),
            EndpointConfig::default(),
            Duration::from_millis(10),
        )
    }

    /// Injects a raw packet for delivery to one side after the link delay.
    pub fn inject(&mut self, dir: Dir, packet: Vec<u8>) {
        self.seq += 1;
        self.in_flight
            .insert((self.now + self.delay, self.seq), (dir, packet));
    }

    /// Injects a raw packet delivered right now.
    pub fn deliver_now(&mut self, dir: Dir, packet: &[u8]) {
        match dir {
            Dir::AtoB => self.b.handle_packet(self.now, packet),
            Dir::BtoA => self.a.handle_packet(self.now, packet),
        }
        self.flush();
    }

    /// Moves everything each endpoint wants to send onto the wire.
    pub fn flush(&mut self) {
        let mut buf = Vec::new();
        for dir in [Dir::AtoB, Dir::BtoA] {
            loop {
                let ep = match dir {
                    Dir::AtoB => &mut self.a,
                    Dir::BtoA => &mut self.b,
                };
                if ep.poll_transmit(self.now, &mut buf).is_none() {
                    break;
                }
                if self.keep_log {
                    self.log.push((self.now, dir, buf.clone()));
                }
                let verdict = match self.filter.as_mut() {
                    Some(f) => f(dir, &buf),
                    None => Verdict::Pass,
                };
                match verdict {
                    Verdict::Pass => self.inject(dir, buf.clone()),
                    Verdict::Drop => {}
                    Verdict::Replace(ps) => {
                        for p in ps {
                            self.inject(dir, p);
                        }
                    }
                }
            }
        }
        while let Some(e) = self.a.poll_event() {
            self.events_a.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.events_b.push(e);
        }
    }

    /// Advances to the next packet arrival or timer, up to `limit`. False when nothing is left.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let next_pkt = self.in_flight.keys().next().map(|k| k.0);
        let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let next = match (next_pkt, next_timer) {
            (Some(p), Some(t)) => p.min(t),
            (Some(p), None) => p,
            (None, Some(t)) => t,
            (None, None) => return false,
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        if next_pkt == Some(next) {
            let (_, (dir, p)) = self.in_flight.pop_first().expect("non-empty");
            match dir {
                Dir::AtoB => self.b.handle_packet(self.now, &p),
                Dir::BtoA => self.a.handle_packet(self.now, &p),
            }
        } else {
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    /// Runs for `d` of virtual time (or until nothing is left to happen).
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
        self.now = self.now.max(limit);
    }

    /// Runs until `cond` holds (checked after every step) or `d` passes; returns whether it held.
    pub fn run_until(&mut self, d: Duration, mut cond: impl FnMut(&mut Pair) -> bool) -> bool {
        let limit = self.now + d;
        loop {
            if cond(self) {
                return true;
            }
            if !self.step(limit) {
                return cond(self);
            }
        }
    }

    /// B listens on `port`, A connects; returns (client handle on A, server handle on B).
    pub fn establish(&mut self, port: u16) -> (ConnHandle, ConnHandle) {
        self.b.listen(port).expect("listen");
        let ca = self
            .a
            .connect(self.now, A, SocketAddr::new(B, port))
            .expect("connect");
        let mut cb = None;
        let ok = self.run_until(Duration::from_secs(5), |p| {
            if cb.is_none() {
                cb = p.b.accept(port);
            }
            cb.is_some() && p.events_a.contains(&Event::Connected(ca))
        });
        assert!(ok, "handshake did not complete");
        (ca, cb.expect("accepted"))
    }

    /// Sends `data` from A on `ca` and reads it on B from `cb`, with `limit` of virtual time.
    /// Returns what B read.
    pub fn transfer(
        &mut self,
        ca: ConnHandle,
        cb: ConnHandle,
        data: &[u8],
        limit: Duration,
    ) -> Vec<u8> {
        self.transfer_dir(Dir::AtoB, ca, cb, data, limit)
    }

    /// Sends `data` on the sending side of `dir` (handle `tx`) and reads it on the other side
    /// (handle `rx`), with `limit` of virtual time. Returns what was read.
    pub fn transfer_dir(
        &mut self,
        dir: Dir,
        tx: ConnHandle,
        rx: ConnHandle,
        data: &[u8],
        limit: Duration,
    ) -> Vec<u8> {
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = self.now + limit;
        loop {
            let (s, r) = match dir {
                Dir::AtoB => (&mut self.a, &mut self.b),
                Dir::BtoA => (&mut self.b, &mut self.a),
            };
            while sent < data.len() {
                match s.send(tx, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            while let Ok(n) = r.recv(rx, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            if got.len() >= data.len() || !self.step(end) {
                break;
            }
        }
        got
    }
}

/// Deterministic test data.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut r = braid_proto::rng::Rng::new(seed);
    (0..n).map(|_| r.next_u32() as u8).collect()
}

// ---------------------------------------------------------------------------------------------
// Segment templates and a scripted peer (smoltcp-style state-table tests)
// ---------------------------------------------------------------------------------------------

use braid_proto::{ConnInfo, TcpState};
use braid_wire::{IpRepr, SackBlock, SackList, TcpFlags, TcpOptions, TcpRepr, Timestamps};

pub const SYN: u8 = TcpFlags::SYN;
pub const ACK: u8 = TcpFlags::ACK;
pub const FIN: u8 = TcpFlags::FIN;
pub const RST: u8 = TcpFlags::RST;
pub const PSH: u8 = TcpFlags::PSH;

/// An owned TCP segment: a template to send, or what an endpoint sent, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seg {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    pub sack: Vec<(u32, u32)>,
    pub payload: Vec<u8>,
}

impl Seg {
    pub fn new(seq: u32, ack: u32, flags: u8) -> Self {
        Seg {
            seq,
            ack,
            flags,
            window: 65535,
            ..Default::default()
        }
    }
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }
    pub fn syn(&self) -> bool {
        self.has(SYN)
    }
    pub fn fin(&self) -> bool {
        self.has(FIN)
    }
    pub fn rst(&self) -> bool {
        self.has(RST)
    }
    pub fn is_ack(&self) -> bool {
        self.has(ACK)
    }
    /// Sequence space the segment occupies.
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + self.syn() as u32 + self.fin() as u32
    }
    /// A pure ACK: ACK flag only, no payload.
    pub fn pure_ack(&self) -> bool {
        self.flags & !(PSH) == ACK && self.payload.is_empty()
    }
    pub fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }
    pub fn ts(mut self, tsval: u32, tsecr: u32) -> Self {
        self.ts = Some((tsval, tsecr));
        self
    }
    pub fn win(mut self, w: u16) -> Self {
        self.window = w;
        self
    }

    pub fn parse(packet: &[u8]) -> Seg {
        let (_, r) = braid_wire::parse_ip_tcp(packet).expect("engine emitted a bad packet");
        Seg {
            src_port: r.src_port,
            dst_port: r.dst_port,
            seq: r.seq,
            ack: r.ack,
            flags: r.flags.0,
            window: r.window,
            mss: r.options.mss,
            wscale: r.options.window_scale,
            sack_perm: r.options.sack_permitted,
            ts: r.options.timestamps.map(|t| (t.tsval, t.tsecr)),
            sack: r
                .options
                .sack
                .as_slice()
                .iter()
                .map(|b| (b.left, b.right))
                .collect(),
            payload: r.payload.to_vec(),
        }
    }

    /// The whole IP packet from `src` to `dst` (ports taken from the addresses).
    pub fn build(&self, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let blocks: Vec<SackBlock> = self
            .sack
            .iter()
            .map(|&(left, right)| SackBlock { left, right })
            .collect();
        let r = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: self.seq,
            ack: self.ack,
            flags: TcpFlags(self.flags),
            window: self.window,
            urgent: 0,
            options: TcpOptions {
                mss: self.mss,
                window_scale: self.wscale,
                sack_permitted: self.sack_perm,
                sack: SackList::from_slice(&blocks),
                timestamps: self.ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                ..Default::default()
            },
            payload: &self.payload,
        };
        let ip = IpRepr::new_tcp(src.ip(), dst.ip(), 0).expect("same family");
        let mut buf = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &r, &mut buf);
        buf
    }
}

/// The TCP segments of `log` going in `dir`, parsed, from index `from` on.
pub fn segs_in(log: &[(Instant, Dir, Vec<u8>)], dir: Dir, from: usize) -> Vec<(Instant, Seg)> {
    log[from.min(log.len())..]
        .iter()
        .filter(|(_, d, _)| *d == dir)
        .map(|(t, _, p)| (*t, Seg::parse(p)))
        .collect()
}

/// One real endpoint (at `B`) and a scripted peer (at `A`) whose segments the test writes.
pub struct Lone {
    pub ep: Endpoint,
    pub now: Instant,
    /// Everything the endpoint sent, with the time.
    pub out: Vec<(Instant, Seg)>,
    pub events: Vec<Event>,
    /// The scripted peer's address.
    pub peer: SocketAddr,
    /// The endpoint's side of the connection under test.
    pub local: SocketAddr,
}

/// Scripted peer's address (port 40000 unless a test changes it).
pub const PEER_PORT: u16 = 40000;

impl Lone {
    pub fn new(cfg: EndpointConfig) -> Self {
        let mut ep = Endpoint::new(cfg, 3);
        ep.add_local_addr(B);
        Lone {
            ep,
            now: Instant::ZERO,
            out: Vec::new(),
            events: Vec::new(),
            peer: SocketAddr::new(A, PEER_PORT),
            local: SocketAddr::new(B, 80),
        }
    }

    /// Collects what the endpoint wants to send now; returns those segments.
    pub fn drain(&mut self) -> Vec<Seg> {
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while self.ep.poll_transmit(self.now, &mut buf).is_some() {
            let s = Seg::parse(&buf);
            self.out.push((self.now, s.clone()));
            got.push(s);
        }
        while let Some(e) = self.ep.poll_event() {
            self.events.push(e);
        }
        got
    }

    /// Delivers `s` from the peer; returns what the endpoint sent in reply.
    pub fn input(&mut self, s: &Seg) -> Vec<Seg> {
        let p = s.build(self.peer, self.local);
        self.ep.handle_packet(self.now, &p);
        self.drain()
    }

    /// Delivers raw bytes; returns what the endpoint sent in reply.
    pub fn input_raw(&mut self, p: &[u8]) -> Vec<Seg> {
        self.ep.handle_packet(self.now, p);
        self.drain()
    }

    /// Runs the endpoint's timers up to `now + d`; returns what it sent meanwhile.
    pub fn advance(&mut self, d: Duration) -> Vec<Seg> {
        let limit = self.now + d;
        let mut got = self.drain();
        while let Some(t) = self.ep.poll_timeout() {
            if t > limit {
                break;
            }
            self.now = self.now.max(t);
            self.ep.handle_timeout(self.now);
            got.extend(self.drain());
        }
        self.now = limit;
        got
    }

    pub fn info(&self, h: ConnHandle) -> ConnInfo {
        self.ep.conn_info(h).expect("connection exists")
    }

    pub fn state(&self, h: ConnHandle) -> TcpState {
        self.info(h).state
    }

    /// Passive open on port 80 from the scripted peer with ISS `peer_iss` and the SYN's options
    /// taken from `syn` (seq/flags overwritten). Returns (handle, endpoint ISS).
    pub fn accept_from(&mut self, peer_iss: u32, mut syn: Seg) -> (ConnHandle, u32, Seg) {
        let _ = self.ep.listen(self.local.port());
        syn.seq = peer_iss;
        syn.ack = 0;
        syn.flags = SYN;
        let out = self.input(&syn);
        assert_eq!(out.len(), 1, "one SYN/ACK: {out:?}");
        let sa = out[0].clone();
        assert!(sa.has(SYN | ACK), "{sa:?}");
        assert_eq!(sa.ack, peer_iss.wrapping_add(1));
        let mut ack = Seg::new(peer_iss.wrapping_add(1), sa.seq.wrapping_add(1), ACK);
        if let (Some((tsval, _)), Some(_)) = (sa.ts, syn.ts) {
            ack.ts = Some((syn.ts.unwrap().0.wrapping_add(1), tsval));
        }
        let out = self.input(&ack);
        assert!(
            out.is_empty(),
            "nothing to say after the handshake: {out:?}"
        );
        let h = self.ep.accept(self.local.port()).expect("accepted");
        assert_eq!(self.state(h), TcpState::Established);
        (h, sa.seq, sa)
    }

    /// Passive open with plain options (MSS 1460 only). Returns (handle, endpoint ISS).
    pub fn accept_plain(&mut self, peer_iss: u32) -> (ConnHandle, u32) {
        let mut syn = Seg::new(peer_iss, 0, SYN);
        syn.mss = Some(1460);
        let (h, iss, _) = self.accept_from(peer_iss, syn);
        (h, iss)
    }

    /// Active open to the scripted peer (port 80 on A). Returns (handle, the SYN it sent).
    pub fn connect(&mut self) -> (ConnHandle, Seg) {
        self.peer = SocketAddr::new(A, 80);
        let h = self.ep.connect(self.now, B, self.peer).expect("connect");
        let out = self.drain();
        assert_eq!(out.len(), 1, "one SYN: {out:?}");
        assert_eq!(out[0].flags, SYN);
        self.local = SocketAddr::new(B, out[0].src_port);
        (h, out[0].clone())
    }
}

impl Pair {
    /// Segments sent in direction `dir` since log index `from`.
    pub fn segs(&self, dir: Dir, from: usize) -> Vec<(Instant, Seg)> {
        segs_in(&self.log, dir, from)
    }
}

/// Two hosts with a second address each (A2, B2): the fullmesh path manager opens a second
/// subflow once the server announces B2.
pub fn two_path_pair(cfg: EndpointConfig) -> Pair {
    let mut p = Pair::new(cfg.clone(), cfg, Duration::from_millis(10));
    p.a.add_local_addr(A2);
    p.b.add_local_addr(B2);
    p
}

/// The MPTCP options of one logged packet (a malformed one fails the test).
pub fn mp_opts(packet: &[u8]) -> Vec<braid_wire::mptcp::MptcpOption<'_>> {
    let (_, r) = braid_wire::parse_ip_tcp(packet).expect("valid packet");
    braid_wire::mptcp::MptcpOption::parse_list(r.options.mptcp)
        .map(|o| o.expect("well-formed MPTCP option"))
        .collect()
}

/// The DSS option of a logged packet, if any.
pub fn dss_of(packet: &[u8]) -> Option<braid_wire::mptcp::Dss> {
    mp_opts(packet).into_iter().find_map(|o| match o {
        braid_wire::mptcp::MptcpOption::Dss(d) => Some(d),
        _ => None,
    })
}

/// The packet re-emitted with another payload and/or other MPTCP option bodies (the TCP
/// checksum recomputed: only the DSS checksum can tell).
pub fn rewrite(packet: &[u8], payload: Option<&[u8]>, mptcp: Option<&[Vec<u8>]>) -> Vec<u8> {
    let (ip, mut r) = braid_wire::parse_ip_tcp(packet).expect("valid packet");
    if let Some(p) = payload {
        r.payload = p;
    }
    if let Some(bodies) = mptcp {
        r.options.mptcp = Default::default();
        for b in bodies {
            assert!(r.options.mptcp.push(30, b));
        }
    }
    let mut out = Vec::new();
    braid_wire::emit_ip_tcp(&ip, &r, &mut out);
    out
}

/// Source and destination addresses of a packet.
pub fn addrs(packet: &[u8]) -> (IpAddr, IpAddr) {
    let (ip, _) = braid_wire::parse_ip_tcp(packet).expect("valid packet");
    (ip.src(), ip.dst())
}

/// Established subflows of connection `h` on side A (`side_a`) or B.
pub fn live_subflows(p: &Pair, side_a: bool, h: ConnHandle) -> usize {
    let ep = if side_a { &p.a } else { &p.b };
    ep.conn_info(h).and_then(|i| i.mptcp).map_or(0, |m| {
        m.subflows
            .iter()
            .filter(|s| s.state == braid_proto::TcpState::Established)
            .count()
    })
}
