//! `UdpSocket` on the runtime's reactor: echo over IPv4 and IPv6 loopback, many datagrams
//! queued before the reader looks, the kernel's filter on a connected socket, an idle `recv`
//! that parks without spinning, an ICMP error that is reported once and then parks, and no
//! registration left behind by a dropped `recv`.

mod util;
use util::skip;

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::{Duration, Instant};

use util::{block_on_bounded, block_on_watched, local};
use volley::{Runtime, UdpSocket};

/// `[::1]:0`, or `None` (with a message) if this host cannot bind IPv6 loopback.
fn local_v6() -> Option<SocketAddr> {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    match std::net::UdpSocket::bind(addr) {
        Ok(_) => Some(addr),
        Err(e) => {
            skip("udp: the IPv6 case", &format!("cannot bind [::1]: {e}"));
            None
        }
    }
}

/// Two sockets on `bind`: a datagram goes each way with `send_to`/`recv_from`, then again
/// with `connect`, `send` and `recv`.
async fn echo_between(bind: SocketAddr) {
    let mut a = UdpSocket::bind(bind).unwrap();
    let mut b = UdpSocket::bind(bind).unwrap();
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    assert_ne!(a_addr.port(), 0, "port 0 gets a port from the kernel");
    assert_eq!(
        a.peer_addr().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );

    let mut buf = [0u8; 64];
    assert_eq!(a.send_to(b"ping", b_addr).await.unwrap(), 4);
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
    assert_eq!(b.send_to(&buf[..n], from).await.unwrap(), 4);
    let (n, from) = a.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], b_addr));

    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    for round in 0..10u8 {
        let msg = [round; 33];
        assert_eq!(a.send(&msg).await.unwrap(), 33);
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &msg[..]);
        b.send(&buf[..n]).await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &msg[..]);
    }
}

#[test]
fn echo_over_ipv4_loopback() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, echo_between(local()));
}

#[test]
fn echo_over_ipv6_loopback() {
    let Some(v6) = local_v6() else { return };
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, echo_between(v6));
}

/// Datagram `i` of a batch: its index, then filler, so that loss or reordering shows.
fn datagram(i: u32) -> [u8; 24] {
    let mut d = [0xa5u8; 24];
    d[..4].copy_from_slice(&i.to_be_bytes());
    d
}

/// Reads `count` datagrams and checks they are 0..count in order.
async fn read_batch(reader: &mut UdpSocket, count: u32, from: SocketAddr) {
    let mut buf = [0u8; 64];
    for i in 0..count {
        let (n, src) = reader.recv_from(&mut buf).await.unwrap();
        assert_eq!(src, from);
        assert_eq!(&buf[..n], &datagram(i)[..], "datagram {i}");
    }
}

/// 100 datagrams are queued before the reader's first poll, then 100 more after it has
/// parked (one readiness edge for all of them). All arrive, in order, and none is left
/// waiting for an event that will not come: a successful `recv` keeps the socket readable.
#[test]
fn many_datagrams_queued_before_the_reader_polls() {
    const COUNT: u32 = 100;
    let rt = Runtime::new().unwrap();
    let mut reader = UdpSocket::bind(local()).unwrap();
    let target = reader.local_addr().unwrap();
    let sender = std::net::UdpSocket::bind(local()).unwrap();
    let from = sender.local_addr().unwrap();
    for i in 0..COUNT {
        sender.send_to(&datagram(i), target).unwrap();
    }
    block_on_bounded(&rt, 10, async {
        // Queued before registration: read all without waiting for the reactor at all.
        let turns = rt.stats().turns;
        read_batch(&mut reader, COUNT, from).await;
        assert_eq!(rt.stats().turns, turns, "queued datagrams needed no event");

        // Now park with nothing queued, so that readiness is cleared, then queue a batch.
        let mut buf = [0u8; 64];
        let idle = volley::timeout(Duration::from_millis(20), reader.recv_from(&mut buf)).await;
        assert!(idle.is_err(), "nothing was sent yet: {idle:?}");
        for i in 0..COUNT {
            sender.send_to(&datagram(i), target).unwrap();
        }
        read_batch(&mut reader, COUNT, from).await;

        // And then the queue is empty.
        let after = volley::timeout(Duration::from_millis(20), reader.recv_from(&mut buf)).await;
        assert!(
            after.is_err(),
            "a datagram appeared from nowhere: {after:?}"
        );
    });
}

