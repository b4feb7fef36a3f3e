//! volley's threaded client under executors it does not know: tokio (multi-thread and
//! current-thread, with a blocking client in `spawn_blocking` and dropped inside a task),
//! smol and `futures::executor::block_on`.

use std::time::Duration;

use volley::threaded::Client;
use volley_testserver::{Server, ServerThread};

fn server() -> ServerThread {
    Server::spawn_thread("127.0.0.1:0".parse().unwrap()).expect("test server")
}

async fn get_ok(client: &Client, url: &str) -> String {
    let resp = client.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    resp.text().await.expect("body")
}

#[test]
fn tokio_multi_thread_spawned_tasks() {
    let server = server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = Client::new();
    let n = rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let client = client.clone();
                let url = server.url(&format!("/get?i={i}"));
                tokio::spawn(async move { get_ok(&client, &url).await.contains(&format!("i={i}")) })
            })
            .collect();
        let mut n = 0;
        for t in tasks {
            n += usize::from(t.await.unwrap());
        }
        n
    });
    assert_eq!(n, 200);
}

#[test]
fn tokio_current_thread_with_timers_and_batches() {
    let server = server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::new();
        // tokio's own timer beside volley's request.
        let slow = client.get(server.url("/delay/5")).send();
        assert!(tokio::time::timeout(Duration::from_millis(200), slow)
            .await
            .is_err());
        assert!(get_ok(&client, &server.url("/get")).await.contains("/get"));
        let urls: Vec<String> = (0..100)
            .map(|i| server.url(&format!("/get?i={i}")))
            .collect();
        let report = client.fetch_all(urls).concurrency(10).run().await;
        assert_eq!(report.summary.ok, 100);
        let mut stream = client
            .fetch_all(vec![server.url("/get"); 20])
            .concurrency(5)
            .duplicates(volley::batch::Duplicates::Fetch)
            .stream();
        let mut n = 0;
        while let Some(r) = stream.next().await {
            assert!(r.outcome.is_ok());
            n += 1;
        }
        assert_eq!(n, 20);
    });
}

/// The blocking client inside tokio's `spawn_blocking`, and dropped inside an async task:
/// reqwest's blocking client panics there (reqwest#1017, #1450); volley's must not.
#[test]
fn blocking_client_in_spawn_blocking_and_dropped_in_a_task() {
    let server = server();
    let url = server.url("/get");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = volley::blocking::Client::new();
        let in_blocking = client.clone();
        let status =
            tokio::task::spawn_blocking(move || in_blocking.get(&url).send().unwrap().status())
                .await
                .unwrap();
        assert_eq!(status, 200);
        // The last handle, dropped on a tokio worker: the loop thread is stopped and joined.
        tokio::spawn(async move { drop(client) }).await.unwrap();
    });
}

#[test]
fn smol_block_on() {
    let server = server();
    let client = Client::new();
    let body = smol::block_on(get_ok(&client, &server.url("/get?smol=1")));
    assert!(body.contains("smol=1"));
    let urls: Vec<String> = (0..50)
        .map(|i| server.url(&format!("/get?i={i}")))
        .collect();
    let report = smol::block_on(client.fetch_all(urls).run());
    assert_eq!(report.summary.ok, 50);
}

#[test]
fn futures_executor_block_on() {
    let server = server();
    let client = Client::new();
    let body = futures::executor::block_on(async {
        let mut resp = client
            .get(server.url("/bytes/500000"))
            .send()
            .await
            .unwrap();
        let mut n = 0;
        while let Some(piece) = resp.chunk().await.unwrap() {
            n += piece.len();
        }
        n
    });
    assert_eq!(body, 500_000);
}

/// The threaded response as a `futures_io::AsyncRead` (feature `futures-io`, which this
/// package turns on), copied with the `futures` crate's own `copy`.
#[test]
fn threaded_response_is_async_read() {
    use futures::io::AsyncReadExt;
    let server = server();
    let client = Client::new();
    let body = futures::executor::block_on(async {
        let mut resp = client
            .get(server.url("/bytes/300000?seed=3"))
            .send()
            .await
            .unwrap();
        let mut body = Vec::new();
        resp.read_to_end(&mut body).await.unwrap();
        body
    });
    assert_eq!(body.len(), 300_000);
}
