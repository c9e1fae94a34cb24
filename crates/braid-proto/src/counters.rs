//! Counters in the spirit of the kernel's SNMP/MIB: why something happened, readable by users.

/// Engine-wide counters. Every dropped or refused input is counted somewhere here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets that failed to parse (truncated, malformed, bad checksum, unsupported).
    pub bad_packets: u64,
    pub bad_checksum: u64,
    /// Segments for no connection and no listener (answered with RST unless they were RST).
    pub no_socket: u64,
    pub rst_sent: u64,
    pub rst_received: u64,
    pub challenge_acks: u64,
    /// ACKs not sent in answer to unacceptable segments (per-connection rate limit).
    pub oow_acks_skipped: u64,
    pub paws_rejected: u64,
    pub out_of_window: u64,
    pub retransmitted_segments: u64,
    pub fast_retransmits: u64,
    /// Retransmissions found lost by a later delivery (retransmitted again without an RTO).
    pub lost_retransmits: u64,
    pub rto_expirations: u64,
    pub listen_overflows: u64,
    pub active_opens: u64,
    pub passive_opens: u64,
    pub ooo_dropped: u64,
    /// Packets addressed to an IP address that is not ours.
    pub not_for_us: u64,
    /// RSTs not sent because too many were waiting.
    pub rst_dropped: u64,
    /// MPTCP: the kernel's `MPCapableSYNRX`.
    pub mp_capable_syn_rx: u64,
    /// MPTCP: the kernel's `MPCapableSYNTX`.
    pub mp_capable_syn_tx: u64,
    /// MPTCP: the kernel's `MPCapableSYNACKRX`.
    pub mp_capable_synack_rx: u64,
    /// MPTCP: the kernel's `MPCapableACKRX`.
    pub mp_capable_ack_rx: u64,
    /// MPTCP: the kernel's `MPCapableFallbackACK`.
    pub mp_capable_fallback_ack: u64,
    /// MPTCP: the kernel's `MPCapableFallbackSYNACK`.
    pub mp_capable_fallback_synack: u64,
    /// MPTCP: the kernel's `MPFallbackTokenInit`.
    pub mp_fallback_token_init: u64,
    /// MPTCP: the kernel's `MPTCPRetrans`.
    pub mp_retrans: u64,
    /// MPTCP: the kernel's `MPJoinNoTokenFound`.
    pub mp_join_no_token_found: u64,
    /// MPTCP: the kernel's `MPJoinSynRx`.
    pub mp_join_syn_rx: u64,
    /// MPTCP: the kernel's `MPJoinSynAckRx`.
    pub mp_join_synack_rx: u64,
    /// MPTCP: the kernel's `MPJoinSynAckHMacFailure`.
    pub mp_join_synack_hmac_failure: u64,
    /// MPTCP: the kernel's `MPJoinAckRx`.
    pub mp_join_ack_rx: u64,
    /// MPTCP: the kernel's `MPJoinAckHMacFailure`.
    pub mp_join_ack_hmac_failure: u64,
    /// MPTCP: the kernel's `DSSNotMatching`.
    pub mp_dss_not_matching: u64,
    /// MPTCP: the kernel's `InfiniteMapRx`.
    pub mp_infinite_map_rx: u64,
    /// MPTCP: the kernel's `DataCsumErr`.
    pub mp_data_csum_err: u64,
    /// MPTCP: the kernel's `OFOQueue`.
    pub mp_ofo_queue: u64,
    /// MPTCP: the kernel's `DuplicateData`.
    pub mp_duplicate_data: u64,
    /// MPTCP: the kernel's `AddAddr`.
    pub mp_add_addr: u64,
    /// MPTCP: the kernel's `EchoAdd`.
    pub mp_echo_add: u64,
    /// MPTCP: the kernel's `RmAddr`.
    pub mp_rm_addr: u64,
    /// MPTCP: the kernel's `MPPrioTx`.
    pub mp_prio_tx: u64,
    /// MPTCP: the kernel's `MPPrioRx`.
    pub mp_prio_rx: u64,
    /// MPTCP: the kernel's `MPFailRx`.
    pub mp_fail_rx: u64,
    /// MPTCP: the kernel's `MPFastcloseRx` (MP_FASTCLOSE with our key).
    pub mp_fastclose_rx: u64,
    /// MPTCP: the kernel's `MPFastcloseTx` (RSTs with MP_FASTCLOSE queued by `abort`).
    pub mp_fastclose_tx: u64,
    /// MPTCP: MP_FASTCLOSE with a key that is not ours, ignored (braid's own counter).
    pub mp_fastclose_bad_key: u64,
    /// MPTCP: the kernel's `MPRstRx`.
    pub mp_rst_rx: u64,
    /// MPTCP: the kernel's `MPRstTx`.
    pub mp_rst_tx: u64,
    /// MPTCP: the kernel's `Reinjections`.
    pub mp_reinjections: u64,
    /// MPTCP: data holding up the peer's full window sent again on a faster subflow, the slower
    /// one penalised (braid's own counter).
    pub mp_opportunistic: u64,
    /// MPTCP: the kernel's `SubflowsTooMany`.
    pub mp_subflows_too_many: u64,
    /// MPTCP: the kernel's `MPJoinSynTx`.
    pub mp_join_syn_tx: u64,
    /// MPTCP: the kernel's `MPFailTx` (MP_FAIL sent after a failed DSS checksum).
    pub mp_fail_tx: u64,
    /// MPTCP: the kernel's `InfiniteMapTx` (infinite mappings sent in answer to MP_FAIL).
    pub mp_infinite_map_tx: u64,
}

