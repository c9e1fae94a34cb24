//! RFC 9293 §3.10.7 per-state segment handling, RFC 5961 (blind attacks), RFC 7323 PAWS:
//! a real endpoint faces a scripted peer whose every segment the test writes.
mod common;
use braid_proto::endpoint::CloseReason;
use braid_proto::{EndpointConfig, Error, Event, TcpState};
use common::*;
use std::time::Duration;

const PISS: u32 = 1000;

fn lone() -> Lone {
    Lone::new(EndpointConfig::default())
}

/// An established passive connection: (lone, handle, our ISS). The peer's next seq is PISS+1.
fn established() -> (Lone, braid_proto::ConnHandle, u32) {
    let mut l = lone();
    let (h, iss) = l.accept_plain(PISS);
    (l, h, iss)
}

// ------------------------------------------------------------------------------------------------
// LISTEN
// ------------------------------------------------------------------------------------------------

#[test]
fn listen_syn_gets_syn_ack_with_our_options() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let mut syn = Seg::new(PISS, 0, SYN).ts(777, 0);
    syn.mss = Some(1200);
    syn.wscale = Some(7);
    syn.sack_perm = true;
    let out = l.input(&syn);
    assert_eq!(out.len(), 1);
    let sa = &out[0];
    assert_eq!(sa.flags, SYN | ACK);
    assert_eq!(sa.ack, PISS + 1);
    assert_eq!(sa.mss, Some(1460), "our MSS, not the peer's");
    // Receive buffer autotuned up to 32 MiB: 32 MiB >> 10 fits in 16 bits.
    assert_eq!(sa.wscale, Some(10));
    assert!(sa.sack_perm);
    assert_eq!(
        sa.ts.map(|t| t.1),
        Some(777),
        "TSecr echoes the SYN's TSval"
    );
    assert!(sa.payload.is_empty());
    assert_eq!(l.ep.connection_count(), 1);
}

#[test]
fn listen_syn_without_options_gets_none_back() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let out = l.input(&Seg::new(PISS, 0, SYN));
    assert_eq!(out.len(), 1);
    let sa = &out[0];
    assert_eq!(sa.flags, SYN | ACK);
    assert_eq!(sa.mss, Some(1460));
    // RFC 7323 §2.2, §3.2 / RFC 2018: only answer options the SYN offered.
    assert_eq!(sa.wscale, None);
    assert_eq!(sa.ts, None);
    assert!(!sa.sack_perm);
}

#[test]
fn listen_ack_gets_rst_with_seq_of_seg_ack() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let out = l.input(&Seg::new(5, 0xdead_beef, ACK));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, RST, "<SEQ=SEG.ACK><CTL=RST>");
    assert_eq!(out[0].seq, 0xdead_beef);
    assert_eq!(l.ep.connection_count(), 0);
}

#[test]
fn listen_rst_and_bare_fin_are_ignored() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    assert!(l.input(&Seg::new(5, 0, RST)).is_empty());
    assert!(l.input(&Seg::new(5, 9, RST | ACK)).is_empty());
    assert!(l.input(&Seg::new(5, 0, FIN)).is_empty());
    assert_eq!(l.ep.connection_count(), 0);
}

// ------------------------------------------------------------------------------------------------
// SYN_SENT
// ------------------------------------------------------------------------------------------------

#[test]
fn syn_sent_carries_options_and_acceptable_syn_ack_establishes() {
    let mut l = lone();
    let (h, syn) = l.connect();
    assert_eq!(syn.mss, Some(1460));
    assert!(syn.wscale.is_some());
    assert!(syn.sack_perm);
    assert!(syn.ts.is_some());
    assert_eq!(l.state(h), TcpState::SynSent);
    let mut sa = Seg::new(PISS, syn.seq.wrapping_add(1), SYN | ACK);
    sa.mss = Some(1000);
    let out = l.input(&sa);
    assert_eq!(l.state(h), TcpState::Established);
    assert!(l.events.contains(&Event::Connected(h)));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].seq, syn.seq.wrapping_add(1));
    assert_eq!(out[0].ack, PISS + 1);
    // Peer sent no timestamps: none after the SYN either.
    assert_eq!(out[0].ts, None);
    assert_eq!(l.info(h).mss, 1000);
}

