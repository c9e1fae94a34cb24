//! UDP of a captured program relayed through the host's own stack: each flow (source,
//! destination) seen on the capture device gets a connected, non-blocking host UDP socket; the
//! answers come back as UDP packets from the original destination. A redirect table lets braid
//! answer at an address of its own (DNS inside a `braid run` namespace) with a host resolver
//! that lives elsewhere, e.g. systemd-resolved's 127.0.0.53.
//!
//! Bounded: at most [`MAX_FLOWS`] flows (the oldest idle one makes room), idle flows expire.

use braid_proto::Instant;
use braid_wire::checksum;
use braid_wire::{IpRepr, Ipv4Repr, Ipv6Repr};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// Most flows relayed at once.
pub const MAX_FLOWS: usize = 256;
/// A flow without traffic for this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);

/// One UDP datagram as parsed off the capture device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// Parses an IPv4/IPv6 packet carrying UDP (no IPv6 extension headers, no IPv4 fragments);
/// `None` for anything else or anything malformed.
pub fn parse_udp(p: &[u8]) -> Option<Datagram<'_>> {
    let (src, dst, seg) = match p.first()? >> 4 {
        4 => {
            let ihl = (*p.first()? & 0x0f) as usize * 4;
            let total = u16::from_be_bytes([*p.get(2)?, *p.get(3)?]) as usize;
            let frag = u16::from_be_bytes([*p.get(6)?, *p.get(7)?]);
            if ihl < 20 || total < ihl || total > p.len() || *p.get(9)? != IPPROTO_UDP {
                return None;
            }
            if frag & 0x3fff != 0 {
                return None; // a fragment
            }
            let s: [u8; 4] = p[12..16].try_into().ok()?;
            let d: [u8; 4] = p[16..20].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), &p[ihl..total])
        }
        6 => {
            if p.len() < 40 || p[6] != IPPROTO_UDP {
                return None;
            }
            let len = u16::from_be_bytes([p[4], p[5]]) as usize;
            if 40 + len > p.len() {
                return None;
            }
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            (IpAddr::from(s), IpAddr::from(d), &p[40..40 + len])
        }
        _ => return None,
    };
    if seg.len() < 8 {
        return None;
    }
    let ulen = u16::from_be_bytes([seg[4], seg[5]]) as usize;
    if ulen < 8 || ulen > seg.len() {
        return None;
    }
    let sport = u16::from_be_bytes([seg[0], seg[1]]);
    let dport = u16::from_be_bytes([seg[2], seg[3]]);
    if sport == 0 || dport == 0 {
        return None;
    }
    Some(Datagram {
        src: SocketAddr::new(src, sport),
        dst: SocketAddr::new(dst, dport),
        payload: &seg[8..ulen],
    })
}

/// Writes the IP packet of a UDP datagram into `buf` (cleared first); false when the families
/// of `src` and `dst` differ or the payload is too large.
pub fn emit_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8], buf: &mut Vec<u8>) -> bool {
    if payload.len() > 65_000 {
        return false;
    }
    let ulen = 8 + payload.len();
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IpRepr::V4(Ipv4Repr {
            src: s,
            dst: d,
            protocol: IPPROTO_UDP,
            payload_len: ulen,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_fragment: true,
        }),
        (IpAddr::V6(s), IpAddr::V6(d)) => IpRepr::V6(Ipv6Repr {
            src: s,
            dst: d,
            next_header: IPPROTO_UDP,
            payload_len: ulen,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }),
        _ => return false,
    };
    let hl = ip.header_len();
    buf.clear();
    buf.resize(hl + ulen, 0);
    ip.emit(&mut buf[..hl]);
    let u = &mut buf[hl..];
    u[0..2].copy_from_slice(&src.port().to_be_bytes());
    u[2..4].copy_from_slice(&dst.port().to_be_bytes());
    u[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    let sum = checksum::combine(ip.pseudo_header_sum(ulen), checksum::ones_complement_sum(u));
    let mut c = checksum::finish(sum);
    if c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    true
}

struct Flow {
    sock: UdpSocket,
    /// The destination the program addressed (the source of the answers it gets).
    shown: SocketAddr,
    last: Instant,
}

/// What the relay did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpStats {
    pub datagrams_out: u64,
    pub datagrams_in: u64,
    pub flows: u64,
    /// Datagrams that could not be relayed (no socket, send error).
    pub dropped: u64,
}

/// The UDP relay of one capture device.
#[derive(Default)]
pub struct UdpRelay {
    flows: HashMap<(SocketAddr, SocketAddr), Flow>,
    /// Destination as addressed → where the host sends it.
    redirect: HashMap<SocketAddr, SocketAddr>,
    buf: Vec<u8>,
    pub stats: UdpStats,
}

