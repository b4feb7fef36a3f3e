//! The threaded and blocking clients: their types cross threads, requests, streamed bodies
//! and batches work from threads and executors other than volley's loop, cancelling works,
//! and a dead loop fails requests instead of hanging them.

mod util;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use volley::threaded;
use volley::{ErrorKind, Runtime};
use volley_testserver::{Server, ServerThread};

fn server() -> ServerThread {
    Server::spawn_thread(util::local()).expect("test server")
}

fn assert_send_sync<T: Send + Sync>(_: &T) {}
fn assert_send<T: Send>(_: &T) {}

/// The client, its builders, responses, streams and every future it returns are `Send`, so
/// they can be used from a multi-thread executor's tasks.
#[test]
fn types_and_futures_cross_threads() {
    let client = threaded::Client::new();
    assert_send_sync(&client);
    let send = client.get("http://127.0.0.1:9/").send();
    assert_send(&send);
    drop(send);
    let batch = client.fetch_all(vec!["http://127.0.0.1:9/"]);
    let run = batch.run();
    assert_send(&run);
    drop(run);
    let stream = client.fetch_all(Vec::<String>::new()).stream();
    assert_send(&stream);
    let blocking = volley::blocking::Client::new();
    assert_send_sync(&blocking);
    fn response_is_send(r: threaded::Response) -> impl Send {
        async move { r.bytes().await }
    }
    let _ = response_is_send;
}

/// Requests from eight plain threads share one loop; each thread waits with volley's own
/// `block_on`, an executor the client does not know.
#[test]
fn requests_from_many_threads_share_one_loop() {
    let server = server();
    let client = threaded::Client::new();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            let url = server.url(&format!("/get?t={t}"));
            std::thread::spawn(move || {
                let rt = Runtime::new().unwrap();
                rt.block_on(async {
                    for _ in 0..25 {
                        let resp = client.get(&url).send().await.unwrap();
                        assert_eq!(resp.status(), 200);
                        let text = resp.text().await.unwrap();
                        assert!(text.contains(&format!("t={t}")), "{text}");
                    }
                });
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Keep-alive worked across callers: far fewer connections than the 200 requests.
    assert!(
        server.stats().connections_accepted <= 16,
        "{:?}",
        server.stats()
    );
}

/// A body larger than what comes with the head streams in pieces; the total and the bytes
/// are right, and the trailers and timings arrive with its end.
#[test]
fn large_bodies_stream() {
    let server = server();
    let client = threaded::Client::new();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let mut resp = client
            .get(server.url("/bytes/3000000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.content_length(), Some(3_000_000));
        let mut total = 0;
        let mut pieces = 0;
        while let Some(piece) = resp.chunk().await.unwrap() {
            total += piece.len();
            pieces += 1;
        }
        assert_eq!(total, 3_000_000);
        assert!(pieces > 1);
        assert!(resp.timings().total >= resp.timings().first_byte);

        // A chunked body, whole.
        let resp = client.get(server.url("/stream/20")).send().await.unwrap();
        assert_eq!(resp.content_length(), None);
        let text = resp.text().await.unwrap();
        assert_eq!(text.lines().count(), 20);

        // The same bytes through the blocking reader.
        let blocking = volley::blocking::Client::from(client.clone());
        let url = server.url("/bytes/3000000?seed=7");
        let expected = client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let read = std::thread::spawn(move || {
            let mut body = Vec::new();
            let mut resp = blocking.get(url).send().unwrap();
            resp.read_to_end(&mut body).unwrap();
            body
        })
        .join()
        .unwrap();
        assert!(read == expected, "the blocking reader got other bytes");
    });
}

/// Errors come back typed, from the loop, with their URL.
#[test]
fn errors_cross_with_their_kind() {
    let client = volley::blocking::Client::new();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = client.get(format!("http://{refused}/")).send().unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(e.url().unwrap().port(), Some(refused.port()));
    let e = client.get("not a url").send().unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::InvalidUrl(_)), "{e:?}");
    let server = server();
    let e = client
        .get(server.url("/status/503"))
        .send()
        .unwrap()
        .error_for_status()
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Status(s) if s.as_u16() == 503));
}

/// `fetch_all` in both forms: `run` in input order, `stream` as completed, every request
/// answered once.
#[test]
fn batches_run_in_order_and_stream_as_completed() {
    let server = server();
    let client = threaded::Client::new();
    let urls: Vec<String> = (0..300)
        .map(|i| server.url(&format!("/get?i={i}")))
        .collect();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(client.fetch_all(urls.clone()).concurrency(30).run());
    assert_eq!(report.summary.ok, 300);
    for (i, result) in report.results.iter().enumerate() {
        assert_eq!(result.index, i);
        assert_eq!(result.url.as_ref().unwrap().as_str(), urls[i]);
        let body = &result.outcome.as_ref().unwrap().body;
        assert!(std::str::from_utf8(body)
            .unwrap()
            .contains(&format!("i={i}")));
    }

    // Slow ones first in the input, fast ones last: the stream yields the fast ones first.
    let urls: Vec<String> = (0..4)
        .map(|i| server.url(&format!("/delay/0.5?i={i}")))
        .chain((0..4).map(|i| server.url(&format!("/get?i={i}"))))
        .collect();
    let mut stream = client.fetch_all(urls).concurrency(8).stream();
    let order: Vec<usize> = rt.block_on(async {
        let mut order = Vec::new();
        while let Some(result) = stream.next().await {
            assert!(result.outcome.is_ok());
            order.push(result.index);
        }
        order
    });
    assert_eq!(order.len(), 8);
    assert!(order[..4].iter().all(|&i| i >= 4), "{order:?}");
    assert_eq!(stream.summary().ok, 8);

    // The blocking batch, as an iterator.
    let blocking = volley::blocking::Client::from(client);
    let n = blocking
        .batch(
            (0..50)
                .map(|i| server.url(&format!("/get?i={i}")))
                .collect::<Vec<_>>(),
        )
        .concurrency(10)
        .stream()
        .filter(|r| r.outcome.is_ok())
        .count();
    assert_eq!(n, 50);
}

