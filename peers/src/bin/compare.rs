//! Side-by-side comparison of volley's batch API with its peers, on loopback.
//!
//! ```text
//! benches/compare.sh                     # installs what it can, starts nginx, runs this
//! cargo run --release --manifest-path peers/Cargo.toml --bin compare -- --quick
//! cargo run --release --manifest-path peers/Cargo.toml --bin compare -- \
//!     --workloads W1,W2 --python /tmp/venv/bin/python --nginx-port 8088
//! ```
//!
//! # Workloads
//!
//! - `W0`: GET `/delay/5` and `/delay/3` at once (floor 5.0 s); 1 round (`--rounds-slow`).
//! - `W1`: 500 × GET `/delay/0.1?n={n}` at concurrency 100 (floor 0.5 s). The serial client
//!   makes 20 of them one after the other on one keep-alive connection and its time is
//!   multiplied by 25 (500 × 0.1 s would take 50 s).
//! - `W2`: 10,000 × GET `/delay/1?n={n}`, all at once (floor 1.0 s). 10k connections to one
//!   ip:port would overflow the listen backlog (`net.core.somaxconn` caps it, 4096 here), so
//!   the server listens on 4 ports (backlog 4096 each) and request `n` goes to port `n % 4`;
//!   every process raises `RLIMIT_NOFILE` (see Descriptors).
//! - `W3`: keep-alive GETs of a 13-byte static file from nginx (`worker_processes 1`, started
//!   by `benches/compare.sh`, `--nginx-port`), 50 connections, 200,000 requests (aiohttp
//!   makes 50,000: it is slower, and req/s is a rate). `wrk -t1 -c50 -d5s`, the ceiling,
//!   takes its turn in every round as one more client, if `wrk` is on the PATH; its CPU time
//!   is the wrk process's own (see `client_wrk`).
//! - `S1k`, `S10k`, `S30k`, the scaling study, run only when named (`--workloads
//!   S1k,S10k,S30k`): the W2 shape, GET `/delay/1?n={n}` all at once, with n = c = 1,000,
//!   10,000 and 30,000 (floor 1.0 s), to see how wall, CPU and memory grow with the requests in
//!   flight. Clients: `volley`, `volley-stream` and `reqwest`, unless `--clients` names others
//!   (`aiohttp` only then: it is too slow at 30k). `-n N` makes them N requests at once instead
//!   (smoke tests). See below for the addresses and the descriptors they need.
//!
//! # Address spread for the S workloads (what we did)
//!
//! A connection is its 4-tuple, so connections to one ip:port differ only in the client's
//! port, which comes from `net.ipv4.ip_local_port_range` (32768-60999: 28,232 ports): past
//! ~28k connections to one ip:port, `connect` fails with `EADDRNOTAVAIL`. And one listener's
//! backlog is capped by `net.core.somaxconn` (4096 here). So the delay server listens on 4 ports
//! on each of 127.0.0.1, 127.0.0.2, 127.0.0.3 and 127.0.0.4 (Linux routes all of 127.0.0.0/8 to
//! `lo`: these bind with no setup), 16 listeners, and request `n` of an S workload goes to
//! listener `n % 16`: 30,000 / 16 = 1,875 connections per ip:port, far below both limits. We
//! spread the destinations, not the sources: the clients `connect` without `bind`, and Linux
//! reuses a local port for connections to different destinations, so the clients are unchanged
//! (URLs only). W0-W3 use only the 127.0.0.1 listeners (W2 its 4 ports, as before). If
//! 127.0.0.2..4 cannot be bound, the server says so and the S workloads use what there is.
//!
//! # Descriptors
//!
//! One socket per connection on each side: S30k needs ~30k descriptors in the client and as
//! many in the server. Every process (this one, the server, each client) first tries to raise
//! the hard `RLIMIT_NOFILE` to `fs.nr_open` (root with `CAP_SYS_RESOURCE` may; the error is
//! ignored), then the soft limit to the hard one. The server and clients inherit this process's
//! limits, so before each S workload it checks its soft limit: below n + 128, the workload is
//! skipped with a note (volley would quietly run fewer at once, the others fail with `EMFILE`).
//! `benches/compare.sh` raises both limits too, as far as it may.
//!
//! # The server
//!
//! Neither volley's nor a peer's: `--serve` (a child process) is a hand-written HTTP/1.1
//! keep-alive server on `tokio::net`, tokio's multi-thread runtime with one worker, that
//! answers `GET /delay/{secs}` after `tokio::time::sleep(secs)` with a 2-byte body (`ok`) and
//! everything else at once. It prints its listeners' `ip:port`s, comma-separated, on one line
//! (the 4 on 127.0.0.1 first), and raises `RLIMIT_NOFILE` (above).
//!
//! # The clients
//!
//! Every run of every client is a child process of this one (`--client NAME --workload W`)
//! that does nothing else, so its CPU time (`CLOCK_PROCESS_CPUTIME_ID`, user/sys from
//! `/proc/self/stat`) and its peak RSS (`VmHWM`, what `getrusage` reports as `ru_maxrss`) are
//! the client's alone. The child builds its URL list first, then notes its RSS (the baseline),
//! its CPU time and the clock, runs the batch, and prints one JSON line.
//!
//! - `volley`: `volley::Runtime` (one thread), `Client::new()`,
//!   `client.fetch_all(urls).concurrency(c).keep_bodies(false).run()`;
//! - `volley-stream` (reference): the same batch through `stream()`, every result dropped as
//!   it arrives, so the memory the stored results of `run()` take is left out;
//! - `reqwest`: tokio's current-thread runtime, `reqwest::Client::new()` (HTTP/1.1 only),
//!   one `tokio::spawn`ed task per request, started after taking a permit of a
//!   `tokio::sync::Semaphore` of `c` permits, body read with `bytes()`;
//! - `aiohttp`: Python asyncio + aiohttp (`--python`, a venv's interpreter), one
//!   `ClientSession` with an unlimited `TCPConnector`, one task per request started after
//!   taking an `asyncio.Semaphore` of `c`, body read with `read()`;
//! - `serial` (W1 only): blocking `std::net::TcpStream`, one keep-alive connection, hand-rolled
//!   GET, `Content-Length` body.
//! - `bare` (W2 only), W2's floor on this machine: no event loop, no timeouts, no pool; for each
//!   URL a non-blocking socket, `connect`, and the request written at once, then each response
//!   read in turn with blocking reads (see `client_bare`). On loopback the kernel's handshake
//!   work for both ends runs in the connecting thread, so this is what 10,000 connections cost
//!   before any client code runs.
//!
//! Clients take turns, in reverse order every other round. Output: a table of medians, the
//! goals met or not, `--json PATH` (default `peers/results.json`) and `--svg PATH` (default
//! `docs/perf.svg`; W0-W3 only, and not written when none of them ran). With S workloads, a
//! scaling table too, per client and n: wall, wall - 1 s (the overhead over the floor), CPU
//! seconds and microseconds per request, peak RSS, and (peak - base RSS) KB per request (all
//! medians); the same under `"scaling"` in the JSON, with the listeners and the descriptor
//! limits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use volley_peers::{loadavg, median, ServerProcess};

/// The delay server's response body.
const BODY: &[u8] = b"ok";
/// Listeners (ports) of the delay server on each of its addresses.
const PORTS: usize = 4;
/// The delay server's addresses: W0-W2 use the first, the S workloads all (request `n` goes to
/// listener `n % (PORTS x addresses)`).
const SPREAD: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
];
/// Descriptors a client or the server needs beyond one per connection (volley keeps 64 spare).
const FD_MARGIN: u64 = 128;
/// The serial client's W1 sample: this many requests, scaled to the workload's count.
const SERIAL_SAMPLE: usize = 20;

