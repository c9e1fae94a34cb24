//! What a user (and `braid status`) can see of a connection.

use braid_proto::{ConnInfo, TcpState};
use serde::Serialize;
use std::net::SocketAddr;
use std::time::Duration;

/// One subflow of a connection (the only one for plain TCP).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubflowStats {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The TCP state, e.g. "Established".
    pub state: String,
    /// Payload bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_retransmitted: u64,
    /// Smoothed round-trip time, in milliseconds (`None` before the first sample).
    pub srtt_ms: Option<f64>,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// We asked the peer to use it only as a backup (MP_JOIN B bit or MP_PRIO).
    pub backup: bool,
    /// The peer asked us the same.
    pub peer_backup: bool,
    /// The subflow is gone (the connection may go on over others).
    pub closed: bool,
}

/// A connection: addresses, totals, the MPTCP outcome and its subflows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The connection's TCP state (of its first live subflow).
    pub state: String,
    /// MPTCP was offered or accepted on this connection (false: plain TCP from the start).
    pub mptcp: bool,
    /// MPTCP was tried and the connection fell back to plain TCP (RFC 8684 §3.7): the peer
    /// does not speak MPTCP, or a middlebox removed the options.
    pub fallback: bool,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub bytes_retransmitted: u64,
    pub srtt_ms: Option<f64>,
    pub cwnd: u32,
    pub cc: String,
    /// MPTCP tokens (0 for plain TCP).
    pub local_token: u32,
    pub remote_token: u32,
    pub subflows: Vec<SubflowStats>,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

fn state_name(s: TcpState) -> String {
    format!("{s:?}")
}

impl StreamInfo {
    /// From the engine's view of a connection.
    pub fn from_conn_info(c: &ConnInfo) -> StreamInfo {
        let subflows = match &c.mptcp {
            Some(m) => m
                .subflows
                .iter()
                .map(|s| SubflowStats {
                    local: s.local,
                    remote: s.remote,
                    state: state_name(s.state),
                    bytes_sent: s.bytes_sent,
                    bytes_acked: s.bytes_acked,
                    bytes_retransmitted: s.bytes_retransmitted,
                    srtt_ms: ms(s.srtt),
                    cwnd: s.cwnd,
                    backup: s.backup,
                    peer_backup: s.peer_backup,
                    closed: s.closed,
                })
                .collect(),
            None => vec![SubflowStats {
                local: c.local,
                remote: c.remote,
                state: state_name(c.state),
                bytes_sent: c.bytes_sent,
                bytes_acked: c.bytes_acked,
                bytes_retransmitted: c.bytes_retransmitted,
                srtt_ms: ms(c.srtt),
                cwnd: c.cwnd,
                backup: false,
                peer_backup: false,
                closed: c.state == TcpState::Closed,
            }],
        };
        StreamInfo {
            local: c.local,
            remote: c.remote,
            state: state_name(c.state),
            mptcp: c.mptcp.is_some(),
            fallback: c.mptcp.as_ref().is_some_and(|m| m.fallback),
            bytes_sent: c.bytes_sent,
            bytes_acked: c.bytes_acked,
            bytes_received: c.bytes_received,
            bytes_retransmitted: c.bytes_retransmitted,
            srtt_ms: ms(c.srtt),
            cwnd: c.cwnd,
            cc: c.cc.to_string(),
            local_token: c.mptcp.as_ref().map_or(0, |m| m.local_token),
            remote_token: c.mptcp.as_ref().map_or(0, |m| m.remote_token),
            subflows,
        }
    }

    /// Multipath in use: MPTCP without fallback.
    pub fn is_multipath(&self) -> bool {
        self.mptcp && !self.fallback
    }

    /// Subflows that are not closed.
    pub fn live_subflows(&self) -> usize {
        self.subflows.iter().filter(|s| !s.closed).count()
    }
}

/// One connection as the control socket lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnStatus {
    /// The stack's number for the connection (stable while it lives).
    pub id: u64,
    /// Who opened it: "connect" (outgoing) or "accept" (incoming).
    pub direction: &'static str,
    #[serde(flatten)]
    pub info: StreamInfo,
}
