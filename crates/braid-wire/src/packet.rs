//! Whole IP+TCP packets: the two calls the engine uses on its hot path.

use crate::{IpRepr, Result, TcpRepr};

/// Parses an IPv4 or IPv6 packet carrying TCP: validates the IP header (and the IPv4 header
/// checksum), trims the buffer to the IP total length, then parses the TCP header and verifies the
/// TCP checksum against the pseudo-header.
pub fn parse_ip_tcp(packet: &[u8]) -> Result<(IpRepr, TcpRepr<'_>)> {
    let _ = packet;
    todo!("braid-wire: parse_ip_tcp")
}

/// Writes `ip` followed by `tcp` (with a correct TCP checksum, and IPv4 header checksum) into
/// `buf`, which is cleared first. The IP payload length is taken from `tcp`, not from `ip`.
/// Returns the packet length.
pub fn emit_ip_tcp(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut Vec<u8>) -> usize {
    let _ = (ip, tcp, buf);
    todo!("braid-wire: emit_ip_tcp")
}
