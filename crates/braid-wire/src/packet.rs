//! Whole IP+TCP packets: the two calls the engine uses on its hot path.

use crate::checksum;
use crate::ip::{Ipv4Packet, Ipv6Packet};
use crate::tcp::TcpPacket;
use crate::{Error, IpRepr, Ipv4Repr, Ipv6Repr, Result, TcpRepr, IPPROTO_TCP};

/// Parses an IPv4 or IPv6 packet carrying TCP: validates the IP header (and the IPv4 header
/// checksum), trims the buffer to the IP total length, then parses the TCP header and verifies the
/// TCP checksum against the pseudo-header.
///
/// Errors: `Truncated`/`Malformed` for bad lengths or an unknown version nibble, `Checksum` for an
/// IPv4 header or TCP checksum that does not verify, `Unsupported` for IPv4 fragments, IPv6
/// extension headers and protocols other than TCP. Never panics.
pub fn parse_ip_tcp(packet: &[u8]) -> Result<(IpRepr, TcpRepr<'_>)> {
    parse(packet, true)
}

/// [`parse_ip_tcp`] for a packet whose TCP checksum is known to be good or not yet complete:
/// one the kernel handed over through a TUN device with `VIRTIO_NET_HDR_F_NEEDS_CSUM` (its
/// checksum field holds only the pseudo-header sum) or `F_DATA_VALID`. Everything else is
/// checked as there.
pub fn parse_ip_tcp_trusted(packet: &[u8]) -> Result<(IpRepr, TcpRepr<'_>)> {
    parse(packet, false)
}

fn parse(packet: &[u8], verify_tcp: bool) -> Result<(IpRepr, TcpRepr<'_>)> {
    let version = packet.first().ok_or(Error::Truncated)? >> 4;
    let (ip, segment, pseudo) = match version {
        4 => {
            let p = Ipv4Packet::new_checked(packet)?;
            if !p.verify_checksum() {
                return Err(Error::Checksum);
            }
            let repr = Ipv4Repr::parse(&p)?;
            if repr.protocol != IPPROTO_TCP {
                return Err(Error::Unsupported);
            }
            let segment = &packet[p.header_len()..usize::from(p.total_len())];
            let pseudo =
                checksum::pseudo_header_v4(repr.src, repr.dst, IPPROTO_TCP, segment.len() as u32);
            (IpRepr::V4(repr), segment, pseudo)
        }
        6 => {
            let p = Ipv6Packet::new_checked(packet)?;
            let repr = Ipv6Repr::parse(&p)?;
            if repr.next_header != IPPROTO_TCP {
                return Err(Error::Unsupported);
            }
            let segment = &packet[40..40 + repr.payload_len];
            let pseudo =
                checksum::pseudo_header_v6(&repr.src, &repr.dst, IPPROTO_TCP, segment.len() as u32);
            (IpRepr::V6(repr), segment, pseudo)
        }
        _ => return Err(Error::Malformed),
    };
    let tcp = TcpPacket::new_checked(segment)?;
    if verify_tcp && !tcp.verify_checksum(pseudo) {
        return Err(Error::Checksum);
    }
    let repr = TcpRepr::parse(&tcp)?;
    Ok((ip, repr))
}

/// Writes `ip` followed by `tcp` (with a correct TCP checksum, and IPv4 header checksum) into
/// `buf`, which is cleared first. The IP payload length is taken from `tcp`, not from `ip`.
/// Returns the packet length.
///
/// Reuses `buf`'s capacity: only the headers are zero-initialised by `resize`, the payload is
/// appended by one copy and the checksum is one pass over the segment.
pub fn emit_ip_tcp(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut Vec<u8>) -> usize {
    emit(ip, tcp, buf, true)
}

/// [`emit_ip_tcp`] leaving the TCP checksum to the device (checksum offload): the checksum
/// field holds the pseudo-header sum only (folded, not complemented), as the kernel expects of
/// a packet written with `VIRTIO_NET_HDR_F_NEEDS_CSUM`. The payload is copied but not summed.
pub fn emit_ip_tcp_partial(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut Vec<u8>) -> usize {
    emit(ip, tcp, buf, false)
}

fn emit(ip: &IpRepr, tcp: &TcpRepr<'_>, buf: &mut Vec<u8>, full: bool) -> usize {
    let ip_hl = ip.header_len();
    let layout = tcp.options.layout();
    let tcp_hl = 20 + layout.len;
    let seg_len = tcp_hl + tcp.payload.len();
    buf.clear();
    buf.reserve(ip_hl + seg_len);
    buf.resize(ip_hl + tcp_hl, 0);
    let mut ip = *ip;
    ip.set_payload_len(seg_len);
    ip.emit(buf);
    tcp.emit_header_with(&mut buf[ip_hl..], layout);
    buf.extend_from_slice(tcp.payload);
    let pseudo = ip.pseudo_header_sum(seg_len);
    let field = if full {
        checksum::finish(checksum::combine(
            pseudo,
            checksum::ones_complement_sum(&buf[ip_hl..]),
        ))
    } else {
        checksum::fold(u64::from(pseudo))
    };
    buf[ip_hl + 16..ip_hl + 18].copy_from_slice(&field.to_be_bytes());
    buf.len()
}
