//! MPTCP events for the application (a monitor, as `ip mptcp monitor` shows them): what
//! happened to a connection's subflows and to the addresses of its peer.

use std::net::{IpAddr, SocketAddr};

/// Why a subflow closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubClose {
    /// The peer reset it (MP_TCPRST reason code when it carried one, else None).
    Reset(Option<u8>),
    /// Retransmission timeout gave up / the subflow was declared dead by us.
    Timeout,
    /// The peer removed its address (REMOVE_ADDR).
    PeerRemoved,
    /// Our local address went away (`remove_local_addr`).
    LocalGone,
    /// Closed in order (FIN both ways) or abandoned after the connection's data was done.
    Closed,
}

/// Something that happened on the MPTCP side of a connection (connection-level created and
/// closed come as [`crate::Event::Connected`] / [`crate::Event::Incoming`] /
/// [`crate::Event::Closed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpEvent {
    /// MPTCP connection fully established (not sent for a fallback to TCP).
    Established,
    /// The peer announced an address (ADD_ADDR); port None when it gave none.
    Announced {
        id: u8,
        addr: IpAddr,
        port: Option<u16>,
    },
    /// The peer removed an address (REMOVE_ADDR).
    Removed { id: u8 },
    /// A subflow can carry data (the initial one once MPTCP is agreed, a join once its
    /// handshake completed). `backup`: we or the peer asked for it to be a backup.
    SubEstablished {
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    },
    /// A subflow that was established closed.
    SubClosed {
        local: SocketAddr,
        remote: SocketAddr,
        reason: SubClose,
    },
    /// A subflow's priority changed (ours set locally, or the peer's MP_PRIO): `backup` is
    /// whether the scheduler now treats it as a backup.
    SubPriority {
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    },
}
