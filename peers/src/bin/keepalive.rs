//! Keep-alive GET throughput on loopback: volley's client against reqwest's, side by side.
//!
//! ```text
//! cargo run --release --manifest-path peers/Cargo.toml --bin keepalive -- -c 50 -n 100000
//! cargo run --release --manifest-path peers/Cargo.toml --bin keepalive -- -c 50 -n 100000 --rounds 5 --clients volley,volley-nt,reqwest,raw
//! ```
//!
//! # The server
//!
//! Neither volley nor reqwest/hyper: a hand-written HTTP/1.1 keep-alive server on `tokio::net`,
//! on a tokio multi-thread runtime with ONE worker thread, that answers every request head
//! (everything up to `\r\n\r\n`; requests have no body) with the same 13-byte response,
//! `HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n` (pipelined heads get their
//! responses in one write). It runs in a child process, this binary with `--serve`, bound to
//! 127.0.0.1:0; it prints its port and exits when its stdin closes. So the CPU time this
//! process measures (`CLOCK_PROCESS_CPUTIME_ID`, and user/sys from `/proc/self/stat`) is the
//! client's alone.
//!
//! # The clients
//!
//! Each runs on this process's main thread, with C tasks that each do sequential GETs of the
//! same URL (`http://127.0.0.1:PORT/`), the N requests split evenly between them, every body
//! read to the end (`bytes()`) and its length checked:
//!
//! - `volley`: `volley::Runtime` (single-threaded), `volley::spawn`, one shared
//!   `volley::Client::new()` (default settings: connect, read and total timeouts on);
//! - `volley-nt`: the same with every timeout off (`timeout(None)`, `read_timeout(None)`,
//!   `connect_timeout(None)`), as reqwest's defaults are: what the timers cost;
//! - `volley-url`: `volley` given the URL parsed once (`client.get(&url)` with a `url::Url`,
//!   which clones it) instead of a `&str` parsed on every request: what URL parsing costs;
//! - `reqwest`: tokio's current-thread runtime, `tokio::spawn`, one shared
//!   `reqwest::Client::new()` (default-features off: plain HTTP/1.1 through hyper);
//! - `volley-tokio`: the `reqwest` setup (tokio current-thread runtime, `tokio::spawn`) with
//!   `volley::threaded::Client::new()` instead: every request hops to the client's volley
//!   loop thread and back. The CPU time counts both threads;
//! - `volley-tokio-batch`: the same threaded client from the same tokio runtime, all N
//!   requests as one `fetch_all(..).concurrency(C)` (bodies kept and checked): one hop for the
//!   batch, results streamed back;
//! - `raw` (reference): blocking `std::net` sockets, C connections in lockstep (write one
//!   fixed request on each, then read each response); no HTTP parsing beyond the length. A
//!   ceiling for what the server and loopback allow.
//! - `wrk` (reference): `wrk -t1 -cC -d5s URL` in a child process, the practical limit of one
//!   client thread; its request count and rate are wrk's own, its CPU time the wrk process's
//!   own (`utime + stime` of the exited process, see `volley_peers::wrk`). No warm-up.
//!
//! Each client gets a new runtime and client in every round, a warm-up of `--warmup` requests
//! (default 20 per connection) that opens its connections, then the timed N requests. The
//! clients take turns, in reverse order in every other round; the summary gives the median
//! over rounds and the ratios volley/reqwest.
//!
//! Options: `-c C` (concurrency, default 50), `-n N` (requests per timed run, default 100000),
//! `--rounds R` (default 5), `--warmup W` (requests per connection, default 20), `--clients
//! LIST` (comma-separated, default `volley,reqwest,raw`), `--port P` (use a server already
//! running on 127.0.0.1:P instead of starting one), `--path P` (the path to GET, default `/`;
//! with nginx serving a 13-byte file, `--port` and `--path` make the W3 workload; `raw` expects
//! the neutral server's exact response and is for it only), `--json PATH` (every round's and
//! the median figures of each client, for `benches/all.sh`).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use volley_peers::{answer_each_head, loadavg, median, ServerProcess};

/// The one response of the server.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n";
/// Its body length.
const BODY_LEN: usize = 13;

