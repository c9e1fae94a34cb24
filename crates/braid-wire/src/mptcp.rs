//! MPTCP v1 sub-options (RFC 8684 §3, option kind 30): parse and emit.
//!
//! [`crate::TcpOptions::mptcp`] keeps each MPTCP option as its raw body: the bytes after the kind
//! and length octets. [`MptcpOption::parse`] reads such a body, [`MptcpOption::emit`] writes one,
//! so `opts.mptcp.push(kind::MPTCP, &body)` sends it. The subtype is the high nibble of the first
//! body octet (RFC 8684 §2, Figure 3).
//!
//! Lengths in the docs below are the option lengths *as the RFC gives them*, i.e. they count the
//! kind and length octets: the body is two octets shorter.
//!
//! Parsing never panics. A malformed sub-option is an `Err`, and RFC 8684 §3 lets the receiver
//! ignore it; an unknown subtype is kept as [`MptcpOption::Unknown`]. Where RFC 8684 leaves a
//! choice, the parser accepts what the Linux kernel (net/mptcp) sends and rejects what it rejects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::{Error, Result};

/// Sub-option subtypes (IANA "MPTCP Option Subtypes", RFC 8684 §8).
pub mod subtype {
    /// MP_CAPABLE (RFC 8684 §3.1).
    pub const MP_CAPABLE: u8 = 0x0;
    /// MP_JOIN (RFC 8684 §3.2).
    pub const MP_JOIN: u8 = 0x1;
    /// DSS: data sequence signal (RFC 8684 §3.3).
    pub const DSS: u8 = 0x2;
    /// ADD_ADDR (RFC 8684 §3.4.1).
    pub const ADD_ADDR: u8 = 0x3;
    /// REMOVE_ADDR (RFC 8684 §3.4.2).
    pub const REMOVE_ADDR: u8 = 0x4;
    /// MP_PRIO (RFC 8684 §3.3.8).
    pub const MP_PRIO: u8 = 0x5;
    /// MP_FAIL (RFC 8684 §3.7).
    pub const MP_FAIL: u8 = 0x6;
    /// MP_FASTCLOSE (RFC 8684 §3.5).
    pub const MP_FASTCLOSE: u8 = 0x7;
    /// MP_TCPRST (RFC 8684 §3.6).
    pub const MP_TCPRST: u8 = 0x8;
    /// MP_EXPERIMENTAL (RFC 8684 §8): kept as [`super::MptcpOption::Unknown`].
    pub const MP_EXPERIMENTAL: u8 = 0xf;
}

/// The MPTCP version this codec speaks (RFC 8684 §3.1).
pub const MPTCP_VERSION: u8 = 1;

/// The longest body an option can carry: the length octet is at most 255 and counts itself and
/// the kind octet. (Within a TCP header the real limit is 40 - 2 = 38.)
pub const MAX_BODY_LEN: usize = 253;

/// The flags octet of MP_CAPABLE (RFC 8684 §3.1, Figure 4: bits A to H, A the most significant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CapableFlags(pub u8);

impl CapableFlags {
    /// A: the sender requires DSS checksums.
    pub const CHECKSUM_REQUIRED: u8 = 0x80;
    /// B: extensibility; MUST be 0 in v1, a receiver that sees it set falls back (RFC 8684 §3.1).
    pub const EXTENSIBILITY: u8 = 0x40;
    /// C: do not establish new subflows to the source address of this packet.
    pub const NO_JOIN_TO_SOURCE: u8 = 0x20;
    /// H: HMAC-SHA256, the only crypto algorithm of v1. D..G are unassigned.
    pub const HMAC_SHA256: u8 = 0x01;

    /// A: checksums required.
    pub fn checksum_required(self) -> bool {
        self.0 & Self::CHECKSUM_REQUIRED != 0
    }
    /// B: extensibility.
    pub fn extensibility(self) -> bool {
        self.0 & Self::EXTENSIBILITY != 0
    }
    /// C: do not join to the source address.
    pub fn no_join_to_source(self) -> bool {
        self.0 & Self::NO_JOIN_TO_SOURCE != 0
    }
    /// H: HMAC-SHA256.
    pub fn hmac_sha256(self) -> bool {
        self.0 & Self::HMAC_SHA256 != 0
    }
}