#[test]
fn syn_sent_bad_ack_gets_rst_and_stays() {
    let mut l = lone();
    let (h, syn) = l.connect();
    for bad in [syn.seq, syn.seq.wrapping_add(2), syn.seq.wrapping_sub(100)] {
        let out = l.input(&Seg::new(PISS, bad, SYN | ACK));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].flags, RST);
        assert_eq!(out[0].seq, bad);
        assert_eq!(l.state(h), TcpState::SynSent);
    }
    // A RST with an unacceptable ACK is dropped silently.
    let out = l.input(&Seg::new(0, syn.seq.wrapping_add(5), RST | ACK));
    assert!(out.is_empty());
    assert_eq!(l.state(h), TcpState::SynSent);
    // A RST without ACK too (RFC 9293 §3.10.7.3: "drop the segment").
    assert!(l.input(&Seg::new(0, 0, RST)).is_empty());
    assert_eq!(l.state(h), TcpState::SynSent);
    // The connection still completes.
    l.input(&Seg::new(PISS, syn.seq.wrapping_add(1), SYN | ACK));
    assert_eq!(l.state(h), TcpState::Established);
}

#[test]
fn syn_sent_rst_with_acceptable_ack_refuses() {
    let mut l = lone();
    let (h, syn) = l.connect();
    let out = l.input(&Seg::new(0, syn.seq.wrapping_add(1), RST | ACK));
    assert!(out.is_empty());
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Refused)));
    let mut buf = [0u8; 10];
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::ConnectionRefused));
    assert_eq!(l.ep.send(h, b"x"), Err(Error::ConnectionRefused));
    // No more retransmissions of the SYN.
    assert!(l.advance(Duration::from_secs(200)).is_empty());
}

#[test]
fn simultaneous_open() {
    let mut l = lone();
    let (h, syn) = l.connect();
    // The peer's SYN crosses ours.
    let out = l.input(&Seg::new(PISS, 0, SYN));
    assert_eq!(l.state(h), TcpState::SynReceived);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, SYN | ACK);
    assert_eq!(out[0].seq, syn.seq, "the SYN/ACK repeats our ISS");
    assert_eq!(out[0].ack, PISS + 1);
    // The peer's SYN/ACK (figure 8, line 6) completes the handshake.
    let out = l.input(&Seg::new(PISS, syn.seq.wrapping_add(1), SYN | ACK));
    assert_eq!(l.state(h), TcpState::Established, "replies: {out:?}");
    assert!(l.events.contains(&Event::Connected(h)));
    // Data flows both ways afterwards.
    let out = l.input(&Seg::new(PISS + 1, syn.seq.wrapping_add(1), ACK | PSH).data(b"hi"));
    assert!(out.iter().all(|s| !s.rst()), "{out:?}");
    let mut buf = [0u8; 8];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(2));
    l.ep.send(h, b"yo").unwrap();
    let out = l.advance(Duration::from_millis(1));
    assert!(out
        .iter()
        .any(|s| s.payload == b"yo" && s.seq == syn.seq.wrapping_add(1)));
}

#[test]
fn simultaneous_open_via_acks() {
    // The peer answers our SYN/ACK with a bare ACK (its SYN/ACK was lost): also established.
    let mut l = lone();
    let (h, syn) = l.connect();
    l.input(&Seg::new(PISS, 0, SYN));
    let out = l.input(&Seg::new(PISS + 1, syn.seq.wrapping_add(1), ACK));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(l.state(h), TcpState::Established);
    assert!(l.events.contains(&Event::Connected(h)));
}

#[test]
fn simultaneous_open_reset_refuses() {
    let mut l = lone();
    let (h, _syn) = l.connect();
    l.input(&Seg::new(PISS, 0, SYN));
    assert_eq!(l.state(h), TcpState::SynReceived);
    l.input(&Seg::new(PISS + 1, 0, RST));
    assert_eq!(l.state(h), TcpState::Closed);
    // RFC 9293 §3.10.7.4: in SYN_RECEIVED from an active open, a RST means "refused".
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Refused)));
}

#[test]
fn syn_sent_syn_retransmitted_on_timeout() {
    let mut l = lone();
    let (_h, syn) = l.connect();
    let out = l.advance(Duration::from_millis(1100));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, SYN);
    assert_eq!(out[0].seq, syn.seq);
    assert_eq!(
        l.out[1].0 - l.out[0].0,
        Duration::from_secs(1),
        "initial RTO 1 s"
    );
}

