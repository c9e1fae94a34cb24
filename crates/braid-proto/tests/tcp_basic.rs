mod common;
use common::*;
use std::time::Duration;

#[test]
fn handshake_transfer_and_close() {
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    let data = pattern(1 << 20, 7);
    let got = p.transfer(ca, cb, &data, Duration::from_secs(30));
    assert_eq!(got.len(), data.len());
    assert!(got == data);
}