/// MP_CAPABLE (RFC 8684 §3.1, Figure 4). The form follows from which fields are present:
///
/// | form            | length | sender_key | receiver_key | data_len | checksum |
/// |-----------------|--------|------------|--------------|----------|----------|
/// | SYN             | 4      | –          | –            | –        | –        |
/// | SYN/ACK         | 12     | ✓          | –            | –        | –        |
/// | third ACK       | 20     | ✓          | ✓            | –        | –        |
/// | ACK with data   | 22     | ✓          | ✓            | ✓        | –        |
/// | ACK with data   | 24     | ✓          | ✓            | ✓        | ✓        |
///
/// Any other combination is not a valid option: `emit` writes the fields present, and `parse`
/// would reject it. Lengths are read the same whatever the version, so a version-0 peer's SYN
/// (length 12, with its key) parses with `version == 0` and the engine can fall back
/// (RFC 8684 §3.1: the version the peer asks for is in this field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MpCapable {
    /// The low nibble of the first octet; [`MPTCP_VERSION`] (1) for v1.
    pub version: u8,
    pub flags: CapableFlags,
    /// The key of the option's sender (its own key).
    pub sender_key: Option<u64>,
    /// The key of the option's receiver (echoed back on the third ACK).
    pub receiver_key: Option<u64>,
    /// Data-level length of the payload carried with the third ACK (RFC 8684 §3.1).
    pub data_len: Option<u16>,
    /// DSS checksum of that payload, when checksums are in use.
    pub checksum: Option<u16>,
}

impl MpCapable {
    /// The SYN form (length 4), version 1.
    pub fn syn(flags: CapableFlags) -> Self {
        MpCapable {
            version: MPTCP_VERSION,
            flags,
            sender_key: None,
            receiver_key: None,
            data_len: None,
            checksum: None,
        }
    }
    /// The SYN/ACK form (length 12), version 1.
    pub fn syn_ack(flags: CapableFlags, sender_key: u64) -> Self {
        MpCapable {
            sender_key: Some(sender_key),
            ..Self::syn(flags)
        }
    }
    /// The third-ACK form (length 20), version 1.
    pub fn ack(flags: CapableFlags, sender_key: u64, receiver_key: u64) -> Self {
        MpCapable {
            receiver_key: Some(receiver_key),
            ..Self::syn_ack(flags, sender_key)
        }
    }
    /// The ACK-with-data form (length 22, or 24 with a checksum), version 1.
    pub fn ack_with_data(
        flags: CapableFlags,
        sender_key: u64,
        receiver_key: u64,
        data_len: u16,
        checksum: Option<u16>,
    ) -> Self {
        MpCapable {
            data_len: Some(data_len),
            checksum,
            ..Self::ack(flags, sender_key, receiver_key)
        }
    }
}

/// A data ACK or data sequence number as carried in DSS: 4 or 8 octets on the wire
/// (RFC 8684 §3.3, flags `a` and `m`). A 4-octet value is widened into `value`; `wide` remembers
/// the width. When `wide` is false, `emit` writes the low 32 bits of `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataSeq {
    pub value: u64,
    /// True when carried in 8 octets.
    pub wide: bool,
}

impl DataSeq {
    /// A 4-octet value.
    pub fn narrow(value: u32) -> Self {
        DataSeq {
            value: u64::from(value),
            wide: false,
        }
    }
    /// An 8-octet value.
    pub fn wide(value: u64) -> Self {
        DataSeq { value, wide: true }
    }
    fn wire_len(self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }
}

