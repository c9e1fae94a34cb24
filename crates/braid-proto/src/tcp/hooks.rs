//! How an extension of TCP plugs into a TCB: MPTCP's subflow level (RFC 8684) reads the
//! options of incoming segments, writes the options of outgoing ones and bounds segments by
//! its mappings, without the TCB knowing what MPTCP is. Plain TCP uses [`NoHooks`].

use crate::counters::Counters;
use crate::tcp::sendbuf::SendBuffer;
use braid_wire::TcpRepr;

/// What the TCB knows about a segment it is building.
pub(crate) struct OutSeg<'p> {
    pub flags: u8,
    /// Sequence number relative to our ISN.
    pub rel_seq: u32,
    /// Stream offset of the first payload byte (or of the FIN).
    pub off: u64,
    pub payload: &'p [u8],
    /// The segment carries SACK blocks (room for an ADD_ADDR is then not there).
    pub sack: bool,
    /// Option bytes left for MPTCP on a data segment (its payload was sized with
    /// [`SubflowMp::data_opt_len`]).
    pub room: u32,
    /// A super-segment, cut by the device into packets that each carry these options: an
    /// MPTCP data segment then carries the mapping that covers it even when it does not start
    /// there.
    pub gso: bool,
}

/// What the TCB knows when a segment arrives.
pub(crate) struct InSeg {
    /// The TCB is in SYN_SENT.
    pub syn_sent: bool,
    /// Sequence number of the segment relative to the peer's ISN (valid once synchronized).
    pub rel_seq: u32,
    /// Stream offset of the segment's first byte (valid once synchronized).
    pub seg_off: u64,
    /// Shift of the peer's window field.
    pub wnd_shift: u8,
    /// Capacity of the subflow's receive buffer (bounds the rx mappings kept).
    pub rcv_capacity: usize,
    /// The segment acknowledges some of our data (beyond the SYN).
    pub acks_data: bool,
}

/// What the TCB does with a segment after the MPTCP hook saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InAction {
    Continue,
    Drop,
    /// Reset the subflow (RST with the MP_TCPRST reason in `rst_reason`).
    Reset,
}

/// The extension points of a TCB. Every method has the plain-TCP answer as its default.
pub(crate) trait SubflowHooks {
    /// Option bytes to keep free on every data segment (taken out of the MSS).
    fn option_reserve(&self) -> u32 {
        0
    }
    /// An incoming segment, before the TCB handles it.
    fn on_input(&mut self, _c: &mut Counters, _seg: &TcpRepr<'_>, _i: &InSeg) -> InAction {
        InAction::Continue
    }
    /// After input: the extension wants an ACK sent at once.
    fn take_ack_now(&mut self) -> bool {
        false
    }
    /// Before the next segment: the extension wants a pure ACK of its own.
    fn take_fail_ack_due(&mut self) -> bool {
        false
    }
    /// Writes option bodies (TCP option kind 30 each) for an outgoing segment into `out`;
    /// returns their lengths (0: none).
    fn options(&mut self, _s: &OutSeg<'_>, _out: &mut [[u8; 40]; 2]) -> [usize; 2] {
        [0, 0]
    }
    /// The receive window to advertise when it is not the TCB's own (RFC 8684 §3.3.4).
    fn recv_window(&self) -> Option<usize> {
        None
    }
    /// Most payload bytes a segment starting at stream offset `off` may carry.
    fn seg_limit(&self, _off: u64) -> u64 {
        u64::MAX
    }
    /// Option bytes a data segment starting at `off` needs (`None`: nothing reserved).
    fn data_opt_len(&self, _off: u64) -> Option<u32> {
        None
    }
    /// May a super-segment start at stream offset `off` (its options repeated on every packet
    /// the device cuts from it)?
    fn burst_ok(&self, _off: u64) -> bool {
        true
    }
    /// A mapped send buffer's payload ([`crate::tcp::tcb::Tcb::map_send`]): the buffer that
    /// holds the bytes from stream offset `off` on and their offset there, lent until
    /// [`SubflowHooks::return_payload`].
    fn lend_payload(&mut self, _off: u64) -> Option<(SendBuffer, u64)> {
        None
    }
    /// Gives back the buffer [`SubflowHooks::lend_payload`] lent.
    fn return_payload(&mut self, _buf: SendBuffer) {}
    /// In-order payload at stream offset `off` of a TCB that holds nothing unread: the
    /// extension may take it straight to where it belongs (the MPTCP connection level). True:
    /// it took all of it, and the TCB keeps no copy.
    fn land(&mut self, _c: &mut Counters, _off: u64, _data: &[u8]) -> bool {
        false
    }
}

/// Plain TCP: no extension.
pub(crate) struct NoHooks;

impl SubflowHooks for NoHooks {}