struct Args {
    concurrency: usize,
    requests: usize,
    rounds: usize,
    warmup: usize,
    clients: Vec<String>,
    port: Option<u16>,
    path: String,
    json: Option<String>,
    serve: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        concurrency: 50,
        requests: 100_000,
        rounds: 5,
        warmup: 20,
        clients: vec!["volley".into(), "reqwest".into(), "raw".into()],
        port: None,
        path: "/".into(),
        json: None,
        serve: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |s: String| s.parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
        match arg.as_str() {
            "-c" => args.concurrency = number(value("-c")?)?,
            "-n" => args.requests = number(value("-n")?)?,
            "--rounds" => args.rounds = number(value("--rounds")?)?,
            "--warmup" => args.warmup = number(value("--warmup")?)?,
            "--clients" => {
                args.clients = value("--clients")?
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--port" => {
                let p = value("--port")?;
                args.port = Some(p.parse().map_err(|e| format!("{p:?}: {e}"))?);
            }
            "--path" => args.path = value("--path")?,
            "--json" => args.json = Some(value("--json")?),
            "--serve" => args.serve = true,
            "-h" | "--help" => {
                return Err("usage: keepalive [-c C] [-n N] [--rounds R] [--warmup W] \
                            [--clients volley,volley-nt,volley-url,volley-tokio,volley-tokio-batch,reqwest,raw,wrk] \
                            [--port P] [--path P] [--json PATH] | --serve"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.concurrency == 0 || args.requests < args.concurrency || args.rounds == 0 {
        return Err("need -c >= 1, -n >= -c and --rounds >= 1".into());
    }
    for c in &args.clients {
        if ![
            "volley",
            "volley-nt",
            "volley-url",
            "volley-tokio",
            "volley-tokio-batch",
            "reqwest",
            "raw",
            "wrk",
        ]
        .contains(&c.as_str())
        {
            return Err(format!("unknown client {c:?}"));
        }
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// The neutral server.

/// `--serve`: the server, on a tokio multi-thread runtime with one worker; prints its port on
/// stdout and runs until stdin closes.
fn serve() -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    println!("{}", listener.local_addr()?.port());
    io::stdout().flush()?;
    // The accept loop runs on the worker too: `block_on` itself only waits.
    let accept = rt.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        answer_each_head(stream, RESPONSE).await;
                    });
                }
                Err(e) => eprintln!("keepalive --serve: accept: {e}"),
            }
        }
    });
    // The parent closes our stdin when it is done (or dies).
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    let _ = rt.block_on(accept);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// This process's CPU time: total (ns precision) and user/sys (clock ticks).
#[derive(Clone, Copy)]
struct Cpu {
    total: Duration,
    user_ticks: u64,
    sys_ticks: u64,
}

fn cpu_now() -> Cpu {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let total = Duration::new(t.tv_sec as u64, t.tv_nsec as u32);
    // Fields 14 and 15 of /proc/self/stat, counted after the command name's closing paren.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    Cpu {
        total,
        user_ticks: tick(11),
        sys_ticks: tick(12),
    }
}

/// One timed run of one client.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    user_ticks: u64,
    sys_ticks: u64,
    requests: usize,
}

impl Sample {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us_per_req(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests as f64
    }
    fn sys_share(&self) -> f64 {
        let all = self.user_ticks + self.sys_ticks;
        if all == 0 {
            0.0
        } else {
            self.sys_ticks as f64 / all as f64
        }
    }
}

/// Times `run`, which must make `requests` requests.
fn timed(requests: usize, run: impl FnOnce()) -> Sample {
    let cpu0 = cpu_now();
    let t0 = Instant::now();
    run();
    let wall = t0.elapsed();
    let cpu1 = cpu_now();
    Sample {
        wall,
        cpu: cpu1.total.saturating_sub(cpu0.total),
        user_ticks: cpu1.user_ticks - cpu0.user_ticks,
        sys_ticks: cpu1.sys_ticks - cpu0.sys_ticks,
        requests,
    }
}

/// Splits `total` requests between `tasks` tasks.
fn shares(total: usize, tasks: usize) -> impl Iterator<Item = usize> {
    (0..tasks).map(move |i| total / tasks + usize::from(i < total % tasks))
}

// ---------------------------------------------------------------------------------------------
// The clients.