// ------------------------------------------------------------------------------------------------
// SYN_RECEIVED
// ------------------------------------------------------------------------------------------------

#[test]
fn syn_received_retransmitted_syn_gets_syn_ack_again() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let first = l.input(&Seg::new(PISS, 0, SYN));
    let again = l.input(&Seg::new(PISS, 0, SYN));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].flags, SYN | ACK);
    assert_eq!(again[0].seq, first[0].seq);
    assert_eq!(again[0].ack, PISS + 1);
    assert_eq!(l.ep.connection_count(), 1, "no second connection");
}

#[test]
fn syn_received_rst_returns_to_listen() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let sa = l.input(&Seg::new(PISS, 0, SYN))[0].clone();
    let out = l.input(&Seg::new(PISS + 1, 0, RST));
    assert!(out.is_empty());
    l.drain();
    assert_eq!(l.ep.accept(80), None);
    assert!(l.events.is_empty(), "nothing surfaces: {:?}", l.events);
    assert_eq!(l.ep.connection_count(), 0);
    // No SYN/ACK retransmissions for the dead attempt.
    assert!(l.advance(Duration::from_secs(10)).is_empty());
    // The listener still works; the late ACK of the old SYN/ACK gets a RST.
    let out = l.input(&Seg::new(PISS + 1, sa.seq.wrapping_add(1), ACK));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, RST);
    let (h, _) = l.accept_plain(5000);
    assert_eq!(l.state(h), TcpState::Established);
}

#[test]
fn syn_received_bad_ack_gets_rst() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    let sa = l.input(&Seg::new(PISS, 0, SYN))[0].clone();
    let bad = sa.seq.wrapping_add(100);
    let out = l.input(&Seg::new(PISS + 1, bad, ACK));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, RST);
    assert_eq!(out[0].seq, bad);
    // The half-open connection is still there and completes with the right ACK.
    l.input(&Seg::new(PISS + 1, sa.seq.wrapping_add(1), ACK));
    assert!(l.ep.accept(80).is_some());
}

#[test]
fn syn_received_syn_ack_retransmitted_then_given_up() {
    let mut l = lone();
    l.ep.listen(80).unwrap();
    l.input(&Seg::new(PISS, 0, SYN));
    let out = l.advance(Duration::from_secs(300));
    // syn_retries = 6 retransmissions.
    assert_eq!(out.len(), 6, "{out:?}");
    assert!(out.iter().all(|s| s.flags == SYN | ACK));
    assert_eq!(l.ep.connection_count(), 0);
    assert!(l.events.is_empty());
}

// ------------------------------------------------------------------------------------------------
// ESTABLISHED
// ------------------------------------------------------------------------------------------------

#[test]
fn established_data_is_acked_and_read() {
    let (mut l, h, iss) = established();
    let out = l.input(&Seg::new(PISS + 1, iss + 1, ACK | PSH).data(b"hello"));
    assert!(out.is_empty(), "delayed ACK: {out:?}");
    assert!(l.events.contains(&Event::Readable(h)));
    let out = l.advance(Duration::from_millis(40));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].ack, PISS + 6);
    assert_eq!(out[0].seq, iss + 1);
    let mut buf = [0u8; 16];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::WouldBlock));
}

#[test]
fn established_fin_goes_to_close_wait() {
    let (mut l, h, iss) = established();
    l.input(&Seg::new(PISS + 1, iss + 1, ACK).data(b"abc"));
    let out = l.input(&Seg::new(PISS + 4, iss + 1, ACK | FIN));
    assert_eq!(out.len(), 1, "FIN is ACKed at once: {out:?}");
    assert_eq!(out[0].ack, PISS + 5);
    assert_eq!(l.state(h), TcpState::CloseWait);
    let mut buf = [0u8; 16];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(3));
    assert_eq!(l.ep.recv(h, &mut buf), Ok(0), "end of stream");
}

