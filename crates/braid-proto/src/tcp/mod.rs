//! TCP (RFC 9293) as a sans-IO state machine, with its building blocks.

use std::time::Duration;

pub(crate) mod hooks;
pub mod recvbuf;
pub mod rtt;
pub mod sendbuf;
pub mod seq;
pub(crate) mod tcb;
pub(crate) mod tune;

pub use seq::Seq;

/// The states of RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

/// Keepalive settings (RFC 9293 §3.8.4): off unless configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub probes: u32,
}

/// Initial send and receive buffer (Linux's `tcp_rmem` default): an idle connection holds
/// little.
pub const DEFAULT_BUFFER: usize = 128 << 10;
/// Cap of buffer autotuning: the `tcp_rmem` maximum of the machines braid is measured on. Two
/// 100 Mbit/s paths whose slower one has a 200 ms round trip (400 ms with its drop-tail queue
/// full) need about 2 × 200 Mbit/s × 400 ms = 20 MB of window at the MPTCP data level; Linux's
/// own default cap (6 MiB) would hold such a connection to a third of that.
pub const DEFAULT_BUFFER_MAX: usize = 32 << 20;

/// The memory of a connection's buffers, for users and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferInfo {
    /// Bytes the send and receive rings hold in memory now: of every subflow and, for MPTCP,
    /// of the data level (a ring is allocated as data arrives, grows up to its buffer's size
    /// and is freed when the connection is over).
    pub allocated: u64,
    /// The most they held at once (sampled after every input).
    pub peak: u64,
    /// The send buffer's size now (the data level's for MPTCP): what autotuning grew it to.
    pub send_buffer: u64,
    /// The receive buffer's size now (the data level's for MPTCP).
    pub recv_buffer: u64,
}

/// Per-connection TCP settings. Defaults follow Linux where it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConfig {
    /// MSS we advertise and the upper bound for segments we send (bytes of payload), for IPv4:
    /// IPv6 connections use 20 bytes less. 1460 fits a 1500-byte MTU.
    pub mss: u16,
    /// Send buffer at the start: bytes written and not yet acknowledged. It grows with the
    /// congestion window (twice it, as Linux) up to [`TcpConfig::send_buffer_max`].
    pub send_buffer: usize,
    /// Receive buffer at the start: bounds the advertised window and out-of-order data. It
    /// grows with what the application reads per round trip (dynamic right-sizing, as Linux)
    /// up to [`TcpConfig::recv_buffer_max`].
    pub recv_buffer: usize,
    /// Cap of send-buffer autotuning; at or below `send_buffer` the buffer stays fixed (as a
    /// Linux socket with SO_SNDBUF set).
    pub send_buffer_max: usize,
    /// Cap of receive-buffer autotuning; at or below `recv_buffer` the buffer stays fixed (as
    /// SO_RCVBUF). It also sets the window scale we offer.
    pub recv_buffer_max: usize,
    /// Congestion control by name (see `crate::cc::names`).
    pub cc: String,
    /// Nagle's algorithm (RFC 9293 §3.7.4).
    pub nagle: bool,
    /// Maximum delay of an ACK (RFC 9293 §3.8.6.3); an ACK is sent at least every 2 full segments.
    pub delayed_ack: Duration,
    pub sack: bool,
    pub timestamps: bool,
    pub window_scale: bool,
    pub keepalive: Option<Keepalive>,
    pub initial_rto: Duration,
    /// Floor of the retransmission timeout: never below Linux's 200 ms.
    pub min_rto: Duration,
    pub max_rto: Duration,
    /// SYN retransmissions before a connect fails.
    pub syn_retries: u32,
    /// Retransmissions of the same data before the connection is dropped.
    pub max_retries: u32,
    /// How long a connection stays in TIME_WAIT (2 MSL; Linux uses 60 s).
    pub time_wait: Duration,
    /// How long FIN_WAIT_2 waits for the peer's FIN after the application closed (Linux: 60 s).
    pub fin_wait2_timeout: Duration,
    /// Test hook: initial sequence numbers start at this value plus a random 16-bit offset
    /// instead of being wholly random, so that tests can make the 32-bit sequence space wrap
    /// within the first bytes. `None` (the default) in any real use: predictable ISNs help
    /// off-path attackers (RFC 6528).
    pub iss_base: Option<u32>,
}

impl TcpConfig {
    /// The most the send buffer grows to.
    pub fn send_cap(&self) -> usize {
        self.send_buffer_max.max(self.send_buffer)
    }
    /// The most the receive buffer grows to.
    pub fn recv_cap(&self) -> usize {
        self.recv_buffer_max.max(self.recv_buffer)
    }
    /// Fixed buffers of these sizes: no autotuning (as SO_SNDBUF / SO_RCVBUF on Linux).
    pub fn fixed_buffers(&mut self, send: usize, recv: usize) {
        self.send_buffer = send;
        self.send_buffer_max = send;
        self.recv_buffer = recv;
        self.recv_buffer_max = recv;
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: DEFAULT_BUFFER,
            recv_buffer: DEFAULT_BUFFER,
            send_buffer_max: DEFAULT_BUFFER_MAX,
            recv_buffer_max: DEFAULT_BUFFER_MAX,
            cc: "cubic".to_string(),
            nagle: true,
            delayed_ack: Duration::from_millis(40),
            sack: true,
            timestamps: true,
            window_scale: true,
            keepalive: None,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            syn_retries: 6,
            max_retries: 15,
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            iss_base: None,
        }
    }
}
