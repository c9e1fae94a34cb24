//! A two-host harness for engine tests: packets travel with a fixed one-way delay through a
//! filter that may drop, duplicate or rewrite them. Virtual time, no simulator crate needed.
#![allow(dead_code)]

use braid_proto::{ConnHandle, Endpoint, EndpointConfig, Event, Instant};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

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
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        let end = self.now + limit;
        loop {
            while sent < data.len() {
                match self.a.send(ca, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            while let Ok(n) = self.b.recv(cb, &mut buf) {
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
