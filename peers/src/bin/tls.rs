//! HTTPS on loopback: what a handshake costs and what keep-alive throughput over TLS is, volley's
//! client beside reqwest's (rustls), against a neutral tokio + tokio-rustls server.
//!
//! ```text
//! cargo run --release --manifest-path peers/Cargo.toml --bin tls
//! cargo run --release --manifest-path peers/Cargo.toml --bin tls -- --handshakes 500 -c 50 -n 100000 --rounds 3
//! ```
//!
//! # The server
//!
//! Neither volley nor hyper: the hand-written keep-alive server of `keepalive` (every request
//! head answered with the same 13-byte response), on a tokio multi-thread runtime with ONE
//! worker thread, in a child process (this binary with `--serve`). It listens on three ports of
//! 127.0.0.1: plain HTTP; HTTPS through tokio-rustls (rustls with the *ring* provider, TLS 1.3
//! and 1.2, ALPN `http/1.1`, the default server session cache, so TLS 1.3 sessions resume with
//! stateful tickets) presenting volley's committed TEST-ONLY certificate for `localhost`
//! (`../testserver/src/testcert/`, its keys are public); and a control port that answers every
//! connection with its counts of full and resumed TLS handshakes (what the report's
//! `full`/`resumed` columns show: the server's view, for either client).
//!
//! # The clients
//!
//! Every measurement runs in a child process of its own (this binary with `--child CLIENT
//! MODE`), which prints one line of numbers: the CPU time measured
//! (`CLOCK_PROCESS_CPUTIME_ID`) is that client's alone, and no client inherits another's state.
//! Both trust only the test CA, resolve `localhost` to 127.0.0.1 (`resolve`), and speak
//! HTTP/1.1; URLs are `https://localhost:PORT/` (SNI `localhost`) or `http://localhost:PORT/`.
//!
//! - `volley`: `volley::Runtime`, `Client::builder()` with `add_root_certificate(test CA)` and
//!   `tls_built_in_roots(false)`, default timeouts (on);
//! - `reqwest`: tokio current-thread runtime, `reqwest::Client::builder()` with
//!   `tls_certs_only([test CA])` (0.13's name for "these roots only"), `http1_only()`; built
//!   with `rustls-no-provider` and rustls's *ring* provider installed as the process default,
//!   so that both clients use the same rustls and the same cryptography (reqwest's `rustls`
//!   feature would bring aws-lc-rs instead).
//!
//! # The modes
//!
//! - `full`: H sequential GETs, each by a NEW client (`pool_max_idle_per_host(0)` as well), so
//!   each pays a TCP connect and a full TLS handshake (no session to resume);
//! - `resumed`: H sequential GETs by ONE client with `pool_max_idle_per_host(0)`: a new
//!   connection per request, resuming the TLS session (after 5 warm-up requests);
//! - `newconn`: as `resumed` over plain http: the TCP connect alone, for reference;
//! - `ka-tls` / `ka-http`: keep-alive throughput, N GETs by C tasks sharing one client (after a
//!   warm-up of W requests per connection), over https and over http.
//!
//! The handshake modes report the median and p90 of the request's wall time (send to end of
//! body; the client's construction and drop excluded), the CPU time of the requests alone per
//! request (`cpu/req`) and of the whole loop per request (`cpu/iter`: with `full`, building
//! and dropping a client each time). Clients alternate order every round; the summary gives
//! medians over rounds. The JSON report goes to `--json PATH` (default `tls-results.json`).
//!
//! Options: `--handshakes H` (default 500), `-c C` (50), `-n N` (100000), `--rounds R` (3),
//! `--warmup W` (20), `--clients LIST` (`volley,reqwest`), `--modes LIST`
//! (`full,resumed,newconn,ka-tls,ka-http`), `--json PATH`.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use volley_peers::{answer_each_head, loadavg, median, ServerProcess};

/// TEST-ONLY: volley's committed CA, and the `localhost` certificate it issued with its
/// (public) key.
const CA_PEM: &[u8] = include_bytes!("../../../testserver/src/testcert/ca.pem");
const CERT_PEM: &[u8] = include_bytes!("../../../testserver/src/testcert/localhost.pem");
const KEY_PEM: &[u8] = include_bytes!("../../../testserver/src/testcert/localhost.key");

/// The one response of the server, and its body length.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n";
const BODY_LEN: usize = 13;