impl Counters {
    /// Name/value pairs, for printing.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        [
            ("PacketsIn", self.packets_in),
            ("PacketsOut", self.packets_out),
            ("BadPackets", self.bad_packets),
            ("BadChecksum", self.bad_checksum),
            ("NoSocket", self.no_socket),
            ("RstSent", self.rst_sent),
            ("RstReceived", self.rst_received),
            ("ChallengeAcks", self.challenge_acks),
            ("OutOfWindowAcksSkipped", self.oow_acks_skipped),
            ("PawsRejected", self.paws_rejected),
            ("OutOfWindow", self.out_of_window),
            ("RetransSegs", self.retransmitted_segments),
            ("FastRetrans", self.fast_retransmits),
            ("LostRetransmit", self.lost_retransmits),
            ("RtoExpirations", self.rto_expirations),
            ("ListenOverflows", self.listen_overflows),
            ("ActiveOpens", self.active_opens),
            ("PassiveOpens", self.passive_opens),
            ("OfoDropped", self.ooo_dropped),
            ("NotForUs", self.not_for_us),
            ("RstDropped", self.rst_dropped),
            ("MPCapableSYNRX", self.mp_capable_syn_rx),
            ("MPCapableSYNTX", self.mp_capable_syn_tx),
            ("MPCapableSYNACKRX", self.mp_capable_synack_rx),
            ("MPCapableACKRX", self.mp_capable_ack_rx),
            ("MPCapableFallbackACK", self.mp_capable_fallback_ack),
            ("MPCapableFallbackSYNACK", self.mp_capable_fallback_synack),
            ("MPFallbackTokenInit", self.mp_fallback_token_init),
            ("MPTCPRetrans", self.mp_retrans),
            ("MPJoinNoTokenFound", self.mp_join_no_token_found),
            ("MPJoinSynRx", self.mp_join_syn_rx),
            ("MPJoinSynAckRx", self.mp_join_synack_rx),
            ("MPJoinSynAckHMacFailure", self.mp_join_synack_hmac_failure),
            ("MPJoinAckRx", self.mp_join_ack_rx),
            ("MPJoinAckHMacFailure", self.mp_join_ack_hmac_failure),
            ("DSSNotMatching", self.mp_dss_not_matching),
            ("InfiniteMapRx", self.mp_infinite_map_rx),
            ("DataCsumErr", self.mp_data_csum_err),
            ("OFOQueue", self.mp_ofo_queue),
            ("DuplicateData", self.mp_duplicate_data),
            ("AddAddr", self.mp_add_addr),
            ("EchoAdd", self.mp_echo_add),
            ("RmAddr", self.mp_rm_addr),
            ("MPPrioTx", self.mp_prio_tx),
            ("MPPrioRx", self.mp_prio_rx),
            ("MPFailRx", self.mp_fail_rx),
            ("MPFastcloseRx", self.mp_fastclose_rx),
            ("MPFastcloseTx", self.mp_fastclose_tx),
            ("MPFastcloseBadKey", self.mp_fastclose_bad_key),
            ("MPRstRx", self.mp_rst_rx),
            ("MPRstTx", self.mp_rst_tx),
            ("Reinjections", self.mp_reinjections),
            ("OpportunisticRetrans", self.mp_opportunistic),
            ("SubflowsTooMany", self.mp_subflows_too_many),
            ("MPJoinSynTx", self.mp_join_syn_tx),
            ("MPFailTx", self.mp_fail_tx),
            ("InfiniteMapTx", self.mp_infinite_map_tx),
        ]
        .into_iter()
    }
}
