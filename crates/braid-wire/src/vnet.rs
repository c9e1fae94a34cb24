//! TCP segmentation offload at the TUN boundary: the `virtio_net_hdr` that precedes every packet
//! on a TUN device opened with `IFF_VNET_HDR` (the legacy 10-byte layout, host byte order), and
//! the userspace cut of a TCP super-segment into the MTU-sized packets it stands for.
//!
//! A super-segment is one IP+TCP header followed by up to 64 KiB of payload; `gso_size` is the
//! payload of every packet cut from it but the last. The kernel (or [`split`]) copies the header,
//! options included, onto every packet, advancing the sequence number, the IPv4 ident and the
//! lengths, keeping FIN and PSH for the last packet and CWR for the first. With
//! [`F_NEEDS_CSUM`] the TCP checksum field holds only the pseudo-header sum (over the whole
//! super-segment's TCP length) and the rest is the receiver's job (`csum_start` and
//! `csum_offset` say where).

use crate::checksum;
use crate::{Error, Result, TcpFlags, IPPROTO_TCP};

/// Bytes of the header in front of every packet (`sizeof(struct virtio_net_hdr)`).
pub const HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was verified already.
pub const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`: one packet.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_ECN`: the super-segment carries CWR (a flag on top of the type).
pub const GSO_ECN: u8 = 0x80;
/// Offset of the checksum field in the TCP header.
pub const TCP_CSUM_OFFSET: u16 = 16;

/// One `virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    /// Length of the headers (IP + TCP) of a super-segment.
    pub hdr_len: u16,
    /// Payload bytes of each packet cut from a super-segment.
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads the header at the start of `b`.
    pub fn parse(b: &[u8]) -> Result<VnetHdr> {
        let b: &[u8; HDR_LEN] = b
            .get(..HDR_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::Truncated)?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Ok(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The header for `packet` (IP+TCP, its TCP checksum field holding the pseudo-header sum):
    /// the checksum left to the kernel, and cut into packets of `gso_size` payload bytes when
    /// the payload is longer than that (`gso_size` 0: never cut).
    pub fn for_tcp(packet: &[u8], gso_size: u16) -> Result<VnetHdr> {
        let h = headers(packet)?;
        let mut v = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            hdr_len: 0,
            gso_size: 0,
            csum_start: h.ip_hl as u16,
            csum_offset: TCP_CSUM_OFFSET,
        };
        if gso_size > 0 && h.payload_len > gso_size as usize {
            v.gso_type = if h.v4 { GSO_TCPV4 } else { GSO_TCPV6 };
            v.hdr_len = (h.ip_hl + h.tcp_hl) as u16;
            v.gso_size = gso_size;
            if packet[h.ip_hl + 13] & TcpFlags::CWR != 0 {
                v.gso_type |= GSO_ECN;
            }
        }
        Ok(v)
    }

    /// A super-segment to be cut into packets (of `gso_size` payload bytes).
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// The packet's checksum is still to be completed (it holds the pseudo-header sum).
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }
}

/// Where the headers of an IP+TCP packet end.
#[derive(Clone, Copy, Debug)]
struct Headers {
    v4: bool,
    ip_hl: usize,
    tcp_hl: usize,
    payload_len: usize,
}

/// Finds the IP and TCP headers of `packet` (IPv4, or IPv6 without extension headers),
/// trusting the lengths only as far as the buffer goes.
fn headers(packet: &[u8]) -> Result<Headers> {
    let version = packet.first().ok_or(Error::Truncated)? >> 4;
    let (v4, ip_hl, ip_len) = match version {
        4 => {
            if packet.len() < 20 {
                return Err(Error::Truncated);
            }
            let hl = usize::from(packet[0] & 0x0f) * 4;
            if hl < 20 || packet[9] != IPPROTO_TCP {
                return Err(Error::Malformed);
            }
            (
                true,
                hl,
                usize::from(u16::from_be_bytes([packet[2], packet[3]])),
            )
        }
        6 => {
            if packet.len() < 40 {
                return Err(Error::Truncated);
            }
            if packet[6] != IPPROTO_TCP {
                return Err(Error::Unsupported);
            }
            let pl = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
            (false, 40, 40 + pl)
        }
        _ => return Err(Error::Malformed),
    };
    if ip_len > packet.len() || ip_len < ip_hl + 20 {
        return Err(Error::Truncated);
    }
    let tcp_hl = usize::from(packet[ip_hl + 12] >> 4) * 4;
    if tcp_hl < 20 || ip_hl + tcp_hl > ip_len {
        return Err(Error::Malformed);
    }
    Ok(Headers {
        v4,
        ip_hl,
        tcp_hl,
        payload_len: ip_len - ip_hl - tcp_hl,
    })
}

