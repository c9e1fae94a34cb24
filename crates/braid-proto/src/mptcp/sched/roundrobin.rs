//! Round robin: the subflows in turn, one segment's worth each.

use super::{candidates, Chunk, DataView, Pick, Scheduler, SubflowView};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// The subflow whose turn it is.
    next: usize,
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "roundrobin"
    }
    fn pick(&mut self, subs: &[SubflowView], _data: &DataView, chunk: Chunk) -> Option<Pick> {
        let n = subs.len();
        let ok: Vec<usize> = candidates(subs, chunk.len).collect();
        let sub = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|i| ok.contains(i))?;
        self.next = sub + 1;
        Some(Pick {
            sub,
            max: subs[sub].mss as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, sub};
    use super::*;

    #[test]
    fn takes_turns_one_segment_each() {
        let subs = [sub(10, 10_000, 10_000), sub(50, 10_000, 10_000)];
        let mut rr = RoundRobin::default();
        let c = Chunk {
            len: 100_000,
            reinject: false,
        };
        let picks: Vec<usize> = (0..4)
            .map(|_| rr.pick(&subs, &data(100_000), c).unwrap().sub)
            .collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(rr.pick(&subs, &data(1), c).unwrap().max, 1448);
    }
}
