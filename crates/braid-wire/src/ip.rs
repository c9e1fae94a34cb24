//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

// IMPLEMENT below: Ipv4Packet<T>/Ipv6Packet<T> checked views; Ipv4Repr/Ipv6Repr/IpRepr parse and
// emit; IpRepr::new_tcp(src: IpAddr, dst: IpAddr, payload_len) -> Option<IpRepr> (None on mixed
// families) with sane defaults (ttl/hop limit 64, DF set).
/// Checked IPv4 view (to implement).
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}
/// Checked IPv6 view (to implement).
#[derive(Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}