/// A socket connected to `a` never sees what a third socket sends it: the kernel drops it.
#[test]
fn connected_socket_ignores_other_sources() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let mut receiver = UdpSocket::bind(local()).unwrap();
        let mut peer = UdpSocket::bind(local()).unwrap();
        let mut intruder = UdpSocket::bind(local()).unwrap();
        let target = receiver.local_addr().unwrap();
        let peer_addr = peer.local_addr().unwrap();
        receiver.connect(peer_addr).unwrap();

        // The intruder's datagram goes first: if the kernel let it through, it would be read
        // first.
        assert_eq!(intruder.send_to(b"intruder", target).await.unwrap(), 8);
        assert_eq!(peer.send_to(b"expected", target).await.unwrap(), 8);
        let mut buf = [0u8; 64];
        let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"expected"[..], peer_addr));
        let more = volley::timeout(Duration::from_millis(100), receiver.recv(&mut buf)).await;
        assert!(
            more.is_err(),
            "the intruder's datagram got through: {more:?}"
        );
    });
}

/// Polls `recv` on `socket` for `wait` with nothing arriving; returns (polls, turns).
fn idle_recv(rt: &Runtime, socket: &mut UdpSocket, wait: Duration) -> (u32, u64) {
    block_on_watched(rt, 10, async {
        let turns = rt.stats().turns;
        let mut polls = 0;
        let mut buf = [0u8; 64];
        let started = Instant::now();
        let outcome = volley::timeout(
            wait,
            poll_fn(|cx| {
                polls += 1;
                socket.poll_recv(cx, &mut buf)
            }),
        )
        .await;
        assert!(outcome.is_err(), "nothing was sent: {outcome:?}");
        assert!(started.elapsed() >= wait);
        (polls, rt.stats().turns - turns)
    })
}

/// A `recv` with nothing sent parks: over 200 ms it is polled once or twice and the loop
/// turns a handful of times, not thousands.
#[test]
fn pending_recv_parks_without_spinning() {
    let rt = Runtime::new().unwrap();
    let mut socket = UdpSocket::bind(local()).unwrap();
    let (polls, turns) = idle_recv(&rt, &mut socket, Duration::from_millis(200));
    assert!(polls <= 3, "recv polled {polls} times in 200 ms");
    assert!(turns <= 10, "the loop turned {turns} times in 200 ms");
}

/// A socket connected to a closed port gets ICMP "port unreachable" for its datagram: the
/// next `recv` says `ConnectionRefused`, once, and the one after parks like any idle `recv`
/// (the error event's bits are not left set to spin on).
#[test]
fn icmp_error_is_reported_once_then_recv_parks() {
    let rt = Runtime::new().unwrap();
    // A port with nothing behind it: bound, noted, closed.
    let closed = std::net::UdpSocket::bind(local())
        .unwrap()
        .local_addr()
        .unwrap();
    let mut socket = UdpSocket::bind(local()).unwrap();
    socket.connect(closed).unwrap();
    block_on_bounded(&rt, 10, async {
        socket.send(b"anyone?").await.unwrap();
        // Let the loop turn and take the error event before `recv` consumes the error (on
        // loopback the ICMP is back before `send` returns).
        volley::sleep(Duration::from_millis(50)).await;
        let mut buf = [0u8; 64];
        let err = socket.recv(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    });
    let (polls, turns) = idle_recv(&rt, &mut socket, Duration::from_millis(200));
    assert!(polls <= 3, "recv polled {polls} times in 200 ms");
    assert!(turns <= 10, "the loop turned {turns} times in 200 ms");
}

/// Dropping a socket whose `recv` is pending leaves nothing registered with the reactor, and
/// a socket never polled is never registered.
#[test]
fn dropping_a_pending_recv_leaves_no_registered_source() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let before = rt.stats().io_sources;
        let mut socket = UdpSocket::bind(local()).unwrap();
        assert_eq!(rt.stats().io_sources, before, "registered before first use");
        let mut buf = [0u8; 64];
        // Poll the recv once: nothing was sent, so it parks, registered. Then drop it and
        // the socket.
        let mut recv = Box::pin(socket.recv(&mut buf));
        let first = poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "nothing was sent: {first:?}");
        assert_eq!(rt.stats().io_sources, before + 1);
        drop(recv);
        drop(socket);
        assert_eq!(
            rt.stats().io_sources,
            before,
            "the dropped socket stayed registered"
        );
    });
    assert_eq!(rt.stats().io_sources, 0);
}
