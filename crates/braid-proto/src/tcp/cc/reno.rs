//! NewReno (RFC 5681, RFC 6582): slow start, congestion avoidance with appropriate byte counting.
// IMPLEMENT: pub struct Reno; impl Reno { pub fn new(mss: u32) -> Self }; impl CongestionControl.
