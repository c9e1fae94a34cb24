//! The TCP header (RFC 9293 §3.1) and its options (MSS, window scale, SACK-permitted, SACK,
//! timestamps, NOP/EOL, MPTCP kind 30 as raw bytes, unknown options preserved).

use crate::checksum;
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

/// Up to 4 SACK blocks, without allocation. Equality and hashing look only at the blocks in use.
#[derive(Clone, Copy, Debug, Default)]
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
/// Equality and hashing look only at the options in use.
#[derive(Clone, Copy, Debug, Default)]
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

impl PartialEq for SackList {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for SackList {}
impl core::hash::Hash for SackList {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl SackList {
    /// A list holding the first (up to 4) blocks of `blocks`.
    pub fn from_slice(blocks: &[SackBlock]) -> Self {
        let mut l = SackList::default();
        for b in blocks.iter().take(Self::CAPACITY) {
            l.push(*b);
        }
        l
    }
}

impl PartialEq for OptionList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl Eq for OptionList<'_> {}
impl core::hash::Hash for OptionList<'_> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl TcpFlags {
    pub fn ece(self) -> bool {
        self.0 & Self::ECE != 0
    }
    pub fn cwr(self) -> bool {
        self.0 & Self::CWR != 0
    }
    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

/// TCP option kinds braid knows (IANA "TCP Option Kind Numbers").
pub mod kind {
    /// End of option list (RFC 9293 §3.1).
    pub const EOL: u8 = 0;
    /// No-operation (RFC 9293 §3.1).
    pub const NOP: u8 = 1;
    /// Maximum segment size (RFC 9293 §3.7.1).
    pub const MSS: u8 = 2;
    /// Window scale (RFC 7323 §2).
    pub const WINDOW_SCALE: u8 = 3;
    /// SACK permitted (RFC 2018 §2).
    pub const SACK_PERMITTED: u8 = 4;
    /// SACK blocks (RFC 2018 §3).
    pub const SACK: u8 = 5;
    /// Timestamps (RFC 7323 §3).
    pub const TIMESTAMPS: u8 = 8;
    /// Multipath TCP (RFC 8684 §2).
    pub const MPTCP: u8 = 30;
}

/// The largest window scale shift; larger values are treated as 14 (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

/// One option as it appears on the wire, yielded by [`TcpOptionIter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// Kind 0: the option list ends here; the iterator stops after it.
    EndOfList,
    /// Kind 1.
    NoOperation,
    /// Kind 2, length 4.
    MaxSegmentSize(u16),
    /// Kind 3, length 3: the shift exactly as sent (not yet clamped to 14).
    WindowScale(u8),
    /// Kind 4, length 2.
    SackPermitted,
    /// Kind 5, length 2 + 8n with n in 1..=4.
    Sack(SackList),
    /// Kind 8, length 10.
    Timestamps(Timestamps),
    /// Kind 30, length >= 3: the bytes after kind and length.
    Mptcp(&'a [u8]),
    /// Any other kind with a usable length: the bytes after kind and length.
    Unknown { kind: u8, body: &'a [u8] },
    /// A known kind whose length is wrong for it; skipped by its length (RFC 9293 §3.1 and
    /// RFC 1122 §4.2.2.5: be liberal in what is accepted).
    BadLength { kind: u8, body: &'a [u8] },
    /// The length octet is missing, below 2, or runs past the options: the option cannot be
    /// skipped, so iteration stops. `rest` is everything from the kind octet on.
    Truncated { kind: u8, rest: &'a [u8] },
}

/// Iterator over the raw option bytes of a TCP header. Never panics, on any input.
#[derive(Clone, Debug)]
pub struct TcpOptionIter<'a> {
    data: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates over `data` (the bytes between the fixed header and the data offset).
    pub fn new(data: &'a [u8]) -> Self {
        TcpOptionIter { data }
    }
}

fn be16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn classify(kind: u8, body: &[u8]) -> TcpOption<'_> {
    let bad = TcpOption::BadLength { kind, body };
    match kind {
        kind::MSS => match body {
            [a, b] => TcpOption::MaxSegmentSize(u16::from_be_bytes([*a, *b])),
            _ => bad,
        },
        kind::WINDOW_SCALE => match body {
            [s] => TcpOption::WindowScale(*s),
            _ => bad,
        },
        kind::SACK_PERMITTED if body.is_empty() => TcpOption::SackPermitted,
        // RFC 2018 §3: 2 + 8n bytes; at most 4 blocks fit in 40 bytes of options.
        kind::SACK if matches!(body.len(), 8 | 16 | 24 | 32) => {
            let mut list = SackList::default();
            for b in body.chunks_exact(8) {
                list.push(SackBlock {
                    left: be32_at(b, 0),
                    right: be32_at(b, 4),
                });
            }
            TcpOption::Sack(list)
        }
        kind::TIMESTAMPS if body.len() == 8 => TcpOption::Timestamps(Timestamps {
            tsval: be32_at(body, 0),
            tsecr: be32_at(body, 4),
        }),
        kind::MPTCP if !body.is_empty() => TcpOption::Mptcp(body),
        kind::SACK_PERMITTED | kind::SACK | kind::TIMESTAMPS | kind::MPTCP => bad,
        _ => TcpOption::Unknown { kind, body },
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = TcpOption<'a>;

    #[inline]
    fn next(&mut self) -> Option<TcpOption<'a>> {
        let data = self.data;
        let (&kind, after_kind) = data.split_first()?;
        match kind {
            kind::EOL => {
                self.data = &[];
                Some(TcpOption::EndOfList)
            }
            kind::NOP => {
                self.data = after_kind;
                Some(TcpOption::NoOperation)
            }
            _ => {
                let len = after_kind.first().map_or(0, |&l| usize::from(l));
                if len < 2 || len > data.len() {
                    self.data = &[];
                    return Some(TcpOption::Truncated { kind, rest: data });
                }
                let (opt, rest) = data.split_at(len);
                self.data = rest;
                Some(classify(kind, &opt[2..]))
            }
        }
    }
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const HEADER_LEN: usize = 20;
}

/// Checked TCP view (RFC 9293 §3.1).
///
/// After [`TcpPacket::new_checked`] every accessor is safe: the buffer holds at least the header
/// length that the data offset claims. The whole buffer after the header is the payload, so the
/// caller trims it to the IP payload length first. A `new_unchecked` view may panic in accessors.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates that the fixed header fits, the data offset is at least 5 words and the header
    /// it describes fits the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(b[field::DATA_OFFSET] >> 4) * 4;
        if hl < field::HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
    pub fn src_port(&self) -> u16 {
        be16_at(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16_at(self.buffer.as_ref(), field::DST_PORT)
    }
    pub fn seq_number(&self) -> u32 {
        be32_at(self.buffer.as_ref(), field::SEQ)
    }
    pub fn ack_number(&self) -> u32 {
        be32_at(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }
    /// The four reserved bits after the data offset (the low nibble of byte 12).
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] & 0x0f
    }
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }
    pub fn window_len(&self) -> u16 {
        be16_at(self.buffer.as_ref(), field::WINDOW)
    }
    pub fn checksum(&self) -> u16 {
        be16_at(self.buffer.as_ref(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        be16_at(self.buffer.as_ref(), field::URGENT)
    }
    /// The raw option bytes (fixed header end to data offset).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..self.header_len()]
    }
    /// An iterator over the options.
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }
    /// The payload: everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// True when the checksum over `pseudo_sum` (from [`crate::checksum::pseudo_header_v4`] /
    /// `_v6` for this buffer's length) and the whole buffer verifies.
    pub fn verify_checksum(&self, pseudo_sum: u32) -> bool {
        checksum::verify(pseudo_sum, self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        self.buffer.as_mut()[0..2].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, v: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[8..12].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the data offset from a header length in bytes (multiple of 4, 20..=60); clears the
    /// reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((len / 4) as u8) << 4;
    }
    pub fn set_flags(&mut self, f: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = f.0;
    }
    pub fn set_window_len(&mut self, v: u16) {
        self.buffer.as_mut()[14..16].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.buffer.as_mut()[16..18].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        self.buffer.as_mut()[18..20].copy_from_slice(&v.to_be_bytes());
    }
    /// The raw option bytes, mutable.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[field::HEADER_LEN..hl]
    }
    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
    /// Computes and writes the checksum over `pseudo_sum` and the whole buffer.
    pub fn fill_checksum(&mut self, pseudo_sum: u32) {
        self.set_checksum(0);
        let sum = checksum::combine(
            pseudo_sum,
            checksum::ones_complement_sum(self.buffer.as_ref()),
        );
        self.set_checksum(checksum::finish(sum));
    }
}

/// Which options `emit` writes and how many bytes they take; shared by `header_len` and `emit`
/// so that the two always agree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OptionLayout {
    /// MPTCP options emitted (a prefix of `options.mptcp`).
    mptcp: usize,
    /// NOPs after the MPTCP options so that the SACK option is 32-bit aligned.
    mptcp_pad: usize,
    /// SACK blocks emitted (a prefix of `options.sack`).
    sack: usize,
    /// Unknown options emitted (a prefix of `options.unknown`).
    unknown: usize,
    /// Option bytes including the final zero padding (a multiple of 4, at most 40).
    pub(crate) len: usize,
}

