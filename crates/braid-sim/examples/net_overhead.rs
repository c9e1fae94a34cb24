//! Measures the simulator's own cost per packet with trivial hosts: a window-limited sender of
//! 1500-byte packets and a receiver acking every second one, over one 10gbit/1ms path.
//!
//! `cargo run --release -p braid-sim --example net_overhead [GiB]`

use braid_proto::Instant;
use braid_sim::addr::{client_addr, server_addr};
use braid_sim::{HostId, Network, Node, PathSpec};
use std::net::IpAddr;
use std::time::Duration;

struct Blaster {
    to_send: u64,
    in_flight: u64,
    window: u64,
    acked: u64,
}

struct Acker {
    pending: u32,
    acks_due: u32,
    received: u64,
}

fn header(buf: &mut Vec<u8>, dst: IpAddr, len: usize) {
    let IpAddr::V4(d) = dst else { unreachable!() };
    buf.clear();
    buf.resize(len, 0xab);
    buf[0] = 0x45;
    buf[16..20].copy_from_slice(&d.octets());
}

impl Node for Blaster {
    fn handle_packet(&mut self, _: Instant, _: &[u8]) {
        self.in_flight -= 2;
        self.acked += 2;
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_transmit(&mut self, _: Instant, buf: &mut Vec<u8>) -> bool {
        if self.to_send == 0 || self.in_flight >= self.window {
            return false;
        }
        self.to_send -= 1;
        self.in_flight += 1;
        header(buf, server_addr(0), 1500);
        true
    }
}

impl Node for Acker {
    fn handle_packet(&mut self, _: Instant, p: &[u8]) {
        self.received += p.len() as u64;
        self.pending += 1;
        if self.pending == 2 {
            self.pending = 0;
            self.acks_due += 1;
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_transmit(&mut self, _: Instant, buf: &mut Vec<u8>) -> bool {
        if self.acks_due == 0 {
            return false;
        }
        self.acks_due -= 1;
        header(buf, client_addr(0), 52);
        true
    }
}

/// Both hosts of a network share one type.
enum Host {
    Blaster(Blaster),
    Acker(Acker),
}

impl Node for Host {
    fn handle_packet(&mut self, now: Instant, p: &[u8]) {
        match self {
            Host::Blaster(b) => b.handle_packet(now, p),
            Host::Acker(a) => a.handle_packet(now, p),
        }
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        match self {
            Host::Blaster(b) => b.poll_transmit(now, buf),
            Host::Acker(a) => a.poll_transmit(now, buf),
        }
    }
}

#[allow(clippy::disallowed_methods)] // wall-clock measurement of the simulator itself
fn main() {
    let gib: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let packets = (gib * (1u64 << 30) as f64 / 1500.0) as u64 & !1;
    let path = PathSpec::new(10_000_000_000, Duration::from_millis(1));
    let client = Blaster {
        to_send: packets,
        in_flight: 0,
        window: 1600,
        acked: 0,
    };
    let server = Acker {
        pending: 0,
        acks_due: 0,
        received: 0,
    };
    let start = std::time::Instant::now();
    let mut net = Network::new(&[path], 1, Host::Blaster(client), Host::Acker(server));
    while net.step() {}
    let wall = start.elapsed().as_secs_f64();
    let Host::Acker(acker) = net.host(HostId::Server) else {
        unreachable!()
    };
    let bytes = acker.received;
    let sim = net.now().since_epoch().as_secs_f64();
    println!(
        "{} packets, {:.3} s simulated, {:.3} s wall, {} events: {:.1} Gbit/s simulated per wall second, {:.0} ns/event",
        packets,
        sim,
        wall,
        net.events_processed(),
        bytes as f64 * 8.0 / wall / 1e9,
        wall * 1e9 / net.events_processed() as f64
    );
    let Host::Blaster(blaster) = net.host(HostId::Client) else {
        unreachable!()
    };
    assert_eq!(blaster.acked, packets);
}
