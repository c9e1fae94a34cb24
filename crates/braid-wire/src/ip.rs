//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::{Error, Result};

/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// A parsed IPv4 header. Options in the header are accepted and skipped on parse, never emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Length of the payload after the header, in bytes.
    pub payload_len: usize,
    pub ttl: u8,
    /// DSCP/ECN byte.
    pub tos: u8,
    pub ident: u16,
    pub dont_fragment: bool,
}

/// A parsed IPv6 fixed header (no extension headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

/// Either IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRepr {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

impl IpRepr {
    pub fn src(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => IpAddr::V4(r.src),
            IpRepr::V6(r) => IpAddr::V6(r.src),
        }
    }
    pub fn dst(&self) -> IpAddr {
        match self {
            IpRepr::V4(r) => IpAddr::V4(r.dst),
            IpRepr::V6(r) => IpAddr::V6(r.dst),
        }
    }
    pub fn payload_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.payload_len,
            IpRepr::V6(r) => r.payload_len,
        }
    }
    /// Header length in bytes (20 for IPv4 as emitted, 40 for IPv6).
    pub fn header_len(&self) -> usize {
        match self {
            IpRepr::V4(_) => 20,
            IpRepr::V6(_) => 40,
        }
    }
}

impl IpRepr {
    /// The header for a TCP segment of `payload_len` bytes from `src` to `dst`: TTL/hop limit 64,
    /// DF set, ident 0, no DSCP/ECN, flow label 0. `None` when the families differ.
    pub fn new_tcp(src: IpAddr, dst: IpAddr, payload_len: usize) -> Option<IpRepr> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpRepr::V4(Ipv4Repr {
                src,
                dst,
                protocol: IPPROTO_TCP,
                payload_len,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_fragment: true,
            })),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpRepr::V6(Ipv6Repr {
                src,
                dst,
                next_header: IPPROTO_TCP,
                payload_len,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            })),
            _ => None,
        }
    }

    /// The upper-layer protocol (IPv4 protocol / IPv6 next header).
    pub fn protocol(&self) -> u8 {
        match self {
            IpRepr::V4(r) => r.protocol,
            IpRepr::V6(r) => r.next_header,
        }
    }

    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: usize) {
        match self {
            IpRepr::V4(r) => r.payload_len = len,
            IpRepr::V6(r) => r.payload_len = len,
        }
    }

    /// Hop limit (IPv4 TTL).
    pub fn hop_limit(&self) -> u8 {
        match self {
            IpRepr::V4(r) => r.ttl,
            IpRepr::V6(r) => r.hop_limit,
        }
    }

    /// Partial checksum of the pseudo-header for an upper-layer segment of `len` bytes.
    pub fn pseudo_header_sum(&self, len: usize) -> u32 {
        match self {
            IpRepr::V4(r) => checksum::pseudo_header_v4(r.src, r.dst, r.protocol, len as u32),
            IpRepr::V6(r) => checksum::pseudo_header_v6(&r.src, &r.dst, r.next_header, len as u32),
        }
    }

    /// Writes the header (`header_len()` bytes) at the start of `buf`; see [`Ipv4Repr::emit`] and
    /// [`Ipv6Repr::emit`].
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            IpRepr::V4(r) => r.emit(buf),
            IpRepr::V6(r) => r.emit(buf),
        }
    }
}

