//! What one request costs the client in memory: the size of its futures, and the heap
//! allocations it makes per request in steady state on a keep-alive connection.
//!
//! Run with `cargo bench -p volley-benches --bench client_alloc` (a few seconds once built; pass `--quick` after
//! `--` for fewer requests; `cargo test -p volley-benches --benches` runs it quick and unoptimized, as a smoke
//! test). `-- --sites` (or `-- --sites-headers`) lists where the allocations come from.
//!
//! The numbers are counts, not times, so the machine's load does not change them; they can
//! change with the allocator's growth policy or the libraries' versions.
//!
//! # How allocations are counted
//!
//! dhat is the global allocator, in testing mode (`dhat::Profiler::builder().testing()`), and
//! [`dhat::HeapStats::get`] is read before and after a run of requests. `total_blocks` counts
//! every `alloc` and every `realloc` (a realloc is a block of its new size: dhat's convention),
//! `total_bytes` their sizes. dhat counts all threads, so:
//!
//! - the server is a tiny blocking `std::thread` server in this file, one thread per
//!   connection, that answers every request head (`\r\n\r\n`) with a fixed response from a
//!   buffer made before counting starts, reading into a stack buffer: it allocates nothing per
//!   request. That is checked, not assumed: a raw `std::net::TcpStream` client (fixed buffers,
//!   no allocation either) sends requests to it while volley is idle, and the count must not
//!   move ("server alone" row).
//! - setup costs cancel: each scenario runs N requests, then 2N, each in its own
//!   `block_on` on the same runtime and client, after a warm-up; the per-request figure is
//!   `(count(2N) - count(N)) / N`. The connection was opened during the warm-up, and the
//!   server counts accepted connections: the "conns" column (new connections during the two
//!   counted runs) must be 0, i.e. every counted request reused the pooled connection.
//! - "live" is the change in live blocks across both runs: 0 means nothing is retained per
//!   request.

use std::future::Future;
use std::hint::black_box;
use std::io::{Read, Write};
use std::mem::size_of_val;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The response of the small-body scenarios: a 13-byte body.
const SMALL: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n";
/// The body size of the large-body scenario.
const LARGE_BODY: usize = 64 * 1024;
/// What the raw client of the "server alone" check sends.
const RAW_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// A blocking keep-alive server on 127.0.0.1 that answers every request with `response`.
struct TinyServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

impl TinyServer {
    fn start(response: &'static [u8]) -> TinyServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(AtomicUsize::new(0));
        let (acc, srv) = (accepted.clone(), served.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                acc.fetch_add(1, Ordering::SeqCst);
                let srv = srv.clone();
                thread::spawn(move || serve(stream, response, &srv));
            }
        });
        TinyServer {
            addr,
            accepted,
            served,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// Answers each request head on `stream` with `response` until the peer closes. Requests have
/// no body; a head ends at `\r\n\r\n`, which may be split across reads. No allocation.
fn serve(mut stream: TcpStream, response: &[u8], served: &AtomicUsize) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; 4096];
    // How much of "\r\n\r\n" the bytes so far end with.
    let mut matched = 0u8;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut heads = 0;
        for &b in &buf[..n] {
            matched = match (matched, b) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                heads += 1;
                matched = 0;
            }
        }
        for _ in 0..heads {
            // Counted before the write: once the client has the response, the count is in.
            served.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(response).is_err() {
                return;
            }
        }
    }
}

/// Heap counters over some work.
#[derive(Clone, Copy, Debug, Default)]
struct Count {
    blocks: u64,
    bytes: u64,
    /// Change in live blocks.
    live: i64,
}

/// Counts the allocations `work` makes, on every thread.
fn count<R>(work: impl FnOnce() -> R) -> (Count, R) {
    let before = dhat::HeapStats::get();
    let out = work();
    let after = dhat::HeapStats::get();
    let c = Count {
        blocks: after.total_blocks - before.total_blocks,
        bytes: after.total_bytes - before.total_bytes,
        live: after.curr_blocks as i64 - before.curr_blocks as i64,
    };
    (c, out)
}

/// A request scenario: which server, which headers, what body comes back.
struct Scenario<'a> {
    name: &'static str,
    server: &'a TinyServer,
    custom_headers: bool,
    body_len: usize,
}

/// `n` sequential GETs on one task, each body read to the end (which pools the connection).
async fn requests(client: &volley::Client, url: &str, n: usize, sc: &Scenario<'_>) {
    for i in 0..n {
        let mut request = client.get(url);
        if sc.custom_headers {
            request = request
                .header("x-request-id", "0123456789")
                .header("x-client", "client_alloc");
        }
        let response = request.send().await.expect("send");
        let body = response.bytes().await.expect("body");
        assert_eq!(body.len(), sc.body_len, "request {i}");
        black_box(body);
    }
}