/// A server that accepts one connection, answers with `reply` (if any) and reports when the
/// client closes its side.
fn closing_watcher(reply: &'static [u8]) -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (closed, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0; 4096];
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        std::io::Write::write_all(&mut conn, reply).unwrap();
        // Read until the client closes; nothing else comes from it.
        while conn.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        let _ = closed.send(());
    });
    (url, rx)
}

/// Dropping a request's future, or a response before the end of its body, closes its
/// connection on the loop.
#[test]
fn dropping_cancels_on_the_loop() {
    let client = threaded::Client::new();
    let rt = Runtime::new().unwrap();

    let (url, closed) = closing_watcher(b"");
    rt.block_on(async {
        let send = client.get(&url).send();
        assert!(volley::timeout(Duration::from_millis(200), send)
            .await
            .is_err());
    });
    closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the dropped request's connection closes");

    let (url, closed) =
        closing_watcher(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nfirst bytes");
    rt.block_on(async {
        let mut resp = client.get(&url).send().await.unwrap();
        assert_eq!(
            resp.chunk().await.unwrap().as_deref(),
            Some(&b"first bytes"[..])
        );
        drop(resp);
    });
    closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the dropped response's connection closes");
}

/// A panic on the loop thread (here in the `configure` closure, which runs there) fails the
/// request that was waiting and every later one with a `Runtime` error that says so; none
/// hangs.
#[test]
fn a_dead_loop_fails_requests_instead_of_hanging() {
    let server = server();
    let client = threaded::Client::builder()
        .configure(|_| panic!("boom in configure"))
        .build();
    let client = volley::blocking::Client::from(client);
    for _ in 0..3 {
        let e = client.get(server.url("/get")).send().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Runtime(_)), "{e:?}");
        assert!(e.to_string().contains("panicked"), "{e}");
    }
    let base = server.url("/get");
    let report = client.fetch_all((0..5).map(move |i| format!("{base}?{i}")), 2);
    assert_eq!(report.results.len(), 5);
    assert_eq!(report.summary.failed, 5);
}

/// A batch whose task dies on the loop (its progress callback panics) answers every request
/// anyway: those in flight and those never started fail with a `Runtime` error; none is lost.
#[test]
fn a_batch_that_dies_loses_no_request() {
    let server = server();
    let client = threaded::Client::new();
    let base = server.url("/get");
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let rt = Runtime::new().unwrap();
    let report = rt.block_on(
        client
            .fetch_all((0..200).map(move |i| format!("{base}?i={i}")))
            .concurrency(10)
            .on_progress(move |_| {
                if counted.fetch_add(1, Ordering::SeqCst) == 20 {
                    panic!("progress callback fails");
                }
            })
            .run(),
    );
    assert_eq!(report.results.len(), 200);
    let mut indices: Vec<usize> = report.results.iter().map(|r| r.index).collect();
    indices.dedup();
    assert_eq!(indices, (0..200).collect::<Vec<_>>());
    let failed = report.results.iter().filter(|r| r.outcome.is_err()).count();
    assert!(failed >= 100, "{failed}");
    for r in report
        .results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err())
    {
        assert!(matches!(r.kind(), ErrorKind::Runtime(_)), "{r:?}");
    }
    // The loop itself is fine: the next request works.
    let resp = rt.block_on(client.get(server.url("/get")).send()).unwrap();
    assert_eq!(resp.status(), 200);
}

/// A blocking client dropped inside an async context (here volley's own `block_on`) just
/// stops its loop: no panic, as reqwest's blocking client has (reqwest#1017, #1450).
#[test]
fn blocking_client_drops_inside_async_code() {
    let server = server();
    let client = volley::blocking::Client::new();
    assert_eq!(client.get(server.url("/get")).send().unwrap().status(), 200);
    let rt = Runtime::new().unwrap();
    rt.block_on(async move {
        volley::sleep(Duration::from_millis(1)).await;
        drop(client);
    });
}

/// With several loop threads, each host keeps to one loop (its connections are reused), and
/// requests to many hosts all complete.
#[test]
fn several_loops_share_the_hosts() {
    let servers: Vec<ServerThread> = (0..4).map(|_| server()).collect();
    let client = threaded::Client::builder().threads(3).build();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        for round in 0..5 {
            for server in &servers {
                let resp = client
                    .get(server.url(&format!("/get?r={round}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
            }
        }
    });
    for server in &servers {
        assert_eq!(
            server.stats().connections_accepted,
            1,
            "{:?}",
            server.stats()
        );
    }
}

/// A streamed request body crosses to the loop: the blocking client uploads from a reader.
#[test]
fn blocking_upload_from_a_reader() {
    let server = server();
    let client = volley::blocking::Client::new();
    let data = vec![7u8; 3 << 20];
    let body = volley::Body::sized_reader(std::io::Cursor::new(data), 3 << 20);
    let text = client
        .post(server.url("/count"))
        .body(body)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(text.contains("3145728"), "{text}");
}