#[test]
fn established_out_of_order_fin_waits_for_the_hole() {
    let (mut l, h, iss) = established();
    // FIN after 3 bytes we don't have yet.
    let out = l.input(&Seg::new(PISS + 4, iss + 1, ACK | FIN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PISS + 1, "duplicate ACK for the hole");
    assert_eq!(l.state(h), TcpState::Established);
    let out = l.input(&Seg::new(PISS + 1, iss + 1, ACK).data(b"abc"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PISS + 5, "hole filled, FIN consumed");
    assert_eq!(l.state(h), TcpState::CloseWait);
}

#[test]
fn established_exact_rst_resets() {
    let (mut l, h, _iss) = established();
    let out = l.input(&Seg::new(PISS + 1, 0, RST));
    assert!(out.is_empty());
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Reset)));
    let mut buf = [0u8; 4];
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::ConnectionReset));
    assert_eq!(l.ep.counters().rst_received, 1);
}

#[test]
fn established_in_window_rst_gets_challenge_ack() {
    let (mut l, h, iss) = established();
    let out = l.input(&Seg::new(PISS + 1 + 1000, 0, RST));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].seq, iss + 1);
    assert_eq!(out[0].ack, PISS + 1);
    assert_eq!(l.state(h), TcpState::Established);
    assert_eq!(l.ep.counters().challenge_acks, 1);
    // The connection still works.
    l.input(&Seg::new(PISS + 1, iss + 1, ACK).data(b"ok"));
    let mut buf = [0u8; 4];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(2));
}

#[test]
fn established_out_of_window_rst_is_ignored() {
    let (mut l, h, _iss) = established();
    for seq in [
        PISS.wrapping_sub(5),
        PISS + 1 + (64 << 20),
        PISS + 0x8000_0000,
    ] {
        let out = l.input(&Seg::new(seq, 0, RST));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(l.state(h), TcpState::Established);
    }
    assert_eq!(l.ep.counters().challenge_acks, 0);
}

#[test]
fn established_syn_gets_challenge_ack() {
    let (mut l, h, iss) = established();
    for seq in [PISS + 1, PISS + 500, PISS.wrapping_sub(50_000)] {
        // Challenge ACKs are rate limited per connection (500 ms).
        l.now += Duration::from_millis(600);
        let out = l.input(&Seg::new(seq, 0, SYN));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].pure_ack());
        assert_eq!(out[0].seq, iss + 1);
        assert_eq!(out[0].ack, PISS + 1);
        assert_eq!(l.state(h), TcpState::Established);
    }
    assert!(l.ep.counters().challenge_acks >= 2);
    assert_eq!(l.ep.connection_count(), 1);
}

#[test]
fn established_ack_of_unsent_data_is_dropped_with_ack() {
    let (mut l, h, iss) = established();
    let out = l.input(&Seg::new(PISS + 1, iss + 1 + 5000, ACK).data(b"evil"));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].ack, PISS + 1, "the data was not taken");
    assert_eq!(l.ep.conn_info(h).unwrap().bytes_received, 0);
    let mut buf = [0u8; 8];
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::WouldBlock));
    assert_eq!(l.state(h), TcpState::Established);
}

#[test]
fn established_segment_without_ack_is_dropped() {
    let (mut l, h, _iss) = established();
    let out = l.input(&Seg::new(PISS + 1, 0, PSH).data(b"noack"));
    assert!(out.is_empty());
    let mut buf = [0u8; 8];
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::WouldBlock));
}

#[test]
fn challenge_ack_rate_limit() {
    // Per connection at most one challenge ACK per 500 ms (Linux's tcp_invalid_ratelimit), so
    // that no ACK loop can run fast; the endpoint-wide 1000/s of RFC 5961 §7 comes on top.
    let (mut l, h, _iss) = established();
    let mut replies = 0;
    for i in 0..3000u32 {
        replies += l.input(&Seg::new(PISS + 2 + i, 0, RST)).len();
    }
    assert_eq!(replies, 1, "one challenge ACK per 500 ms per connection");
    assert_eq!(l.ep.counters().challenge_acks, 1);
    assert_eq!(l.ep.counters().oow_acks_skipped, 2999);
    assert_eq!(l.state(h), TcpState::Established);
    l.now += Duration::from_millis(499);
    assert_eq!(
        l.input(&Seg::new(PISS + 7, 0, RST)).len(),
        0,
        "still limited"
    );
    l.now += Duration::from_millis(2);
    assert_eq!(
        l.input(&Seg::new(PISS + 7, 0, RST)).len(),
        1,
        "500 ms later"
    );
    // Data segments out of the window are always answered (they are no ACK loop).
    let out = l.input(&Seg::new(PISS.wrapping_sub(100), 0, ACK).data(b"old"));
    assert_eq!(out.len(), 1);
}

