//! cargo run --release --example https_cost -- [--handshakes H] [-c C] [-n N] [--rounds R]
//!
//! What HTTPS costs on loopback, against the embedded server on a thread of its own (with the
//! TEST-ONLY certificate of `volley_testserver::testcert`):
//!
//! - handshakes: H sequential requests, each on a new connection (`pool_max_idle_per_host(0)`),
//!   to `/status/200`; the median of `timings().tls` (the TLS handshake alone; TLS 1.3, ECDSA
//!   P-256 certificate, X25519) and of the whole request;
//! - keep-alive: N GETs of `/status/200` by C tasks sharing one client, over http:// and then
//!   https://, in requests per second (the median over R rounds).
//!
//! One core runs the client, another the server; on a 2-core machine both are busy.

use std::rc::Rc;
use std::time::Instant;

use volley::{Certificate, Client, Runtime};
use volley_testserver::{testcert, Server, ServerConfig};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let handshakes = arg("--handshakes", 500);
    let concurrency = arg("-c", 50);
    let requests = arg("-n", 20_000);
    let rounds = arg("--rounds", 3);
    let addr = "127.0.0.1:0".parse().unwrap();
    let config = ServerConfig::default()
        .tls(testcert::CERT_PEM, testcert::KEY_PEM)
        .expect("the test certificate loads");
    let tls_server = Server::spawn_thread_with(addr, config).expect("server starts");
    let plain_server = Server::spawn_thread(addr).expect("server starts");
    let ca = Certificate::from_pem(testcert::CA_PEM).unwrap();
    let rt = Runtime::new().unwrap();

    // Handshakes: a new connection for every request.
    let client = Client::builder()
        .add_root_certificate(ca.clone())
        .pool_max_idle_per_host(0)
        .build();
    let url = tls_server.url("/status/200");
    let (tls, whole) = rt.block_on(async {
        let (mut tls, mut whole) = (Vec::new(), Vec::new());
        for _ in 0..handshakes {
            let started = Instant::now();
            let response = client.get(&url).send().await.expect("request");
            tls.push(response.timings().tls.as_secs_f64() * 1e6);
            response.bytes().await.expect("body");
            whole.push(started.elapsed().as_secs_f64() * 1e6);
        }
        (tls, whole)
    });
    println!(
        "handshakes: {handshakes} sequential new connections: median TLS handshake {:.0} µs, \
         median whole request {:.0} µs",
        median(tls),
        median(whole)
    );

    // Keep-alive throughput, http:// then https://.
    for (name, server, tls) in [("http", &plain_server, false), ("https", &tls_server, true)] {
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let mut builder = Client::builder();
            if tls {
                builder = builder.add_root_certificate(ca.clone());
            }
            let client = Rc::new(builder.build());
            let url = Rc::new(server.url("/status/200"));
            let elapsed = rt.block_on(async {
                // Warm-up: open the connections.
                run(&client, &url, concurrency, concurrency * 4).await;
                let started = Instant::now();
                run(&client, &url, concurrency, requests).await;
                started.elapsed()
            });
            rates.push(requests as f64 / elapsed.as_secs_f64());
        }
        println!(
            "keep-alive {name:>5}: c={concurrency} n={requests}: median {:.0} req/s over {rounds} rounds {:?}",
            median(rates.clone()),
            rates.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
    }
}

/// `n` GETs of `url` by `c` tasks.
async fn run(client: &Rc<Client>, url: &Rc<String>, c: usize, n: usize) {
    let mut tasks = Vec::new();
    for i in 0..c {
        let share = n / c + usize::from(i < n % c);
        let (client, url) = (client.clone(), url.clone());
        tasks.push(volley::spawn(async move {
            for _ in 0..share {
                let response = client.get(url.as_str()).send().await.expect("request");
                response.bytes().await.expect("body");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
}
