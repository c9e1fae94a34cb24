//! Wire formats for braid: checked views and representations of IPv4, IPv6, TCP and TCP options.
//!
//! The pattern follows smoltcp: a `*Packet<T>` view is built with `new_checked`, which validates
//! every length it later relies on, so no accessor can panic afterwards. A `*Repr` is the parsed,
//! owned-or-borrowed meaning of a header; `Repr::parse` never panics on any input and `emit` writes
//! a header that `parse` reads back identically.
//!
//! MPTCP (option kind 30) is kept as raw bytes at this layer; unknown options are preserved.

#![forbid(unsafe_code)]

pub mod checksum;
pub mod ip;
pub mod mptcp;
pub mod packet;
pub mod tcp;
pub mod vnet;

pub use ip::{IpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, IPPROTO_TCP};
pub use packet::{emit_ip_tcp, emit_ip_tcp_partial, parse_ip_tcp, parse_ip_tcp_trusted};
pub use tcp::{
    OptionList, SackBlock, SackList, TcpFlags, TcpOptions, TcpPacket, TcpRepr, Timestamps,
    MAX_TCP_OPTION_SPACE,
};

/// Why a buffer could not be parsed. Bad input is a value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a length it claims or needs.
    Truncated,
    /// A field holds a value the format forbids (bad version, data offset < 5, bad option length, ...).
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// Valid, but not something braid handles (IPv4 fragments, IPv6 extension headers, not TCP).
    Unsupported,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported packet",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;
