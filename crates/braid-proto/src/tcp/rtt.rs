//! Round-trip time estimation and the retransmission timeout (RFC 6298), Linux-style floor.
// IMPLEMENT: see the task description.