impl TcpOptions<'_> {
    /// Plans the emitted layout; see [`TcpRepr::emit`] for the order and the dropping rules.
    #[inline]
    pub(crate) fn layout(&self) -> OptionLayout {
        let mut used = 0;
        if self.mss.is_some() {
            used += 4;
        }
        if self.timestamps.is_some() {
            used += 12; // SACK_PERM+TS or NOP,NOP,TS
        } else if self.sack_permitted {
            used += 4; // NOP,NOP,SACK_PERM
        }
        if self.window_scale.is_some() {
            used += 4; // NOP,WS
        }
        let mut mptcp = 0;
        for (_, body) in self.mptcp.as_slice() {
            let l = 2 + body.len();
            if used + l > MAX_TCP_OPTION_SPACE {
                break;
            }
            used += l;
            mptcp += 1;
        }
        let mut unknown = 0;
        let mut unknown_len = 0;
        for (_, body) in self.unknown.as_slice() {
            let l = 2 + body.len();
            if used + unknown_len + l > MAX_TCP_OPTION_SPACE {
                break;
            }
            unknown_len += l;
            unknown += 1;
        }
        let mptcp_pad = (4 - used % 4) % 4;
        let room = MAX_TCP_OPTION_SPACE - used - unknown_len;
        let sack = if room >= mptcp_pad + 4 + 8 {
            self.sack.len().min((room - mptcp_pad - 4) / 8)
        } else {
            0
        };
        if sack > 0 {
            used += mptcp_pad + 4 + 8 * sack;
        }
        used += unknown_len;
        OptionLayout {
            mptcp,
            mptcp_pad: if sack > 0 { mptcp_pad } else { 0 },
            sack,
            unknown,
            len: used.div_ceil(4) * 4,
        }
    }
}

