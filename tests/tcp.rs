//! TCP over loopback: connect, accept, read and write (whole, partial, full duplex), EOF and
//! half-close, refused connects, thousands of connections, and reactor bookkeeping.

mod util;

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use util::{
    block_on_bounded, local, raise_fd_limit, spawn_echo_server, spawn_echo_server_with_buffer,
    Checksum, Prng,
};
use volley::{sleep, spawn, Runtime, TcpListener, TcpStream};

/// A client and a server task exchange bytes over loopback in both directions.
#[test]
fn connect_read_write_loopback() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), local().ip());
        assert_ne!(addr.port(), 0);
        let server = spawn(async move {
            let (mut conn, _) = listener.accept().await?;
            let mut buf = [0u8; 5];
            let mut got = 0;
            while got < 5 {
                let n = conn.read(&mut buf[got..]).await?;
                assert_ne!(n, 0, "early EOF");
                got += n;
            }
            assert_eq!(&buf, b"ping!");
            conn.write_all(b"pong!").await?;
            io::Result::Ok(())
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"ping!").await.unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 16];
        while reply.len() < 5 {
            let n = client.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "early EOF");
            reply.extend_from_slice(&buf[..n]);
        }
        assert_eq!(reply, b"pong!");
        server.await.unwrap().unwrap();
    });
    let stats = rt.stats();
    assert_eq!((stats.tasks, stats.io_sources), (0, 0));
}

/// Connecting to a port nobody listens on fails with `ConnectionRefused`.
#[test]
fn refused_connect() {
    let rt = Runtime::new().unwrap();
    let addr = {
        let l = std::net::TcpListener::bind(local()).unwrap();
        l.local_addr().unwrap()
    }; // dropped: the port is closed now
    let err = block_on_bounded(&rt, 20, TcpStream::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    assert_eq!(
        rt.stats().io_sources,
        0,
        "the failed socket was not released"
    );
}

/// When the peer closes, `read` gives `Ok(0)` (again and again) and `read_to_end` ends with
/// everything sent before the close.
#[test]
fn eof_gives_ok_zero_and_read_to_end_ends() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            for payload in [&b"bye"[..], &[]] {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(payload).await.unwrap();
                drop(conn);
            }
        });
        // read_to_end collects what came before the close.
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut all = b"prefix:".to_vec();
        let n = client.read_to_end(&mut all).await.unwrap();
        assert_eq!(n, 3);
        assert_eq!(all, b"prefix:bye");
        // After EOF, reads keep returning Ok(0).
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        }
        // A connection closed without a byte: the first read is already EOF.
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(rest.is_empty());
        server.await.unwrap();
    });
}

/// `shutdown(Write)` makes the peer read EOF while the other direction keeps working.
#[test]
fn shutdown_write_makes_peer_read_eof() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            conn.read_to_end(&mut request).await.unwrap();
            assert_eq!(request, b"request");
            // The half-closed connection still carries the answer back.
            conn.write_all(b"answer").await.unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"request").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"answer");
        server.await.unwrap();
    });
}

/// Writing to a connection the peer has closed fails (broken pipe or reset) instead of
/// hanging or killing the process.
#[test]
fn write_to_closed_peer_errors() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (conn, _) = listener.accept().await.unwrap();
        drop(conn);
        let chunk = [7u8; 4096];
        let mut error = None;
        for _ in 0..10_000 {
            match client.write(&chunk).await {
                Ok(_) => sleep(Duration::from_millis(1)).await,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let e = error.expect("writes to a closed peer kept succeeding");
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{e:?}"
        );
    });
}

/// `local_addr`, `peer_addr` and `set_nodelay` report what the two ends agree on.
#[test]
fn addresses_and_nodelay() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, from) = listener.accept().await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(server.local_addr().unwrap(), addr);
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        assert_eq!(from, client.local_addr().unwrap());
        for stream in [&client, &server] {
            stream.set_nodelay(true).unwrap();
            assert!(stream.nodelay().unwrap());
            stream.set_nodelay(false).unwrap();
            assert!(!stream.nodelay().unwrap());
            assert!(stream.take_error().unwrap().is_none());
        }
        let dbg = format!("{client:?} {listener:?}");
        assert!(dbg.contains(&addr.to_string()), "{dbg}");
    });
}

/// Streams and listeners made from `std` outside the runtime register on first use.
#[test]
fn from_std_types_work() {
    let rt = Runtime::new().unwrap();
    let std_listener = std::net::TcpListener::bind(local()).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let std_client = std::net::TcpStream::connect(addr).unwrap();
    let mut listener = TcpListener::from_std(std_listener).unwrap();
    let mut client = TcpStream::from_std(std_client).unwrap();
    assert_eq!(
        rt.stats().io_sources,
        0,
        "nothing registers before first use"
    );
    block_on_bounded(&rt, 20, async {
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"std").await.unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"std");
        assert_eq!(rt.stats().io_sources, 3);
    });
    drop((client, listener));
    assert_eq!(rt.stats().io_sources, 0);
}