const CLIENTS: [&str; 2] = ["volley", "reqwest"];
const MODES: [&str; 5] = ["full", "resumed", "newconn", "ka-tls", "ka-http"];
/// Requests before the timed ones in `resumed` and `newconn` (the first handshake is full).
const RESUME_WARMUP: usize = 5;

#[derive(Clone)]
struct Args {
    handshakes: usize,
    concurrency: usize,
    requests: usize,
    rounds: usize,
    warmup: usize,
    clients: Vec<String>,
    modes: Vec<String>,
    json: String,
    serve: bool,
    /// `--child CLIENT MODE PLAIN_PORT TLS_PORT`.
    child: Option<(String, String, u16, u16)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        handshakes: 500,
        concurrency: 50,
        requests: 100_000,
        rounds: 3,
        warmup: 20,
        clients: CLIENTS.map(String::from).to_vec(),
        modes: MODES.map(String::from).to_vec(),
        json: "tls-results.json".into(),
        serve: false,
        child: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |s: String| s.parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
        let list = |s: String| s.split(',').map(String::from).collect::<Vec<_>>();
        match arg.as_str() {
            "--handshakes" => args.handshakes = number(value(&arg)?)?,
            "-c" => args.concurrency = number(value(&arg)?)?,
            "-n" => args.requests = number(value(&arg)?)?,
            "--rounds" => args.rounds = number(value(&arg)?)?,
            "--warmup" => args.warmup = number(value(&arg)?)?,
            "--clients" => args.clients = list(value(&arg)?),
            "--modes" => args.modes = list(value(&arg)?),
            "--json" => args.json = value(&arg)?,
            "--serve" => args.serve = true,
            "--child" => {
                let client = value(&arg)?;
                let mode = value(&arg)?;
                let plain = number(value(&arg)?)? as u16;
                let tls = number(value(&arg)?)? as u16;
                args.child = Some((client, mode, plain, tls));
            }
            "-h" | "--help" => {
                return Err("usage: tls [--handshakes H] [-c C] [-n N] [--rounds R] [--warmup W] \
                            [--clients volley,reqwest] [--modes full,resumed,newconn,ka-tls,ka-http] \
                            [--json PATH] | --serve"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.concurrency == 0
        || args.requests < args.concurrency
        || args.rounds == 0
        || args.handshakes == 0
    {
        return Err("need -c >= 1, -n >= -c, --rounds >= 1 and --handshakes >= 1".into());
    }
    if let Some(c) = args.clients.iter().find(|c| !CLIENTS.contains(&c.as_str())) {
        return Err(format!("unknown client {c:?}"));
    }
    if let Some(m) = args.modes.iter().find(|m| !MODES.contains(&m.as_str())) {
        return Err(format!("unknown mode {m:?}"));
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// The neutral server.

/// Handshakes the TLS listener completed, by kind, and failed.
static FULL: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// `--serve`: prints `PLAIN,TLS,CONTROL` ports and runs until stdin closes.
fn serve() -> io::Result<()> {
    use tokio::net::TcpListener;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .build()?;
    let bind = || rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)));
    let (plain, tls, control) = (bind()?, bind()?, bind()?);
    println!(
        "{},{},{}",
        plain.local_addr()?.port(),
        tls.local_addr()?.port(),
        control.local_addr()?.port()
    );
    io::stdout().flush()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config()?));

    rt.spawn(async move {
        loop {
            if let Ok((stream, _)) = plain.accept().await {
                let _ = stream.set_nodelay(true);
                tokio::spawn(answer_each_head(stream, RESPONSE));
            }
        }
    });
    rt.spawn(async move {
        loop {
            if let Ok((stream, _)) = tls.accept().await {
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        FAILED.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    match stream.get_ref().1.handshake_kind() {
                        Some(rustls::HandshakeKind::Resumed) => &RESUMED,
                        _ => &FULL,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                    answer_each_head(stream, RESPONSE).await;
                });
            }
        }
    });
    let stats = rt.spawn(async move {
        use tokio::io::AsyncWriteExt;
        loop {
            if let Ok((mut stream, _)) = control.accept().await {
                let line = format!(
                    "{} {} {}\n",
                    FULL.load(Ordering::Relaxed),
                    RESUMED.load(Ordering::Relaxed),
                    FAILED.load(Ordering::Relaxed)
                );
                let _ = stream.write_all(line.as_bytes()).await;
            }
        }
    });
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    let _ = rt.block_on(stats);
    Ok(())
}

