//! braid-io: the Linux data plane that drives the sans-IO engine of `braid-proto` in real time.
//!
//! One TUN device per path carries whole IP packets between braid and the kernel: braid owns the
//! path's `local` address, the kernel side of the device gets `peer` (optionally inside another
//! network namespace, where the device keeps working after it is moved). A per-path emulation
//! stage adds delay, random loss and a rate limit, since these machines have no `netem`.
//!
//! This is the only crate of braid with system calls and `unsafe` code; every `unsafe` block
//! says why it is sound.

pub mod capture;
pub mod clock;
pub mod driver;
pub mod emu;
pub mod linkwatch;
pub mod netconf;
pub mod netns;
pub mod pcap;
pub mod quantity;
pub mod signal;
pub mod spec;
pub mod tun;
pub mod udp;

pub use clock::Clock;
pub use driver::{Driver, DriverConfig, IoStats, PathChange, PathEvent, Wake};
pub use emu::EmuSpec;
pub use spec::PathSpec;
pub use tun::Tun;