impl<'a> TcpRepr<'a> {
    /// Reads a segment from a view: header fields, options and payload (the whole buffer after the
    /// header). Lengths are re-checked, so a `new_unchecked` view is fine too. The checksum is NOT
    /// verified here (see [`crate::parse_ip_tcp`] and [`TcpPacket::verify_checksum`]).
    ///
    /// Options are parsed liberally (RFC 9293 §3.1, RFC 1122 §4.2.2.5): a known option with the
    /// wrong length is skipped by its length; an option whose length octet is missing, below 2 or
    /// runs past the header ends option parsing (options before it are kept); EOL ends it too.
    /// Only a truncated header or a data offset below 5 is an error. A later occurrence of a
    /// single-valued option replaces an earlier one. Window scale shifts above 14 are read as 14
    /// (RFC 7323 §2.3). MPTCP and unknown options beyond 4 each are counted in `dropped`.
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TcpPacket<&'a T>) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        let bytes: &'a [u8] = packet.buffer.as_ref();
        let hl = packet.header_len();
        let mut options = TcpOptions::default();
        for opt in TcpOptionIter::new(&bytes[field::HEADER_LEN..hl]) {
            match opt {
                TcpOption::MaxSegmentSize(v) => options.mss = Some(v),
                TcpOption::WindowScale(s) => options.window_scale = Some(s.min(MAX_WINDOW_SCALE)),
                TcpOption::SackPermitted => options.sack_permitted = true,
                TcpOption::Sack(list) => options.sack = list,
                TcpOption::Timestamps(ts) => options.timestamps = Some(ts),
                TcpOption::Mptcp(body) => {
                    if !options.mptcp.push(kind::MPTCP, body) {
                        options.dropped = options.dropped.saturating_add(1);
                    }
                }
                TcpOption::Unknown { kind, body } => {
                    if !options.unknown.push(kind, body) {
                        options.dropped = options.dropped.saturating_add(1);
                    }
                }
                TcpOption::EndOfList
                | TcpOption::NoOperation
                | TcpOption::BadLength { .. }
                | TcpOption::Truncated { .. } => {}
            }
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options,
            payload: &bytes[hl..],
        })
    }

    /// Header length as emitted: 20 plus the options padded to a multiple of 4 (at most 60).
    pub fn header_len(&self) -> usize {
        field::HEADER_LEN + self.options.layout().len
    }

    /// Header plus payload length as emitted.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// True when `emit` writes every option of this repr (nothing is dropped for lack of space).
    pub fn options_fit(&self) -> bool {
        let l = self.options.layout();
        l.sack == self.options.sack.len()
            && l.mptcp == self.options.mptcp.len()
            && l.unknown == self.options.unknown.len()
    }

    /// How many SACK blocks `emit` writes (those that fit beside the other options).
    pub fn emitted_sack_blocks(&self) -> usize {
        self.options.layout().sack
    }

    /// Writes header, options and payload into `buf[..self.buffer_len()]` with checksum 0 (the
    /// caller fills it, see [`crate::emit_ip_tcp`]). Panics if `buf` is shorter (a caller bug).
    ///
    /// Option layout, compact and 32-bit aligned like Linux: MSS; then SACK-permitted and
    /// timestamps as `04 02 08 0a ...` (or `01 01 08 0a ...` without SACK-permitted, or
    /// `01 01 04 02` without timestamps); then `01 03 03 ws` (shift clamped to 14); then MPTCP
    /// options (`1e len body`, each in order); then NOPs to realign and `01 01 05 len blocks`;
    /// then unknown options; then zero padding (EOL) to a multiple of 4.
    ///
    /// Within the 40-byte option space, SACK blocks are dropped first (as many trailing blocks as
    /// needed), then trailing unknown options; MSS, SACK-permitted, timestamps and window scale
    /// (20 bytes at most) always fit; MPTCP options that no longer fit after them are dropped
    /// from the end — the engine must not ask for more than 40 bytes of MPTCP options.
    pub fn emit(&self, buf: &mut [u8]) {
        let hl = self.emit_header(buf);
        buf[hl..hl + self.payload.len()].copy_from_slice(self.payload);
    }

    /// Writes the header and options (not the payload) with checksum 0; returns the header length.
    pub fn emit_header(&self, buf: &mut [u8]) -> usize {
        self.emit_header_with(buf, self.options.layout())
    }

    /// `emit_header` with the layout already planned (saves planning twice on the hot path).
    #[inline]
    pub(crate) fn emit_header_with(&self, buf: &mut [u8], layout: OptionLayout) -> usize {
        let hl = field::HEADER_LEN + layout.len;
        let buf = &mut buf[..hl];
        buf[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        buf[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ack.to_be_bytes());
        buf[12] = ((hl / 4) as u8) << 4;
        buf[13] = self.flags.0;
        buf[14..16].copy_from_slice(&self.window.to_be_bytes());
        buf[16..18].copy_from_slice(&[0, 0]);
        buf[18..20].copy_from_slice(&self.urgent.to_be_bytes());
        let o = &self.options;
        let mut w = Writer {
            buf,
            at: field::HEADER_LEN,
        };
        if let Some(mss) = o.mss {
            w.put(&[kind::MSS, 4]);
            w.put(&mss.to_be_bytes());
        }
        match (o.timestamps, o.sack_permitted) {
            (Some(ts), sack_perm) => {
                if sack_perm {
                    w.put(&[kind::SACK_PERMITTED, 2]);
                } else {
                    w.put(&[kind::NOP, kind::NOP]);
                }
                w.put(&[kind::TIMESTAMPS, 10]);
                w.put(&ts.tsval.to_be_bytes());
                w.put(&ts.tsecr.to_be_bytes());
            }
            (None, true) => w.put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, 2]),
            (None, false) => {}
        }
        if let Some(ws) = o.window_scale {
            w.put(&[kind::NOP, kind::WINDOW_SCALE, 3, ws.min(MAX_WINDOW_SCALE)]);
        }
        for (_, body) in &o.mptcp.as_slice()[..layout.mptcp] {
            w.put(&[kind::MPTCP, (2 + body.len()) as u8]);
            w.put(body);
        }
        if layout.sack > 0 {
            for _ in 0..layout.mptcp_pad {
                w.put(&[kind::NOP]);
            }
            w.put(&[
                kind::NOP,
                kind::NOP,
                kind::SACK,
                (2 + 8 * layout.sack) as u8,
            ]);
            for b in &o.sack.as_slice()[..layout.sack] {
                w.put(&b.left.to_be_bytes());
                w.put(&b.right.to_be_bytes());
            }
        }
        for (k, body) in &o.unknown.as_slice()[..layout.unknown] {
            w.put(&[*k, (2 + body.len()) as u8]);
            w.put(body);
        }
        let at = w.at;
        buf[at..].fill(kind::EOL);
        hl
    }
}