/// The mapping of a DSS option (RFC 8684 §3.3.1): `data_len` bytes of the data sequence space,
/// starting at `dsn`, are carried at subflow sequence number `subflow_seq` (relative to the
/// subflow's initial sequence number). `data_len == 0` is the infinite mapping (§3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DssMapping {
    pub dsn: DataSeq,
    pub subflow_seq: u32,
    pub data_len: u16,
    /// Present exactly when the option is two octets longer than the flags call for; the engine
    /// decides whether that matches what was negotiated (RFC 8684 §3.3: a checksum missing when
    /// negotiated is a protocol error).
    pub checksum: Option<u16>,
}

/// DSS: data sequence signal (RFC 8684 §3.3, Figure 9).
///
/// Length: 4, plus 4 or 8 for a data ACK, plus (4 or 8) + 4 + 2 for a mapping, plus 2 for a
/// checksum (only with a mapping).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dss {
    /// F: DATA_FIN. RFC 8684 §3.3.3 counts it in the mapping's data-level length; the parser,
    /// like Linux, also accepts it without a mapping.
    pub data_fin: bool,
    /// A (and `a` for the width).
    pub data_ack: Option<DataSeq>,
    /// M (and `m` for the DSN width).
    pub mapping: Option<DssMapping>,
}

/// DSS flag bits: the low five bits of the second body octet (RFC 8684 §3.3, Figure 9).
pub mod dss_flags {
    /// F: DATA_FIN.
    pub const DATA_FIN: u8 = 0x10;
    /// m: the DSN is 8 octets.
    pub const DSN_IS_8: u8 = 0x08;
    /// M: a mapping (DSN, subflow sequence number, data-level length, checksum) is present.
    pub const MAPPING: u8 = 0x04;
    /// a: the data ACK is 8 octets.
    pub const DATA_ACK_IS_8: u8 = 0x02;
    /// A: a data ACK is present.
    pub const DATA_ACK: u8 = 0x01;
}

impl Dss {
    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.data_fin {
            f |= dss_flags::DATA_FIN;
        }
        if let Some(a) = self.data_ack {
            f |= dss_flags::DATA_ACK;
            if a.wide {
                f |= dss_flags::DATA_ACK_IS_8;
            }
        }
        if let Some(m) = self.mapping {
            f |= dss_flags::MAPPING;
            if m.dsn.wide {
                f |= dss_flags::DSN_IS_8;
            }
        }
        f
    }

    fn body_len(&self) -> usize {
        2 + self.data_ack.map_or(0, DataSeq::wire_len)
            + self.mapping.map_or(0, |m| {
                m.dsn.wire_len() + 4 + 2 + if m.checksum.is_some() { 2 } else { 0 }
            })
    }
}

/// ADD_ADDR (RFC 8684 §3.4.1, Figure 12).
///
/// | form                        | IPv4 length | IPv6 length |
/// |-----------------------------|-------------|-------------|
/// | echo (E = 1)                | 8           | 20          |
/// | echo with port              | 10          | 22          |
/// | announcement (E = 0, HMAC)  | 16          | 28          |
/// | announcement with port      | 18          | 30          |
///
/// An announcement carries the truncated HMAC and an echo does not: `hmac` is `Some` exactly when
/// E = 0. Like Linux, the parser rejects E = 1 with an HMAC and E = 0 without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddAddr {
    pub addr_id: u8,
    pub addr: IpAddr,
    pub port: Option<u16>,
    /// The rightmost 64 bits of the HMAC (see `braid_proto::mptcp::crypto::add_addr_hmac`);
    /// `None` for an echo.
    pub hmac: Option<u64>,
}

impl AddAddr {
    /// True for an echo (E flag set, no HMAC).
    pub fn is_echo(&self) -> bool {
        self.hmac.is_none()
    }
    /// This announcement's echo: same address id, address and port, no HMAC (RFC 8684 §3.4.1).
    pub fn echo(&self) -> AddAddr {
        AddAddr {
            hmac: None,
            ..*self
        }
    }
    fn body_len(&self) -> usize {
        let addr = match self.addr {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        };
        2 + addr + self.port.map_or(0, |_| 2) + self.hmac.map_or(0, |_| 8)
    }
}

