//! The public face of MPTCP in the engine: settings and what a user can see of a connection.

use crate::tcp::TcpState;
use std::net::SocketAddr;
use std::time::Duration;

/// MPTCP settings of an endpoint. With `enabled = false` the engine is plain TCP.
#[derive(Clone, Debug, PartialEq)]
pub struct MptcpConfig {
    /// `connect` offers MP_CAPABLE and listeners accept it (RFC 8684 §3.1).
    pub enabled: bool,
    /// Ask for DSS checksums (RFC 8684 §3.3.1). Linux's default is off; a peer's request is
    /// honoured either way.
    pub checksum: bool,
    /// Most subflows per connection; join SYNs beyond it are refused with MP_TCPRST.
    pub max_subflows: usize,
    /// Packet scheduler by name: "minrtt" (default), "roundrobin", "redundant".
    pub scheduler: String,
    /// Path manager by name: "fullmesh" (default) or "none".
    pub path_manager: String,
    /// Test hook: every IDSN (ours and the peer's) is moved to this value plus its low 20 bits,
    /// so that tests can make the data sequence space wrap (2^31, 2^32, 2^64) within the first
    /// megabyte. Both ends must use the same value: any other peer (Linux) computes the IDSN
    /// from the key as RFC 8684 §3.1 says. `None` (the default) in any real use.
    pub idsn_base: Option<u64>,
}

impl Default for MptcpConfig {
    fn default() -> Self {
        MptcpConfig {
            enabled: true,
            checksum: false,
            max_subflows: 8,
            scheduler: "minrtt".to_string(),
            path_manager: "fullmesh".to_string(),
            idsn_base: None,
        }
    }
}

/// One subflow of an MPTCP connection, for users and reports.
#[derive(Clone, Debug, PartialEq)]
pub struct SubflowInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    /// Payload bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    pub bytes_acked: u64,
    /// In-order payload bytes received on this subflow.
    pub bytes_received: u64,
    pub srtt: Option<Duration>,
    pub cwnd: u32,
    pub ssthresh: u32,
    /// Bytes in flight (the RFC 6675 pipe estimate).
    pub inflight: u32,
    /// We asked the peer to use this subflow only as a backup (MP_JOIN B bit or MP_PRIO).
    pub backup: bool,
    /// The peer asked us the same: we send on it only when no regular subflow can.
    pub peer_backup: bool,
    pub addr_id: u8,
    /// The subflow is gone (closed, reset or timed out); the connection may go on.
    pub closed: bool,
}

/// What a user can see of the MPTCP side of a connection.
#[derive(Clone, Debug, PartialEq)]
pub struct MptcpInfo {
    /// The connection fell back to regular TCP (RFC 8684 §3.7).
    pub fallback: bool,
    pub local_token: u32,
    pub remote_token: u32,
    pub subflows: Vec<SubflowInfo>,
}