mod v4field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const HEADER_LEN: usize = 20;
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Checked IPv4 view (RFC 791 §3.1).
///
/// After [`Ipv4Packet::new_checked`] every accessor is safe: the buffer holds the whole header
/// (with options) and the total length it claims. A view made with `new_unchecked` may panic in
/// accessors if the buffer is too short.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Don't Fragment flag bit in the flags/fragment-offset field.
    pub const DF: u16 = 0x4000;
    /// More Fragments flag bit.
    pub const MF: u16 = 0x2000;

    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates the version (4), IHL (>= 5), and that header and total length fit the buffer.
    /// The header checksum is not checked here: see [`verify_checksum`](Self::verify_checksum).
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < v4field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let hl = usize::from(b[0] & 0x0f) * 4;
        if hl < v4field::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        let total = usize::from(be16(b, v4field::LENGTH));
        if total < hl {
            return Err(Error::Malformed);
        }
        if total > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[v4field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[v4field::VER_IHL] & 0x0f) * 4
    }
    /// The DSCP/ECN byte.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[v4field::TOS]
    }
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), v4field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), v4field::IDENT)
    }
    pub fn dont_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), v4field::FLAGS_FRAG) & Self::DF != 0
    }
    pub fn more_fragments(&self) -> bool {
        be16(self.buffer.as_ref(), v4field::FLAGS_FRAG) & Self::MF != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), v4field::FLAGS_FRAG) & 0x1fff) << 3
    }
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[v4field::TTL]
    }
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[v4field::PROTOCOL]
    }
    pub fn header_checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), v4field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// Raw IPv4 options (between the fixed header and `header_len()`).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[v4field::HEADER_LEN..self.header_len()]
    }
    /// True when the header checksum verifies (RFC 791 §3.1).
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, &self.buffer.as_ref()[..self.header_len()])
    }
    /// The payload: from the end of the header to the total length (link padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[v4field::VER_IHL] = 0x40 | ((len / 4) as u8 & 0x0f);
    }
    pub fn set_tos(&mut self, v: u8) {
        self.buffer.as_mut()[v4field::TOS] = v;
    }
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), v4field::LENGTH, v);
    }
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), v4field::IDENT, v);
    }
    /// Sets the flags and fragment offset (offset in bytes, a multiple of 8).
    pub fn set_frag(&mut self, dont_fragment: bool, more_fragments: bool, offset: u16) {
        let mut v = (offset >> 3) & 0x1fff;
        if dont_fragment {
            v |= Self::DF;
        }
        if more_fragments {
            v |= Self::MF;
        }
        put16(self.buffer.as_mut(), v4field::FLAGS_FRAG, v);
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[v4field::TTL] = v;
    }
    pub fn set_protocol(&mut self, v: u8) {
        self.buffer.as_mut()[v4field::PROTOCOL] = v;
    }
    pub fn set_header_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), v4field::CHECKSUM, v);
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[v4field::SRC..v4field::SRC + 4].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[v4field::DST..v4field::DST + 4].copy_from_slice(&a.octets());
    }
    /// Recomputes the header checksum over `header_len()` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_header_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_header_checksum(c);
    }
    /// The payload, mutable (header end to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, total) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..total]
    }
}

impl Ipv4Repr {
    /// Reads the header of a view. Lengths are re-checked, so a `new_unchecked` view is fine too.
    /// Fragments (MF set or offset != 0) are `Unsupported`; IPv4 options are skipped. The header
    /// checksum is not verified here (see [`Ipv4Packet::verify_checksum`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.more_fragments() || packet.frag_offset() != 0 {
            return Err(Error::Unsupported);
        }
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            tos: packet.tos(),
            ident: packet.ident(),
            dont_fragment: packet.dont_fragment(),
        })
    }

    /// Header length as emitted: always 20 (no options).
    pub const fn header_len(&self) -> usize {
        v4field::HEADER_LEN
    }

    /// Writes a 20-byte header with a correct header checksum at the start of `buf`.
    ///
    /// `payload_len` must be at most 65515; `buf` must hold at least 20 bytes (panics otherwise:
    /// that is a caller bug, not wire input).
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX) - v4field::HEADER_LEN);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..v4field::HEADER_LEN]);
        p.set_header_len(v4field::HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len((v4field::HEADER_LEN + self.payload_len) as u16);
        p.set_ident(self.ident);
        p.set_frag(self.dont_fragment, false, 0);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

mod v6field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const HEADER_LEN: usize = 40;
}

/// True for the next-header values that name an IPv6 extension header (RFC 8200 §4, IANA
/// "IPv6 Extension Header Types"), which braid does not walk.
pub fn is_ipv6_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// Checked IPv6 view (RFC 8200 §3): the 40-byte fixed header and the payload it claims.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates the version (6) and that the fixed header and payload length fit the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < v6field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if v6field::HEADER_LEN + usize::from(be16(b, v6field::PAYLOAD_LEN)) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[v6field::VER_TC_FLOW] >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3])
    }
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), v6field::PAYLOAD_LEN)
    }
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[v6field::NEXT_HEADER]
    }
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[v6field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[v6field::SRC..v6field::SRC + 16]);
        Ipv6Addr::from(o)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[v6field::DST..v6field::DST + 16]);
        Ipv6Addr::from(o)
    }
    /// The payload (after the fixed header, up to the payload length).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()
            [v6field::HEADER_LEN..v6field::HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the flow label (low 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[..4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), v6field::PAYLOAD_LEN, v);
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.buffer.as_mut()[v6field::NEXT_HEADER] = v;
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[v6field::HOP_LIMIT] = v;
    }
    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[v6field::SRC..v6field::SRC + 16].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[v6field::DST..v6field::DST + 16].copy_from_slice(&a.octets());
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = v6field::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[v6field::HEADER_LEN..end]
    }
}

