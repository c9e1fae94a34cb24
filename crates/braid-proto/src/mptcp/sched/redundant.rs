//! Redundant: every chunk on the lowest-RTT subflow with room and, as well, on every other
//! usable subflow (RFC 8684 leaves this open): latency at the price of capacity.

use super::{lowest_rtt, Chunk, DataView, Pick, Scheduler, SubflowView};

#[derive(Debug, Default)]
pub struct Redundant;

impl Scheduler for Redundant {
    fn name(&self) -> &'static str {
        "redundant"
    }
    fn pick(&mut self, subs: &[SubflowView], _data: &DataView, chunk: Chunk) -> Option<Pick> {
        let sub = lowest_rtt(subs, chunk.len)?;
        Some(Pick { sub, max: u64::MAX })
    }
    fn duplicate(&self) -> bool {
        true
    }
    fn opportunistic(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, sub};
    use super::*;

    #[test]
    fn lowest_rtt_first_then_copies() {
        let subs = [sub(50, 10_000, 10_000), sub(10, 10_000, 10_000)];
        let c = Chunk {
            len: 1000,
            reinject: false,
        };
        assert_eq!(Redundant.pick(&subs, &data(1000), c).unwrap().sub, 1);
        assert!(Redundant.duplicate());
    }
}