/// The reason code of MP_TCPRST (RFC 8684 §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// 0x00: unspecified error.
    Unspecified,
    /// 0x01: MPTCP-specific error (e.g. a protocol violation).
    MptcpError,
    /// 0x02: lack of resources.
    LackOfResources,
    /// 0x03: administratively prohibited.
    AdministrativelyProhibited,
    /// 0x04: too much outstanding data.
    TooMuchOutstandingData,
    /// 0x05: unacceptable performance.
    UnacceptablePerformance,
    /// 0x06: middlebox interference.
    MiddleboxInterference,
    /// Any other code (parse only produces values above 6).
    Other(u8),
}

impl ResetReason {
    /// The reason for a code octet.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => ResetReason::Unspecified,
            1 => ResetReason::MptcpError,
            2 => ResetReason::LackOfResources,
            3 => ResetReason::AdministrativelyProhibited,
            4 => ResetReason::TooMuchOutstandingData,
            5 => ResetReason::UnacceptablePerformance,
            6 => ResetReason::MiddleboxInterference,
            c => ResetReason::Other(c),
        }
    }
    /// The code octet for this reason.
    pub fn code(self) -> u8 {
        match self {
            ResetReason::Unspecified => 0,
            ResetReason::MptcpError => 1,
            ResetReason::LackOfResources => 2,
            ResetReason::AdministrativelyProhibited => 3,
            ResetReason::TooMuchOutstandingData => 4,
            ResetReason::UnacceptablePerformance => 5,
            ResetReason::MiddleboxInterference => 6,
            ResetReason::Other(c) => c,
        }
    }
}