/// Cuts the super-segment `packet` (IP+TCP) into packets of at most `gso_size` payload bytes,
/// each with its own lengths, sequence number, IPv4 ident and header checksum, and a complete
/// TCP checksum (whatever `packet`'s checksum field held: complete, or a pseudo-header sum).
/// `out` sees each packet in order (built in `scratch`). `gso_size` 0, or a payload no longer
/// than it, gives one packet: `packet` with its checksum completed. Returns the packet count.
pub fn split(
    packet: &[u8],
    gso_size: usize,
    scratch: &mut Vec<u8>,
    mut out: impl FnMut(&[u8]),
) -> Result<usize> {
    let h = headers(packet)?;
    let hl = h.ip_hl + h.tcp_hl;
    let payload = &packet[hl..hl + h.payload_len];
    let step = if gso_size == 0 {
        payload.len().max(1)
    } else {
        gso_size
    };
    let seq0 = u32::from_be_bytes([
        packet[h.ip_hl + 4],
        packet[h.ip_hl + 5],
        packet[h.ip_hl + 6],
        packet[h.ip_hl + 7],
    ]);
    let flags0 = packet[h.ip_hl + 13];
    let ident0 = u16::from_be_bytes([packet[4], packet[5]]);
    let count = payload.len().div_ceil(step).max(1);
    for i in 0..count {
        let chunk = payload
            .get(i * step..((i + 1) * step).min(payload.len()))
            .unwrap_or(&[]);
        let last = i + 1 == count;
        scratch.clear();
        scratch.extend_from_slice(&packet[..hl]);
        scratch.extend_from_slice(chunk);
        let tcp_len = h.tcp_hl + chunk.len();
        if h.v4 {
            scratch[2..4].copy_from_slice(&((h.ip_hl + tcp_len) as u16).to_be_bytes());
            scratch[4..6].copy_from_slice(&ident0.wrapping_add(i as u16).to_be_bytes());
            scratch[10..12].fill(0);
            let c = checksum::checksum(&scratch[..h.ip_hl]);
            scratch[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            scratch[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        }
        let t = h.ip_hl;
        let seq = seq0.wrapping_add((i * step) as u32);
        scratch[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
        let mut flags = flags0;
        if !last {
            flags &= !(TcpFlags::FIN | TcpFlags::PSH);
        }
        if i > 0 {
            flags &= !TcpFlags::CWR;
        }
        scratch[t + 13] = flags;
        scratch[t + 16..t + 18].fill(0);
        let pseudo = if h.v4 {
            let a: [u8; 4] = scratch[12..16].try_into().expect("4 bytes");
            let b: [u8; 4] = scratch[16..20].try_into().expect("4 bytes");
            checksum::pseudo_header_v4(a.into(), b.into(), IPPROTO_TCP, tcp_len as u32)
        } else {
            let a: [u8; 16] = scratch[8..24].try_into().expect("16 bytes");
            let b: [u8; 16] = scratch[24..40].try_into().expect("16 bytes");
            checksum::pseudo_header_v6(&a.into(), &b.into(), IPPROTO_TCP, tcp_len as u32)
        };
        let sum = checksum::combine(pseudo, checksum::ones_complement_sum(&scratch[t..]));
        scratch[t + 16..t + 18].copy_from_slice(&checksum::finish(sum).to_be_bytes());
        out(scratch);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{emit_ip_tcp, packet::emit_ip_tcp_partial, parse_ip_tcp, IpRepr, TcpRepr};

    fn big(src: &str, dst: &str, n: usize, flags: u8, partial: bool) -> (Vec<u8>, Vec<u8>) {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
        let ip = IpRepr::new_tcp(src.parse().unwrap(), dst.parse().unwrap(), 0).unwrap();
        let mut tcp = TcpRepr {
            src_port: 4000,
            dst_port: 80,
            seq: 0xffff_f000,
            ack: 77,
            flags: TcpFlags(flags),
            window: 1000,
            payload: &payload,
            ..Default::default()
        };
        tcp.options.timestamps = Some(crate::Timestamps { tsval: 5, tsecr: 6 });
        let mut buf = Vec::new();
        if partial {
            emit_ip_tcp_partial(&ip, &tcp, &mut buf);
        } else {
            emit_ip_tcp(&ip, &tcp, &mut buf);
        }
        (buf, payload)
    }

    #[test]
    fn header_round_trips() {
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 72,
            gso_size: 1428,
            csum_start: 40,
            csum_offset: 16,
        };
        assert_eq!(VnetHdr::parse(&h.to_bytes()), Ok(h));
        assert_eq!(VnetHdr::parse(&[0; 9]), Err(Error::Truncated));
    }

    #[test]
    fn split_cuts_into_valid_packets() {
        for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
            for partial in [false, true] {
                let flags = TcpFlags::ACK | TcpFlags::PSH | TcpFlags::FIN | TcpFlags::CWR;
                let (pkt, payload) = big(src, dst, 10_000, flags, partial);
                let mut got = Vec::new();
                let mut seqs = Vec::new();
                let mut fl = Vec::new();
                let mut scratch = Vec::new();
                let n = split(&pkt, 1448, &mut scratch, |p| {
                    let (_, t) = parse_ip_tcp(p).expect("every packet verifies");
                    assert!(t.payload.len() <= 1448);
                    got.extend_from_slice(t.payload);
                    seqs.push(t.seq);
                    fl.push(t.flags.0);
                    assert_eq!(t.options.timestamps.map(|t| t.tsval), Some(5));
                })
                .unwrap();
                assert_eq!(n, 7);
                assert_eq!(got, payload);
                for (i, s) in seqs.iter().enumerate() {
                    assert_eq!(*s, 0xffff_f000u32.wrapping_add(i as u32 * 1448));
                }
                assert_eq!(fl[0] & TcpFlags::CWR, TcpFlags::CWR);
                assert!(fl[1..].iter().all(|f| f & TcpFlags::CWR == 0));
                assert!(fl[..6]
                    .iter()
                    .all(|f| f & (TcpFlags::FIN | TcpFlags::PSH) == 0));
                assert_eq!(fl[6] & TcpFlags::FIN, TcpFlags::FIN);
            }
        }
    }

    #[test]
    fn partial_checksum_is_completed_and_described() {
        let (pkt, payload) = big("10.0.0.1", "10.0.0.2", 3000, TcpFlags::ACK, true);
        assert_eq!(parse_ip_tcp(&pkt).err(), Some(Error::Checksum));
        let (_, t) = crate::packet::parse_ip_tcp_trusted(&pkt).unwrap();
        assert_eq!(t.payload, &payload[..]);
        let mut one = Vec::new();
        assert_eq!(split(&pkt, 0, &mut Vec::new(), |p| one = p.to_vec()), Ok(1));
        assert!(parse_ip_tcp(&one).is_ok());
        let v = VnetHdr::for_tcp(&pkt, 1448).unwrap();
        assert!(v.is_gso() && v.needs_csum());
        assert_eq!(
            (v.gso_type, v.hdr_len, v.csum_start),
            (GSO_TCPV4, 20 + 32, 20)
        );
        let v = VnetHdr::for_tcp(&pkt, 4000).unwrap();
        assert!(!v.is_gso());
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut s = Vec::new();
        assert!(split(&[], 1448, &mut s, |_| ()).is_err());
        assert!(split(&[0x45; 19], 1448, &mut s, |_| ()).is_err());
        let (mut pkt, _) = big("10.0.0.1", "10.0.0.2", 100, TcpFlags::ACK, false);
        pkt[2..4].copy_from_slice(&60000u16.to_be_bytes());
        assert_eq!(split(&pkt, 1448, &mut s, |_| ()), Err(Error::Truncated));
        pkt[2..4].copy_from_slice(&152u16.to_be_bytes());
        pkt[32] = 0x10; // data offset 4 words
        assert_eq!(split(&pkt, 1448, &mut s, |_| ()), Err(Error::Malformed));
    }
}
