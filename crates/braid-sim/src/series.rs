//! Time series of a run: a [`Sample`] of the transfer's state every [`SAMPLE_INTERVAL`] of
//! simulated time and at each event (a subflow appears or changes state, a subflow's
//! slow-start threshold changes — a loss or timeout — and the end of the run), handed to the
//! caller of [`crate::run_with`] as it happens.

use braid_proto::{ConnInfo, TcpState};
use std::net::IpAddr;
use std::time::Duration;

/// Simulated time between two periodic samples.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

/// Why a sample was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleEvent {
    /// Periodic, every [`SAMPLE_INTERVAL`].
    Tick,
    /// A new subflow (or the connection's first) appeared.
    Subflow,
    /// A subflow changed TCP state.
    State,
    /// A subflow's slow-start threshold changed: a loss or a retransmission timeout.
    Congestion,
    /// The run ended (last byte read, failure or time limit).
    End,
}

/// The state of the transfer at one instant.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Simulated seconds since the start.
    pub t: f64,
    pub event: SampleEvent,
    /// The sending connection's subflows (one in TCP mode or after a fallback).
    pub subflows: Vec<SubflowSample>,
    /// Bytes the sending application wrote that the receiver has not acknowledged yet
    /// (connection level).
    pub send_queue: u64,
    /// Bytes the receiving connection holds in order that its application has not read yet.
    pub recv_queue: u64,
    /// Bytes the receiving application has read.
    pub bytes_read: u64,
    /// The competing TCP flows, in the report's order.
    pub competing: Vec<CompetingSample>,
}

/// One subflow of the sending connection.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SubflowSample {
    /// The path it runs on (as the report's `path`).
    pub path: usize,
    /// TCP state, e.g. `established`.
    pub state: String,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow-start threshold, bytes; absent before the first reduction (infinite).
    pub ssthresh: Option<u32>,
    /// Smoothed RTT; absent before the first measurement.
    pub srtt_ms: Option<f64>,
    /// Bytes in flight.
    pub inflight: u32,
    /// Payload bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes the peer acknowledged on this subflow.
    pub bytes_acked: u64,
}

/// One competing flow.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CompetingSample {
    /// Bytes its receiver has read.
    pub bytes: u64,
    pub cwnd: u32,
    pub srtt_ms: Option<f64>,
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1e3)
}

fn state_name(s: TcpState) -> String {
    // `SynSent` → `syn_sent`.
    let mut out = String::new();
    for (i, ch) in format!("{s:?}").chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The subflows of `info` (the connection itself when it has no MPTCP subflows); `path_of`
/// names the path of a local address.
pub fn subflow_samples(
    info: &ConnInfo,
    path_of: &dyn Fn(IpAddr) -> Option<usize>,
) -> Vec<SubflowSample> {
    let ss = |v: u32| (v < u32::MAX / 2).then_some(v);
    match info.mptcp.as_ref().filter(|m| !m.subflows.is_empty()) {
        Some(m) => m
            .subflows
            .iter()
            .map(|sf| SubflowSample {
                path: path_of(sf.local.ip()).unwrap_or(usize::MAX),
                state: state_name(sf.state),
                cwnd: sf.cwnd,
                ssthresh: ss(sf.ssthresh),
                srtt_ms: ms(sf.srtt),
                inflight: sf.inflight,
                bytes_sent: sf.bytes_sent,
                bytes_acked: sf.bytes_acked,
            })
            .collect(),
        None => vec![SubflowSample {
            path: path_of(info.local.ip()).unwrap_or(0),
            state: state_name(info.state),
            cwnd: info.cwnd,
            ssthresh: ss(info.ssthresh),
            srtt_ms: ms(info.srtt),
            inflight: u32::try_from(info.inflight).unwrap_or(u32::MAX),
            bytes_sent: info.bytes_sent,
            bytes_acked: info.bytes_acked,
        }],
    }
}

pub(crate) fn competing_sample(info: Option<ConnInfo>, bytes: u64) -> CompetingSample {
    CompetingSample {
        bytes,
        cwnd: info.as_ref().map_or(0, |i| i.cwnd),
        srtt_ms: info.and_then(|i| ms(i.srtt)),
    }
}

/// A sample of one connection of any endpoint (e.g. over real devices): its subflows and
/// queues; `bytes_read` is what its application read; no competing flows.
pub fn conn_sample(
    t: f64,
    event: SampleEvent,
    info: &ConnInfo,
    path_of: &dyn Fn(IpAddr) -> Option<usize>,
) -> Sample {
    Sample {
        t,
        event,
        subflows: subflow_samples(info, path_of),
        send_queue: info.send_queue,
        recv_queue: info.recv_queue,
        bytes_read: info.bytes_received.saturating_sub(info.recv_queue),
        competing: Vec::new(),
    }
}

/// The event between two samples' subflows, if any: a subflow appeared, one changed state, or
/// one's slow-start threshold changed (checked in that order).
pub fn event_of(before: &[SubflowSample], now: &[SubflowSample]) -> Option<SampleEvent> {
    if now.len() != before.len() {
        return Some(SampleEvent::Subflow);
    }
    if now.iter().zip(before).any(|(a, b)| a.state != b.state) {
        return Some(SampleEvent::State);
    }
    if now
        .iter()
        .zip(before)
        .any(|(a, b)| a.ssthresh != b.ssthresh)
    {
        return Some(SampleEvent::Congestion);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_snake_case() {
        assert_eq!(state_name(TcpState::SynSent), "syn_sent");
        assert_eq!(state_name(TcpState::Established), "established");
        assert_eq!(state_name(TcpState::FinWait1), "fin_wait1");
    }
}