// ------------------------------------------------------------------------------------------------
// Closing states
// ------------------------------------------------------------------------------------------------

/// Established, then the endpoint shuts down: its FIN is returned (state FIN_WAIT_1).
fn fin_wait_1() -> (Lone, braid_proto::ConnHandle, u32, Seg) {
    let (mut l, h, iss) = established();
    l.ep.shutdown(l.now, h).unwrap();
    let out = l.drain();
    assert_eq!(out.len(), 1);
    let fin = out[0].clone();
    assert!(fin.has(FIN | ACK));
    assert_eq!(fin.seq, iss + 1);
    assert_eq!(l.state(h), TcpState::FinWait1);
    (l, h, iss, fin)
}

#[test]
fn fin_wait_1_ack_of_fin_goes_to_fin_wait_2_and_half_close_receives() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    assert!(l.input(&Seg::new(PISS + 1, iss + 2, ACK)).is_empty());
    assert_eq!(l.state(h), TcpState::FinWait2);
    assert_eq!(
        l.ep.send(h, b"x").map_err(|_| ()),
        Err(()),
        "no sending after shutdown"
    );
    // Half-close: the peer keeps sending, we keep receiving.
    let mut seq = PISS + 1;
    for chunk in [&b"still "[..], b"talking"] {
        l.input(&Seg::new(seq, iss + 2, ACK).data(chunk));
        seq += chunk.len() as u32;
    }
    let out = l.advance(Duration::from_millis(50));
    assert_eq!(out.last().unwrap().ack, seq);
    let mut buf = [0u8; 32];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(13));
    assert_eq!(&buf[..13], b"still talking");
    // Then the peer's FIN: TIME_WAIT, ACKed at once.
    let out = l.input(&Seg::new(seq, iss + 2, ACK | FIN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, seq + 1);
    assert_eq!(l.state(h), TcpState::TimeWait);
}

#[test]
fn fin_wait_1_fin_and_ack_together_goes_to_time_wait() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    let out = l.input(&Seg::new(PISS + 1, iss + 2, ACK | FIN));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].ack, PISS + 2);
    assert_eq!(l.state(h), TcpState::TimeWait);
}

#[test]
fn fin_wait_1_fin_only_goes_to_closing_then_time_wait() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    // The peer's FIN does not acknowledge ours: simultaneous close.
    let out = l.input(&Seg::new(PISS + 1, iss + 1, ACK | FIN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PISS + 2);
    assert_eq!(l.state(h), TcpState::Closing);
    // CLOSING: our FIN is retransmitted until acknowledged.
    let out = l.advance(Duration::from_millis(1100));
    assert!(out.iter().any(|s| s.fin() && s.seq == iss + 1), "{out:?}");
    // ACK of our FIN: TIME_WAIT.
    assert!(l.input(&Seg::new(PISS + 2, iss + 2, ACK)).is_empty());
    assert_eq!(l.state(h), TcpState::TimeWait);
}

#[test]
fn fin_wait_1_fin_retransmitted_and_rst_resets() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    let out = l.advance(Duration::from_millis(1100));
    assert!(!out.is_empty() && out.iter().all(|s| s.fin() && s.seq == iss + 1));
    l.input(&Seg::new(PISS + 1, 0, RST));
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Reset)));
}

#[test]
fn fin_wait_2_orphan_gives_up() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    l.input(&Seg::new(PISS + 1, iss + 2, ACK));
    assert_eq!(l.state(h), TcpState::FinWait2);
    l.ep.release(l.now, h);
    l.advance(Duration::from_secs(61));
    assert_eq!(l.ep.connection_count(), 0);
}