/// One MPTCP sub-option: the parsed meaning of the body of a kind-30 TCP option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MptcpOption<'a> {
    /// MP_CAPABLE (RFC 8684 §3.1): lengths 4, 12, 20, 22, 24.
    MpCapable(MpCapable),
    /// MP_JOIN on a SYN (RFC 8684 §3.2, Figure 5), length 12: the receiver's token and the
    /// sender's random nonce.
    MpJoinSyn {
        /// B: the sender wants this subflow as a backup path.
        backup: bool,
        addr_id: u8,
        token: u32,
        nonce: u32,
    },
    /// MP_JOIN on a SYN/ACK (RFC 8684 §3.2, Figure 6), length 16: the leftmost 64 bits of the
    /// responder's HMAC and the responder's nonce.
    MpJoinSynAck {
        backup: bool,
        addr_id: u8,
        hmac: u64,
        nonce: u32,
    },
    /// MP_JOIN on the third ACK (RFC 8684 §3.2, Figure 7), length 24: the leftmost 160 bits of
    /// the initiator's HMAC.
    MpJoinAck { hmac: [u8; 20] },
    /// DSS (RFC 8684 §3.3).
    Dss(Dss),
    /// ADD_ADDR (RFC 8684 §3.4.1).
    AddAddr(AddAddr),
    /// REMOVE_ADDR (RFC 8684 §3.4.2), length 3 + n: at least one address id.
    RemoveAddr { addr_ids: &'a [u8] },
    /// MP_PRIO (RFC 8684 §3.3.8), length 3 (v1, as Linux sends) or 4 with an address id.
    MpPrio { backup: bool, addr_id: Option<u8> },
    /// MP_FAIL (RFC 8684 §3.7), length 12: the DSN where the checksum failed.
    MpFail { dsn: u64 },
    /// MP_FASTCLOSE (RFC 8684 §3.5), length 12: the option receiver's key.
    MpFastclose { receiver_key: u64 },
    /// MP_TCPRST (RFC 8684 §3.6), length 4. U, V, W are unassigned: sent as 0, ignored.
    MpTcpRst {
        /// T: the error is transient, the subflow may be re-established.
        transient: bool,
        reason: ResetReason,
    },
    /// Any other subtype, kept as it came (e.g. MP_EXPERIMENTAL).
    Unknown {
        /// The high nibble of the first octet.
        subtype: u8,
        /// The low nibble of the first octet.
        flags: u8,
        /// The octets after the first.
        data: &'a [u8],
    },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// Checks `body.len()` is in `allowed` (all non-empty lengths): shorter than the shortest is
/// `Truncated`, anything else `Malformed`.
fn check_len(body: &[u8], allowed: &[usize]) -> Result<()> {
    if allowed.contains(&body.len()) {
        Ok(())
    } else if allowed.iter().all(|&l| body.len() < l) {
        Err(Error::Truncated)
    } else {
        Err(Error::Malformed)
    }
}

impl<'a> MptcpOption<'a> {
    /// Parses an option body (the bytes after kind and length). Never panics.
    pub fn parse(body: &'a [u8]) -> Result<MptcpOption<'a>> {
        let Some(&first) = body.first() else {
            return Err(Error::Truncated);
        };
        if body.len() > MAX_BODY_LEN {
            return Err(Error::Malformed);
        }
        let low = first & 0x0f;
        match first >> 4 {
            subtype::MP_CAPABLE => parse_mp_capable(body),
            subtype::MP_JOIN => parse_mp_join(body),
            subtype::DSS => parse_dss(body),
            subtype::ADD_ADDR => parse_add_addr(body),
            subtype::REMOVE_ADDR => {
                // RFC 8684 §3.4.2: one or more address ids.
                if body.len() < 2 {
                    return Err(Error::Truncated);
                }
                Ok(MptcpOption::RemoveAddr {
                    addr_ids: &body[1..],
                })
            }
            subtype::MP_PRIO => {
                check_len(body, &[1, 2])?;
                Ok(MptcpOption::MpPrio {
                    backup: low & 0x01 != 0,
                    addr_id: body.get(1).copied(),
                })
            }
            subtype::MP_FAIL => {
                check_len(body, &[10])?;
                Ok(MptcpOption::MpFail { dsn: be64(body, 2) })
            }
            subtype::MP_FASTCLOSE => {
                check_len(body, &[10])?;
                Ok(MptcpOption::MpFastclose {
                    receiver_key: be64(body, 2),
                })
            }
            subtype::MP_TCPRST => {
                check_len(body, &[2])?;
                Ok(MptcpOption::MpTcpRst {
                    transient: low & 0x01 != 0,
                    reason: ResetReason::from_code(body[1]),
                })
            }
            st => Ok(MptcpOption::Unknown {
                subtype: st,
                flags: low,
                data: &body[1..],
            }),
        }
    }

    /// Parses every MPTCP option of a segment (`TcpOptions::mptcp`), in order; each item is that
    /// option's own result, so one malformed option does not hide the others.
    pub fn parse_list(
        list: crate::OptionList<'a>,
    ) -> impl Iterator<Item = Result<MptcpOption<'a>>> + 'a {
        (0..list.len())
            .map(move |i| list.as_slice()[i])
            .filter(|(kind, _)| *kind == crate::tcp::kind::MPTCP)
            .map(|(_, body)| MptcpOption::parse(body))
    }

    /// The subtype (high nibble of the first body octet).
    pub fn subtype(&self) -> u8 {
        match self {
            MptcpOption::MpCapable(_) => subtype::MP_CAPABLE,
            MptcpOption::MpJoinSyn { .. }
            | MptcpOption::MpJoinSynAck { .. }
            | MptcpOption::MpJoinAck { .. } => subtype::MP_JOIN,
            MptcpOption::Dss(_) => subtype::DSS,
            MptcpOption::AddAddr(_) => subtype::ADD_ADDR,
            MptcpOption::RemoveAddr { .. } => subtype::REMOVE_ADDR,
            MptcpOption::MpPrio { .. } => subtype::MP_PRIO,
            MptcpOption::MpFail { .. } => subtype::MP_FAIL,
            MptcpOption::MpFastclose { .. } => subtype::MP_FASTCLOSE,
            MptcpOption::MpTcpRst { .. } => subtype::MP_TCPRST,
            MptcpOption::Unknown { subtype, .. } => *subtype & 0x0f,
        }
    }

    /// The length of the body `emit` writes (the option's length octet is this plus 2).
    ///
    /// Only options from `parse`, or built within the limits documented on each type, are
    /// guaranteed to fit [`MAX_BODY_LEN`]; a TCP header has room for a body of at most 38.
    pub fn emit_len(&self) -> usize {
        match self {
            MptcpOption::MpCapable(c) => {
                2 + c.sender_key.map_or(0, |_| 8)
                    + c.receiver_key.map_or(0, |_| 8)
                    + c.data_len.map_or(0, |_| 2)
                    + c.checksum.map_or(0, |_| 2)
            }
            MptcpOption::MpJoinSyn { .. } => 10,
            MptcpOption::MpJoinSynAck { .. } => 14,
            MptcpOption::MpJoinAck { .. } => 22,
            MptcpOption::Dss(d) => d.body_len(),
            MptcpOption::AddAddr(a) => a.body_len(),
            MptcpOption::RemoveAddr { addr_ids } => 1 + addr_ids.len(),
            MptcpOption::MpPrio { addr_id, .. } => 1 + addr_id.map_or(0, |_| 1),
            MptcpOption::MpFail { .. } | MptcpOption::MpFastclose { .. } => 10,
            MptcpOption::MpTcpRst { .. } => 2,
            MptcpOption::Unknown { data, .. } => 1 + data.len(),
        }
    }

    /// Writes the body into `out[..emit_len()]` and returns `emit_len()`.
    ///
    /// # Panics
    /// When `out` is shorter than [`emit_len`](Self::emit_len).
    pub fn emit(&self, out: &mut [u8]) -> usize {
        let len = self.emit_len();
        let mut w = Writer {
            buf: &mut out[..len],
            at: 0,
        };
        match self {
            MptcpOption::MpCapable(c) => {
                w.u8((subtype::MP_CAPABLE << 4) | (c.version & 0x0f));
                w.u8(c.flags.0);
                for v in [c.sender_key, c.receiver_key].into_iter().flatten() {
                    w.u64(v);
                }
                for v in [c.data_len, c.checksum].into_iter().flatten() {
                    w.u16(v);
                }
            }
            MptcpOption::MpJoinSyn {
                backup,
                addr_id,
                token,
                nonce,
            } => {
                w.u8((subtype::MP_JOIN << 4) | u8::from(*backup));
                w.u8(*addr_id);
                w.u32(*token);
                w.u32(*nonce);
            }
            MptcpOption::MpJoinSynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => {
                w.u8((subtype::MP_JOIN << 4) | u8::from(*backup));
                w.u8(*addr_id);
                w.u64(*hmac);
                w.u32(*nonce);
            }
            MptcpOption::MpJoinAck { hmac } => {
                w.u8(subtype::MP_JOIN << 4);
                w.u8(0);
                w.put(hmac);
            }
            MptcpOption::Dss(d) => {
                w.u8(subtype::DSS << 4);
                w.u8(d.flags());
                if let Some(a) = d.data_ack {
                    w.seq(a);
                }
                if let Some(m) = d.mapping {
                    w.seq(m.dsn);
                    w.u32(m.subflow_seq);
                    w.u16(m.data_len);
                    if let Some(c) = m.checksum {
                        w.u16(c);
                    }
                }
            }
            MptcpOption::AddAddr(a) => {
                w.u8((subtype::ADD_ADDR << 4) | u8::from(a.is_echo()));
                w.u8(a.addr_id);
                match a.addr {
                    IpAddr::V4(v4) => w.put(&v4.octets()),
                    IpAddr::V6(v6) => w.put(&v6.octets()),
                }
                if let Some(p) = a.port {
                    w.u16(p);
                }
                if let Some(h) = a.hmac {
                    w.u64(h);
                }
            }
            MptcpOption::RemoveAddr { addr_ids } => {
                w.u8(subtype::REMOVE_ADDR << 4);
                w.put(addr_ids);
            }
            MptcpOption::MpPrio { backup, addr_id } => {
                w.u8((subtype::MP_PRIO << 4) | u8::from(*backup));
                if let Some(id) = addr_id {
                    w.u8(*id);
                }
            }
            MptcpOption::MpFail { dsn } => {
                w.u8(subtype::MP_FAIL << 4);
                w.u8(0);
                w.u64(*dsn);
            }
            MptcpOption::MpFastclose { receiver_key } => {
                w.u8(subtype::MP_FASTCLOSE << 4);
                w.u8(0);
                w.u64(*receiver_key);
            }
            MptcpOption::MpTcpRst { transient, reason } => {
                w.u8((subtype::MP_TCPRST << 4) | u8::from(*transient));
                w.u8(reason.code());
            }
            MptcpOption::Unknown {
                subtype,
                flags,
                data,
            } => {
                w.u8((subtype << 4) | (flags & 0x0f));
                w.put(data);
            }
        }
        len
    }

    /// The body as a new vector.
    pub fn emit_to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.emit_len()];
        self.emit(&mut v);
        v
    }
}