const CLIENTS: &[&str] = &[
    "volley",
    "volley-stream",
    "reqwest",
    "aiohttp",
    "serial",
    "wrk",
    "bare",
];
/// The S workloads' clients unless `--clients` says otherwise.
const SCALING_CLIENTS: &[&str] = &["volley", "volley-stream", "reqwest"];

// ---------------------------------------------------------------------------------------------
// Workloads.

/// What one client run fetches.
#[derive(Clone, Debug)]
struct Spec {
    /// URL paths, cycled.
    paths: Vec<String>,
    /// Requests.
    n: usize,
    /// Most in flight.
    c: usize,
    /// Append `?n={i}` to every URL.
    bust: bool,
    /// The lowest wall time possible, if there is one.
    floor: Option<f64>,
}

fn spec(workload: &str, quick: bool) -> Option<Spec> {
    let s = |paths: &[&str], n, c, bust, floor| Spec {
        paths: paths.iter().map(|p| p.to_string()).collect(),
        n,
        c,
        bust,
        floor,
    };
    Some(match (workload, quick) {
        ("W0", false) => s(&["/delay/5", "/delay/3"], 2, 2, false, Some(5.0)),
        ("W0", true) => s(&["/delay/1", "/delay/0.6"], 2, 2, false, Some(1.0)),
        ("W1", _) => s(&["/delay/0.1"], 500, 100, true, Some(0.5)),
        ("W2", false) => s(&["/delay/1"], 10_000, 10_000, true, Some(1.0)),
        ("W2", true) => s(&["/delay/1"], 2_000, 2_000, true, Some(1.0)),
        ("W3", false) => s(&["/small.txt"], 200_000, 50, false, None),
        ("W3", true) => s(&["/small.txt"], 20_000, 50, false, None),
        ("S1k", _) => s(&["/delay/1"], 1_000, 1_000, true, Some(1.0)),
        ("S10k", _) => s(&["/delay/1"], 10_000, 10_000, true, Some(1.0)),
        ("S30k", _) => s(&["/delay/1"], 30_000, 30_000, true, Some(1.0)),
        _ => return None,
    })
}

/// A workload of the scaling study (`S1k`, `S10k`, `S30k`).
fn is_scaling(workload: &str) -> bool {
    workload.starts_with('S')
}

/// The workload as run: an S workload's n (and c) replaced by `-n`, if given.
fn run_spec(args: &Args, workload: &str) -> Option<Spec> {
    let mut spec = spec(workload, args.quick)?;
    if let (true, Some(n)) = (is_scaling(workload), args.n) {
        spec.n = n;
        spec.c = n;
    }
    Some(spec)
}

/// The URL of request `i`: path `i % paths`, listener `i % addrs`.
fn url(spec: &Spec, addrs: &[SocketAddr], i: usize) -> String {
    let mut u = format!(
        "http://{}{}",
        addrs[i % addrs.len()],
        spec.paths[i % spec.paths.len()]
    );
    if spec.bust {
        let _ = write!(u, "?n={i}");
    }
    u
}

// ---------------------------------------------------------------------------------------------
// Arguments.

struct Args {
    serve: bool,
    client: Option<String>,
    workload: Option<String>,
    /// The listeners a client child sends its requests to (`--addrs ip:port,...`).
    addrs: Vec<SocketAddr>,
    n: Option<usize>,
    workloads: Vec<String>,
    clients: Vec<String>,
    /// `--clients` was given (else the S workloads run [`SCALING_CLIENTS`]).
    clients_given: bool,
    rounds: usize,
    rounds_slow: usize,
    quick: bool,
    python: Option<String>,
    nginx_port: Option<u16>,
    json: String,
    svg: String,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        serve: false,
        client: None,
        workload: None,
        addrs: Vec::new(),
        n: None,
        workloads: ["W0", "W1", "W2", "W3"].map(String::from).to_vec(),
        clients: CLIENTS.iter().map(|c| c.to_string()).collect(),
        clients_given: false,
        rounds: 3,
        rounds_slow: 1,
        quick: false,
        python: None,
        nginx_port: None,
        json: "peers/results.json".into(),
        svg: "docs/perf.svg".into(),
    };
    let list = |s: String| -> Vec<String> { s.split(',').map(str::to_string).collect() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |s: String| s.parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
        match arg.as_str() {
            "--serve" => a.serve = true,
            "--client" => a.client = Some(value("--client")?),
            "--workload" => a.workload = Some(value("--workload")?),
            "--addrs" => {
                a.addrs = list(value("--addrs")?)
                    .iter()
                    .map(|p| p.parse().map_err(|e| format!("{p:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "-n" => a.n = Some(number(value("-n")?)?.max(1)),
            "--workloads" => a.workloads = list(value("--workloads")?),
            "--clients" => {
                a.clients = list(value("--clients")?);
                a.clients_given = true;
            }
            "--rounds" => a.rounds = number(value("--rounds")?)?.max(1),
            "--rounds-slow" => a.rounds_slow = number(value("--rounds-slow")?)?.max(1),
            "--quick" => a.quick = true,
            "--python" => a.python = Some(value("--python")?),
            "--nginx-port" => {
                let p = value("--nginx-port")?;
                a.nginx_port = Some(p.parse().map_err(|e| format!("{p:?}: {e}"))?);
            }
            "--json" => a.json = value("--json")?,
            "--svg" => a.svg = value("--svg")?,
            "-h" | "--help" => {
                return Err("usage: compare [--workloads W0,W1,W2,W3,S1k,S10k,S30k] \
                            [--clients volley,volley-stream,reqwest,aiohttp,serial,wrk,bare] \
                            [--rounds R] [--rounds-slow R] [--quick] [-n N (S workloads)] \
                            [--python PATH] [--nginx-port P] [--json PATH] [--svg PATH]"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    for w in &a.workloads {
        if spec(w, false).is_none() {
            return Err(format!("unknown workload {w:?}"));
        }
    }
    for c in &a.clients {
        if !CLIENTS.contains(&c.as_str()) {
            return Err(format!("unknown client {c:?}"));
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------
// Descriptors.

/// `RLIMIT_NOFILE` in force: (soft, hard), `u64::MAX` for unlimited.
fn nofile() -> (u64, u64) {
    let l = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    (l.current.unwrap_or(u64::MAX), l.maximum.unwrap_or(u64::MAX))
}

/// Raises the hard `RLIMIT_NOFILE` to `fs.nr_open` (2^20 if unknown) if this process may (root
/// with `CAP_SYS_RESOURCE`; the `EPERM` is ignored), then the soft limit to the hard one.
/// Returns the limits in force, as [`nofile`].
fn raise_nofile() -> (u64, u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let most: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let l = getrlimit(Resource::Nofile);
    if l.maximum.is_some_and(|hard| hard < most) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: l.current,
                maximum: Some(most),
            },
        );
    }
    let _ = volley::raise_fd_limit();
    nofile()
}

// ---------------------------------------------------------------------------------------------
// The neutral delay server.

fn serve() -> io::Result<()> {
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addrs = rt.block_on(async {
        let mut addrs = Vec::new();
        'ips: for ip in SPREAD {
            for _ in 0..PORTS {
                let listener = match listen(ip) {
                    Ok(l) => l,
                    // 127.0.0.1 is a must; the others only spread the S workloads.
                    Err(e) if ip != SPREAD[0] => {
                        eprintln!(
                            "compare --serve: cannot listen on {ip}: {e}; the S workloads use \
                             fewer addresses"
                        );
                        continue 'ips;
                    }
                    Err(e) => return Err(e),
                };
                addrs.push(listener.local_addr()?);
                tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, _)) => {
                                tokio::spawn(serve_conn(stream));
                            }
                            Err(e) => {
                                eprintln!("compare --serve: accept: {e}");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                });
            }
        }
        Ok::<_, io::Error>(addrs)
    })?;
    let addrs: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    println!("{}", addrs.join(","));
    io::stdout().flush()?;
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    rt.block_on(std::future::pending::<()>());
    Ok(())
}

/// A listener on `ip`, a port the kernel picks. Inside the runtime.
fn listen(ip: Ipv4Addr) -> io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, 0)))?;
    // The kernel caps the backlog at net.core.somaxconn.
    socket.listen(65_535)
}

