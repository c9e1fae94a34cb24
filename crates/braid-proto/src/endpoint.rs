//! The endpoint: one host's TCP stack. Demultiplexes packets to connections, owns listeners,
//! answers segments for closed ports with RST, and hands out what to transmit and when to wake.

use crate::counters::Counters;
use crate::tcp::{TcpConfig, TcpState};
use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A connection, as the application names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnHandle(pub u64);

/// Endpoint settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    pub tcp: TcpConfig,
    /// Connections waiting in `accept` per listening port; SYNs beyond it are dropped and counted.
    pub backlog: usize,
    /// Upper bound on connections (all states) the endpoint keeps; beyond it SYNs are refused.
    pub max_connections: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            tcp: TcpConfig::default(),
            backlog: 128,
            max_connections: 4096,
        }
    }
}

/// Errors from application calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No such connection (never existed, or already released).
    UnknownConnection,
    /// Nothing can be done now; try after the next event.
    WouldBlock,
    /// The connection is not in a state that allows this call (e.g. send after shutdown).
    InvalidState(TcpState),
    /// The connection was reset by the peer.
    ConnectionReset,
    /// The connection was refused (RST in reply to our SYN).
    ConnectionRefused,
    /// The connection timed out (retransmissions exhausted, or keepalive unanswered).
    TimedOut,
    /// A port is already listening / an address is already in use.
    AddrInUse,
    /// The local address is not one of this endpoint's addresses, or the families differ.
    AddrNotAvailable,
    /// A configuration value was refused; the string names it.
    InvalidConfig(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::UnknownConnection => write!(f, "unknown connection"),
            Error::WouldBlock => write!(f, "operation would block"),
            Error::InvalidState(s) => write!(f, "not allowed in state {s:?}"),
            Error::ConnectionReset => write!(f, "connection reset by peer"),
            Error::ConnectionRefused => write!(f, "connection refused"),
            Error::TimedOut => write!(f, "connection timed out"),
            Error::AddrInUse => write!(f, "address in use"),
            Error::AddrNotAvailable => write!(f, "address not available"),
            Error::InvalidConfig(s) => write!(f, "invalid configuration: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed in order.
    Normal,
    Reset,
    Refused,
    TimedOut,
    /// Closed locally with `abort`.
    Aborted,
}

/// What the application should know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// An active open completed.
    Connected(ConnHandle),
    /// A passive open completed; the connection is waiting in `accept(port)`.
    Incoming { port: u16, conn: ConnHandle },
    /// New in-order data (or the peer's FIN) can be read.
    Readable(ConnHandle),
    /// Send buffer space became free.
    Writable(ConnHandle),
    /// The connection is gone; its handle stays valid for `conn_info` until `release`.
    Closed(ConnHandle, CloseReason),
}

/// One packet to send: the IP packet is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub len: usize,
}

/// What a user or a report wants to know about a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnInfo {
    pub state: TcpState,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Payload bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    /// Payload bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// In-order payload bytes received.
    pub bytes_received: u64,
    pub segments_sent: u64,
    pub segments_received: u64,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// The peer's advertised window, scaled.
    pub peer_window: u32,
    pub mss: u16,
    pub cc: &'static str,
}

/// One host's TCP stack.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    counters: Counters,
}

impl Endpoint {
    /// `seed` drives initial sequence numbers and ephemeral ports (public randomness).
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        let _ = seed;
        Endpoint {
            config,
            counters: Counters::default(),
        }
    }
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }
    /// Adds an address this endpoint owns (packets to other addresses are dropped and counted).
    pub fn add_local_addr(&mut self, addr: IpAddr) {
        let _ = addr;
        todo!()
    }
    pub fn listen(&mut self, port: u16) -> Result<(), Error> {
        let _ = port;
        todo!()
    }
    /// Takes the next established connection waiting on `port`.
    pub fn accept(&mut self, port: u16) -> Option<ConnHandle> {
        let _ = port;
        todo!()
    }
    /// Active open from `local` (an address of this endpoint; an ephemeral port is chosen) to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: IpAddr,
        remote: SocketAddr,
    ) -> Result<ConnHandle, Error> {
        let _ = (now, local, remote);
        todo!()
    }
    /// One IP packet from the network.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        let _ = (now, packet);
        todo!()
    }
    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }
    /// The earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }
    /// Writes the next IP packet to send into `buf` (cleared first).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let _ = (now, buf);
        todo!()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }
    /// Queues bytes for sending; returns how many fit in the send buffer (WouldBlock if none).
    pub fn send(&mut self, conn: ConnHandle, data: &[u8]) -> Result<usize, Error> {
        let _ = (conn, data);
        todo!()
    }
    /// Reads in-order bytes. `Ok(0)` (with a non-empty `buf`) means the peer closed and all was read.
    pub fn recv(&mut self, conn: ConnHandle, buf: &mut [u8]) -> Result<usize, Error> {
        let _ = (conn, buf);
        todo!()
    }
    /// No more data will be sent: a FIN follows the queued bytes.
    pub fn shutdown(&mut self, conn: ConnHandle) -> Result<(), Error> {
        let _ = conn;
        todo!()
    }
    /// Resets the connection (RST) and forgets its data.
    pub fn abort(&mut self, now: Instant, conn: ConnHandle) -> Result<(), Error> {
        let _ = (now, conn);
        todo!()
    }
    /// Forgets the handle. A connection still closing in order finishes on its own.
    pub fn release(&mut self, conn: ConnHandle) {
        let _ = conn;
        todo!()
    }
    pub fn conn_info(&self, conn: ConnHandle) -> Option<ConnInfo> {
        let _ = conn;
        todo!()
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}
