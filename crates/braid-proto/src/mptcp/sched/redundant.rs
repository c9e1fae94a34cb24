//! Redundant: every subflow sends every byte, each from its own cursor as far as its window and
//! buffer keep up; a lagging subflow skips what the peer already DATA_ACKed (RFC 8684 leaves
//! this open): latency at the price of capacity. Reinjections go to the lowest-RTT subflow.

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
    fn every_subflow(&self) -> bool {
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
    fn every_subflow_and_reinjections_on_the_lowest_rtt() {
        let subs = [sub(50, 10_000, 10_000), sub(10, 10_000, 10_000)];
        let c = Chunk {
            len: 1000,
            reinject: false,
        };
        assert_eq!(Redundant.pick(&subs, &data(1000), c).unwrap().sub, 1);
        assert!(Redundant.every_subflow());
    }
}
