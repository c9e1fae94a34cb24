//! braid-sim: a deterministic discrete-event network simulator in which the real braid-proto
//! engine runs. Virtual time, links with rate, delay, drop-tail queue, loss, reordering,
//! duplication, MTU, scheduled down/up events and MPTCP-option-stripping middleboxes. One seed
//! fixes the whole run.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

pub mod addr;
mod bulk;
mod cross;
pub mod net;
pub mod series;
mod stream;

pub use bulk::{run, run_with, run_with_tap, Hooks, MAX_COMPETING, SERVER_PORT};
pub use cross::CROSS_PORT;
pub use net::{strip_mptcp_options, Direction, HostId, LinkReport, LinkStats, Network, Node, Tap};
pub use series::{CompetingSample, Sample, SampleEvent, SubflowSample, SAMPLE_INTERVAL};

/// Which protocol the bulk transfer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Tcp,
    Mptcp,
}

/// A middlebox on a path that removes MPTCP options (TCP option kind 30), as some firewalls and
/// NATs do. The option bytes are overwritten with NOPs in place and the TCP checksum is fixed up
/// incrementally (RFC 1624), so packet sizes do not change — what real middleboxes typically do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strip {
    /// Options pass untouched.
    #[default]
    None,
    /// Stripped from packets with SYN set (SYN and SYN/ACK) only.
    Syn,
    /// Stripped from every packet.
    All,
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
    /// Further outages after (`down_at`, `up_at`), in order: (down, up); only the last may
    /// stay down (`None`).
    pub later_outages: Vec<(Duration, Option<Duration>)>,
    /// The client's address on this path is a backup one: its subflows join with the B bit
    /// (RFC 8684 §3.2) and carry data only when no regular subflow can.
    pub backup: bool,
    /// The client's address on this path goes away at this time (the engine's
    /// `remove_local_addr`; the link itself stays up) ...
    pub gone_at: Option<Duration>,
    /// ... and comes back at this time (`add_local_addr_with`).
    pub back_at: Option<Duration>,
    /// MPTCP option stripping by a middlebox, in both directions.
    pub strip: Strip,
    /// This path crosses the links of that (earlier) path instead of having its own: same rate,
    /// queue, delay and randomness, one bottleneck for both. The shape fields above must then
    /// be that path's rate and delay and the defaults otherwise (they describe the shared link).
    pub link: Option<usize>,
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
            later_outages: Vec::new(),
            backup: false,
            gone_at: None,
            back_at: None,
            strip: Strip::None,
            link: None,
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
    /// Plain TCP bulk flows (CUBIC) between two further hosts across the first path's links,
    /// from time 0 until the transfer ends.
    pub competing: usize,
    /// Also compute the SHA-256 of the bytes the receiving application read
    /// ([`Report::sha256`]). Off by default: the received bytes are always compared exactly
    /// with the regenerated sender stream, which is what `intact` says, and hashing a large
    /// transfer costs more than the rest of the simulation.
    pub sha256: bool,
}

/// What one subflow of the client's connection (in TCP mode, or after a fallback to TCP: the
/// connection) did, seen from the client (the sender).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SubflowReport {
    /// The path whose client address is the subflow's local address.
    pub path: usize,
    pub bytes_sent: u64,
    pub retransmitted_bytes: u64,
    pub srtt_ms: f64,
}

/// The buffer memory of one end's connection (`braid_proto::BufferInfo`): its send and
/// receive rings, of every subflow and of the MPTCP data level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConnMemory {
    /// The most bytes the rings held at once during the run.
    pub peak_bytes: u64,
    /// Bytes they hold at the end of the run.
    pub final_bytes: u64,
    /// The send and receive buffer sizes at the end (the data level's for MPTCP): what
    /// autotuning grew them to.
    pub send_buffer: u64,
    pub recv_buffer: u64,
}

/// Buffer memory of the transfer's two connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryReport {
    pub client: ConnMemory,
    pub server: ConnMemory,
}

/// One competing flow over the run (from time 0 to the transfer's end).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CompetingReport {
    /// `bytes` over the run's simulated time.
    pub goodput_mbps: f64,
    /// Bytes its receiving application read before the transfer ended.
    pub bytes: u64,
}