/// One row of the table.
struct Row {
    name: String,
    blocks: f64,
    bytes: f64,
    live: i64,
    conns: usize,
}

fn measure(rt: &volley::Runtime, client: &volley::Client, sc: &Scenario<'_>, n: usize) -> Row {
    let url = sc.server.url();
    rt.block_on(requests(client, &url, 100, sc)); // warm-up: connects, grows buffers
    let conns = sc.server.accepted();
    let served = sc.server.served();
    let (one, ()) = count(|| rt.block_on(requests(client, &url, n, sc)));
    let (two, ()) = count(|| rt.block_on(requests(client, &url, 2 * n, sc)));
    assert_eq!(sc.server.served() - served, 3 * n, "{}: served", sc.name);
    Row {
        name: sc.name.to_string(),
        blocks: (two.blocks - one.blocks) as f64 / n as f64,
        bytes: (two.bytes - one.bytes) as f64 / n as f64,
        live: one.live + two.live,
        conns: sc.server.accepted() - conns,
    }
}

/// The server alone: `n` requests from a raw blocking client that allocates nothing itself,
/// with volley idle. Returns the per-request count, which must be zero.
fn measure_server_alone(server: &TinyServer, n: usize) -> Row {
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut buf = [0u8; 256];
    let mut round_trip = |stream: &mut TcpStream| {
        stream.write_all(RAW_REQUEST).expect("write");
        let mut got = 0;
        while got < SMALL.len() {
            match stream.read(&mut buf[got..]).expect("read") {
                0 => panic!("server closed"),
                k => got += k,
            }
        }
        assert_eq!(&buf[..got], SMALL);
    };
    for _ in 0..100 {
        round_trip(&mut stream);
    }
    let conns = server.accepted();
    let (one, ()) = count(|| (0..n).for_each(|_| round_trip(&mut stream)));
    let (two, ()) = count(|| (0..2 * n).for_each(|_| round_trip(&mut stream)));
    Row {
        name: "server alone (raw std client)".to_string(),
        blocks: (two.blocks - one.blocks) as f64 / n as f64,
        bytes: (two.bytes - one.bytes) as f64 / n as f64,
        live: one.live + two.live,
        conns: server.accepted() - conns,
    }
}

fn size_of_future<F: Future>(future: &F) -> usize {
    size_of_val(future)
}

fn main() {
    // `cargo bench` passes `--bench`; without it we run as a test (`cargo test -p volley-benches --benches`,
    // unoptimized), so only a quick smoke run. Anything else is ours.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let n = if quick { 200 } else { 2_000 };
    if args.iter().any(|a| a == "--sites") {
        sites(n, false);
    } else if args.iter().any(|a| a == "--sites-headers") {
        sites(n, true);
    } else {
        table(n);
    }
}

fn table(n: usize) {
    let _profiler = dhat::Profiler::builder().testing().build();

    let mut large = format!("HTTP/1.1 200 OK\r\nContent-Length: {LARGE_BODY}\r\n\r\n").into_bytes();
    large.extend((0..LARGE_BODY).map(|i| b'a' + (i % 26) as u8));
    let large: &'static [u8] = large.leak();

    let small_server = TinyServer::start(SMALL);
    let large_server = TinyServer::start(large);
    let rt = volley::Runtime::new().expect("runtime");
    let client = volley::Client::new();
    let url = small_server.url();

    // Future sizes.
    let send = client.get(&url).send();
    let send_size = size_of_future(&send);
    drop(send);
    let response = rt.block_on(client.get(&url).send()).expect("send");
    let bytes = response.bytes();
    let bytes_size = size_of_future(&bytes);
    rt.block_on(bytes).expect("body");
    let whole = async { client.get(&url).send().await?.bytes().await };
    let whole_size = size_of_future(&whole);
    rt.block_on(whole).expect("whole request");

    println!("volley client: future sizes (size_of_val, bytes)");
    println!("  {:<56} {:>6}", "client.get(url).send()", send_size);
    println!("  {:<56} {:>6}", "response.bytes()", bytes_size);
    println!(
        "  {:<56} {:>6}",
        "async { client.get(url).send().await?.bytes().await }", whole_size
    );
    println!(
        "  {:<56} {:>6}",
        "(for scale) Response / Client / RequestBuilder",
        format!(
            "{} / {} / {}",
            std::mem::size_of::<volley::Response>(),
            std::mem::size_of::<volley::Client>(),
            std::mem::size_of::<volley::RequestBuilder>()
        )
    );
    println!();

    let scenarios = [
        Scenario {
            name: "GET, 13-byte body",
            server: &small_server,
            custom_headers: false,
            body_len: 13,
        },
        Scenario {
            name: "GET + 2 custom headers, 13-byte body",
            server: &small_server,
            custom_headers: true,
            body_len: 13,
        },
        Scenario {
            name: "GET, 64 KiB body",
            server: &large_server,
            custom_headers: false,
            body_len: LARGE_BODY,
        },
    ];
    let mut rows = vec![measure_server_alone(&small_server, n)];
    for sc in &scenarios {
        rows.push(measure(&rt, &client, sc, n));
    }

    println!(
        "allocations per request, keep-alive, steady state: (count(2N) - count(N)) / N, N = {n}"
    );
    println!(
        "  {:<38} {:>9} {:>12} {:>6} {:>6}",
        "scenario", "allocs", "bytes", "live", "conns"
    );
    for row in &rows {
        println!(
            "  {:<38} {:>9.2} {:>12.1} {:>6} {:>6}",
            row.name, row.blocks, row.bytes, row.live, row.conns
        );
    }
    println!(
        "  (allocs: alloc + realloc calls on all threads; bytes: their sizes; live: change in"
    );
    println!("   live blocks over both runs; conns: connections opened during them)");

    let server_alone = &rows[0];
    assert_eq!(
        server_alone.blocks, 0.0,
        "the bench server allocates per request: the client counts would be polluted"
    );
    assert!(
        rows.iter().all(|r| r.conns == 0),
        "a counted request opened a new connection"
    );
}

