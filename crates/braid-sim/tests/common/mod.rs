//! Scripted hosts for testing the network model without the engine.

#![allow(dead_code)]

use braid_proto::Instant;
use braid_sim::Node;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// A host that sends prepared packets at prepared times and records what arrives.
#[derive(Debug, Default)]
pub struct ScriptNode {
    /// (send time, packet), in time order.
    pub script: VecDeque<(Instant, Vec<u8>)>,
    outbox: VecDeque<Vec<u8>>,
    /// (arrival time, packet).
    pub received: Vec<(Instant, Vec<u8>)>,
}

impl ScriptNode {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `packet` to be sent at `at` (calls must come in time order).
    pub fn send_at(&mut self, at: Duration, packet: Vec<u8>) {
        let at = Instant::ZERO + at;
        assert!(self.script.back().is_none_or(|(t, _)| *t <= at));
        self.script.push_back((at, packet));
    }

    /// Ids (see [`packet`]) of the received packets in arrival order.
    pub fn ids(&self) -> Vec<u32> {
        self.received.iter().map(|(_, p)| id_of(p)).collect()
    }

    /// Arrival times in nanoseconds.
    pub fn times(&self) -> Vec<u64> {
        self.received.iter().map(|(t, _)| t.as_nanos()).collect()
    }
}

impl Node for ScriptNode {
    fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.received.push((now, packet.to_vec()));
    }
    fn handle_timeout(&mut self, now: Instant) {
        while self.script.front().is_some_and(|(t, _)| *t <= now) {
            let (_, p) = self.script.pop_front().unwrap();
            self.outbox.push_back(p);
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.script.front().map(|(t, _)| *t)
    }
    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> bool {
        match self.outbox.pop_front() {
            Some(p) => {
                buf.clear();
                buf.extend_from_slice(&p);
                true
            }
            None => false,
        }
    }
}

/// An IPv4 packet of `len` bytes (at least 24) to `dst`, carrying `id` in its first payload word.
pub fn packet(dst: IpAddr, len: usize, id: u32) -> Vec<u8> {
    assert!(len >= 24);
    let IpAddr::V4(dst) = dst else {
        panic!("IPv4 only")
    };
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[9] = 253; // experimental protocol number
    p[16..20].copy_from_slice(&dst.octets());
    p[20..24].copy_from_slice(&id.to_be_bytes());
    for (i, b) in p[24..].iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(31).wrapping_add(id) as u8;
    }
    p
}

pub fn id_of(p: &[u8]) -> u32 {
    u32::from_be_bytes(p[20..24].try_into().unwrap())
}

pub fn foreign_addr() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 7, 7))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}