/// `stats().io_sources` counts registered sockets and returns to 0 once they are dropped,
/// including a connect abandoned halfway.
#[test]
fn io_sources_return_to_zero_after_drop() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        assert_eq!(rt.stats().io_sources, 0);
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..10 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"x").await.unwrap();
            // A stream registers on its first operation.
            let mut byte = [0u8; 1];
            assert_eq!(client.read(&mut byte).await.unwrap(), 1);
            clients.push(client);
            servers.push(s);
        }
        assert_eq!(rt.stats().io_sources, 21);
        drop(servers);
        assert_eq!(rt.stats().io_sources, 11);
        drop(clients);
        assert_eq!(rt.stats().io_sources, 1);
        drop(listener);
        assert_eq!(rt.stats().io_sources, 0);

        // A connect polled once, then dropped before it settled.
        let listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut connect = TcpStream::connect(addr);
        poll_fn(|cx| {
            let _ = Pin::new(&mut connect).poll(cx);
            Poll::Ready(())
        })
        .await;
        drop(connect);
        drop(listener);
        assert_eq!(rt.stats().io_sources, 0);
    });
    assert_eq!(rt.stats().io_sources, 0);
}

const MIB: usize = 1024 * 1024;

/// 64 MiB of pseudo-random bytes, sent with `write_all` in 64 KiB chunks and echoed back by a
/// server using a 1021-byte buffer, arrive intact (checksum and length), read through a
/// 777-byte buffer so that reads are partial on both sides.
#[test]
fn large_transfer_write_all_echo() {
    const TOTAL: usize = 64 * MIB;
    const CHUNK: usize = 64 * 1024;
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 240, async {
        let addr = spawn_echo_server_with_buffer(1021);
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        let mut rng = Prng::new(0xfeed);
        let (mut sent, mut received) = (Checksum::default(), Checksum::default());
        let mut chunk = vec![0u8; CHUNK];
        let mut buf = vec![0u8; 777];
        let mut total_read = 0usize;
        let mut reads = 0usize;
        for _ in 0..TOTAL / CHUNK {
            rng.fill(&mut chunk);
            sent.update(&chunk);
            client.write_all(&chunk).await.unwrap();
            // Read this chunk's echo back before sending the next, so buffers never fill.
            let target = total_read + CHUNK;
            while total_read < target {
                let want = (target - total_read).min(buf.len());
                let n = client.read(&mut buf[..want]).await.unwrap();
                assert_ne!(n, 0, "early EOF after {total_read} bytes");
                received.update(&buf[..n]);
                total_read += n;
                reads += 1;
            }
        }
        client.shutdown(Shutdown::Write).unwrap();
        let mut tail = Vec::new();
        assert_eq!(
            client.read_to_end(&mut tail).await.unwrap(),
            0,
            "extra bytes"
        );
        assert_eq!(total_read, TOTAL);
        assert_eq!(sent, received, "echoed bytes differ from those sent");
        assert!(reads >= TOTAL / 777, "reads were not partial");
    });
}

