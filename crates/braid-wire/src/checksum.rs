//! The Internet checksum (RFC 1071) and the TCP pseudo-header sums for IPv4 and IPv6.
// IMPLEMENT: fast one's-complement sum (process 8 bytes at a time into a u64 accumulator),
// pseudo_header_v4 / pseudo_header_v6, combine / finish.
pub fn ones_complement_sum(_data: &[u8]) -> u32 { todo!() }