/// rustls with *ring*, TLS 1.3 and 1.2, ALPN `http/1.1`, the test certificate; the default
/// session cache (stateful resumption).
fn server_config() -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid =
        |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
    let chain = CertificateDer::pem_slice_iter(CERT_PEM)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&e))?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM).map_err(|e| invalid(&e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| invalid(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The server's handshake counts: (full, resumed, failed).
fn server_stats(control: SocketAddr) -> (u64, u64, u64) {
    let mut line = String::new();
    TcpStream::connect(control)
        .and_then(|mut s| s.read_to_string(&mut line))
        .expect("server stats");
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

// ---------------------------------------------------------------------------------------------
// Measuring (in the child).

fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// User and system clock ticks of this process, from `/proc/self/stat`.
fn ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    (tick(11), tick(12))
}

/// What a child measured; one line of numbers on its stdout.
#[derive(Clone, Copy, Default, Debug)]
struct Sample {
    requests: usize,
    /// The whole timed loop.
    wall: Duration,
    cpu: Duration,
    /// The requests alone (handshake modes; `cpu` otherwise).
    req_cpu: Duration,
    /// Median and p90 of one request's wall time (handshake modes).
    p50: Duration,
    p90: Duration,
    sys_share: f64,
    /// Filled in by the parent: the server's handshake counts during the run.
    full: u64,
    resumed: u64,
    failed: u64,
}

impl Sample {
    fn to_line(self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.requests,
            self.wall.as_nanos(),
            self.cpu.as_nanos(),
            self.req_cpu.as_nanos(),
            self.p50.as_nanos(),
            self.p90.as_nanos(),
            self.sys_share
        )
    }
    fn from_line(line: &str) -> Option<Sample> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ns = |i: usize| Some(Duration::from_nanos(f.get(i)?.parse().ok()?));
        Some(Sample {
            requests: f.first()?.parse().ok()?,
            wall: ns(1)?,
            cpu: ns(2)?,
            req_cpu: ns(3)?,
            p50: ns(4)?,
            p90: ns(5)?,
            sys_share: f.get(6)?.parse().ok()?,
            ..Sample::default()
        })
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us_per_req(&self) -> f64 {
        self.req_cpu.as_secs_f64() * 1e6 / self.requests as f64
    }
    fn cpu_us_per_iter(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }
    fn p50_us(&self) -> f64 {
        self.p50.as_secs_f64() * 1e6
    }
    fn p90_us(&self) -> f64 {
        self.p90.as_secs_f64() * 1e6
    }
}

/// Collects the timings of a handshake loop: each request's wall time and CPU time.
#[derive(Default)]
struct Handshakes {
    latencies: Vec<Duration>,
    req_cpu: Duration,
}

impl Handshakes {
    /// Times one request (`fut`), which must complete.
    async fn time<F: std::future::Future<Output = ()>>(&mut self, fut: F) {
        let (cpu0, t0) = (cpu_now(), Instant::now());
        fut.await;
        self.latencies.push(t0.elapsed());
        self.req_cpu += cpu_now().saturating_sub(cpu0);
    }
}

/// Times a whole run (`run` returns the handshake timings, empty for keep-alive runs).
fn timed(requests: usize, run: impl FnOnce() -> Handshakes) -> Sample {
    let (ticks0, cpu0, t0) = (ticks(), cpu_now(), Instant::now());
    let mut h = run();
    let (wall, cpu, ticks1) = (t0.elapsed(), cpu_now().saturating_sub(cpu0), ticks());
    let (user, sys) = (ticks1.0 - ticks0.0, ticks1.1 - ticks0.1);
    h.latencies.sort();
    let pick = |q: f64| match h.latencies.len() {
        0 => Duration::ZERO,
        n => h.latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1],
    };
    Sample {
        requests,
        wall,
        cpu,
        req_cpu: if h.latencies.is_empty() {
            cpu
        } else {
            h.req_cpu
        },
        p50: pick(0.5),
        p90: pick(0.9),
        sys_share: if user + sys == 0 {
            0.0
        } else {
            sys as f64 / (user + sys) as f64
        },
        ..Sample::default()
    }
}

/// Splits `total` requests between `tasks` tasks.
fn shares(total: usize, tasks: usize) -> impl Iterator<Item = usize> {
    (0..tasks).map(move |i| total / tasks + usize::from(i < total % tasks))
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

// ---------------------------------------------------------------------------------------------
// The clients (in the child).

fn run_volley(mode: &str, url: &'static str, args: &Args) -> Sample {
    let rt = volley::Runtime::new().expect("volley runtime");
    let ca = volley::Certificate::from_pem(CA_PEM).expect("test CA");
    let builder = || {
        volley::Client::builder()
            .add_root_certificate(ca.clone())
            .tls_built_in_roots(false)
            .resolve("localhost", localhost())
    };
    let get = move |client: &volley::Client| {
        let request = client.get(url);
        async move {
            let body = request.send().await.expect("volley request");
            let body = body.bytes().await.expect("volley body");
            assert_eq!(body.len(), BODY_LEN);
        }
    };
    let n = args.handshakes;
    match mode {
        "full" => timed(n, || {
            rt.block_on(async {
                let mut h = Handshakes::default();
                for _ in 0..n {
                    let client = builder().pool_max_idle_per_host(0).build();
                    h.time(get(&client)).await;
                }
                h
            })
        }),
        "resumed" | "newconn" => {
            let client = builder().pool_max_idle_per_host(0).build();
            rt.block_on(async {
                for _ in 0..RESUME_WARMUP {
                    get(&client).await;
                }
            });
            timed(n, || {
                rt.block_on(async {
                    let mut h = Handshakes::default();
                    for _ in 0..n {
                        h.time(get(&client)).await;
                    }
                    h
                })
            })
        }
        _ => {
            let client = builder().build();
            let batch = |total: usize| {
                rt.block_on(async {
                    let tasks: Vec<_> = shares(total, args.concurrency)
                        .map(|count| {
                            let client = client.clone();
                            volley::spawn(async move {
                                for _ in 0..count {
                                    get(&client).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("volley task");
                    }
                })
            };
            batch(args.warmup * args.concurrency);
            timed(args.requests, || {
                batch(args.requests);
                Handshakes::default()
            })
        }
    }
}

fn run_reqwest(mode: &str, url: &'static str, args: &Args) -> Sample {
    // The same cryptography as volley's: rustls's *ring* provider.
    volley_peers::install_ring_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ca = reqwest::Certificate::from_pem(CA_PEM).expect("test CA");
    let builder = || {
        reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .http1_only()
            .resolve("localhost", localhost())
    };
    let get = move |client: &reqwest::Client| {
        let request = client.get(url);
        async move {
            let body = request.send().await.expect("reqwest request");
            let body = body.bytes().await.expect("reqwest body");
            assert_eq!(body.len(), BODY_LEN);
        }
    };
    let n = args.handshakes;
    match mode {
        "full" => timed(n, || {
            rt.block_on(async {
                let mut h = Handshakes::default();
                for _ in 0..n {
                    let client = builder().pool_max_idle_per_host(0).build().expect("client");
                    h.time(get(&client)).await;
                }
                h
            })
        }),
        "resumed" | "newconn" => {
            let client = builder().pool_max_idle_per_host(0).build().expect("client");
            rt.block_on(async {
                for _ in 0..RESUME_WARMUP {
                    get(&client).await;
                }
            });
            timed(n, || {
                rt.block_on(async {
                    let mut h = Handshakes::default();
                    for _ in 0..n {
                        h.time(get(&client)).await;
                    }
                    h
                })
            })
        }
        _ => {
            let client = builder().build().expect("client");
            let batch = |total: usize| {
                rt.block_on(async {
                    let tasks: Vec<_> = shares(total, args.concurrency)
                        .map(|count| {
                            let client = client.clone();
                            tokio::spawn(async move {
                                for _ in 0..count {
                                    get(&client).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("reqwest task");
                    }
                })
            };
            batch(args.warmup * args.concurrency);
            timed(args.requests, || {
                batch(args.requests);
                Handshakes::default()
            })
        }
    }
}

/// `--child CLIENT MODE PLAIN TLS`: one measurement, printed as one line.
fn child(client: &str, mode: &str, plain: u16, tls: u16, args: &Args) {
    let url = match mode {
        "newconn" | "ka-http" => format!("http://localhost:{plain}/"),
        _ => format!("https://localhost:{tls}/"),
    };
    // For the spawned tasks; the process ends after this one run.
    let url: &'static str = Box::leak(url.into_boxed_str());
    let sample = match client {
        "volley" => run_volley(mode, url, args),
        _ => run_reqwest(mode, url, args),
    };
    println!("{}", sample.to_line());
}

/// Runs one measurement in a child process.
fn spawn_child(client: &str, mode: &str, server: &ServerProcess, args: &Args) -> Sample {
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .args(["--child", client, mode])
        .args([server.addrs[0].port(), server.addrs[1].port()].map(|p| p.to_string()))
        .args(["--handshakes", &args.handshakes.to_string()])
        .args(["-c", &args.concurrency.to_string()])
        .args(["-n", &args.requests.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    match (
        output.status.success(),
        stdout.lines().last().and_then(Sample::from_line),
    ) {
        (true, Some(sample)) => sample,
        _ => panic!("child {client} {mode} failed: {} {stdout:?}", output.status),
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

fn is_handshake(mode: &str) -> bool {
    matches!(mode, "full" | "resumed" | "newconn")
}

/// Medians over rounds of one (client, mode).
struct Summary {
    p50_us: f64,
    p90_us: f64,
    rps: f64,
    cpu_us: f64,
    cpu_iter_us: f64,
    sys_share: f64,
    full: u64,
    resumed: u64,
    failed: u64,
}

fn summarize(s: &[Sample]) -> Summary {
    let m = |f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
    Summary {
        p50_us: m(Sample::p50_us),
        p90_us: m(Sample::p90_us),
        rps: m(Sample::rps),
        cpu_us: m(Sample::cpu_us_per_req),
        cpu_iter_us: m(Sample::cpu_us_per_iter),
        sys_share: m(|s| s.sys_share),
        full: s.iter().map(|s| s.full).sum(),
        resumed: s.iter().map(|s| s.resumed).sum(),
        failed: s.iter().map(|s| s.failed).sum(),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tls: {e}");
            std::process::exit(2);
        }
    };
    if args.serve {
        if let Err(e) = serve() {
            eprintln!("tls --serve: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Some((client, mode, plain, tls)) = &args.child {
        child(client, mode, *plain, *tls, &args);
        return;
    }

    let server = ServerProcess::start().expect("start the server process");
    let control = server.addrs[2];
    let load_start = loadavg();
    println!(
        "GET of a 13-byte body; server: child pid {} (tokio 1 worker; tokio-rustls/ring), \
         http :{} https :{}; --handshakes {} -c {} -n {} --warmup {} --rounds {}",
        server.pid(),
        server.addrs[0].port(),
        server.addrs[1].port(),
        args.handshakes,
        args.concurrency,
        args.requests,
        args.warmup,
        args.rounds
    );
    println!(
        "cores {}, loadavg at start {load_start}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!(
        "{:>5}  {:<8} {:<8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>5} {:>6} {:>8}",
        "round",
        "mode",
        "client",
        "p50 us",
        "p90 us",
        "req/s",
        "cpu/req",
        "cpu/iter",
        "sys%",
        "full",
        "resumed"
    );

    // samples[mode][client]
    let mut samples = vec![vec![Vec::<Sample>::new(); args.clients.len()]; args.modes.len()];
    for round in 0..args.rounds {
        for (m, mode) in args.modes.iter().enumerate() {
            let mut order: Vec<usize> = (0..args.clients.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for c in order {
                let before = server_stats(control);
                let mut s = spawn_child(&args.clients[c], mode, &server, &args);
                let after = server_stats(control);
                (s.full, s.resumed, s.failed) =
                    (after.0 - before.0, after.1 - before.1, after.2 - before.2);
                println!(
                    "{:>5}  {:<8} {:<8} {:>9.1} {:>9.1} {:>10.0} {:>9.2} {:>9.2} {:>4.0}% {:>6} {:>8}",
                    round + 1,
                    mode,
                    args.clients[c],
                    s.p50_us(),
                    s.p90_us(),
                    s.rps(),
                    s.cpu_us_per_req(),
                    s.cpu_us_per_iter(),
                    100.0 * s.sys_share,
                    s.full,
                    s.resumed
                );
                samples[m][c].push(s);
            }
        }
    }

    let load_end = loadavg();
    println!();
    println!(
        "medians over {} rounds (loadavg at end {load_end}); handshake counts are the server's, \
         summed over rounds, warm-ups included",
        args.rounds
    );
    println!(
        "  {:<8} {:<8} {:>9} {:>9} {:>10} {:>9} {:>9} {:>5} {:>7} {:>8}",
        "mode",
        "client",
        "p50 us",
        "p90 us",
        "req/s",
        "cpu/req",
        "cpu/iter",
        "sys%",
        "full",
        "resumed"
    );
    let mut json = String::new();
    let _ = write!(
        json,
        "{{\n  \"bench\": \"tls\",\n  \"server\": \"tokio 1 worker + tokio-rustls (ring), child process\",\n  \
         \"reqwest_tls\": \"rustls-no-provider + ring provider installed\",\n  \
         \"handshakes\": {},\n  \"concurrency\": {},\n  \"requests\": {},\n  \"warmup\": {},\n  \
         \"rounds\": {},\n  \"cores\": {},\n  \"loadavg_start\": \"{load_start}\",\n  \
         \"loadavg_end\": \"{load_end}\",\n  \"results\": [",
        args.handshakes,
        args.concurrency,
        args.requests,
        args.warmup,
        args.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut first = true;
    for (m, mode) in args.modes.iter().enumerate() {
        for (c, client) in args.clients.iter().enumerate() {
            let s = summarize(&samples[m][c]);
            println!(
                "  {:<8} {:<8} {:>9.1} {:>9.1} {:>10.0} {:>9.2} {:>9.2} {:>4.0}% {:>7} {:>8}",
                mode,
                client,
                s.p50_us,
                s.p90_us,
                s.rps,
                s.cpu_us,
                s.cpu_iter_us,
                100.0 * s.sys_share,
                s.full,
                s.resumed
            );
            let rounds: Vec<String> = samples[m][c]
                .iter()
                .map(|r| {
                    format!(
                        "{{\"p50_us\": {:.1}, \"p90_us\": {:.1}, \"req_per_s\": {:.0}, \
                         \"cpu_us_per_req\": {:.2}, \"cpu_us_per_iter\": {:.2}, \
                         \"server_full\": {}, \"server_resumed\": {}}}",
                        r.p50_us(),
                        r.p90_us(),
                        r.rps(),
                        r.cpu_us_per_req(),
                        r.cpu_us_per_iter(),
                        r.full,
                        r.resumed
                    )
                })
                .collect();
            let latency = if is_handshake(mode) {
                format!("\"p50_us\": {:.1}, \"p90_us\": {:.1}, ", s.p50_us, s.p90_us)
            } else {
                String::new()
            };
            let _ = write!(
                json,
                "{}\n    {{\"mode\": \"{mode}\", \"client\": \"{client}\", {latency}\
                 \"req_per_s\": {:.0}, \"cpu_us_per_req\": {:.2}, \"cpu_us_per_iter\": {:.2}, \
                 \"sys_share\": {:.3}, \"server_full\": {}, \"server_resumed\": {}, \
                 \"server_failed\": {}, \"rounds\": [{}]}}",
                if first { "" } else { "," },
                s.rps,
                s.cpu_us,
                s.cpu_iter_us,
                s.sys_share,
                s.full,
                s.resumed,
                s.failed,
                rounds.join(", ")
            );
            first = false;
        }
    }
    json.push_str("\n  ]\n}\n");

    if let (Some(v), Some(r)) = (
        args.clients.iter().position(|c| c == "volley"),
        args.clients.iter().position(|c| c == "reqwest"),
    ) {
        println!();
        println!("volley/reqwest (ratio of medians):");
        for (m, mode) in args.modes.iter().enumerate() {
            let (sv, sr) = (summarize(&samples[m][v]), summarize(&samples[m][r]));
            if is_handshake(mode) {
                println!(
                    "  {mode:<8} p50 {:.3}  p90 {:.3}  cpu/req {:.3}  cpu/iter {:.3}",
                    sv.p50_us / sr.p50_us,
                    sv.p90_us / sr.p90_us,
                    sv.cpu_us / sr.cpu_us,
                    sv.cpu_iter_us / sr.cpu_iter_us
                );
            } else {
                println!(
                    "  {mode:<8} req/s {:.3}  cpu/req {:.3}",
                    sv.rps / sr.rps,
                    sv.cpu_us / sr.cpu_us
                );
            }
        }
    }
    match std::fs::write(&args.json, json) {
        Ok(()) => println!("\nwrote {}", args.json),
        Err(e) => eprintln!("tls: writing {}: {e}", args.json),
    }
    drop(server);
}