fn parse_mp_capable(body: &[u8]) -> Result<MptcpOption<'_>> {
    // RFC 8684 §3.1, Figure 4: lengths 4, 12, 20, 22, 24.
    check_len(body, &[2, 10, 18, 20, 22])?;
    let n = body.len();
    Ok(MptcpOption::MpCapable(MpCapable {
        version: body[0] & 0x0f,
        flags: CapableFlags(body[1]),
        sender_key: (n >= 10).then(|| be64(body, 2)),
        receiver_key: (n >= 18).then(|| be64(body, 10)),
        data_len: (n >= 20).then(|| be16(body, 18)),
        checksum: (n >= 22).then(|| be16(body, 20)),
    }))
}

fn parse_mp_join(body: &[u8]) -> Result<MptcpOption<'_>> {
    // RFC 8684 §3.2, Figures 5-7: the length tells the form (12 SYN, 16 SYN/ACK, 24 ACK).
    check_len(body, &[10, 14, 22])?;
    let backup = body[0] & 0x01 != 0;
    let addr_id = body[1];
    Ok(match body.len() {
        10 => MptcpOption::MpJoinSyn {
            backup,
            addr_id,
            token: be32(body, 2),
            nonce: be32(body, 6),
        },
        14 => MptcpOption::MpJoinSynAck {
            backup,
            addr_id,
            hmac: be64(body, 2),
            nonce: be32(body, 10),
        },
        _ => {
            let mut hmac = [0u8; 20];
            hmac.copy_from_slice(&body[2..22]);
            MptcpOption::MpJoinAck { hmac }
        }
    })
}

