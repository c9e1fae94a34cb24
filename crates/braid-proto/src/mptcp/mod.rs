//! MPTCP (RFC 8684): the pieces of the connection-level engine.

pub mod crypto;