/// The delay of a request head's target, `/delay/{secs}[?...]`.
fn delay_of(head: &[u8]) -> Option<Duration> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let target = line.split(' ').nth(1)?;
    let secs = target.strip_prefix("/delay/")?.split('?').next()?;
    let secs: f64 = secs.parse().ok()?;
    Duration::try_from_secs_f64(secs.clamp(0.0, 60.0)).ok()
}

async fn serve_conn(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\nok",
        BODY.len()
    );
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        // Serve every complete head in the buffer, in order.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if let Some(d) = delay_of(&buf[..end]) {
                tokio::time::sleep(d).await;
            }
            buf.drain(..end + 4);
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring, inside a client child process.

fn cpu_now() -> (Duration, u64, u64) {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let total = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    (total, tick(11), tick(12))
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One client run, as the child prints it (one JSON line).
#[derive(Clone, Debug, Default)]
struct Run {
    wall: f64,
    cpu: f64,
    user: f64,
    sys: f64,
    maxrss_kb: f64,
    base_rss_kb: f64,
    n: f64,
    ok: f64,
    failed: f64,
    /// Multiply wall by this to get the workload's (serial's sample).
    scale: f64,
}

impl Run {
    fn to_json(&self) -> String {
        format!(
            "{{\"wall\": {:.6}, \"cpu\": {:.6}, \"user\": {:.3}, \"sys\": {:.3}, \
             \"maxrss_kb\": {}, \"base_rss_kb\": {}, \"n\": {}, \"ok\": {}, \"failed\": {}, \
             \"scale\": {}}}",
            self.wall,
            self.cpu,
            self.user,
            self.sys,
            self.maxrss_kb,
            self.base_rss_kb,
            self.n,
            self.ok,
            self.failed,
            self.scale
        )
    }

    /// Parses [`Run::to_json`]'s output (and the Python client's, which has the same keys).
    fn from_json(line: &str) -> Option<Run> {
        let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
        let mut map = BTreeMap::new();
        for pair in body.split(',') {
            let (k, v) = pair.split_once(':')?;
            map.insert(
                k.trim().trim_matches('"').to_string(),
                v.trim().parse::<f64>().ok()?,
            );
        }
        let get = |k: &str| map.get(k).copied();
        Some(Run {
            wall: get("wall")?,
            cpu: get("cpu")?,
            user: get("user").unwrap_or(0.0),
            sys: get("sys").unwrap_or(0.0),
            maxrss_kb: get("maxrss_kb")?,
            base_rss_kb: get("base_rss_kb")?,
            n: get("n")?,
            ok: get("ok")?,
            failed: get("failed")?,
            scale: get("scale").unwrap_or(1.0),
        })
    }

    /// The workload's wall time.
    fn wall_scaled(&self) -> f64 {
        self.wall * self.scale
    }

    fn rps(&self) -> f64 {
        self.ok / self.wall
    }
}

/// Times `run` (which returns ok and failed counts), with the baseline RSS taken just before.
fn measure(n: usize, scale: f64, run: impl FnOnce() -> (u64, u64)) -> Run {
    let base = status_kb("VmRSS");
    let (c0, u0, s0) = cpu_now();
    let t0 = Instant::now();
    let (ok, failed) = run();
    let wall = t0.elapsed().as_secs_f64();
    let (c1, u1, s1) = cpu_now();
    let hz = 100.0; // USER_HZ
    Run {
        wall,
        cpu: (c1 - c0).as_secs_f64(),
        user: (u1 - u0) as f64 / hz,
        sys: (s1 - s0) as f64 / hz,
        maxrss_kb: status_kb("VmHWM") as f64,
        base_rss_kb: base as f64,
        n: n as f64,
        ok: ok as f64,
        failed: failed as f64,
        scale,
    }
}

// ---------------------------------------------------------------------------------------------
// The clients (each in its own child process).

fn client_volley(urls: Vec<String>, c: usize) -> Run {
    let rt = volley::Runtime::new().expect("volley runtime");
    let client = volley::Client::new();
    let n = urls.len();
    measure(n, 1.0, || {
        let report = rt.block_on(
            client
                .fetch_all(urls)
                .concurrency(c)
                .duplicates(volley::batch::Duplicates::Fetch)
                .keep_bodies(false)
                .run(),
        );
        (report.summary.ok, report.summary.failed)
    })
}

/// `volley` with `stream()` instead of `run()`: each result is dropped as it arrives, so what
/// the report's stored results cost (URLs, headers, timings) is left out.
fn client_volley_stream(urls: Vec<String>, c: usize) -> Run {
    let rt = volley::Runtime::new().expect("volley runtime");
    let client = volley::Client::new();
    let n = urls.len();
    measure(n, 1.0, || {
        rt.block_on(async {
            let mut stream = client
                .fetch_all(urls)
                .concurrency(c)
                .duplicates(volley::batch::Duplicates::Fetch)
                .keep_bodies(false)
                .stream();
            while stream.next().await.is_some() {}
            (stream.summary().ok, stream.summary().failed)
        })
    })
}

/// W2's floor: what the kernel's work costs a client that does nothing else. Bare non-blocking
/// sockets and no event loop: for each URL in turn `socket`, `TCP_NODELAY`, `connect`, and the
/// request written at once (on loopback the handshake is over when `connect` returns; if not,
/// the write blocks until it is); then each response read in turn with blocking reads (the
/// last one sets the wall time). No timeouts, no pool, no parsing beyond `Content-Length`, no
/// registration with epoll. The sockets are closed after the clock stops, as the other clients'
/// pooled connections are.
fn client_bare(urls: Vec<String>) -> Run {
    let n = urls.len();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    let run = measure(n, 1.0, || {
        let mut failed = 0;
        for u in &urls {
            match bare_send(u) {
                Ok(s) => conns.push(s),
                Err(_) => failed += 1,
            }
        }
        let mut ok = 0;
        for s in &mut conns {
            match s.set_nonblocking(false).and_then(|()| read_response(s)) {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        (ok, failed)
    });
    drop(conns);
    run
}

/// An `http://authority/path` URL's authority and path (path and query), for the hand-written
/// clients.
fn split_http(url: &str) -> io::Result<(&str, &str)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::other(format!("not an http URL: {url}")))?;
    Ok(rest.split_at(rest.find('/').unwrap_or(rest.len())))
}

/// The hand-written clients' GET.
fn get_request(authority: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\naccept: */*\r\n\r\n")
}

/// Connects a non-blocking socket to `url`'s `ip:port` and writes its GET.
fn bare_send(url: &str) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (authority, path) = split_http(url)?;
    let addr: SocketAddr = authority.parse().map_err(io::Error::other)?;
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut s = TcpStream::from(fd);
    s.set_nodelay(true)?;
    let req = get_request(authority, path);
    let sent = match s.write(req.as_bytes()) {
        Ok(k) => k,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if sent < req.len() {
        // Still connecting, or a short write: finish it blocking.
        s.set_nonblocking(false)?;
        s.write_all(&req.as_bytes()[sent..])?;
    }
    Ok(s)
}

fn client_reqwest(urls: Vec<String>, c: usize) -> Run {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    volley_peers::install_ring_provider();
    let client = reqwest::Client::new();
    let n = urls.len();
    measure(n, 1.0, || {
        rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(c));
            let ok = Arc::new(AtomicU64::new(0));
            let failed = Arc::new(AtomicU64::new(0));
            for url in urls {
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                let client = client.clone();
                let (ok, failed) = (ok.clone(), failed.clone());
                // Detached: a finished task's memory goes at once, not when joined.
                drop(tokio::spawn(async move {
                    let result = async { client.get(url).send().await?.bytes().await }.await;
                    match result {
                        Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    drop(permit);
                }));
            }
            // Every permit back: every task is done.
            let _all = sem.acquire_many(c as u32).await.expect("semaphore");
            (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
        })
    })
}

/// Blocking, one keep-alive connection, one request after another.
fn client_serial(urls: Vec<String>, full: usize) -> Run {
    let n = urls.len();
    let scale = full as f64 / n as f64;
    measure(n, scale, || {
        let mut conn: Option<(TcpStream, String)> = None;
        let (mut ok, mut failed) = (0, 0);
        for u in &urls {
            let result = (|| -> io::Result<()> {
                let (authority, path) = split_http(u)?;
                if conn.as_ref().is_none_or(|(_, a)| a != authority) {
                    let s = TcpStream::connect(authority)?;
                    s.set_nodelay(true)?;
                    conn = Some((s, authority.to_string()));
                }
                let (s, _) = conn.as_mut().expect("connection");
                s.write_all(get_request(authority, path).as_bytes())?;
                read_response(s)
            })();
            match result {
                Ok(()) => ok += 1,
                Err(_) => {
                    failed += 1;
                    conn = None;
                }
            }
        }
        (ok, failed)
    })
}

/// Reads one `Content-Length` response (head and body) from `s`.
fn read_response(s: &mut TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no content-length"))?;
            let mut have = buf.len() - (end + 4);
            while have < len {
                match s.read(&mut chunk)? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    k => have += k,
                }
            }
            return Ok(());
        }
        match s.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            k => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

fn run_client_child(args: &Args) -> Result<(), String> {
    let (soft, _) = raise_nofile();
    let name = args.client.as_deref().expect("client");
    let workload = args
        .workload
        .as_deref()
        .ok_or("--client needs --workload")?;
    // An S workload's -n sets n and c (all at once), another's n and at most c.
    let mut spec = run_spec(args, workload).ok_or("unknown workload")?;
    if let (false, Some(n)) = (is_scaling(workload), args.n) {
        spec.n = n;
        spec.c = spec.c.min(n);
    }
    if args.addrs.is_empty() {
        return Err("--client needs --addrs".into());
    }
    if is_scaling(workload) && (spec.c as u64).saturating_add(FD_MARGIN) > soft {
        eprintln!(
            "compare --client {name}: RLIMIT_NOFILE {soft} is short of the {} descriptors \
             {workload} needs",
            spec.c as u64 + FD_MARGIN
        );
    }
    let full = spec.n;
    let count = if name == "serial" {
        SERIAL_SAMPLE.min(full)
    } else {
        full
    };
    let urls: Vec<String> = (0..count).map(|i| url(&spec, &args.addrs, i)).collect();
    let run = match name {
        "volley" => client_volley(urls, spec.c),
        "volley-stream" => client_volley_stream(urls, spec.c),
        "reqwest" => client_reqwest(urls, spec.c),
        "serial" => client_serial(urls, full),
        "bare" => client_bare(urls),
        other => return Err(format!("client {other:?} does not run in this binary")),
    };
    println!("{}", run.to_json());
    Ok(())
}

/// The aiohttp client: same arguments and output as `--client`.
const PYTHON_CLIENT: &str = r#"
import asyncio, json, resource, sys, time

def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0

def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            most = int(f.read())
    except (OSError, ValueError):
        most = 1 << 20
    if hard != resource.RLIM_INFINITY and hard < most:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, most))
            hard = most
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    import aiohttp
    spec = json.loads(sys.argv[1])
    addrs, paths, n, c, bust = spec["addrs"], spec["paths"], spec["n"], spec["c"], spec["bust"]
    urls = ["http://%s%s%s" % (addrs[i % len(addrs)], paths[i % len(paths)],
                               ("?n=%d" % i) if bust else "") for i in range(n)]
    counts = {"ok": 0, "failed": 0}

    async def run():
        sem = asyncio.Semaphore(c)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async def one(url):
                try:
                    async with session.get(url) as resp:
                        await resp.read()
                    counts["ok"] += 1
                except Exception:
                    counts["failed"] += 1
                finally:
                    sem.release()
            tasks = set()
            for url in urls:
                await sem.acquire()
                t = asyncio.ensure_future(one(url))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(list(tasks))

    base = status_kb("VmRSS")
    t0 = time.perf_counter()
    c0 = time.process_time()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    asyncio.run(run())
    wall = time.perf_counter() - t0
    c1 = time.process_time()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "cpu": c1 - c0, "user": r1.ru_utime - r0.ru_utime,
                      "sys": r1.ru_stime - r0.ru_stime, "maxrss_kb": r1.ru_maxrss,
                      "base_rss_kb": base, "n": n, "ok": counts["ok"],
                      "failed": counts["failed"], "scale": 1}))

main()
"#;

// ---------------------------------------------------------------------------------------------
// The orchestrator.

/// Runs one client on one workload in a child process.
fn run_child(
    args: &Args,
    client: &str,
    workload: &str,
    spec: &Spec,
    addrs: &[SocketAddr],
    py_script: Option<&std::path::Path>,
) -> Result<Run, String> {
    if client == "wrk" {
        return client_wrk(&url(spec, addrs, 0));
    }
    let addrs_s: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    let mut cmd = if client == "aiohttp" {
        let python = args.python.as_deref().ok_or("no --python")?;
        let script = py_script.ok_or("no script")?;
        let paths: Vec<String> = spec.paths.iter().map(|p| format!("\"{p}\"")).collect();
        let n = if workload == "W3" { spec.n / 4 } else { spec.n };
        let json = format!(
            "{{\"addrs\": [{}], \"paths\": [{}], \"n\": {}, \"c\": {}, \"bust\": {}}}",
            addrs_s
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(","),
            paths.join(","),
            n,
            spec.c,
            if spec.bust { "true" } else { "false" }
        );
        let mut cmd = Command::new(python);
        cmd.arg(script).arg(json);
        cmd
    } else {
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.args(["--client", client, "--workload", workload, "--addrs"])
            .arg(addrs_s.join(","));
        if args.quick {
            cmd.arg("--quick");
        }
        if is_scaling(workload) && args.n.is_some() {
            cmd.arg("-n").arg(spec.n.to_string());
        }
        cmd
    };
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("{client}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    Run::from_json(line).ok_or_else(|| {
        format!(
            "{client} {workload}: exit {}, output {stdout:?}",
            out.status
        )
    })
}

/// wrk as a W3 client (see [`volley_peers::wrk`]): its requests and requests per second are
/// wrk's own report, so `wall` is requests / (requests/s), wrk's timing; its CPU time is the
/// wrk process's own. `ok` is the requests answered 2xx or 3xx, `failed` the others and the
/// socket errors. Its memory is not measured (`maxrss_kb` 0).
fn client_wrk(url: &str) -> Result<Run, String> {
    let run = volley_peers::wrk(url, 50, volley_peers::WRK_SECONDS)?;
    Ok(Run {
        wall: run.requests / run.rps,
        cpu: run.user_s + run.sys_s,
        user: run.user_s,
        sys: run.sys_s,
        maxrss_kb: 0.0,
        base_rss_kb: 0.0,
        n: run.requests,
        ok: run.requests - run.non_2xx,
        failed: run.non_2xx + run.socket_errors,
        scale: 1.0,
    })
}

/// Medians of one client on one workload.
#[derive(Clone, Debug)]
struct Summary {
    rounds: usize,
    wall: f64,
    wall_min: f64,
    wall_max: f64,
    cpu: f64,
    maxrss_mb: f64,
    base_rss_mb: f64,
    rps: f64,
    ok: f64,
    failed: f64,
    scale: f64,
}

fn summarize(runs: &[Run]) -> Summary {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let walls: Vec<f64> = runs.iter().map(Run::wall_scaled).collect();
    Summary {
        rounds: runs.len(),
        wall: median(walls.clone()),
        wall_min: walls.iter().copied().fold(f64::INFINITY, f64::min),
        wall_max: walls.iter().copied().fold(0.0, f64::max),
        cpu: m(|r| r.cpu),
        maxrss_mb: m(|r| r.maxrss_kb / 1024.0),
        base_rss_mb: m(|r| r.base_rss_kb / 1024.0),
        rps: m(Run::rps),
        ok: m(|r| r.ok),
        failed: m(|r| r.failed),
        scale: m(|r| r.scale),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    if args.serve {
        if let Err(e) = serve() {
            eprintln!("compare --serve: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.client.is_some() {
        if let Err(e) = run_client_child(&args) {
            eprintln!("compare --client: {e}");
            std::process::exit(1);
        }
        return;
    }
    orchestrate(&args);
}

fn orchestrate(args: &Args) {
    // Before the server starts: it and the clients inherit these limits.
    let (fd_soft, fd_hard) = raise_nofile();
    let server = ServerProcess::start().expect("start the delay server");
    // W0-W2 use the listeners on 127.0.0.1, the S workloads all of them.
    let local: Vec<SocketAddr> = server
        .addrs
        .iter()
        .copied()
        .filter(|a| a.ip() == SPREAD[0])
        .collect();
    let ports_of = |addrs: &[SocketAddr]| addrs.iter().map(SocketAddr::port).collect::<Vec<_>>();
    let load_start = loadavg();
    println!(
        "delay server: child pid {} on 127.0.0.1 ports {:?} (tokio::net, 1 worker, backlog \
         min(65535, somaxconn = {}))",
        server.pid(),
        ports_of(&local),
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap_or_default()
            .trim()
    );
    let scaling = args.workloads.iter().any(|w| is_scaling(w));
    if scaling {
        let mut by_ip: Vec<String> = Vec::new();
        for ip in SPREAD {
            let here: Vec<SocketAddr> = server
                .addrs
                .iter()
                .copied()
                .filter(|a| a.ip() == ip)
                .collect();
            if !here.is_empty() {
                by_ip.push(format!("{ip} ports {:?}", ports_of(&here)));
            }
        }
        println!(
            "  S workloads: {} listeners: {}",
            server.addrs.len(),
            by_ip.join(", ")
        );
        println!(
            "descriptors: RLIMIT_NOFILE soft {fd_soft}, hard {fd_hard} (fs.nr_open {}), here and \
             in the server and clients",
            std::fs::read_to_string("/proc/sys/fs/nr_open")
                .unwrap_or_default()
                .trim()
        );
    }
    println!(
        "cores {}, loadavg at start {load_start}{}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if args.quick { ", --quick" } else { "" }
    );

    let mut notes: Vec<String> = Vec::new();
    let py_path = std::env::temp_dir().join(format!("volley-compare-{}.py", std::process::id()));
    // The S workloads run aiohttp only if --clients names it.
    let wants_aiohttp = args.clients.iter().any(|c| c == "aiohttp")
        && (args.clients_given || args.workloads.iter().any(|w| !is_scaling(w)));
    let python_ok = match &args.python {
        Some(py) if wants_aiohttp => {
            std::fs::write(&py_path, PYTHON_CLIENT).expect("write the python client");
            let ok = Command::new(py)
                .args(["-c", "import aiohttp"])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                notes.push(format!("aiohttp skipped: {py} cannot import aiohttp"));
            }
            ok
        }
        _ => {
            if wants_aiohttp {
                notes.push("aiohttp skipped: no --python".into());
            }
            false
        }
    };

    // results[workload][client] = runs
    let mut results: BTreeMap<String, BTreeMap<String, Vec<Run>>> = BTreeMap::new();
    let wrk_ok = volley_peers::wrk_available();
    for workload in &args.workloads {
        let spec = run_spec(args, workload).expect("workload");
        let addrs: Vec<SocketAddr> = match workload.as_str() {
            "W3" => match args.nginx_port {
                Some(p) => vec![SocketAddr::from((SPREAD[0], p))],
                None => {
                    notes.push("W3 skipped: no nginx (--nginx-port)".into());
                    continue;
                }
            },
            "W2" => local.clone(),
            w if is_scaling(w) => server.addrs.clone(),
            _ => local[..1].to_vec(),
        };
        let ports = ports_of(&addrs);
        let clients: Vec<&str> = args
            .clients
            .iter()
            .map(String::as_str)
            .filter(|c| *c != "aiohttp" || python_ok)
            .filter(|c| *c != "serial" || workload == "W1")
            .filter(|c| *c != "bare" || workload == "W2")
            .filter(|c| *c != "wrk" || (workload == "W3" && wrk_ok))
            .filter(|c| !is_scaling(workload) || args.clients_given || SCALING_CLIENTS.contains(c))
            .collect();
        let rounds = match workload.as_str() {
            "W0" => args.rounds_slow,
            _ => args.rounds,
        };
        println!();
        if is_scaling(workload) {
            println!(
                "{workload}: {} x GET {:?} at concurrency {} on {} listeners (request n to \
                 listener n % {}: at most {} per ip:port), {rounds} round(s), loadavg {}",
                spec.n,
                spec.paths,
                spec.c,
                addrs.len(),
                addrs.len(),
                spec.n.div_ceil(addrs.len()),
                loadavg()
            );
            // One descriptor per connection in the client and in the server, which have this
            // process's limits.
            let need = spec.c as u64 + FD_MARGIN;
            if fd_soft < need {
                let note = format!(
                    "{workload} skipped: {} connections at once need ~{need} descriptors in the \
                     client and in the server, and RLIMIT_NOFILE is {fd_soft} (hard {fd_hard}, \
                     which only root with CAP_SYS_RESOURCE may raise)",
                    spec.c
                );
                println!("  {note}");
                notes.push(note);
                continue;
            }
            if addrs.len() < PORTS * SPREAD.len() {
                notes.push(format!(
                    "{workload}: the server listens on {} addresses x ports only, not {}",
                    addrs.len(),
                    PORTS * SPREAD.len()
                ));
            }
        } else {
            println!(
                "{workload}: {} x GET {:?} at concurrency {} on ports {ports:?}, {rounds} \
                 round(s), loadavg {}",
                spec.n,
                spec.paths,
                spec.c,
                loadavg()
            );
        }
        if workload == "W3" && !wrk_ok && args.clients.iter().any(|c| c == "wrk") {
            notes.push("W3: wrk not available, no ceiling".into());
        }
        let per = results.entry(workload.clone()).or_default();
        for round in 0..rounds {
            let mut order = clients.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for client in order {
                // Let the previous run's sockets close.
                std::thread::sleep(Duration::from_millis(match workload.as_str() {
                    "W2" => 2000,
                    w if is_scaling(w) => (spec.n as u64 / 6).max(2000),
                    _ => 300,
                }));
                match run_child(args, client, workload, &spec, &addrs, Some(&py_path)) {
                    Ok(run) => {
                        println!(
                            "  round {} {:<13} wall {:>8.3} s{} cpu {:>6.3} s (user {:.2} sys \
                             {:.2}) rss {:>6.1} MB (base {:.1}) ok {} failed {} req/s {:.0}",
                            round + 1,
                            client,
                            run.wall_scaled(),
                            if run.scale != 1.0 {
                                format!(" (= {:.3} s x {})", run.wall, run.scale)
                            } else {
                                String::new()
                            },
                            run.cpu,
                            run.user,
                            run.sys,
                            run.maxrss_kb / 1024.0,
                            run.base_rss_kb / 1024.0,
                            run.ok,
                            run.failed,
                            run.rps()
                        );
                        per.entry(client.to_string()).or_default().push(run);
                    }
                    Err(e) => {
                        println!("  round {} {client}: FAILED: {e}", round + 1);
                        notes.push(format!("{workload} {client} round {}: {e}", round + 1));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_file(&py_path);
    let server_addrs = server.addrs.clone();
    drop(server);
    let ran = |w: &str, c: &str| results.get(w).is_some_and(|p| p.contains_key(c));
    if ran("W1", "serial") {
        notes.push(format!(
            "W1 serial: {SERIAL_SAMPLE} requests timed on one keep-alive connection, wall x {}; \
             its CPU and RSS are the sample's",
            spec("W1", args.quick).map_or(0, |s| s.n) / SERIAL_SAMPLE
        ));
    }
    if results.contains_key("W2") {
        notes.push(format!(
            "W2: the delay server listens on {PORTS} ports (backlog capped by somaxconn each); \
             request n goes to port n % {PORTS}; RLIMIT_NOFILE raised to the hard limit in \
             server and clients"
        ));
    }
    if ran("W2", "bare") {
        notes.push(
            "W2 bare: bare non-blocking sockets, connect and write each request in turn, then \
             blocking reads; no event loop, timeouts or pool: the floor of this machine"
                .into(),
        );
    }
    if ran("W3", "aiohttp") {
        notes.push("W3 aiohttp: a quarter of the requests (req/s is a rate)".into());
    }
    if results.keys().any(|w| is_scaling(w)) {
        notes.push(format!(
            "S workloads: the delay server listens on {PORTS} ports on each of 127.0.0.1 to \
             127.0.0.{} ({} listeners, Linux routes 127/8 to lo); request n goes to listener n \
             % {}, to stay below the ephemeral ports per destination and the listen backlog; \
             RLIMIT_NOFILE {fd_soft} (hard {fd_hard}) in server and clients",
            SPREAD.len(),
            server_addrs.len(),
            server_addrs.len()
        ));
    }

    let sums: BTreeMap<String, BTreeMap<String, Summary>> = results
        .iter()
        .map(|(w, per)| {
            (
                w.clone(),
                per.iter()
                    .map(|(c, runs)| (c.clone(), summarize(runs)))
                    .collect(),
            )
        })
        .collect();
    // wrk's median requests per second, the W3 ceiling (the JSON's `wrk_rps`).
    let wrk_rps = sums.get("W3").and_then(|p| p.get("wrk")).map(|s| s.rps);

    // The table.
    println!();
    println!(
        "medians (loadavg at start {load_start}, at end {})",
        loadavg()
    );
    println!(
        "  {:<4} {:<13} {:>6} {:>9} {:>7} {:>9} {:>8} {:>9} {:>8} {:>9}",
        "wl",
        "client",
        "rounds",
        "wall s",
        "/floor",
        "req/s",
        "cpu s",
        "peak MB",
        "base MB",
        "ok/failed"
    );
    // W0-W3 as they sort, then the S workloads by size.
    let mut order: Vec<(&String, &BTreeMap<String, Summary>)> = sums.iter().collect();
    order.sort_by_key(|(w, _)| {
        let size = is_scaling(w).then(|| run_spec(args, w).map_or(0, |s| s.n));
        (size.is_some(), size)
    });
    for (w, per) in order {
        let floor = spec(w, args.quick).and_then(|s| s.floor);
        for c in CLIENTS {
            let Some(s) = per.get(*c) else { continue };
            println!(
                "  {:<4} {:<13} {:>6} {:>9.3} {:>7} {:>9.0} {:>8.3} {:>9.1} {:>8.1} {:>9}",
                w,
                c,
                s.rounds,
                s.wall,
                floor.map_or("-".into(), |f| format!("{:.3}", s.wall / f)),
                s.rps,
                s.cpu,
                s.maxrss_mb,
                s.base_rss_mb,
                format!("{}/{}", s.ok, s.failed)
            );
        }
    }

    // The scaling study.
    let scaling_rows = scaling_rows(args, &sums);
    if !scaling_rows.is_empty() {
        println!();
        println!("scaling (medians; overhead = wall - 1 s; per request: / n)");
        println!(
            "  {:<13} {:>6} {:>6} {:>8} {:>9} {:>7} {:>9} {:>8} {:>8} {:>7} {:>11}",
            "client",
            "n",
            "rounds",
            "wall s",
            "overhead",
            "cpu s",
            "cpu us/r",
            "peak MB",
            "base MB",
            "KB/req",
            "ok/failed"
        );
        for r in &scaling_rows {
            println!(
                "  {:<13} {:>6} {:>6} {:>8.3} {:>9.3} {:>7.3} {:>9.1} {:>8.1} {:>8.1} {:>7.2} \
                 {:>11}",
                r.client,
                r.n,
                r.rounds,
                r.wall,
                r.overhead,
                r.cpu,
                r.cpu_us_per_req,
                r.peak_mb,
                r.base_mb,
                r.kb_per_req,
                format!("{}/{}", r.ok, r.failed)
            );
        }
    }

    // The goals.
    let goals = goals(&sums, args.quick);
    println!();
    println!(
        "goals for volley{}:",
        if args.quick {
            " (--quick: indicative only)"
        } else {
            ""
        }
    );
    for (goal, value, met) in &goals {
        println!(
            "  {:<40} {:<28} {}",
            goal,
            value,
            match met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "n/a",
            }
        );
    }
    if let Some(v) = sums.get("W2").and_then(|p| p.get("volley")) {
        let n = spec("W2", args.quick).map_or(1.0, |s| s.n as f64);
        println!(
            "  volley W2 memory per in-flight request: ({:.1} - {:.1}) MB / {n} = {:.2} KB",
            v.maxrss_mb,
            v.base_rss_mb,
            (v.maxrss_mb - v.base_rss_mb) * 1024.0 / n
        );
    }
    for n in &notes {
        println!("  note: {n}");
    }

    let scaling_json = scaling.then(|| {
        scaling_json(
            &scaling_rows,
            &server_addrs,
            fd_soft,
            fd_hard,
            args.n.is_some(),
        )
    });
    if let Err(e) = write_json(
        &args.json,
        args,
        &results,
        &sums,
        &goals,
        wrk_rps,
        &notes,
        &load_start,
        scaling_json.as_deref(),
    ) {
        eprintln!("compare: writing {}: {e}", args.json);
    } else {
        println!("wrote {}", args.json);
    }
    // The chart has W0-W3 only: an S-only run leaves it as it is.
    if sums.keys().all(|w| is_scaling(w)) && scaling {
        println!("{} left as it is (no W0-W3 results)", args.svg);
        return;
    }
    if let Some(dir) = std::path::Path::new(&args.svg).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&args.svg, svg(&sums, args.quick)) {
        Ok(()) => println!("wrote {}", args.svg),
        Err(e) => eprintln!("compare: writing {}: {e}", args.svg),
    }
}

/// One client at one size, in the scaling table.
struct ScalingRow {
    workload: String,
    client: String,
    n: usize,
    rounds: usize,
    wall: f64,
    /// Wall less the 1 s floor.
    overhead: f64,
    cpu: f64,
    cpu_us_per_req: f64,
    peak_mb: f64,
    base_mb: f64,
    /// (peak - base RSS) / n.
    kb_per_req: f64,
    ok: f64,
    failed: f64,
}

/// The S workloads' medians, per client (in [`CLIENTS`]' order) and size.
fn scaling_rows(
    args: &Args,
    sums: &BTreeMap<String, BTreeMap<String, Summary>>,
) -> Vec<ScalingRow> {
    let mut sizes: Vec<(usize, &String)> = sums
        .keys()
        .filter(|w| is_scaling(w))
        .filter_map(|w| Some((run_spec(args, w)?.n, w)))
        .collect();
    sizes.sort();
    let mut rows = Vec::new();
    for c in CLIENTS {
        for (n, w) in &sizes {
            let Some(s) = sums[*w].get(*c) else { continue };
            let floor = spec(w, args.quick).and_then(|s| s.floor).unwrap_or(0.0);
            let n = *n as f64;
            rows.push(ScalingRow {
                workload: w.to_string(),
                client: c.to_string(),
                n: n as usize,
                rounds: s.rounds,
                wall: s.wall,
                overhead: s.wall - floor,
                cpu: s.cpu,
                cpu_us_per_req: s.cpu / n * 1e6,
                peak_mb: s.maxrss_mb,
                base_mb: s.base_rss_mb,
                kb_per_req: (s.maxrss_mb - s.base_rss_mb) * 1024.0 / n,
                ok: s.ok,
                failed: s.failed,
            });
        }
    }
    rows
}

/// The `"scaling"` value of the JSON: the listeners, the descriptor limits and the rows.
fn scaling_json(
    rows: &[ScalingRow],
    listeners: &[SocketAddr],
    fd_soft: u64,
    fd_hard: u64,
    n_override: bool,
) -> String {
    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "    \"listeners\": [{}],",
        listeners
            .iter()
            .map(|a| json_str(&a.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        j,
        "    \"rlimit_nofile\": {{\"soft\": {fd_soft}, \"hard\": {fd_hard}}},"
    );
    let _ = writeln!(j, "    \"n_override\": {n_override},");
    j.push_str("    \"rows\": [");
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "\n      {{\"workload\": {}, \"client\": {}, \"n\": {}, \"rounds\": {}, \
                 \"wall_s\": {:.6}, \"overhead_s\": {:.6}, \"cpu_s\": {:.6}, \
                 \"cpu_us_per_req\": {:.2}, \"peak_rss_mb\": {:.2}, \"base_rss_mb\": {:.2}, \
                 \"kb_per_req\": {:.3}, \"ok\": {}, \"failed\": {}}}",
                json_str(&r.workload),
                json_str(&r.client),
                r.n,
                r.rounds,
                r.wall,
                r.overhead,
                r.cpu,
                r.cpu_us_per_req,
                r.peak_mb,
                r.base_mb,
                r.kb_per_req,
                r.ok,
                r.failed
            )
        })
        .collect();
    j.push_str(&items.join(","));
    j.push_str("\n    ]\n  }");
    j
}

type Goal = (String, String, Option<bool>);

fn goals(sums: &BTreeMap<String, BTreeMap<String, Summary>>, quick: bool) -> Vec<Goal> {
    let get = |w: &str, c: &str| sums.get(w).and_then(|p| p.get(c)).cloned();
    let mut g: Vec<Goal> = Vec::new();
    let w0_limit = if quick { 1.01 } else { 5.05 };
    if let Some(v) = get("W0", "volley") {
        g.push((
            format!("W0 wall < {w0_limit} s"),
            format!("{:.3} s", v.wall),
            Some(v.wall < w0_limit),
        ));
    }
    if let Some(v) = get("W1", "volley") {
        g.push((
            "W1 wall <= 0.515 s".into(),
            format!("{:.3} s", v.wall),
            Some(v.wall <= 0.515),
        ));
        if let Some(r) = get("W1", "reqwest") {
            g.push((
                "W1 wall <= 0.97 x reqwest".into(),
                format!("{:.3} x ({:.3} s)", v.wall / r.wall, r.wall),
                Some(v.wall <= 0.97 * r.wall),
            ));
        }
    }
    // Issue 18's goals for W2 and W3, for both ways of running the batch.
    for client in ["volley", "volley-stream"] {
        if let Some(v) = get("W2", client) {
            g.push((
                format!("W2 {client} wall <= 1.2 s"),
                format!("{:.3} s", v.wall),
                Some(v.wall <= 1.2),
            ));
            g.push((
                format!("W2 {client} CPU <= 0.4 s"),
                format!("{:.3} s", v.cpu),
                Some(v.cpu <= 0.4),
            ));
            g.push((
                format!("W2 {client} peak RSS <= 32 MB"),
                format!("{:.1} MB", v.maxrss_mb),
                Some(v.maxrss_mb <= 32.0),
            ));
        }
    }
    let per_request = |s: &Summary| s.cpu / s.ok.max(1.0);
    for client in ["volley", "volley-stream"] {
        if let (Some(v), Some(w)) = (get("W3", client), get("W3", "wrk")) {
            g.push((
                format!("W3 {client} req/s >= 0.90 x wrk"),
                format!("{:.3} x ({:.0} vs {:.0})", v.rps / w.rps, v.rps, w.rps),
                Some(v.rps >= 0.9 * w.rps),
            ));
            let (vc, wc) = (per_request(&v), per_request(&w));
            g.push((
                format!("W3 {client} CPU per request <= 1.15 x wrk"),
                format!("{:.3} x ({:.2} vs {:.2} us)", vc / wc, vc * 1e6, wc * 1e6),
                Some(vc <= 1.15 * wc),
            ));
        }
    }
    g
}

fn json_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[allow(clippy::too_many_arguments)]
fn write_json(
    path: &str,
    args: &Args,
    results: &BTreeMap<String, BTreeMap<String, Vec<Run>>>,
    sums: &BTreeMap<String, BTreeMap<String, Summary>>,
    goals: &[Goal],
    wrk_rps: Option<f64>,
    notes: &[String],
    load_start: &str,
    scaling: Option<&str>,
) -> io::Result<()> {
    let quick = args.quick;
    let mut j = String::from("{\n");
    let _ = writeln!(j, "  \"quick\": {quick},");
    let _ = writeln!(
        j,
        "  \"cores\": {},",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(j, "  \"loadavg_start\": {},", json_str(load_start));
    let _ = writeln!(j, "  \"loadavg_end\": {},", json_str(&loadavg()));
    let _ = writeln!(
        j,
        "  \"wrk_rps\": {},",
        wrk_rps.map_or("null".into(), |r| format!("{r:.0}"))
    );
    j.push_str("  \"workloads\": {\n");
    let mut first_w = true;
    for (w, per) in results {
        if !first_w {
            j.push_str(",\n");
        }
        first_w = false;
        let sp = run_spec(args, w).expect("workload");
        let _ = write!(
            j,
            "    \"{w}\": {{\"n\": {}, \"concurrency\": {}, \"paths\": [{}], \"floor_s\": {}, \"clients\": {{",
            sp.n,
            sp.c,
            sp.paths.iter().map(|p| json_str(p)).collect::<Vec<_>>().join(", "),
            sp.floor.map_or("null".into(), |f| f.to_string())
        );
        let mut first_c = true;
        for (c, runs) in per {
            let s = &sums[w][c];
            if !first_c {
                j.push(',');
            }
            first_c = false;
            let _ = write!(
                j,
                "\n      \"{c}\": {{\"median\": {{\"wall_s\": {:.6}, \"wall_min_s\": {:.6}, \
                 \"wall_max_s\": {:.6}, \"cpu_s\": {:.6}, \"peak_rss_mb\": {:.2}, \
                 \"base_rss_mb\": {:.2}, \"req_per_s\": {:.1}, \"ok\": {}, \"failed\": {}, \
                 \"wall_scale\": {}}}, \"runs\": [{}]}}",
                s.wall,
                s.wall_min,
                s.wall_max,
                s.cpu,
                s.maxrss_mb,
                s.base_rss_mb,
                s.rps,
                s.ok,
                s.failed,
                s.scale,
                runs.iter().map(Run::to_json).collect::<Vec<_>>().join(", ")
            );
        }
        j.push_str("\n    }}");
    }
    j.push_str("\n  },\n");
    if let Some(scaling) = scaling {
        let _ = writeln!(j, "  \"scaling\": {scaling},");
    }
    j.push_str("  \"goals\": [");
    let goal_items: Vec<String> = goals
        .iter()
        .map(|(g, v, m)| {
            format!(
                "\n    {{\"goal\": {}, \"value\": {}, \"met\": {}}}",
                json_str(g),
                json_str(v),
                m.map_or("null".into(), |b| b.to_string())
            )
        })
        .collect();
    j.push_str(&goal_items.join(","));
    j.push_str("\n  ],\n  \"notes\": [");
    j.push_str(
        &notes
            .iter()
            .map(|n| format!("\n    {}", json_str(n)))
            .collect::<Vec<_>>()
            .join(","),
    );
    j.push_str("\n  ]\n}\n");
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(path, j)
}

// ---------------------------------------------------------------------------------------------
// The SVG chart.

fn color(client: &str) -> &'static str {
    match client {
        "volley" => "#e8590c",
        "reqwest" => "#1c7ed6",
        "aiohttp" => "#2f9e44",
        "volley-stream" => "#fd7e14",
        "serial" => "#868e96",
        "bare" => "#adb5bd",
        _ => "#495057",
    }
}

/// One bar: client, value, label.
type Bar = (String, f64, String);

/// One panel: groups (workloads) of bars (client, value, label).
struct Panel {
    title: String,
    groups: Vec<(String, Vec<Bar>)>,
    /// Draw a dashed line at this value (the floor).
    reference: Option<(f64, String)>,
    /// Cap the axis (bars beyond are clipped and marked).
    cap: Option<f64>,
}

fn svg(sums: &BTreeMap<String, BTreeMap<String, Summary>>, quick: bool) -> String {
    let mut panels = Vec::new();
    // Panel 1: wall time over the floor, W0..W2.
    let mut groups = Vec::new();
    for w in ["W0", "W1", "W2"] {
        let Some(per) = sums.get(w) else { continue };
        let Some(floor) = spec(w, quick).and_then(|s| s.floor) else {
            continue;
        };
        let bars: Vec<_> = CLIENTS
            .iter()
            .filter_map(|c| {
                let s = per.get(*c)?;
                let label = if s.scale != 1.0 {
                    format!("{:.1}x (est.)", s.wall / floor)
                } else {
                    format!("{:.2}x ({:.3} s)", s.wall / floor, s.wall)
                };
                Some((c.to_string(), s.wall / floor, label))
            })
            .collect();
        groups.push((format!("{w} (floor {floor} s)"), bars));
    }
    if !groups.is_empty() {
        panels.push(Panel {
            title: "Wall time / floor (lower is better)".into(),
            groups,
            reference: Some((1.0, "floor".into())),
            cap: Some(4.0),
        });
    }
    // Panel 2: W2 CPU and memory.
    if let Some(per) = sums.get("W2") {
        let cpu: Vec<_> = CLIENTS
            .iter()
            .filter_map(|c| {
                per.get(*c)
                    .map(|s| (c.to_string(), s.cpu, format!("{:.2} s", s.cpu)))
            })
            .collect();
        panels.push(Panel {
            title: "W2: client CPU seconds (lower is better)".into(),
            groups: vec![("W2 CPU".into(), cpu)],
            reference: None,
            cap: None,
        });
        let rss: Vec<_> = CLIENTS
            .iter()
            .filter_map(|c| {
                per.get(*c)
                    .map(|s| (c.to_string(), s.maxrss_mb, format!("{:.0} MB", s.maxrss_mb)))
            })
            .collect();
        panels.push(Panel {
            title: "W2: client peak RSS, MB (lower is better)".into(),
            groups: vec![("W2 peak RSS".into(), rss)],
            reference: None,
            cap: None,
        });
    }
    // Panel 3: W3 req/s.
    if let Some(per) = sums.get("W3") {
        let bars: Vec<_> = CLIENTS
            .iter()
            .filter_map(|c| {
                per.get(*c).map(|s| {
                    let label = match *c {
                        "wrk" => format!("{:.0} (ceiling)", s.rps),
                        _ => format!("{:.0}", s.rps),
                    };
                    (c.to_string(), s.rps, label)
                })
            })
            .collect();
        panels.push(Panel {
            title: "W3: keep-alive req/s from nginx, 50 conns (higher is better)".into(),
            groups: vec![("W3 req/s".into(), bars)],
            reference: None,
            cap: None,
        });
    }

    let width = 760.0;
    let label_w = 190.0;
    let bar_h = 18.0;
    let mut y = 40.0;
    let mut body = String::new();
    for p in &panels {
        let _ = writeln!(
            body,
            "<text x=\"10\" y=\"{y}\" font-weight=\"bold\">{}</text>",
            esc(&p.title)
        );
        y += 12.0;
        let max = p
            .groups
            .iter()
            .flat_map(|(_, b)| b.iter().map(|x| x.1))
            .fold(0.0_f64, f64::max);
        let max = p.cap.map_or(max, |c| max.min(c)).max(1e-9) * 1.05;
        let plot_w = width - label_w - 150.0;
        let top = y;
        for (g, bars) in &p.groups {
            y += 8.0;
            let _ = writeln!(
                body,
                "<text x=\"10\" y=\"{:.0}\" fill=\"#333\">{}</text>",
                y + 12.0,
                esc(g)
            );
            for (client, v, label) in bars {
                let w = (v.min(max) / max * plot_w).max(1.0);
                let clipped = p.cap.is_some_and(|c| *v > c);
                let _ = writeln!(
                    body,
                    "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\" font-size=\"11\">{}</text>\
                     <rect x=\"{label_w}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.0}\" font-size=\"11\">{}{}</text>",
                    label_w - 6.0,
                    y + 13.0,
                    esc(client),
                    y + 1.0,
                    bar_h - 3.0,
                    color(client),
                    label_w + w + 4.0,
                    y + 13.0,
                    if clipped { "&#8594; " } else { "" },
                    esc(label)
                );
                y += bar_h;
            }
        }
        if let Some((r, name)) = &p.reference {
            let x = label_w + r / max * plot_w;
            let _ = writeln!(
                body,
                "<line x1=\"{x:.1}\" y1=\"{top:.0}\" x2=\"{x:.1}\" y2=\"{y:.0}\" stroke=\"#000\" \
                 stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{:.0}\" font-size=\"10\">{}</text>",
                x + 3.0,
                top + 8.0,
                esc(name)
            );
        }
        y += 30.0;
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{:.0}\" \
         viewBox=\"0 0 {width} {:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">volley vs peers on \
         loopback (medians{}; one client thread each)</text>\n{body}</svg>\n",
        y,
        y,
        if quick { ", --quick" } else { "" }
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
