//! N subflows over the initial address pair, each from its own source port: for networks
//! that balance flows over equal-cost paths by their ports (ECMP in data centres).

use super::{PathManager, PmAction, PmContext, PmEvent};

#[derive(Debug)]
pub struct NDiffPorts {
    /// Subflows wanted in all, the initial one included.
    n: usize,
}

/// More subflows than this over one address pair are refused as a setting.
const MAX_PORTS: usize = 64;

impl NDiffPorts {
    pub(crate) fn build(arg: Option<&str>) -> Result<Box<dyn PathManager>, String> {
        let bad = || format!("path manager ndiffports=N needs a count N from 1 to {MAX_PORTS}");
        let n: usize = arg.ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if !(1..=MAX_PORTS).contains(&n) {
            return Err(bad());
        }
        Ok(Box::new(NDiffPorts { n }))
    }
}

impl PathManager for NDiffPorts {
    fn name(&self) -> &'static str {
        "ndiffports"
    }
    fn on_event(&mut self, ev: &PmEvent, cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
        if cx.server || *ev != PmEvent::FullyEstablished {
            return;
        }
        let want = self.n.min(cx.max_subflows);
        for _ in cx.subflows..want {
            out.push(PmAction::Join {
                local: cx.first_local.ip(),
                remote: cx.first_remote,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, ip};
    use super::*;

    #[test]
    fn opens_n_minus_one_joins_on_the_first_pair() {
        let local = [ip(0, 1), ip(1, 1)];
        let mut pm = NDiffPorts::build(Some("4")).unwrap();
        let mut out = Vec::new();
        let c = cx(false, &local, &[], 0);
        pm.on_event(&PmEvent::FullyEstablished, &c, &mut out);
        let join = PmAction::Join {
            local: ip(0, 1),
            remote: c.first_remote,
        };
        assert_eq!(out, [join; 3]);
        // The server side opens nothing; the limit of subflows holds.
        out.clear();
        pm.on_event(
            &PmEvent::FullyEstablished,
            &cx(true, &local, &[], 0),
            &mut out,
        );
        assert!(out.is_empty());
        let mut c = cx(false, &local, &[], 0);
        c.max_subflows = 2;
        pm.on_event(&PmEvent::FullyEstablished, &c, &mut out);
        assert_eq!(out, [join]);
    }
}