#[test]
fn close_wait_send_then_last_ack_then_closed() {
    let (mut l, h, iss) = established();
    l.input(&Seg::new(PISS + 1, iss + 1, ACK | FIN));
    assert_eq!(l.state(h), TcpState::CloseWait);
    // Still allowed to send.
    assert_eq!(l.ep.send(h, b"reply"), Ok(5));
    let out = l.drain();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"reply");
    assert_eq!(out[0].seq, iss + 1);
    assert_eq!(out[0].ack, PISS + 2);
    // Data from the peer after its FIN is not taken.
    let out = l.input(&Seg::new(PISS + 2, iss + 6, ACK).data(b"late"));
    assert!(out.iter().all(|s| s.ack == PISS + 2), "{out:?}");
    l.ep.shutdown(l.now, h).unwrap();
    let out = l.drain();
    assert_eq!(out.len(), 1);
    assert!(out[0].fin());
    assert_eq!(out[0].seq, iss + 6);
    assert_eq!(l.state(h), TcpState::LastAck);
    // LAST_ACK: the FIN is retransmitted while unacknowledged.
    let out = l.advance(Duration::from_millis(1100));
    assert!(out.iter().any(|s| s.fin() && s.seq == iss + 6), "{out:?}");
    assert!(l.input(&Seg::new(PISS + 2, iss + 7, ACK)).is_empty());
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Normal)));
    let mut buf = [0u8; 4];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(0));
    l.ep.release(l.now, h);
    l.drain();
    assert_eq!(l.ep.connection_count(), 0);
}

#[test]
fn last_ack_rst_closes() {
    let (mut l, h, iss) = established();
    l.input(&Seg::new(PISS + 1, iss + 1, ACK | FIN));
    l.ep.shutdown(l.now, h).unwrap();
    l.drain();
    assert_eq!(l.state(h), TcpState::LastAck);
    l.input(&Seg::new(PISS + 2, 0, RST));
    assert_eq!(l.state(h), TcpState::Closed);
}

/// The endpoint closes first and ends in TIME_WAIT. Returns (lone, handle, our ISS).
fn time_wait() -> (Lone, braid_proto::ConnHandle, u32) {
    let (mut l, h, iss, _fin) = fin_wait_1();
    l.input(&Seg::new(PISS + 1, iss + 2, ACK | FIN));
    assert_eq!(l.state(h), TcpState::TimeWait);
    (l, h, iss)
}

#[test]
fn time_wait_reacks_retransmitted_fin_and_expires() {
    let (mut l, h, iss) = time_wait();
    l.advance(Duration::from_secs(30));
    let out = l.input(&Seg::new(PISS + 1, iss + 2, ACK | FIN));
    assert_eq!(out.len(), 1);
    assert!(out[0].pure_ack());
    assert_eq!(out[0].ack, PISS + 2);
    assert_eq!(l.state(h), TcpState::TimeWait);
    // 2 MSL restarts at the retransmitted FIN: still there 59 s later.
    l.advance(Duration::from_secs(59));
    assert_eq!(l.state(h), TcpState::TimeWait);
    l.advance(Duration::from_secs(2));
    assert_eq!(l.state(h), TcpState::Closed);
    l.ep.release(l.now, h);
    l.drain();
    assert_eq!(l.ep.connection_count(), 0, "the connection is freed");
    // The pair is free again: a segment for it now gets a RST from the listener's port.
    let out = l.input(&Seg::new(PISS + 2, iss + 2, ACK));
    assert_eq!(out.len(), 1);
    assert!(out[0].rst());
}

/// The end of an exchange where both sides send at once (braid connect → a Linux server): we
/// shut down first, the peer's last data and FIN arrive, then its FIN again (it did not hear our
/// ACK in time), and our second ACK reaches a peer whose socket is gone: it answers with a RST
/// (<SEQ=SEG.ACK>). Both directions were complete and acknowledged: the end is a normal one,
/// and the data the application has not read yet is still there.
#[test]
fn time_wait_rst_after_retransmitted_fin_is_a_normal_end_and_keeps_unread_data() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    let last = b"last words";
    l.input(&Seg::new(PISS + 1, iss + 2, ACK).data(last));
    let fin_seq = PISS + 1 + last.len() as u32;
    let out = l.input(&Seg::new(fin_seq, iss + 2, ACK | FIN));
    assert_eq!(out.last().map(|s| s.ack), Some(fin_seq + 1), "{out:?}");
    assert_eq!(l.state(h), TcpState::TimeWait);
    let out = l.input(&Seg::new(fin_seq, iss + 2, ACK | FIN));
    assert_eq!(
        out.len(),
        1,
        "the retransmitted FIN is ACKed again: {out:?}"
    );
    assert_eq!(out[0].ack, fin_seq + 1);
    let out = l.input(&Seg::new(out[0].ack, 0, RST));
    assert!(out.is_empty(), "no answer to a RST: {out:?}");
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(
        l.events.contains(&Event::Closed(h, CloseReason::Normal)),
        "{:?}",
        l.events
    );
    assert!(
        !l.events.contains(&Event::Closed(h, CloseReason::Reset)),
        "{:?}",
        l.events
    );
    let mut buf = [0u8; 32];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(last.len()));
    assert_eq!(&buf[..last.len()], last);
    assert_eq!(l.ep.recv(h, &mut buf), Ok(0), "then the peer's FIN");
    l.ep.release(l.now, h);
    assert!(
        l.drain().iter().all(|s| !s.rst()),
        "releasing a connection whose data was all read sends nothing"
    );
    assert_eq!(l.ep.connection_count(), 0);
}