/// The outcome of a run; serialises to the JSON contract of `braid sim --json`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    pub mode: Mode,
    pub bytes: u64,
    /// The receiving application read exactly the bytes the client application wrote, compared
    /// byte for byte with the sender stream regenerated as they arrive (which implies that
    /// `sha256`, when asked for, equals the digest of the sent stream), and saw EOF after them.
    pub intact: bool,
    /// Lower-case hex SHA-256 of the bytes the receiving application read (all of them, also
    /// when the run did not complete); only with [`SimConfig::sha256`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub sim_seconds: f64,
    pub wall_seconds: f64,
    pub goodput_mbps: f64,
    pub seed: u64,
    /// Every subflow of the client connection (one entry in TCP mode).
    pub subflows: Vec<SubflowReport>,
    /// The competing TCP flows (`SimConfig::competing`), in the order they were opened.
    pub competing: Vec<CompetingReport>,
    /// MPTCP was requested (`mode` is mptcp) but the client connection is plain TCP: it fell back
    /// (RFC 8684 §3.7), e.g. because a middlebox stripped the options, or the engine did not
    /// negotiate MPTCP at all. Always false in TCP mode.
    pub fallback: bool,
    /// The longest stretch of simulated time, in ms, during which no new byte reached the
    /// receiving application, counted from its first byte to its last one (and, for a run that
    /// did not complete, to the end of the run).
    pub max_stall_ms: f64,
    /// The receiving application read the sender's FIN (EOF) before the time limit.
    pub completed: bool,
    /// Why the run did not complete (time limit, reset, ...); absent when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Application bytes the receiving application read.
    pub bytes_received: u64,
    /// Offset of the first byte the receiver read that differs from what was sent, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_corrupt_byte: Option<u64>,
    /// Per-link counters, two links (one per direction) per path.
    pub links: Vec<LinkReport>,
    /// Packets dropped because no path's subnet held their destination.
    pub unroutable_packets: u64,
    /// SHA-256 over every delivery (time, link, length, packet digest): equal seeds, equal value.
    pub trace_sha256: String,
    /// Engine counters (name → value) of both hosts at the end of the run.
    pub counters: HostCounters,
    /// Buffer memory of the client's and the server's connection.
    pub memory: MemoryReport,
    /// MPTCP events of both hosts, in order (at most 10,000).
    pub events: Vec<EventReport>,
    /// Every return of a path, with the time until it carried data again (failback).
    pub returns: Vec<ReturnReport>,
}

/// One MPTCP event of either host (`braid monitor`'s names), at simulated time `t` seconds.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EventReport {
    pub t: f64,
    /// "client" or "server".
    pub host: &'static str,
    /// created, established, closed, announced, removed, sub_established, sub_closed,
    /// sub_priority.
    pub event: &'static str,
    /// The path of the subflow (by its address), or of the announced address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<usize>,
    /// sub_closed: reset (with `reset_reason` when the peer gave one), timeout, peer_removed,
    /// local_gone, closed. closed: the connection's close reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_reason: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// announced / removed: the peer's address id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A path that came back (after `/down=../up=..`, or `/gone=../back=..` of its address).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReturnReport {
    pub path: usize,
    /// When it came back, s.
    pub at: f64,
    /// From then until the first data packet on it reached the server, ms (absent: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_data_ms: Option<f64>,
}

/// Engine counters of both hosts, by the names of `braid_proto::Counters::iter`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HostCounters {
    pub client: BTreeMap<String, u64>,
    pub server: BTreeMap<String, u64>,
}

/// Why a run could not be started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// The configuration asks for something not built yet.
    Unsupported(String),
    /// The configuration is inconsistent (no paths, zero rate, probability outside [0, 1], ...).
    InvalidConfig(String),
    /// The engine refused a setup call (listen, connect).
    Engine(String),
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::Unsupported(s) => write!(f, "{s}"),
            SimError::InvalidConfig(s) => write!(f, "invalid configuration: {s}"),
            SimError::Engine(s) => write!(f, "engine error: {s}"),
        }
    }
}

impl std::error::Error for SimError {}

/// A progress snapshot, handed to the `run` callback about once per wall-clock second.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Simulated time since the connect.
    pub sim_time: Duration,
    /// Wall-clock time since `run` started.
    pub wall_seconds: f64,
    /// Application bytes the receiver has read so far.
    pub bytes_delivered: u64,
    /// Application bytes of the whole transfer.
    pub bytes_total: u64,
    /// Average goodput so far, Mbit/s of simulated time.
    pub goodput_mbps: f64,
}

impl SimConfig {
    /// A TCP bulk transfer of `bytes` over `paths` with default engine settings, CUBIC and a
    /// 600 s simulated time limit.
    pub fn new(paths: Vec<PathSpec>, bytes: u64, seed: u64) -> Self {
        SimConfig {
            mode: Mode::Tcp,
            paths,
            bytes,
            seed,
            cc: "cubic".to_string(),
            endpoint: braid_proto::EndpointConfig::default(),
            time_limit: Duration::from_secs(600),
            competing: 0,
            sha256: false,
        }
    }
}