/// 64 MiB sent and echoed at the same time: one task drives `poll_write` and `poll_read` on
/// one stream from a single `poll`, so both the reader and the writer waker are in use.
#[test]
fn large_transfer_full_duplex() {
    const TOTAL: usize = 64 * MIB;
    const CHUNK: usize = 256 * 1024;
    let rt = Runtime::new().unwrap();
    let (sent, received, total_read) = block_on_bounded(&rt, 240, async {
        let addr = spawn_echo_server_with_buffer(1021);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let mut rng = Prng::new(0xd00d);
        let (mut sent, mut received) = (Checksum::default(), Checksum::default());
        let mut chunk = vec![0u8; CHUNK];
        let mut off = CHUNK; // chunk fully written: refill before the next write
        let mut written = 0usize;
        let mut write_closed = false;
        let mut buf = vec![0u8; 16 * 1024];
        let mut total_read = 0usize;
        poll_fn(|cx| {
            // Bounded work per poll; then yield so the loop can look at I/O and timers.
            for _ in 0..256 {
                let mut progressed = false;
                if !write_closed && off == CHUNK {
                    if written == TOTAL {
                        client.shutdown(Shutdown::Write)?;
                        write_closed = true;
                    } else {
                        rng.fill(&mut chunk);
                        sent.update(&chunk);
                        off = 0;
                    }
                }
                if !write_closed {
                    if let Poll::Ready(n) = client.poll_write(cx, &chunk[off..]) {
                        let n = n?;
                        assert_ne!(n, 0);
                        off += n;
                        written += n;
                        progressed = true;
                    }
                }
                match client.poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => {
                        assert!(write_closed, "server closed before we finished");
                        return Poll::Ready(io::Result::Ok(()));
                    }
                    Poll::Ready(Ok(n)) => {
                        received.update(&buf[..n]);
                        total_read += n;
                        progressed = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
                if !progressed {
                    // Each direction still open returned Pending: both wakers are registered.
                    return Poll::Pending;
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
        .unwrap();
        (sent, received, total_read)
    });
    assert_eq!(total_read, TOTAL);
    assert_eq!(sent, received, "echoed bytes differ from those sent");
}

/// 1,000 connections to one echo server on one runtime, all at once, each with its own
/// message, all echoed correctly.
#[test]
fn thousand_concurrent_echo_connections() {
    const N: usize = 1000;
    raise_fd_limit(4 * N as u64 + 256);
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 120, async {
        let addr = spawn_echo_server();
        let handles: Vec<_> = (0..N)
            .map(|i| {
                spawn(async move {
                    let message = format!("connection {i}: ").repeat(1 + i % 300).into_bytes();
                    let mut conn = TcpStream::connect(addr).await?;
                    conn.write_all(&message).await?;
                    conn.shutdown(Shutdown::Write)?;
                    let mut echoed = Vec::new();
                    conn.read_to_end(&mut echoed).await?;
                    assert_eq!(echoed, message, "connection {i} got someone else's bytes");
                    io::Result::Ok(())
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            h.await
                .unwrap()
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        }
    });
    // Only the echo server's listener task is left.
    assert_eq!(rt.stats().tasks, 1);
    assert_eq!(rt.stats().io_sources, 1);
}

/// A burst of 3,000 connects to one listener: every one is accepted (the backlog is 4096).
#[test]
fn burst_of_connects_all_accepted() {
    const N: usize = 3000;
    raise_fd_limit(4 * N as u64 + 256);
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 120, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted: Rc<RefCell<Vec<SocketAddr>>> = Rc::default();
        let acc = accepted.clone();
        let server = spawn(async move {
            let mut streams = Vec::new();
            while streams.len() < N {
                let (s, from) = listener.accept().await.unwrap();
                acc.borrow_mut().push(from);
                streams.push(s);
            }
            streams
        });
        let clients: Vec<_> = (0..N).map(|_| spawn(TcpStream::connect(addr))).collect();
        let mut locals = Vec::new();
        let mut client_streams = Vec::new(); // kept open until the server has them all
        for (i, c) in clients.into_iter().enumerate() {
            let stream = c
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("connect {i}: {e}"));
            locals.push(stream.local_addr().unwrap());
            client_streams.push(stream);
        }
        let streams = server.await.unwrap();
        assert_eq!(streams.len(), N);
        let mut from = accepted.borrow().clone();
        from.sort();
        locals.sort();
        assert_eq!(
            from, locals,
            "accepted peers differ from the connected clients"
        );
    });
}

/// A read waiting on an idle connection is woken when data arrives later, and a task that
/// only waits on I/O is not polled in between.
#[test]
fn idle_read_wakes_when_data_arrives() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 20, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let polls = Rc::new(Cell::new(0u32));
        let p = polls.clone();
        let reader = spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            let mut n = 0;
            poll_fn(|cx| {
                p.set(p.get() + 1);
                match conn.poll_read(cx, &mut buf) {
                    Poll::Ready(r) => {
                        n = r.unwrap();
                        Poll::Ready(())
                    }
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            buf[..n].to_vec()
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        sleep(Duration::from_millis(50)).await;
        let before = polls.get();
        assert!(before >= 1, "the reader is parked on its read");
        client.write_all(b"late").await.unwrap();
        assert_eq!(reader.await.unwrap(), b"late");
        // Parked until the data came: polled once more (or twice on a spurious event).
        assert!(
            polls.get() - before <= 2,
            "reader polled {} times",
            polls.get()
        );
    });
}

/// Socket I/O attempted outside any runtime fails with an error instead of hanging.
#[test]
fn io_outside_runtime_errors() {
    let std_listener = std::net::TcpListener::bind(local()).unwrap();
    let addr = std_listener.local_addr().unwrap();
    let mut stream = TcpStream::from_std(std::net::TcpStream::connect(addr).unwrap()).unwrap();
    let waker = util::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut buf = [0u8; 4];
    match stream.poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert!(e.to_string().contains("outside a runtime"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Regression: data and FIN that arrive together are reported by one edge; after a short
/// read clears read readiness, the next read still sees EOF instead of waiting forever.
#[test]
fn short_read_then_eof_does_not_hang() {
    let rt = Runtime::new().unwrap();
    block_on_bounded(&rt, 10, async {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            wait.recv().unwrap();
            s.write_all(b"hello").unwrap();
            // Dropped: the FIN follows the data at once.
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        // Register the socket and drain its readiness first, so that the data and the FIN
        // arrive as one later edge, not as the registration's initial report.
        let idle = volley::timeout(Duration::from_millis(20), conn.read(&mut buf)).await;
        assert!(idle.is_err(), "nothing was sent yet");
        go.send(()).unwrap();
        writer.join().unwrap();
        sleep(Duration::from_millis(50)).await; // the loop takes the one edge meanwhile
        assert_eq!(conn.read(&mut buf).await.unwrap(), 5);
        let eof = volley::timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
        assert_eq!(eof.expect("the second read hung").unwrap(), 0);
    });
}
