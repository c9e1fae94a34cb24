//! Counters in the spirit of the kernel's SNMP/MIB: why something happened, readable by users.
//!
//! One table: each counter is written once, as its field and the name users see (the kernel's
//! MIB name where it has one).

macro_rules! counters {
    ($($(#[$doc:meta])* $field:ident => $name:literal,)*) => {
        /// Engine-wide counters. Every dropped or refused input is counted somewhere here.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl Counters {
            /// Every counter's name, in table order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Name/value pairs, for printing.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$(($name, self.$field)),*].into_iter()
            }
        }
    };
}

counters! {
    packets_in => "PacketsIn",
    packets_out => "PacketsOut",
    /// Packets that failed to parse (truncated, malformed, bad checksum, unsupported).
    bad_packets => "BadPackets",
    bad_checksum => "BadChecksum",
    /// Segments for no connection and no listener (answered with RST unless they were RST).
    no_socket => "NoSocket",
    rst_sent => "RstSent",
    rst_received => "RstReceived",
    challenge_acks => "ChallengeAcks",
    /// ACKs not sent in answer to unacceptable segments (per-connection rate limit).
    oow_acks_skipped => "OutOfWindowAcksSkipped",
    paws_rejected => "PawsRejected",
    out_of_window => "OutOfWindow",
    retransmitted_segments => "RetransSegs",
    fast_retransmits => "FastRetrans",
    /// Retransmissions found lost by a later delivery (retransmitted again without an RTO).
    lost_retransmits => "LostRetransmit",
    rto_expirations => "RtoExpirations",
    listen_overflows => "ListenOverflows",
    /// SYN/ACKs sent with a SYN cookie (the half-open queue was full), the kernel's
    /// `SyncookiesSent`; ACKs that carried a valid cookie (a connection rebuilt) and ACKs to a
    /// listener whose cookie did not check out.
    syncookies_sent => "SyncookiesSent",
    syncookies_recv => "SyncookiesRecv",
    syncookies_failed => "SyncookiesFailed",
    active_opens => "ActiveOpens",
    passive_opens => "PassiveOpens",
    ooo_dropped => "OfoDropped",
    /// Packets addressed to an IP address that is not ours.
    not_for_us => "NotForUs",
    /// RSTs not sent because too many were waiting.
    rst_dropped => "RstDropped",
    /// MPTCP: the kernel's `MPCapableSYNRX`.
    mp_capable_syn_rx => "MPCapableSYNRX",
    /// MPTCP: the kernel's `MPCapableSYNTX`.
    mp_capable_syn_tx => "MPCapableSYNTX",
    /// MPTCP: the kernel's `MPCapableSYNACKRX`.
    mp_capable_synack_rx => "MPCapableSYNACKRX",
    /// MPTCP: the kernel's `MPCapableACKRX`.
    mp_capable_ack_rx => "MPCapableACKRX",
    /// MPTCP: the kernel's `MPCapableFallbackACK`.
    mp_capable_fallback_ack => "MPCapableFallbackACK",
    /// MPTCP: the kernel's `MPCapableFallbackSYNACK`.
    mp_capable_fallback_synack => "MPCapableFallbackSYNACK",
    /// MPTCP: the kernel's `MPFallbackTokenInit`.
    mp_fallback_token_init => "MPFallbackTokenInit",
    /// MPTCP: the kernel's `MPTCPRetrans`.
    mp_retrans => "MPTCPRetrans",
    /// MPTCP: the kernel's `MPJoinNoTokenFound`.
    mp_join_no_token_found => "MPJoinNoTokenFound",
    /// MPTCP: the kernel's `MPJoinSynRx`.
    mp_join_syn_rx => "MPJoinSynRx",
    /// MPTCP: the kernel's `MPJoinSynAckRx`.
    mp_join_synack_rx => "MPJoinSynAckRx",
    /// MPTCP: the kernel's `MPJoinSynAckHMacFailure`.
    mp_join_synack_hmac_failure => "MPJoinSynAckHMacFailure",
    /// MPTCP: the kernel's `MPJoinAckRx`.
    mp_join_ack_rx => "MPJoinAckRx",
    /// MPTCP: the kernel's `MPJoinAckHMacFailure`.
    mp_join_ack_hmac_failure => "MPJoinAckHMacFailure",
    /// MPTCP: the kernel's `DSSNotMatching`.
    mp_dss_not_matching => "DSSNotMatching",
    /// MPTCP: the kernel's `InfiniteMapRx`.
    mp_infinite_map_rx => "InfiniteMapRx",
    /// MPTCP: the kernel's `DataCsumErr`.
    mp_data_csum_err => "DataCsumErr",
    /// MPTCP: the kernel's `OFOQueue`.
    mp_ofo_queue => "OFOQueue",
    /// MPTCP: the kernel's `DuplicateData`.
    mp_duplicate_data => "DuplicateData",
    /// MPTCP: the kernel's `AddAddr`.
    mp_add_addr => "AddAddr",
    /// MPTCP: the kernel's `EchoAdd`.
    mp_echo_add => "EchoAdd",
    /// MPTCP: the kernel's `RmAddr`.
    mp_rm_addr => "RmAddr",
    /// MPTCP: the kernel's `MPPrioTx`.
    mp_prio_tx => "MPPrioTx",
    /// MPTCP: the kernel's `MPPrioRx`.
    mp_prio_rx => "MPPrioRx",
    /// MPTCP: the kernel's `MPFailRx`.
    mp_fail_rx => "MPFailRx",
    /// MPTCP: the kernel's `MPFastcloseRx` (MP_FASTCLOSE with our key).
    mp_fastclose_rx => "MPFastcloseRx",
    /// MPTCP: the kernel's `MPFastcloseTx` (RSTs with MP_FASTCLOSE queued by `abort`).
    mp_fastclose_tx => "MPFastcloseTx",
    /// MPTCP: MP_FASTCLOSE with a key that is not ours, ignored (braid's own counter).
    mp_fastclose_bad_key => "MPFastcloseBadKey",
    /// MPTCP: the kernel's `MPRstRx`.
    mp_rst_rx => "MPRstRx",
    /// MPTCP: the kernel's `MPRstTx`.
    mp_rst_tx => "MPRstTx",
    /// MPTCP: the kernel's `Reinjections`.
    mp_reinjections => "Reinjections",
    /// MPTCP: data holding up the peer's full window sent again on a faster subflow, the slower
    /// one penalised (braid's own counter).
    mp_opportunistic => "OpportunisticRetrans",
    /// MPTCP: the kernel's `SubflowsTooMany`.
    mp_subflows_too_many => "SubflowsTooMany",
    /// MPTCP: the kernel's `MPJoinSynTx`.
    mp_join_syn_tx => "MPJoinSynTx",
    /// MPTCP: the kernel's `MPFailTx` (MP_FAIL sent after a failed DSS checksum).
    mp_fail_tx => "MPFailTx",
    /// MPTCP: the kernel's `InfiniteMapTx` (infinite mappings sent in answer to MP_FAIL).
    mp_infinite_map_tx => "InfiniteMapTx",
    /// MPTCP: the kernel's `RmAddrTx` (REMOVE_ADDR sent for an address of ours that went away).
    mp_rm_addr_tx => "RmAddrTx",
    /// MPTCP: the kernel's `SubflowStale` (a subflow stopped delivering while others worked).
    mp_subflow_stale => "SubflowStale",
    /// MPTCP: the kernel's `SubflowRecover` (a stale subflow's ACKs came again).
    mp_subflow_recover => "SubflowRecover",
}

#[cfg(test)]
mod tests {
    use super::Counters;

    #[test]
    fn names_are_unique_and_follow_the_fields() {
        let c = Counters {
            mp_join_syn_rx: 7,
            ..Counters::default()
        };
        let got: Vec<_> = c.iter().collect();
        assert_eq!(got.len(), Counters::NAMES.len());
        assert!(got.contains(&("MPJoinSynRx", 7)));
        let mut names = Counters::NAMES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counters::NAMES.len());
    }
}