fn parse_dss(body: &[u8]) -> Result<MptcpOption<'_>> {
    // RFC 8684 §3.3, Figure 9.
    if body.len() < 2 {
        return Err(Error::Truncated);
    }
    let f = body[1];
    let ack_len = match (
        f & dss_flags::DATA_ACK != 0,
        f & dss_flags::DATA_ACK_IS_8 != 0,
    ) {
        (false, _) => 0,
        (true, false) => 4,
        (true, true) => 8,
    };
    let dsn_len = if f & dss_flags::DSN_IS_8 != 0 { 8 } else { 4 };
    let has_map = f & dss_flags::MAPPING != 0;
    let expected = 2 + ack_len + if has_map { dsn_len + 4 + 2 } else { 0 };
    let has_csum = if body.len() == expected {
        false
    } else if has_map && body.len() == expected + 2 {
        true
    } else if body.len() < expected {
        return Err(Error::Truncated);
    } else {
        return Err(Error::Malformed);
    };
    let read_seq = |at: usize, len: usize| {
        if len == 8 {
            DataSeq::wide(be64(body, at))
        } else {
            DataSeq::narrow(be32(body, at))
        }
    };
    let data_ack = (ack_len != 0).then(|| read_seq(2, ack_len));
    let at = 2 + ack_len;
    let mapping = has_map.then(|| DssMapping {
        dsn: read_seq(at, dsn_len),
        subflow_seq: be32(body, at + dsn_len),
        data_len: be16(body, at + dsn_len + 4),
        checksum: has_csum.then(|| be16(body, at + dsn_len + 6)),
    });
    Ok(MptcpOption::Dss(Dss {
        data_fin: f & dss_flags::DATA_FIN != 0,
        data_ack,
        mapping,
    }))
}

