//! What the loss-based windows of Reno and CUBIC share: the RFC 6928 initial window, the test
//! for a window that was used, and the phase flags behind timeouts, MSS changes and HyStart++.

use super::hystart::HyStart;

/// Upper bound of cwnd, far above any real window, so additions never overflow.
pub(crate) const MAX_CWND: u32 = u32::MAX / 2;

/// The initial window of RFC 6928 §2: min(10 * MSS, max(2 * MSS, 14600)).
pub(crate) fn initial_window(mss: u32) -> u32 {
    mss.saturating_mul(10)
        .min(mss.saturating_mul(2).max(14600))
        .min(MAX_CWND)
}

/// Whether the window was used enough to justify growth (RFC 7661 spirit, as Linux's
/// `tcp_is_cwnd_limited`): always unless `app_limited`; when application-limited, in slow start
/// if cwnd is below twice the flight, in congestion avoidance if less than one segment of the
/// window was left unused. `in_flight` is the flight before the ACK (it includes the acked bytes).
pub(crate) fn window_used(
    cwnd: u32,
    ssthresh: u32,
    mss: u32,
    in_flight: u32,
    app_limited: bool,
) -> bool {
    if !app_limited {
        true
    } else if cwnd < ssthresh {
        cwnd < in_flight.saturating_mul(2)
    } else {
        in_flight.saturating_add(mss) >= cwnd
    }
}

/// Where a controller stands between timeouts: a fresh window, after an RTO, and HyStart++.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    /// The last window change was an RTO with no ACK since: a repeated timeout keeps ssthresh
    /// (RFC 5681 §3.1, the note after equation (4)).
    after_rto: bool,
    /// No ACK and no congestion signal yet: `set_mss` may still rescale the initial window.
    pristine: bool,
    pub(crate) hystart: HyStart,
}

impl Phase {
    pub(crate) fn new() -> Self {
        Phase {
            after_rto: false,
            pristine: true,
            hystart: HyStart::default(),
        }
    }

    /// Turns HyStart++ off (plain RFC 5681 slow start until the first loss) or back on.
    pub(crate) fn set_hystart(&mut self, on: bool) {
        self.hystart = HyStart::default();
        if !on {
            self.hystart.disable();
        }
    }

    /// An ACK or a congestion signal: the initial window is history, a later RTO a first one.
    pub(crate) fn signal(&mut self) {
        self.pristine = false;
        self.after_rto = false;
    }

    /// The retransmission timer fired: whether it is the first timeout of this data (then
    /// ssthresh is reduced). Slow start is plain RFC 5681 from now on.
    pub(crate) fn rto(&mut self) -> bool {
        let first = !self.after_rto;
        self.pristine = false;
        self.after_rto = true;
        self.hystart.disable();
        first
    }

    /// The window to restart from at a new segment size: the initial window while nothing
    /// has happened yet.
    pub(crate) fn initial_window(&self, mss: u32) -> Option<u32> {
        self.pristine.then(|| initial_window(mss))
    }
}