/// A RST in the other closing states still resets: there our FIN is not acknowledged.
#[test]
fn closing_rst_resets() {
    let (mut l, h, iss, _fin) = fin_wait_1();
    l.input(&Seg::new(PISS + 1, iss + 1, ACK | FIN));
    assert_eq!(l.state(h), TcpState::Closing);
    l.input(&Seg::new(PISS + 2, 0, RST));
    assert_eq!(l.state(h), TcpState::Closed);
    assert!(l.events.contains(&Event::Closed(h, CloseReason::Reset)));
}

#[test]
fn time_wait_new_syn_with_higher_seq_reuses_the_pair() {
    let (mut l, h, _iss) = time_wait();
    l.ep.release(l.now, h);
    l.drain();
    // An old SYN (lower seq) does not start anything.
    let out = l.input(&Seg::new(PISS - 10, 0, SYN));
    assert!(out.iter().all(|s| !s.syn()), "{out:?}");
    // A new incarnation with a higher ISS does.
    let niss = PISS + 100_000;
    let out = l.input(&Seg::new(niss, 0, SYN));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].flags, SYN | ACK);
    assert_eq!(out[0].ack, niss + 1);
    l.input(&Seg::new(niss + 1, out[0].seq.wrapping_add(1), ACK));
    let h2 = l.ep.accept(80).expect("new connection");
    assert_eq!(l.state(h2), TcpState::Established);
    assert_eq!(l.ep.connection_count(), 1);
}

// ------------------------------------------------------------------------------------------------
// Two real endpoints: simultaneous close, half-close
// ------------------------------------------------------------------------------------------------

#[test]
fn simultaneous_close_both_end_in_time_wait() {
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    let start = p.log.len();
    p.a.shutdown(p.now, ca).unwrap();
    p.b.shutdown(p.now, cb).unwrap();
    p.run_for(Duration::from_secs(1));
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::TimeWait);
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::TimeWait);
    // Both FINs crossed: each went through CLOSING (its FIN was not acknowledged by the peer's FIN).
    let fa = p.segs(Dir::AtoB, start);
    let fb = p.segs(Dir::BtoA, start);
    assert_eq!(fa.iter().filter(|(_, s)| s.fin()).count(), 1);
    assert_eq!(fb.iter().filter(|(_, s)| s.fin()).count(), 1);
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::Closed);
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::Closed);
    assert!(p.events_a.contains(&Event::Closed(ca, CloseReason::Normal)));
    assert!(p.events_b.contains(&Event::Closed(cb, CloseReason::Normal)));
}

#[test]
fn half_close_peer_keeps_sending() {
    let mut p = Pair::default_pair();
    let (ca, cb) = p.establish(80);
    p.a.shutdown(p.now, ca).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::FinWait2);
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::CloseWait);
    let mut buf = [0u8; 4];
    assert_eq!(p.b.recv(cb, &mut buf), Ok(0), "B sees A's end of stream");
    // B → A, 300 KiB, after A's shutdown.
    let data = pattern(300 << 10, 11);
    let got = p.transfer_dir(Dir::BtoA, cb, ca, &data, Duration::from_secs(30));
    assert!(
        got == data,
        "A received {} of {} bytes",
        got.len(),
        data.len()
    );
    p.b.shutdown(p.now, cb).unwrap();
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.a.conn_info(ca).unwrap().state, TcpState::TimeWait);
    assert_eq!(p.b.conn_info(cb).unwrap().state, TcpState::Closed);
    let mut big = vec![0u8; 16];
    assert_eq!(p.a.recv(ca, &mut big), Ok(0));
}