fn parse_add_addr(body: &[u8]) -> Result<MptcpOption<'_>> {
    // RFC 8684 §3.4.1, Figure 12. Body lengths (option length - 2):
    // IPv4 6 / 8 port / 14 HMAC / 16 port+HMAC; IPv6 18 / 20 / 26 / 28.
    let (v6, port, hmac) = match body.len() {
        6 => (false, false, false),
        8 => (false, true, false),
        14 => (false, false, true),
        16 => (false, true, true),
        18 => (true, false, false),
        20 => (true, true, false),
        26 => (true, false, true),
        28 => (true, true, true),
        n if n < 6 => return Err(Error::Truncated),
        _ => return Err(Error::Malformed),
    };
    let echo = body[0] & 0x01 != 0;
    // An echo has no HMAC and an announcement has one (RFC 8684 §3.4.1; Linux ignores both
    // other combinations).
    if echo == hmac {
        return Err(Error::Malformed);
    }
    let (addr, mut at) = if v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&body[2..18]);
        (IpAddr::V6(Ipv6Addr::from(a)), 18)
    } else {
        (
            IpAddr::V4(Ipv4Addr::new(body[2], body[3], body[4], body[5])),
            6,
        )
    };
    let port = port.then(|| be16(body, at));
    if port.is_some() {
        at += 2;
    }
    Ok(MptcpOption::AddAddr(AddAddr {
        addr_id: body[1],
        addr,
        port,
        hmac: hmac.then(|| be64(body, at)),
    }))
}

/// A cursor over the body being written (the slice is exactly `emit_len` long).
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    fn seq(&mut self, s: DataSeq) {
        if s.wide {
            self.u64(s.value);
        } else {
            self.u32(s.value as u32);
        }
    }
}

/// Partial one's-complement sum of the DSS checksum pseudo-header (RFC 8684 §3.3.1): the 64-bit
/// DSN (always the full 64 bits, whatever width the option carries), the relative subflow
/// sequence number, the data-level length and `checksum` (0 when computing).
fn dss_pseudo_sum(dsn: u64, subflow_seq: u32, data_len: u16, csum: u16) -> u32 {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(&dsn.to_be_bytes());
    h[8..12].copy_from_slice(&subflow_seq.to_be_bytes());
    h[12..14].copy_from_slice(&data_len.to_be_bytes());
    h[14..16].copy_from_slice(&csum.to_be_bytes());
    checksum::ones_complement_sum(&h)
}

/// The DSS checksum to send for a mapping and the payload it covers (RFC 8684 §3.3.1): the
/// Internet checksum over the pseudo-header (64-bit DSN, relative subflow sequence number,
/// data-level length, zero checksum) followed by `payload`. Used in DSS and in MP_CAPABLE with
/// data.
pub fn dss_checksum(dsn: u64, subflow_seq: u32, data_len: u16, payload: &[u8]) -> u16 {
    checksum::finish(checksum::combine(
        dss_pseudo_sum(dsn, subflow_seq, data_len, 0),
        checksum::ones_complement_sum(payload),
    ))
}

/// True when a received DSS checksum verifies over its mapping and payload (RFC 8684 §3.3.1):
/// the sum including the received checksum is all ones.
pub fn dss_checksum_ok(
    dsn: u64,
    subflow_seq: u32,
    data_len: u16,
    received: u16,
    payload: &[u8],
) -> bool {
    checksum::combine(
        dss_pseudo_sum(dsn, subflow_seq, data_len, received),
        checksum::ones_complement_sum(payload),
    ) == 0xffff
}
