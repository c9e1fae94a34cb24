//! The TCP header (RFC 9293 §3.1) and its options (MSS, window scale, SACK-permitted, SACK,
//! timestamps, NOP/EOL, MPTCP kind 30 as raw bytes, unknown options preserved).

use crate::{Error, Result};

/// At most 40 bytes of options fit in a TCP header.
pub const MAX_TCP_OPTION_SPACE: usize = 40;

/// The TCP flag bits (low byte of the flags field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub fn urg(self) -> bool {
        self.0 & Self::URG != 0
    }
}

/// One SACK block: sequence numbers `[left, right)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SackBlock {
    pub left: u32,
    pub right: u32,
}

/// Up to 4 SACK blocks, without allocation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SackList {
    blocks: [SackBlock; 4],
    len: u8,
}

impl SackList {
    pub const CAPACITY: usize = 4;
    /// Appends a block; returns false (and changes nothing) when full.
    pub fn push(&mut self, b: SackBlock) -> bool {
        if (self.len as usize) < Self::CAPACITY {
            self.blocks[self.len as usize] = b;
            self.len += 1;
            true
        } else {
            false
        }
    }
    pub fn as_slice(&self) -> &[SackBlock] {
        &self.blocks[..self.len as usize]
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// TCP timestamps option (RFC 7323).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// Up to 4 raw options, without allocation: `(kind, body)` where `body` excludes kind and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct OptionList<'a> {
    items: [(u8, &'a [u8]); 4],
    len: u8,
}

impl<'a> OptionList<'a> {
    pub const CAPACITY: usize = 4;
    /// Appends an option; returns false (and changes nothing) when full.
    pub fn push(&mut self, kind: u8, body: &'a [u8]) -> bool {
        if (self.len as usize) < Self::CAPACITY {
            self.items[self.len as usize] = (kind, body);
            self.len += 1;
            true
        } else {
            false
        }
    }
    pub fn as_slice(&self) -> &[(u8, &'a [u8])] {
        &self.items[..self.len as usize]
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The options of one segment, parsed.
///
/// `mptcp` holds the bodies of MPTCP options (kind 30), `unknown` any other kind braid does not
/// understand; both keep the bytes after the kind and length octets. Options beyond the capacity of
/// a list are dropped and counted in `dropped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpOptions<'a> {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack: SackList,
    pub timestamps: Option<Timestamps>,
    pub mptcp: OptionList<'a>,
    pub unknown: OptionList<'a>,
    /// Options that were well formed but did not fit the lists above (only ever set by parse).
    pub dropped: u8,
}

/// A parsed TCP segment: header fields, options and a borrowed payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions<'a>,
    pub payload: &'a [u8],
}

// IMPLEMENT below: TcpPacket<T: AsRef<[u8]>> checked view (new_checked, accessors, options(),
// payload(), verify_checksum(pseudo_sum)), TcpRepr::{parse, header_len, buffer_len, emit}.
#[allow(unused)]
fn _unused(_: Error) -> Result<()> {
    Ok(())
}
/// Checked TCP view (to implement).
#[derive(Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}