// ------------------------------------------------------------------------------------------------
// Closed ports
// ------------------------------------------------------------------------------------------------

#[test]
fn closed_port_segment_with_ack_gets_rst_seq_seg_ack() {
    let mut l = lone();
    let out = l.input(&Seg::new(5, 0x1234_5678, ACK).data(b"data"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, RST);
    assert_eq!(out[0].seq, 0x1234_5678);
    assert_eq!(l.ep.counters().no_socket, 1);
}

#[test]
fn closed_port_segment_without_ack_gets_rst_ack() {
    let mut l = lone();
    let out = l.input(&Seg::new(5, 0, SYN));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, RST | ACK);
    assert_eq!(out[0].seq, 0);
    assert_eq!(out[0].ack, 6, "SEG.SEQ + SEG.LEN (SYN counts)");
    let out = l.input(&Seg::new(u32::MAX - 3, 0, FIN).data(b"0123456789"));
    assert_eq!(out[0].flags, RST | ACK);
    assert_eq!(
        out[0].ack,
        (u32::MAX - 3).wrapping_add(11),
        "data + FIN, wrapping"
    );
}

#[test]
fn closed_port_rst_is_not_answered() {
    let mut l = lone();
    assert!(l.input(&Seg::new(5, 0, RST)).is_empty());
    assert!(l.input(&Seg::new(5, 7, RST | ACK)).is_empty());
}

#[test]
fn connect_to_closed_port_is_refused_end_to_end() {
    let mut p = Pair::default_pair();
    let ca =
        p.a.connect(p.now, A, std::net::SocketAddr::new(B, 9))
            .unwrap();
    p.run_for(Duration::from_secs(1));
    assert!(p
        .events_a
        .contains(&Event::Closed(ca, CloseReason::Refused)));
    let mut buf = [0u8; 4];
    assert_eq!(p.a.recv(ca, &mut buf), Err(Error::ConnectionRefused));
}

// ------------------------------------------------------------------------------------------------
// PAWS (RFC 7323 §5)
// ------------------------------------------------------------------------------------------------

#[test]
fn paws_drops_old_timestamp_and_acks() {
    let mut l = lone();
    let mut syn = Seg::new(PISS, 0, SYN).ts(10_000, 0);
    syn.mss = Some(1460);
    let (h, iss, sa) = l.accept_from(PISS, syn);
    let (our_ts, _) = sa.ts.expect("timestamps negotiated");
    let out = l.input(
        &Seg::new(PISS + 1, iss + 1, ACK)
            .data(b"new")
            .ts(20_000, our_ts),
    );
    assert!(out.is_empty());
    let mut buf = [0u8; 8];
    assert_eq!(l.ep.recv(h, &mut buf), Ok(3));
    // An old duplicate: valid sequence number, older timestamp.
    let out = l.input(
        &Seg::new(PISS + 4, iss + 1, ACK)
            .data(b"old")
            .ts(15_000, our_ts),
    );
    assert_eq!(out.len(), 1, "answered with an ACK at once");
    assert!(out[0].pure_ack());
    assert_eq!(out[0].ack, PISS + 4, "data not taken");
    assert_eq!(
        out[0].ts.map(|t| t.1),
        Some(20_000),
        "TSecr stays the newest TSval"
    );
    assert_eq!(l.ep.counters().paws_rejected, 1);
    assert_eq!(l.ep.recv(h, &mut buf), Err(Error::WouldBlock));
    // A current one is taken.
    l.input(
        &Seg::new(PISS + 4, iss + 1, ACK)
            .data(b"cur")
            .ts(20_001, our_ts),
    );
    assert_eq!(l.ep.recv(h, &mut buf), Ok(3));
    assert_eq!(&buf[..3], b"cur");
    // A RST is not subject to PAWS.
    l.input(&Seg::new(PISS + 7, 0, RST).ts(1, 0));
    assert_eq!(l.state(h), TcpState::Closed);
}