impl Ipv6Repr {
    /// Reads the fixed header of a view (lengths re-checked). A next header that is an extension
    /// header is `Unsupported`; any other upper-layer protocol is returned as is.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Ipv6Repr> {
        packet.check_len()?;
        if is_ipv6_extension_header(packet.next_header()) {
            return Err(Error::Unsupported);
        }
        Ok(Ipv6Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header length: always 40.
    pub const fn header_len(&self) -> usize {
        v6field::HEADER_LEN
    }

    /// Writes the 40-byte fixed header at the start of `buf` (`payload_len` at most 65535; `buf`
    /// at least 40 bytes, else panics: a caller bug, not wire input).
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..v6field::HEADER_LEN]);
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(&self.src);
        p.set_dst_addr(&self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_repr() -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IPPROTO_TCP,
            payload_len: 8,
            ttl: 63,
            tos: 0xb8,
            ident: 0x1234,
            dont_fragment: true,
        }
    }

    fn v6_repr() -> Ipv6Repr {
        Ipv6Repr {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
            next_header: IPPROTO_TCP,
            payload_len: 8,
            hop_limit: 17,
            traffic_class: 0xa5,
            flow_label: 0xabcde,
        }
    }

    #[test]
    fn v4_emit_bytes_and_parse() {
        let r = v4_repr();
        let mut buf = [0u8; 28];
        r.emit(&mut buf);
        assert_eq!(
            &buf[..12],
            &[0x45, 0xb8, 0, 28, 0x12, 0x34, 0x40, 0, 63, 6, buf[10], buf[11]]
        );
        assert_eq!(&buf[12..20], &[10, 0, 0, 1, 10, 0, 0, 2]);
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn v4_checksum_detects_flip() {
        let mut buf = [0u8; 28];
        v4_repr().emit(&mut buf);
        for i in 0..20 {
            for bit in 0..8 {
                let mut b = buf;
                b[i] ^= 1 << bit;
                if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
                    assert!(!p.verify_checksum(), "byte {i} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn v4_options_skipped_and_trailing_padding_trimmed() {
        let r = v4_repr();
        let mut buf = vec![0u8; 24 + 8 + 6];
        r.emit(&mut buf);
        // Rebuild with IHL 6 (one 4-byte option: NOP NOP NOP EOL) and 6 bytes of link padding.
        buf.copy_within(20..28, 24);
        buf[20..24].copy_from_slice(&[1, 1, 1, 0]);
        {
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            p.set_header_len(24);
            p.set_total_len(32);
            p.fill_checksum();
        }
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 8);
        assert_eq!(Ipv4Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn v4_rejects() {
        let mut buf = [0u8; 28];
        v4_repr().emit(&mut buf);
        for n in 0..28 {
            assert!(Ipv4Packet::new_checked(&buf[..n]).is_err(), "len {n}");
        }
        let mut b = buf;
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        let mut b = buf;
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        let mut b = buf;
        b[0] = 0x4f; // 60-byte header in a 28-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = buf;
        b[3] = 19; // total length below header length
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        // Fragments.
        for (mf, off) in [(true, 0), (false, 8), (true, 1480)] {
            let mut b = buf;
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_frag(false, mf, off);
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.more_fragments(), mf);
            assert_eq!(p.frag_offset(), off);
            assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), Error::Unsupported);
        }
        // parse re-checks lengths on an unchecked view.
        let p = Ipv4Packet::new_unchecked(&buf[..10]);
        assert_eq!(Ipv4Repr::parse(&p).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn v6_emit_bytes_and_parse() {
        let r = v6_repr();
        let mut buf = [0u8; 48];
        r.emit(&mut buf);
        assert_eq!(&buf[..8], &[0x6a, 0x5a, 0xbc, 0xde, 0, 8, 6, 17]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
        assert_eq!(p.payload().len(), 8);
        for n in 0..48 {
            assert_eq!(
                Ipv6Packet::new_checked(&buf[..n]).unwrap_err(),
                Error::Truncated
            );
        }
        let mut b = buf;
        b[0] = 0x4a;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            Error::Malformed
        );
        for nh in [0u8, 43, 44, 60] {
            let mut b = buf;
            b[6] = nh;
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            assert_eq!(Ipv6Repr::parse(&p).unwrap_err(), Error::Unsupported);
        }
        let mut b = buf;
        b[6] = 17;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap().next_header, 17);
    }

    #[test]
    fn new_tcp_defaults() {
        let a4: IpAddr = "192.0.2.1".parse().unwrap();
        let b4: IpAddr = "192.0.2.2".parse().unwrap();
        let a6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(IpRepr::new_tcp(a4, a6, 0).is_none());
        assert!(IpRepr::new_tcp(a6, a4, 0).is_none());
        let r = IpRepr::new_tcp(a4, b4, 100).unwrap();
        match r {
            IpRepr::V4(v) => {
                assert_eq!(
                    (v.ttl, v.ident, v.dont_fragment, v.protocol),
                    (64, 0, true, 6)
                );
            }
            IpRepr::V6(_) => panic!("wrong family"),
        }
        assert_eq!(
            (r.src(), r.dst(), r.payload_len(), r.header_len()),
            (a4, b4, 100, 20)
        );
        let r = IpRepr::new_tcp(a6, a6, 5).unwrap();
        assert_eq!((r.hop_limit(), r.protocol(), r.header_len()), (64, 6, 40));
    }
}
