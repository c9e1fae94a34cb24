//! Fuzz target for the MPTCP sub-option codec (`braid_wire::mptcp`).
//!
//! Any input is an option body (the bytes after kind and length): `parse` must not panic; when it
//! parses, the emitted body has the input's length and parses back to the same option, and a
//! second emit is byte-exact. The same bytes are also run through `parse_list` as a one-option
//! list.
#![no_main]

use braid_wire::mptcp::MptcpOption;
use braid_wire::tcp::kind;
use braid_wire::OptionList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = MptcpOption::parse(data);
    let mut list = OptionList::default();
    list.push(kind::MPTCP, data);
    let from_list: Vec<_> = MptcpOption::parse_list(list).collect();
    assert_eq!(from_list, vec![parsed]);

    let Ok(opt) = parsed else {
        return;
    };
    let body = opt.emit_to_vec();
    assert_eq!(body.len(), data.len(), "emit keeps the length of {opt:?}");
    assert_eq!(body.len(), opt.emit_len());
    assert_eq!(body[0] >> 4, data[0] >> 4, "emit keeps the subtype");
    let again = MptcpOption::parse(&body).expect("emitted body parses");
    assert_eq!(again, opt);
    assert_eq!(again.emit_to_vec(), body, "second emit is byte-exact");
});