/// A cursor over the header being written.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>() -> TcpRepr<'a> {
        TcpRepr {
            src_port: 0x1234,
            dst_port: 80,
            seq: 0x0102_0304,
            ack: 0xa0b0_c0d0,
            flags: TcpFlags(TcpFlags::ACK | TcpFlags::PSH),
            window: 0xfff0,
            urgent: 0,
            options: TcpOptions::default(),
            payload: &[],
        }
    }

    fn emit(r: &TcpRepr<'_>) -> Vec<u8> {
        let mut buf = vec![0xaa; r.buffer_len()];
        r.emit(&mut buf);
        buf
    }

    fn reparse(bytes: &[u8]) -> TcpRepr<'_> {
        TcpRepr::parse(&TcpPacket::new_checked(bytes).unwrap()).unwrap()
    }

    /// A header with `opts` as its (already padded) options.
    fn with_options(opts: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut buf = emit(&base());
        buf[12] = (((20 + opts.len()) / 4) as u8) << 4;
        buf.extend_from_slice(opts);
        buf
    }

    #[test]
    fn fixed_header_bytes() {
        let mut r = base();
        r.urgent = 0x0708;
        r.payload = b"hello";
        let b = emit(&r);
        assert_eq!(
            &b[..20],
            &[
                0x12, 0x34, 0, 80, 1, 2, 3, 4, 0xa0, 0xb0, 0xc0, 0xd0, 0x50, 0x18, 0xff, 0xf0, 0,
                0, 7, 8
            ]
        );
        assert_eq!(&b[20..], b"hello");
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.reserved(), 0);
        assert!(p.flags().ack() && p.flags().psh() && !p.flags().syn());
        assert_eq!(TcpRepr::parse(&p).unwrap(), r);
    }

    #[test]
    fn linux_syn_layout() {
        let mut r = base();
        r.flags = TcpFlags(TcpFlags::SYN);
        r.options.mss = Some(1460);
        r.options.sack_permitted = true;
        r.options.timestamps = Some(Timestamps {
            tsval: 0x11223344,
            tsecr: 0,
        });
        r.options.window_scale = Some(7);
        let b = emit(&r);
        assert_eq!(r.header_len(), 40);
        assert_eq!(
            &b[20..40],
            &[
                0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0,
                0x01, 0x03, 0x03, 0x07
            ]
        );
        assert_eq!(reparse(&b), r);
    }

    #[test]
    fn timestamps_only_and_sack_permitted_only() {
        let mut r = base();
        r.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
        let b = emit(&r);
        assert_eq!(&b[20..], &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(reparse(&b), r);

        let mut r = base();
        r.options.sack_permitted = true;
        let b = emit(&r);
        assert_eq!(&b[20..], &[1, 1, 4, 2]);
        assert_eq!(reparse(&b), r);
    }

    #[test]
    fn sack_blocks_with_timestamps_drop_to_fit() {
        let mut r = base();
        r.options.timestamps = Some(Timestamps { tsval: 9, tsecr: 8 });
        for i in 0..4u32 {
            r.options.sack.push(SackBlock {
                left: i * 100,
                right: i * 100 + 50,
            });
        }
        // 12 (TS) + 4 + 8n <= 40 leaves room for 3 blocks.
        assert_eq!(r.emitted_sack_blocks(), 3);
        assert_eq!(r.header_len(), 60);
        let b = emit(&r);
        assert_eq!(&b[32..36], &[1, 1, 5, 26]);
        assert_eq!(&b[36..44], &[0, 0, 0, 0, 0, 0, 0, 50]);
        let back = reparse(&b);
        assert_eq!(
            back.options.sack.as_slice(),
            &r.options.sack.as_slice()[..3]
        );
        assert_eq!(back.options.timestamps, r.options.timestamps);

        // Without timestamps all 4 fit: 4 + 32 = 36.
        r.options.timestamps = None;
        assert_eq!(r.emitted_sack_blocks(), 4);
        assert_eq!(reparse(&emit(&r)), r);
    }

    #[test]
    fn mptcp_round_trip_and_alignment() {
        let body: &[u8] = &[0x20, 0x01, 1, 2, 3, 4, 5]; // 9-byte option: needs 3 NOPs before SACK
        let mut r = base();
        r.options.timestamps = Some(Timestamps { tsval: 5, tsecr: 6 });
        r.options.mptcp.push(kind::MPTCP, body);
        r.options.sack.push(SackBlock {
            left: 1000,
            right: 2000,
        });
        let b = emit(&r);
        assert_eq!(r.header_len(), 20 + 12 + 9 + 3 + 12);
        assert_eq!(&b[32..41], &[30, 9, 0x20, 0x01, 1, 2, 3, 4, 5]);
        assert_eq!(&b[41..48], &[1, 1, 1, 1, 1, 5, 10]);
        assert_eq!(reparse(&b), r);

        // Alone, the 9-byte option is followed by zero padding.
        let mut r = base();
        r.options.mptcp.push(kind::MPTCP, body);
        let b = emit(&r);
        assert_eq!(&b[20..], &[30, 9, 0x20, 0x01, 1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(reparse(&b), r);
    }

    #[test]
    fn mptcp_beats_sack_and_unknown() {
        let big = [7u8; 30]; // 32-byte MPTCP option
        let mut r = base();
        r.options.mptcp.push(kind::MPTCP, &big);
        r.options.sack.push(SackBlock { left: 1, right: 2 });
        r.options.unknown.push(99, &[1, 2, 3, 4, 5, 6]);
        // 32 used: the SACK option (12) does not fit; the 8-byte unknown option does.
        assert_eq!(r.emitted_sack_blocks(), 0);
        let bytes = emit(&r);
        let back = reparse(&bytes);
        assert_eq!(back.options.mptcp, r.options.mptcp);
        assert_eq!(back.options.unknown, r.options.unknown);
        assert!(back.options.sack.is_empty());
        assert_eq!(r.header_len(), 60);
    }

    #[test]
    fn oversized_mptcp_is_dropped_not_panicking() {
        let big = [7u8; 39];
        let mut r = base();
        r.options.mss = Some(1000);
        r.options.mptcp.push(kind::MPTCP, &big);
        r.options.mptcp.push(kind::MPTCP, &[1]);
        r.options.mptcp.push(kind::MPTCP, &[0u8; 300]);
        let bytes = emit(&r);
        let back = reparse(&bytes);
        assert_eq!(back.options.mss, Some(1000));
        assert!(
            back.options.mptcp.is_empty(),
            "first MPTCP option cannot fit: none after it"
        );
        assert!(r.header_len() <= 60);
    }

    #[test]
    fn each_option_parses() {
        let b = with_options(&[2, 4, 0x05, 0xb4]);
        assert_eq!(reparse(&b).options.mss, Some(1460));
        let b = with_options(&[1, 3, 3, 9]);
        assert_eq!(reparse(&b).options.window_scale, Some(9));
        let b = with_options(&[1, 3, 3, 15]);
        assert_eq!(
            reparse(&b).options.window_scale,
            Some(14),
            "RFC 7323 §2.3 clamp"
        );
        let b = with_options(&[1, 1, 4, 2]);
        assert!(reparse(&b).options.sack_permitted);
        let b = with_options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        assert_eq!(
            reparse(&b).options.timestamps,
            Some(Timestamps { tsval: 1, tsecr: 2 })
        );
        let b = with_options(&[1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        let sack = reparse(&b).options.sack;
        assert_eq!(
            sack.as_slice(),
            &[
                SackBlock { left: 1, right: 2 },
                SackBlock { left: 3, right: 4 }
            ]
        );
        let b = with_options(&[30, 4, 0x10, 0x81, 99, 2, 0, 0]);
        let o = reparse(&b).options;
        assert_eq!(o.mptcp.as_slice(), &[(30, &[0x10, 0x81][..])]);
        assert_eq!(o.unknown.as_slice(), &[(99, &[][..])]);
        assert_eq!(o.dropped, 0);
    }

    #[test]
    fn bad_lengths_are_skipped_or_stop() {
        // MSS with length 3 is skipped; the timestamps after it are read.
        let b = with_options(&[2, 3, 5, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
        let o = reparse(&b).options;
        assert_eq!((o.mss, o.timestamps.map(|t| t.tsval)), (None, Some(1)));
        // Wrong fixed lengths for WS, SACK-perm, TS, SACK, MPTCP: all skipped.
        for opt in [
            &[3, 4, 7, 0][..],
            &[4, 3, 0, 1],
            &[8, 4, 0, 0],
            &[5, 4, 0, 0],
            &[5, 2, 1, 1],
            &[30, 2, 1, 1],
        ] {
            let mut v = opt.to_vec();
            v.extend_from_slice(&[2, 4, 1, 0]);
            let bytes = with_options(&v);
            let o = reparse(&bytes).options;
            assert_eq!(o.mss, Some(256), "option {opt:?} should be skipped");
            assert_eq!(o.window_scale, None);
            assert!(!o.sack_permitted && o.sack.is_empty() && o.timestamps.is_none());
            assert!(o.mptcp.is_empty() && o.unknown.is_empty());
        }
        // Length 0 or 1, or past the end: parsing stops, earlier options kept.
        for tail in [[99, 0, 2, 4], [99, 1, 2, 4], [99, 9, 2, 4]] {
            let mut v = vec![1, 3, 3, 2];
            v.extend_from_slice(&tail);
            let bytes = with_options(&v);
            let o = reparse(&bytes).options;
            assert_eq!((o.window_scale, o.mss), (Some(2), None));
        }
        // EOL stops parsing.
        let bytes = with_options(&[0, 0, 0, 0, 2, 4, 1, 0]);
        let o = reparse(&bytes).options;
        assert_eq!(o.mss, None);
    }

    #[test]
    fn too_many_unknown_options_are_counted() {
        let v = [100, 2, 101, 2, 102, 2, 103, 2, 104, 2, 30, 3, 1, 0];
        let mut opts = v.to_vec();
        opts.resize(16, 0);
        let bytes = with_options(&opts);
        let o = reparse(&bytes).options;
        assert_eq!(o.unknown.len(), 4);
        assert_eq!(o.mptcp.as_slice(), &[(30, &[1][..])]);
        assert_eq!(o.dropped, 1);
    }

    #[test]
    fn iterator_yields_wire_items() {
        let data = [1, 2, 4, 0x05, 0xb4, 3, 3, 20, 42, 2, 8, 3, 0, 0, 9];
        let items: Vec<_> = TcpOptionIter::new(&data).collect();
        assert_eq!(
            items,
            vec![
                TcpOption::NoOperation,
                TcpOption::MaxSegmentSize(1460),
                TcpOption::WindowScale(20),
                TcpOption::Unknown {
                    kind: 42,
                    body: &[]
                },
                TcpOption::BadLength {
                    kind: 8,
                    body: &[0]
                },
                TcpOption::EndOfList,
            ]
        );
        let items: Vec<_> = TcpOptionIter::new(&[5, 40, 1]).collect();
        assert_eq!(
            items,
            vec![TcpOption::Truncated {
                kind: 5,
                rest: &[5, 40, 1]
            }]
        );
        let items: Vec<_> = TcpOptionIter::new(&[7]).collect();
        assert_eq!(
            items,
            vec![TcpOption::Truncated {
                kind: 7,
                rest: &[7]
            }]
        );
    }

    #[test]
    fn iterator_never_panics_on_short_inputs() {
        // Every 1..=3-byte input, and a sample of longer ones.
        let mut n = 0usize;
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for c in [0u8, 1, 2, 3, 4, 10, 255] {
                    let data = [a, b, c];
                    for len in 0..=3 {
                        n += TcpOptionIter::new(&data[..len]).count();
                    }
                }
            }
        }
        assert!(n > 0);
    }

    #[test]
    fn header_checks() {
        let mut r = base();
        r.options.timestamps = Some(Timestamps { tsval: 1, tsecr: 2 });
        r.payload = b"xyz";
        let b = emit(&r);
        for n in 0..32 {
            assert!(TcpPacket::new_checked(&b[..n]).is_err(), "len {n}");
            assert!(TcpRepr::parse(&TcpPacket::new_unchecked(&b[..n])).is_err());
        }
        let p = TcpPacket::new_checked(&b[..32]).unwrap();
        assert!(TcpRepr::parse(&p).unwrap().payload.is_empty());
        let mut bad = b.clone();
        bad[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Error::Malformed
        );
        bad[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn setters_and_checksum() {
        let mut buf = [0u8; 24];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_header_len(20);
        p.set_flags(TcpFlags(TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR));
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.payload_mut().copy_from_slice(b"abcd");
        p.fill_checksum(0x1234);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(0x1234));
        assert!(!p.verify_checksum(0x1235));
        let f = p.flags();
        assert!(f.syn() && f.ece() && f.cwr() && !f.ack());
        assert!(f.contains(TcpFlags::SYN | TcpFlags::CWR));
        assert_eq!(
            (
                p.src_port(),
                p.dst_port(),
                p.seq_number(),
                p.ack_number(),
                p.window_len()
            ),
            (1, 2, 3, 4, 5)
        );
        assert_eq!((p.urgent_at(), p.payload()), (6, &b"abcd"[..]));
    }

    #[test]
    fn lists_compare_by_content() {
        let mut a = SackList::default();
        a.push(SackBlock { left: 1, right: 2 });
        a.push(SackBlock { left: 3, right: 4 });
        a.clear();
        a.push(SackBlock { left: 5, right: 6 });
        assert_eq!(a, SackList::from_slice(&[SackBlock { left: 5, right: 6 }]));
        assert!(!a.push(SackBlock::default()) || a.len() == 2);
    }

    #[test]
    fn segment_len_counts_syn_fin() {
        let mut r = base();
        r.payload = b"ab";
        r.flags = TcpFlags(TcpFlags::SYN | TcpFlags::FIN);
        assert_eq!(r.segment_len(), 4);
    }
}
