//! braid-sim: a deterministic discrete-event network simulator in which the real braid-proto
//! engine runs. Virtual time, links with rate, delay, drop-tail queue, loss, reordering,
//! duplication, MTU and scheduled down/up events. One seed fixes the whole run.

#![forbid(unsafe_code)]

use std::time::Duration;

/// Which protocol the bulk transfer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tcp,
    Mptcp,
}

/// One path between the two hosts (both directions share the shape; the queue is per direction).
#[derive(Clone, Debug, PartialEq)]
pub struct PathSpec {
    /// Bottleneck rate in bits per second.
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Probability in [0, 1] that a packet is lost on the link (each direction independently).
    pub loss: f64,
    /// Drop-tail queue size in bytes; `None` means one bandwidth-delay product (rate × 2·delay),
    /// but at least 8 full-size packets.
    pub queue_bytes: Option<u64>,
    /// Probability in [0, 1] that a packet is held back and arrives after later ones.
    pub reorder: f64,
    /// Probability in [0, 1] that a packet is delivered twice.
    pub duplicate: f64,
    /// Largest IP packet the link carries; larger ones are dropped (no fragmentation).
    pub mtu: u32,
    /// The path goes down (every packet dropped, queue flushed) at this simulated time.
    pub down_at: Option<Duration>,
    /// ... and comes back up at this time.
    pub up_at: Option<Duration>,
}

impl PathSpec {
    /// A clean path with the default shape: 1500-byte MTU, drop-tail queue of one BDP.
    pub fn new(rate_bps: u64, delay: Duration) -> Self {
        PathSpec {
            rate_bps,
            delay,
            loss: 0.0,
            queue_bytes: None,
            reorder: 0.0,
            duplicate: 0.0,
            mtu: 1500,
            down_at: None,
            up_at: None,
        }
    }
}

/// A whole simulated run: two hosts, these paths, one bulk transfer from client to server.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub mode: Mode,
    pub paths: Vec<PathSpec>,
    /// Application bytes the client sends.
    pub bytes: u64,
    pub seed: u64,
    /// Congestion control name.
    pub cc: String,
    /// Engine settings for both hosts (MSS is derived from the path MTU).
    pub endpoint: braid_proto::EndpointConfig,
    /// Give up after this much simulated time.
    pub time_limit: Duration,
}

/// What one subflow (in TCP mode: the connection) did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SubflowReport {
    pub path: usize,
    pub bytes_sent: u64,
    pub retransmitted_bytes: u64,
    pub srtt_ms: f64,
}

/// The outcome of a run; serialises to the JSON contract of `braid sim --json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub bytes: u64,
    /// SHA-256 of what the receiving application read equals that of what the sender wrote.
    pub intact: bool,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub goodput_mbps: f64,
    pub seed: u64,
    pub subflows: Vec<SubflowReport>,
}
