//! Competing traffic: plain TCP bulk flows between a further pair of hosts across the first
//! path's links ([`crate::Network::add_cross_pair`]), sharing its bottleneck with the transfer.
//! The sending host opens `n` connections at time 0 and keeps each one's send buffer full (of
//! zeros) until the run ends; the receiving host reads everything and counts the bytes per flow.

use crate::addr;
use braid_proto::{ConnHandle, Endpoint, Instant};
use std::net::SocketAddr;

/// The port the competing flows' receiver listens on.
pub const CROSS_PORT: u16 = 5202;

/// What a competing sender writes (the content does not matter).
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Opens `n` TCP connections to the cross-traffic server and writes to them without end.
pub(crate) struct CrossClient {
    n: usize,
    started: bool,
    /// In the order they were opened: the report's order.
    pub(crate) conns: Vec<ConnHandle>,
}

impl CrossClient {
    pub(crate) fn new(n: usize) -> Self {
        CrossClient {
            n,
            started: false,
            conns: Vec::new(),
        }
    }

    pub(crate) fn run(&mut self, ep: &mut Endpoint, now: Instant) {
        if !self.started {
            self.started = true;
            let remote = SocketAddr::new(addr::cross_server_addr(0), CROSS_PORT);
            for _ in 0..self.n {
                // A refused connect (no ports left) simply means one flow fewer.
                if let Ok(c) = ep.connect(now, addr::cross_client_addr(0), remote) {
                    self.conns.push(c);
                }
            }
        }
        // Events only tell us what the send capacity already shows.
        while ep.poll_event().is_some() {}
        for &c in &self.conns {
            while ep.send_capacity(c) > 0 {
                match ep.send(c, &ZEROS) {
                    Ok(k) if k > 0 => {}
                    _ => break,
                }
            }
        }
    }
}

/// Accepts the competing flows and reads them, counting bytes per flow.
pub(crate) struct CrossServer {
    /// (connection, the sender's port, bytes read).
    pub(crate) flows: Vec<(ConnHandle, u16, u64)>,
    scratch: Vec<u8>,
}

impl CrossServer {
    pub(crate) fn new() -> Self {
        CrossServer {
            flows: Vec::new(),
            scratch: vec![0; 256 * 1024],
        }
    }

    pub(crate) fn run(&mut self, ep: &mut Endpoint) {
        while ep.poll_event().is_some() {}
        while let Some(c) = ep.accept(CROSS_PORT) {
            let port = ep.conn_info(c).map_or(0, |i| i.remote.port());
            self.flows.push((c, port, 0));
        }
        for (c, _, bytes) in &mut self.flows {
            while let Ok(n) = ep.recv(*c, &mut self.scratch) {
                if n == 0 {
                    break;
                }
                *bytes += n as u64;
            }
        }
    }

    /// Bytes read so far from the flow the client opened from `port`.
    pub(crate) fn bytes_from(&self, port: u16) -> u64 {
        self.flows.iter().find(|f| f.1 == port).map_or(0, |f| f.2)
    }
}
