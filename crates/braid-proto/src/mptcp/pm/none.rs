//! No path management: no announcements, no subflows of our own (joins from the peer are
//! still accepted).

use super::{PathManager, PmAction, PmContext, PmEvent};

#[derive(Debug, Default)]
pub struct NoPm;

impl PathManager for NoPm {
    fn name(&self) -> &'static str {
        "none"
    }
    fn on_event(&mut self, _ev: &PmEvent, _cx: &PmContext<'_>, _out: &mut Vec<PmAction>) {}
}
