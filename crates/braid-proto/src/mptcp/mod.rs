//! Multipath TCP (RFC 8684): crypto, settings and the connection level.

pub mod api;
pub(crate) mod conn;
pub mod crypto;
pub mod event;
pub mod pm;
pub mod sched;

pub use api::{MptcpConfig, MptcpInfo, SubflowInfo};
pub use event::{MpEvent, SubClose};
