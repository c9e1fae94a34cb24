//! Multipath TCP (RFC 8684): crypto, settings and (soon) the connection level.

pub mod api;
pub mod crypto;

pub use api::{MptcpConfig, MptcpInfo, SubflowInfo};