/// `--sites` (`--sites-headers`): where the allocations of the plain GET (with the two custom
/// headers) come from. Profiles `n` steady-state
/// requests with dhat's full heap profiler (setup and warm-up happen before it starts), writes
/// the profile for dhat's viewer (`dh_view.html`), and prints every allocation site with its
/// count per request, innermost frames first.
fn sites(n: usize, custom_headers: bool) {
    let small_server = TinyServer::start(SMALL);
    let rt = volley::Runtime::new().expect("runtime");
    let client = volley::Client::new();
    let url = small_server.url();
    let sc = Scenario {
        name: match custom_headers {
            false => "GET, 13-byte body",
            true => "GET + 2 custom headers, 13-byte body",
        },
        server: &small_server,
        custom_headers,
        body_len: 13,
    };
    rt.block_on(requests(&client, &url, 100, &sc));
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("client_alloc-dhat-heap.json");
    let profiler = dhat::Profiler::builder()
        .file_name(&path)
        .trim_backtraces(Some(40))
        .build();
    rt.block_on(requests(&client, &url, n, &sc));
    drop(profiler);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read profile")).expect("json");
    let frames: Vec<&str> = json["ftbl"]
        .as_array()
        .expect("ftbl")
        .iter()
        .map(|f| f.as_str().unwrap_or(""))
        .collect();
    let mut pps: Vec<(u64, u64, Vec<&str>)> = json["pps"]
        .as_array()
        .expect("pps")
        .iter()
        .map(|pp| {
            let stack = pp["fs"]
                .as_array()
                .expect("fs")
                .iter()
                .filter_map(|i| frames.get(i.as_u64()? as usize).copied())
                .collect();
            (
                pp["tbk"].as_u64().unwrap_or(0),
                pp["tb"].as_u64().unwrap_or(0),
                stack,
            )
        })
        .collect();
    pps.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    println!(
        "allocation sites of `{}`, over N = {n} steady-state requests",
        sc.name
    );
    println!("(profile written to {})", path.display());
    for (blocks, bytes, stack) in &pps {
        println!(
            "\n{:>6.2} allocs/req {:>8.1} bytes/req",
            *blocks as f64 / n as f64,
            *bytes as f64 / n as f64
        );
        // The frames worth reading: skip the allocator's own, show up to the request loop.
        let shown = stack
            .iter()
            .filter(|f| {
                !(f.contains(" alloc::") || f.contains(" <alloc::") || f.contains(" core::"))
            })
            .take_while(|f| !f.contains("client_alloc::requests"));
        for frame in shown.take(6) {
            println!("    {}", short_frame(frame));
        }
    }
}

/// A dhat frame without its address, and with the path shortened to the crate's source.
fn short_frame(frame: &str) -> String {
    let frame = frame.split_once(": ").map_or(frame, |(_, rest)| rest);
    match frame.rsplit_once(" (") {
        Some((func, place)) => {
            let place = place.trim_end_matches(')');
            let place = place
                .rsplit_once("/src/")
                .map_or(place, |(_, tail)| tail)
                .to_string();
            format!("{func}  [{place}]")
        }
        None => frame.to_string(),
    }
}
