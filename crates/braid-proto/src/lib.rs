//! braid-proto: the sans-IO engine of braid.
//!
//! Nothing here reads a clock, opens a socket or spawns a thread. Time is an [`Instant`] value
//! passed in by the driver (the real-time loop of `braid-io` or the virtual clock of `braid-sim`),
//! and randomness comes from seeded generators handed to the [`Endpoint`].
//!
//! Inputs: [`Endpoint::handle_packet`], [`Endpoint::handle_timeout`] and the application calls
//! (`connect`, `listen`, `send`, `recv`, `shutdown`, `close`, `abort`).
//! Outputs: [`Endpoint::poll_transmit`], [`Endpoint::poll_timeout`] and [`Endpoint::poll_event`].

#![forbid(unsafe_code)]

pub mod cc;
pub(crate) mod conn;
pub mod counters;
pub mod endpoint;
pub mod hash;
pub mod mptcp;
pub mod rng;
pub mod tcp;
pub mod time;

pub use counters::Counters;
pub use endpoint::{
    ConnHandle, ConnInfo, Endpoint, EndpointConfig, Error, Event, PendingId, Transmit, TxOffload,
    TSO_MAX_PAYLOAD,
};
pub use mptcp::{MpEvent, MptcpConfig, MptcpInfo, SubClose, SubflowInfo};
pub use tcp::{BufferInfo, TcpConfig, TcpState};
pub use time::Instant;
