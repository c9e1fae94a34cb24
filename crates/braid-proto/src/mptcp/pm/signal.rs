//! Announce only: once fully established, our other addresses go to the peer with ADD_ADDR
//! (RFC 8684 §3.4.1), as Linux's `signal` endpoints; we open no subflows ourselves, the peer
//! joins the addresses it wants.

use super::{announce_others, PathManager, PmAction, PmContext, PmEvent};

#[derive(Debug, Default)]
pub struct Signal;

impl PathManager for Signal {
    fn name(&self) -> &'static str {
        "signal"
    }
    fn on_event(&mut self, ev: &PmEvent, cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
        if *ev == PmEvent::FullyEstablished {
            announce_others(cx, out);
        }
    }
}