fn run_volley(url: &str, args: &Args, timeouts: bool, parsed: bool) -> Sample {
    let rt = volley::Runtime::new().expect("volley runtime");
    let client = match timeouts {
        true => volley::Client::new(),
        false => volley::Client::builder()
            .timeout(None)
            .read_timeout(None)
            .connect_timeout(None)
            .build(),
    };
    let batch = |total: usize| {
        rt.block_on(async {
            let tasks: Vec<_> = shares(total, args.concurrency)
                .map(|count| {
                    let client = client.clone();
                    let url = url.to_string();
                    let parsed_url = parsed.then(|| url::Url::parse(&url).expect("url"));
                    volley::spawn(async move {
                        for _ in 0..count {
                            let request = match &parsed_url {
                                Some(u) => client.get(u),
                                None => client.get(&url),
                            };
                            let body = request.send().await?.bytes().await?;
                            assert_eq!(body.len(), BODY_LEN);
                        }
                        Ok::<(), volley::Error>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("volley task").expect("volley request");
            }
        })
    };
    batch(args.warmup * args.concurrency);
    timed(args.requests, || batch(args.requests))
}

fn run_reqwest(url: &str, args: &Args) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    volley_peers::install_ring_provider();
    let client = reqwest::Client::new();
    let batch = |total: usize| {
        rt.block_on(async {
            let tasks: Vec<_> = shares(total, args.concurrency)
                .map(|count| {
                    let client = client.clone();
                    let url = url.to_string();
                    tokio::spawn(async move {
                        for _ in 0..count {
                            let body = client.get(&url).send().await?.bytes().await?;
                            assert_eq!(body.len(), BODY_LEN);
                        }
                        Ok::<(), reqwest::Error>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("reqwest task").expect("reqwest request");
            }
        })
    };
    batch(args.warmup * args.concurrency);
    timed(args.requests, || batch(args.requests))
}

/// volley's threaded client from tokio: the tasks run on a tokio current-thread runtime, as
/// reqwest's do, and every request hops to the client's volley loop thread and back.
fn run_volley_tokio(url: &str, args: &Args) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = volley::threaded::Client::new();
    let batch = |total: usize| {
        rt.block_on(async {
            let tasks: Vec<_> = shares(total, args.concurrency)
                .map(|count| {
                    let client = client.clone();
                    let url = url.to_string();
                    tokio::spawn(async move {
                        for _ in 0..count {
                            let body = client.get(&url).send().await?.bytes().await?;
                            assert_eq!(body.len(), BODY_LEN);
                        }
                        Ok::<(), volley::Error>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await
                    .expect("volley-tokio task")
                    .expect("volley-tokio request");
            }
        })
    };
    batch(args.warmup * args.concurrency);
    timed(args.requests, || batch(args.requests))
}

/// volley's threaded client from tokio, through `fetch_all`: the whole batch crosses to the
/// loop once and the results stream back, so requests do not hop one by one.
fn run_volley_tokio_batch(url: &str, args: &Args) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = volley::threaded::Client::new();
    let batch = |total: usize| {
        rt.block_on(async {
            let report = client
                .fetch_all(vec![url.to_string(); total])
                .concurrency(args.concurrency)
                .duplicates(volley::batch::Duplicates::Fetch)
                .run()
                .await;
            assert_eq!(
                report.summary.ok as usize, total,
                "volley-tokio-batch failures"
            );
            for result in &report.results {
                let fetched = result.outcome.as_ref().expect("volley-tokio-batch request");
                assert_eq!(fetched.body.len(), BODY_LEN);
            }
        })
    };
    batch(args.warmup * args.concurrency);
    timed(args.requests, || batch(args.requests))
}

fn run_raw(port: u16, args: &Args) -> Sample {
    let request = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nuser-agent: raw\r\naccept: */*\r\n\r\n"
    );
    let mut conns: Vec<TcpStream> = (0..args.concurrency)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let mut buf = [0u8; 256];
    let mut batch = |total: usize| {
        let mut left = total;
        while left > 0 {
            let k = left.min(conns.len());
            for conn in &mut conns[..k] {
                conn.write_all(request.as_bytes()).expect("write");
            }
            for conn in &mut conns[..k] {
                let mut got = 0;
                while got < RESPONSE.len() {
                    match conn.read(&mut buf[got..]).expect("read") {
                        0 => panic!("server closed"),
                        n => got += n,
                    }
                }
                assert_eq!(&buf[..got], RESPONSE);
            }
            left -= k;
        }
    };
    batch(args.warmup * args.concurrency);
    timed(args.requests, || batch(args.requests))
}

/// `wrk -t1 -c C -d5s URL` (see [`volley_peers::wrk`]): its own request count and rate (so
/// `wall` is requests / (requests/s), wrk's timing), and the wrk process's own CPU time. A
/// run that fails ends the benchmark: no figure is made up for it.
fn run_wrk(url: &str, args: &Args) -> Sample {
    let run = match volley_peers::wrk(url, args.concurrency, volley_peers::WRK_SECONDS) {
        Ok(run) if run.non_2xx == 0.0 && run.socket_errors == 0.0 => run,
        Ok(run) => {
            eprintln!(
                "keepalive: wrk had {} answers other than 2xx/3xx and {} socket errors",
                run.non_2xx, run.socket_errors
            );
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("keepalive: {e}");
            std::process::exit(1);
        }
    };
    let hz = 100.0; // USER_HZ, the unit of the tick counts
    Sample {
        wall: Duration::from_secs_f64(run.requests / run.rps),
        cpu: Duration::from_secs_f64(run.user_s + run.sys_s),
        user_ticks: (run.user_s * hz).round() as u64,
        sys_ticks: (run.sys_s * hz).round() as u64,
        requests: run.requests as usize,
    }
}

fn run_client(name: &str, port: u16, args: &Args) -> Sample {
    let url = format!("http://127.0.0.1:{port}{}", args.path);
    match name {
        "volley" => run_volley(&url, args, true, false),
        "volley-nt" => run_volley(&url, args, false, false),
        "volley-url" => run_volley(&url, args, true, true),
        "reqwest" => run_reqwest(&url, args),
        "volley-tokio" => run_volley_tokio(&url, args),
        "volley-tokio-batch" => run_volley_tokio_batch(&url, args),
        "raw" => run_raw(port, args),
        "wrk" => run_wrk(&url, args),
        other => unreachable!("client {other}"),
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("keepalive: {e}");
            std::process::exit(2);
        }
    };
    let mut args = args;
    if args.clients.iter().any(|c| c == "wrk") && !volley_peers::wrk_available() {
        eprintln!("keepalive: wrk is not installed: that client is left out");
        args.clients.retain(|c| c != "wrk");
    }
    if args.serve {
        if let Err(e) = serve() {
            eprintln!("keepalive --serve: {e}");
            std::process::exit(1);
        }
        return;
    }

    let server = match args.port {
        Some(_) => None,
        None => Some(ServerProcess::start().expect("start the server process")),
    };
    let port = args
        .port
        .or(server.as_ref().map(|s| s.addrs[0].port()))
        .expect("port");
    println!(
        "keep-alive GET, 13-byte body, 127.0.0.1:{port}; -c {} -n {} --rounds {} --warmup {}; \
         server: {}",
        args.concurrency,
        args.requests,
        args.rounds,
        args.warmup,
        match &server {
            Some(s) => format!("child pid {} (tokio::net, 1 worker)", s.pid()),
            None => "external".into(),
        }
    );
    let load_start = loadavg();
    println!(
        "cores {}, loadavg at start {load_start}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!();
    println!(
        "{:>5}  {:<10} {:>10} {:>8} {:>12} {:>8} {:>6}",
        "round", "client", "req/s", "wall s", "cpu us/req", "cpu/wall", "sys%"
    );

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); args.clients.len()];
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..args.clients.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let s = run_client(&args.clients[i], port, &args);
            println!(
                "{:>5}  {:<10} {:>10.0} {:>8.3} {:>12.2} {:>7.0}% {:>5.0}%",
                round + 1,
                args.clients[i],
                s.rps(),
                s.wall.as_secs_f64(),
                s.cpu_us_per_req(),
                100.0 * s.cpu.as_secs_f64() / s.wall.as_secs_f64(),
                100.0 * s.sys_share(),
            );
            samples[i].push(s);
        }
    }

    println!();
    println!(
        "medians over {} rounds (loadavg at end {})",
        args.rounds,
        loadavg()
    );
    println!(
        "  {:<10} {:>10} {:>10} {:>10} {:>12} {:>6}",
        "client", "req/s", "min", "max", "cpu us/req", "sys%"
    );
    for (name, s) in args.clients.iter().zip(&samples) {
        let rps: Vec<f64> = s.iter().map(Sample::rps).collect();
        println!(
            "  {:<10} {:>10.0} {:>10.0} {:>10.0} {:>12.2} {:>5.0}%",
            name,
            median(rps.clone()),
            rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps.iter().copied().fold(0.0, f64::max),
            median(s.iter().map(Sample::cpu_us_per_req).collect()),
            100.0 * median(s.iter().map(Sample::sys_share).collect()),
        );
    }
    let index = |name: &str| args.clients.iter().position(|c| c == name);
    for base in ["reqwest", "wrk"] {
        let Some(r) = index(base) else { continue };
        for v in [
            "volley",
            "volley-nt",
            "volley-url",
            "volley-tokio",
            "volley-tokio-batch",
        ] {
            let Some(v_i) = index(v) else { continue };
            let paired = |f: fn(&Sample) -> f64| {
                median(
                    samples[v_i]
                        .iter()
                        .zip(&samples[r])
                        .map(|(a, b)| f(a) / f(b))
                        .collect(),
                )
            };
            let of_medians = |f: fn(&Sample) -> f64| {
                median(samples[v_i].iter().map(f).collect())
                    / median(samples[r].iter().map(f).collect())
            };
            println!(
                "  {v}/{base}: req/s {:.3} (ratio of medians; median of per-round ratios {:.3}), \
                 cpu per request {:.3} ({:.3})",
                of_medians(Sample::rps),
                paired(Sample::rps),
                of_medians(Sample::cpu_us_per_req),
                paired(Sample::cpu_us_per_req),
            );
        }
    }
    if let Some(path) = &args.json {
        let json = report_json(&args, port, &samples, &load_start);
        match std::fs::write(path, json) {
            Ok(()) => println!("wrote {path}"),
            Err(e) => {
                eprintln!("keepalive: writing {path}: {e}");
                std::process::exit(1);
            }
        }
    }
    drop(server);
}

/// The `--json` report: the settings, and per client every round's figures and the medians.
fn report_json(args: &Args, port: u16, samples: &[Vec<Sample>], load_start: &str) -> String {
    let wrk_seconds = volley_peers::WRK_SECONDS;
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut clients = Vec::new();
    for (name, runs) in args.clients.iter().zip(samples) {
        let rounds: Vec<String> = runs
            .iter()
            .map(|s| {
                format!(
                    "{{\"req_per_s\": {:.1}, \"wall_s\": {:.6}, \"cpu_us_per_req\": {:.3}, \
                     \"sys_share\": {:.3}, \"requests\": {}}}",
                    s.rps(),
                    s.wall.as_secs_f64(),
                    s.cpu_us_per_req(),
                    s.sys_share(),
                    s.requests
                )
            })
            .collect();
        let rps: Vec<f64> = runs.iter().map(Sample::rps).collect();
        clients.push(format!(
            "    {}: {{\"median\": {{\"req_per_s\": {:.1}, \"req_per_s_min\": {:.1}, \
             \"req_per_s_max\": {:.1}, \"cpu_us_per_req\": {:.3}}}, \"rounds\": [{}]}}",
            q(name),
            median(rps.clone()),
            rps.iter().copied().fold(f64::INFINITY, f64::min),
            rps.iter().copied().fold(0.0, f64::max),
            median(runs.iter().map(Sample::cpu_us_per_req).collect()),
            rounds.join(", ")
        ));
    }
    format!(
        "{{\n  \"bench\": \"keepalive\",\n  \"port\": {port},\n  \"path\": {},\n  \
         \"concurrency\": {},\n  \"requests\": {},\n  \"rounds\": {},\n  \"warmup\": {},\n  \
         \"wrk_seconds\": {wrk_seconds},\n  \"cores\": {},\n  \"loadavg_start\": {},\n  \
         \"loadavg_end\": {},\n  \"clients\": {{\n{}\n  }}\n}}\n",
        q(&args.path),
        args.concurrency,
        args.requests,
        args.rounds,
        args.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        q(load_start),
        q(&loadavg()),
        clients.join(",\n")
    )
}