impl std::fmt::Debug for UdpRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpRelay")
            .field("flows", &self.flows.len())
            .field("redirect", &self.redirect)
            .field("stats", &self.stats)
            .finish()
    }
}

impl UdpRelay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams to `shown` are sent to `real` instead (answers still come from `shown`).
    pub fn redirect(&mut self, shown: SocketAddr, real: SocketAddr) {
        self.redirect.insert(shown, real);
    }

    /// Relays one datagram from the capture device.
    pub fn send(&mut self, d: &Datagram<'_>, now: Instant) {
        let key = (d.src, d.dst);
        if !self.flows.contains_key(&key) {
            if self.flows.len() >= MAX_FLOWS {
                self.evict_oldest();
            }
            let real = self.redirect.get(&d.dst).copied().unwrap_or(d.dst);
            let bind: SocketAddr = if real.is_ipv4() {
                "0.0.0.0:0".parse().expect("literal")
            } else {
                "[::]:0".parse().expect("literal")
            };
            let sock = match UdpSocket::bind(bind).and_then(|s| {
                s.connect(real)?;
                s.set_nonblocking(true)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(_) => {
                    self.stats.dropped += 1;
                    return;
                }
            };
            self.stats.flows += 1;
            self.flows.insert(
                key,
                Flow {
                    sock,
                    shown: d.dst,
                    last: now,
                },
            );
        }
        let f = self.flows.get_mut(&key).expect("inserted above");
        f.last = now;
        match f.sock.send(d.payload) {
            Ok(_) => self.stats.datagrams_out += 1,
            Err(_) => self.stats.dropped += 1,
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self
            .flows
            .iter()
            .min_by_key(|(_, f)| f.last)
            .map(|(k, _)| *k)
        {
            self.flows.remove(&k);
        }
    }

    /// The flows' sockets, to watch for readability.
    pub fn fds(&self, out: &mut Vec<RawFd>) {
        out.extend(self.flows.values().map(|f| f.sock.as_raw_fd()));
    }

    /// Reads every waiting answer and hands it to `out` as an IP packet for the device;
    /// closes idle flows.
    pub fn poll(&mut self, now: Instant, mut out: impl FnMut(&[u8])) {
        let mut rx = [0u8; 65536];
        let mut pkt = std::mem::take(&mut self.buf);
        for (&(src, _), f) in self.flows.iter_mut() {
            loop {
                match f.sock.recv(&mut rx) {
                    Ok(n) => {
                        f.last = now;
                        if emit_udp(f.shown, src, &rx[..n], &mut pkt) {
                            self.stats.datagrams_in += 1;
                            out(&pkt);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => break, // ICMP errors surface here: the program's own timeout applies
                }
            }
        }
        self.buf = pkt;
        self.flows
            .retain(|_, f| now.saturating_duration_since(f.last) < IDLE);
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_round_trips_v4_and_v6() {
        for (s, d) in [
            ("10.1.2.3:5353", "10.9.9.9:53"),
            ("[fd00::1]:40000", "[fd00::53]:53"),
        ] {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let mut buf = Vec::new();
            assert!(emit_udp(s, d, b"query", &mut buf));
            let g = parse_udp(&buf).expect("parses");
            assert_eq!((g.src, g.dst, g.payload), (s, d, &b"query"[..]));
            // The checksum verifies: the whole UDP segment plus pseudo-header sums to 0xffff.
            let hl = if s.is_ipv4() { 20 } else { 40 };
            let ip = match (s.ip(), d.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    checksum::pseudo_header_v4(a, b, IPPROTO_UDP, (buf.len() - hl) as u32)
                }
                (IpAddr::V6(a), IpAddr::V6(b)) => {
                    checksum::pseudo_header_v6(&a, &b, IPPROTO_UDP, (buf.len() - hl) as u32)
                }
                _ => unreachable!(),
            };
            assert!(checksum::verify(ip, &buf[hl..]));
        }
    }

    #[test]
    fn malformed_udp_is_refused_not_panicking() {
        let mut buf = Vec::new();
        emit_udp(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            b"x",
            &mut buf,
        );
        for n in 0..buf.len() {
            assert!(parse_udp(&buf[..n]).is_none(), "prefix {n}");
        }
        let mut bad = buf.clone();
        bad[9] = 6; // TCP
        assert!(parse_udp(&bad).is_none());
        let mut bad = buf.clone();
        bad[24] = 0xff; // UDP length beyond the packet
        assert!(parse_udp(&bad).is_none());
    }
}
