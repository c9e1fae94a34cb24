//! CUBIC (RFC 9438).
// IMPLEMENT: pub struct Cubic; impl Cubic { pub fn new(mss: u32) -> Self }; impl CongestionControl.
