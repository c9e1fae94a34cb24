//! TCP (RFC 9293) as a sans-IO state machine, with its building blocks.

use std::time::Duration;

pub mod cc;
pub mod recvbuf;
pub mod rtt;
pub mod sendbuf;
pub mod seq;
pub(crate) mod tcb;

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

/// Per-connection TCP settings. Defaults follow Linux where it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConfig {
    /// MSS we advertise and the upper bound for segments we send (bytes of payload), for IPv4:
    /// IPv6 connections use 20 bytes less. 1460 fits a 1500-byte MTU.
    pub mss: u16,
    /// Send buffer: bytes written and not yet acknowledged.
    pub send_buffer: usize,
    /// Receive buffer: bounds the advertised window and out-of-order data.
    pub recv_buffer: usize,
    /// Congestion control by name (see `cc::CC_NAMES`).
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

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
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
