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
        ]
        .into_iter()
    }
}
