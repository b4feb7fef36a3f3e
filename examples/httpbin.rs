//! cargo run --release --example httpbin -- --port 8080
//!
//! Runs volley's embedded httpbin-like server on its own, until interrupted, and prints its URL
//! and its endpoints.
//!
//! ```text
//! cargo run --release --example httpbin                              # http://127.0.0.1:8080
//! cargo run --release --example httpbin -- --port 0                  # any free port
//! cargo run --release --example httpbin -- --host 0.0.0.0 --port 9000
//! cargo run --release --example httpbin -- --self-test 5000          # 5000 clients, then exit
//! ```
//!
//! Then, for example: `curl -i http://127.0.0.1:8080/get`, `curl http://127.0.0.1:8080/stream/3`,
//! `curl -i http://127.0.0.1:8080/fault/1xx`. The soft limit on open files is raised to the hard
//! limit first, so that tens of thousands of clients can connect at once.
//!
//! `--self-test N` serves on a free loopback port and, on the same thread, sends it `N`
//! concurrent `GET /delay/1` requests (one connection each) plus a few other endpoints, checks
//! every response, prints the time and the server's counts, and exits non-zero on any failure.
//! Client and server share the process, so it needs about `2 N` descriptors: with fewer, the
//! server reports `EMFILE` on stderr once a second and accepts again as descriptors free up.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use volley::{Runtime, TcpStream};
use volley_testserver::{Server, ENDPOINTS};

const USAGE: &str = "usage: httpbin [--host ADDR] [--port PORT] [--self-test N]   \
                     (defaults 127.0.0.1 and 8080)";

/// What the command line asks for.
enum Mode {
    /// Serve on this address until interrupted.
    Serve(SocketAddr),
    /// Serve on a free port and check it with this many concurrent clients.
    SelfTest(usize),
}

fn parse_args() -> Result<Mode, String> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port: u16 = 8080;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--self-test" => {
                let value = args.next().ok_or("--self-test needs a client count")?;
                let clients = value
                    .parse()
                    .map_err(|_| format!("--self-test: not a count: {value}"))?;
                return Ok(Mode::SelfTest(clients));
            }
            "--host" => {
                let value = args.next().ok_or("--host needs a value")?;
                host = value
                    .parse()
                    .map_err(|_| format!("--host: not an IP address: {value}"))?;
            }
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port number: {value}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(Mode::Serve(SocketAddr::new(host, port)))
}

/// Raises the soft limit on open descriptors to the hard limit; reports the limit in force.
fn raise_fd_limit() -> Option<u64> {
    match volley::raise_fd_limit() {
        Ok(limit) => limit,
        Err(_) => rustix::process::getrlimit(rustix::process::Resource::Nofile).current,
    }
}

fn main() -> ExitCode {
    let addr = match parse_args() {
        Ok(Mode::Serve(addr)) => addr,
        Ok(Mode::SelfTest(clients)) => {
            raise_fd_limit();
            return self_test(clients);
        }
        Err(message) => {
            if !message.is_empty() {
                eprintln!("httpbin: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let fd_limit = raise_fd_limit();
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("httpbin: cannot create the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let server = match Server::bind(addr) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("httpbin: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("volley-httpbin listening on {}", server.url("/"));
        if let Some(limit) = fd_limit {
            println!("open-file limit: {limit}");
        }
        println!();
        let width = ENDPOINTS.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
        for (path, what) in ENDPOINTS {
            println!("  {path:width$}  {what}");
        }
        println!("\nCtrl-C to stop.");
        std::future::pending::<()>().await;
        drop(server);
        ExitCode::SUCCESS
    })
}

/// Sends `request` on a new connection and returns everything the server sends back until it
/// closes.
async fn fetch(addr: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(request).await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    Ok(response)
}

/// `--self-test N`: `N` concurrent `/delay/1` clients and a few other endpoints, on one thread.
fn self_test(clients: usize) -> ExitCode {
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("httpbin: cannot create the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = server.local_addr();
        let started = Instant::now();
        // Clients start in batches, a millisecond apart, so that the connects do not all land
        // before the server's accept task first runs: the kernel's accept queue holds at most
        // `somaxconn` (4096) connections, and a SYN beyond it is retried only after a second.
        let mut tasks = Vec::with_capacity(clients);
        for i in 0..clients {
            if i % 256 == 255 {
                volley::sleep(Duration::from_millis(1)).await;
            }
            tasks.push(volley::spawn(fetch(
                addr,
                b"GET /delay/1 HTTP/1.1\r\nHost: self-test\r\nConnection: close\r\n\r\n",
            )));
        }
        let mut failures = 0;
        for task in tasks {
            match volley::timeout(Duration::from_secs(60), task).await {
                Ok(Ok(Ok(response))) if response.starts_with(b"HTTP/1.1 200 OK\r\n") => {}
                other => {
                    if failures < 5 {
                        eprintln!("httpbin: self-test: a /delay/1 client failed: {other:?}");
                    }
                    failures += 1;
                }
            }
        }
        let elapsed = started.elapsed();
        let checks: [(&str, &[u8]); 4] = [
            ("/get", b"HTTP/1.1 200 OK\r\n"),
            ("/status/418", b"HTTP/1.1 418 "),
            ("/stream/3", b"HTTP/1.1 200 OK\r\n"),
            ("/fault/garbage", volley_testserver::GARBAGE),
        ];
        for (path, expected) in checks {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: self-test\r\nConnection: close\r\n\r\n");
            match fetch(addr, request.as_bytes()).await {
                Ok(response) if response.starts_with(expected) => {}
                other => {
                    eprintln!("httpbin: self-test: {path} answered {other:?}");
                    failures += 1;
                }
            }
        }
        let stats = server.stats();
        println!(
            "self-test: {clients} concurrent /delay/1 requests in {:.2} s; {} connections \
             accepted, {} requests, at most {} open at once; {failures} failures",
            elapsed.as_secs_f64(),
            stats.connections_accepted,
            stats.requests,
            stats.max_open_connections,
        );
        Ok::<usize, io::Error>(failures)
    });
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("httpbin: self-test: {e}");
            ExitCode::FAILURE
        }
    }
}
