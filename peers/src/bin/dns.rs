//! Name resolution in a crawl-like batch, volley beside reqwest, through a real DNS server
//! process on `127.0.0.1:53` that the system's resolver also uses.
//!
//! ```text
//! cargo run --release --manifest-path peers/Cargo.toml --bin dns -- \
//!     [--hosts 500] [--per-host 10] [-c 200] [--dns-delay-ms 5] [--rounds 3] \
//!     [--clients volley,volley-system,reqwest]
//! ```
//!
//! Needs root: it binds port 53 and points `/etc/resolv.conf` at it for the run (the file is
//! put back when the binary ends, even on a panic; its old text is also printed first).
//!
//! The workload: `hosts × per-host` GETs, `per-host` adjacent ones per host name
//! (`h{i}.web.test`, each a name of its own for the resolver), at most `c` in flight, as a
//! crawler fetches a page's resources: several requests for a new host at once. The names
//! all lead to one neutral keep-alive server (tokio, one worker, in a child process, a fixed
//! small response). The DNS server is volley's test `DnsServer` in another child process: a
//! wildcard for `*.web.test` → 127.0.0.1, each answer `--dns-delay-ms` after its query, as
//! from a resolver a few ms away. It counts the queries, so each client's count is exact.
//!
//! Clients, each in a child process of its own, one run each per round, alternating:
//! - `volley`: `Client::new()`, whose default resolver (`NativeResolver`) reads the
//!   `/etc/resolv.conf` written for the run; a batch (`fetch_all`) of the URLs.
//! - `volley-system`: the same with `Resolver::system()` (getaddrinfo on helper threads, the
//!   client's fixed 30 s cache, no coalescing).
//! - `reqwest`: `reqwest::Client::new()` on tokio's current-thread runtime (hyper's
//!   `GaiResolver`: getaddrinfo on tokio's blocking pool, no cache), `c` tasks taking the next
//!   URL in turn.
//!
//! Reported per client, medians over the rounds: wall time, CPU time (all threads), the most
//! threads the process had (the parent samples `/proc/<pid>/task` every millisecond), peak
//! RSS, and the A and AAAA queries the DNS server received during the run.

#![forbid(unsafe_code)]

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use volley_peers::{answer_each_head, loadavg, median, ServerProcess};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_ADDR: &str = "127.0.0.1:53";
const CLIENTS: [&str; 3] = ["volley", "volley-system", "reqwest"];

#[derive(Debug, Clone)]
struct Args {
    hosts: usize,
    per_host: usize,
    concurrency: usize,
    dns_delay: Duration,
    rounds: usize,
    clients: Vec<String>,
    port: u16,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        hosts: 500,
        per_host: 10,
        concurrency: 200,
        dns_delay: Duration::from_millis(5),
        rounds: 3,
        clients: CLIENTS.iter().map(|c| c.to_string()).collect(),
        port: 0,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: &String| v.parse::<usize>().map_err(|e| format!("{v:?}: {e}"));
        match flag.as_str() {
            "--hosts" => args.hosts = number(value()?)?,
            "--per-host" => args.per_host = number(value()?)?,
            "-c" => args.concurrency = number(value()?)?,
            "--dns-delay-ms" => args.dns_delay = Duration::from_millis(number(value()?)? as u64),
            "--rounds" => args.rounds = number(value()?)?,
            "--port" => args.port = number(value()?)? as u16,
            "--clients" => args.clients = value()?.split(',').map(str::to_owned).collect(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.hosts == 0 || args.per_host == 0 || args.concurrency == 0 || args.rounds == 0 {
        return Err("--hosts, --per-host, -c and --rounds must be positive".into());
    }
    if let Some(bad) = args.clients.iter().find(|c| !CLIENTS.contains(&c.as_str())) {
        return Err(format!(
            "unknown client {bad:?}; known: {}",
            CLIENTS.join(",")
        ));
    }
    Ok(args)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let result = match argv.first().map(String::as_str) {
        Some("--serve") => serve_http(),
        Some("--serve-dns") => serve_dns(&argv[1..]),
        Some("--client") => run_client(&argv[1..]),
        _ => orchestrate(&argv),
    };
    if let Err(e) = result {
        eprintln!("dns: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The servers.

/// `--serve`: the neutral keep-alive HTTP server (tokio, one worker); prints its port and
/// runs until stdin closes.
fn serve_http() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_io()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    println!(
        "{}",
        listener.local_addr().map_err(|e| e.to_string())?.port()
    );
    let _ = io::stdout().flush();
    let accept = rt.spawn(async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    answer_each_head(stream, RESPONSE).await;
                });
            }
        }
    });
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    let _ = rt.block_on(accept);
    Ok(())
}

/// `--serve-dns DELAY_MS`: volley's `DnsServer` on 127.0.0.1:53. Prints `ready`, then for
/// each line read on stdin prints `A AAAA TCP` (queries so far); exits at EOF.
fn serve_dns(argv: &[String]) -> Result<(), String> {
    let delay_ms: u64 = argv
        .first()
        .and_then(|d| d.parse().ok())
        .ok_or("--serve-dns needs a delay in ms")?;
    let rt = volley::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let server = volley_testserver::DnsServer::builder()
            .wildcard("web.test", [127, 0, 0, 1].into())
            .delay(Duration::from_millis(delay_ms))
            .bind(DNS_ADDR.parse().expect("an address"))
            .map_err(|e| format!("cannot bind {DNS_ADDR} (root needed): {e}"))?;
        println!("ready");
        let _ = io::stdout().flush();
        loop {
            let line = volley::spawn_blocking(|| {
                let mut line = String::new();
                io::stdin().read_line(&mut line).map(|n| (n, line))
            })
            .await;
            match line {
                Ok(Ok((n, _))) if n > 0 => {
                    let s = server.stats();
                    println!("{} {} {}", s.a, s.aaaa, s.tcp);
                    let _ = io::stdout().flush();
                }
                _ => return Ok(()),
            }
        }
    })
}

/// The DNS server child and its stats channel.
struct DnsProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DnsProcess {
    fn start(delay: Duration) -> Result<DnsProcess, String> {
        let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .args(["--serve-dns", &delay.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = child.wait();
            return Err("the DNS server did not start (see above)".into());
        }
        Ok(DnsProcess {
            child,
            stdin,
            stdout,
        })
    }

    /// `(A, AAAA, TCP)` queries so far.
    fn stats(&mut self) -> Result<[u64; 3], String> {
        writeln!(self.stdin, "stats").map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        v.try_into()
            .map_err(|_| format!("the DNS server said {line:?}"))
    }
}

impl Drop for DnsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points `/etc/resolv.conf` at the test server; puts the old text back when dropped.
struct ResolvConfGuard {
    old: String,
}

impl ResolvConfGuard {
    fn install() -> Result<ResolvConfGuard, String> {
        let old = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
        println!("# {RESOLV_CONF} before the run (put back at the end):");
        for line in old.lines() {
            println!("#   {line}");
        }
        std::fs::write(
            RESOLV_CONF,
            "# written by volley-peers' dns benchmark; restored when it ends\n\
             nameserver 127.0.0.1\noptions timeout:2 attempts:2\n",
        )
        .map_err(|e| format!("cannot write {RESOLV_CONF} (root needed): {e}"))?;
        Ok(ResolvConfGuard { old })
    }
}

impl Drop for ResolvConfGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(RESOLV_CONF, &self.old) {
            eprintln!(
                "dns: could not restore {RESOLV_CONF}: {e}; its old text was:\n{}",
                self.old
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The clients (child processes).

/// The URLs of the workload: `per_host` adjacent requests per host name.
fn urls(args: &Args) -> Vec<String> {
    (0..args.hosts * args.per_host)
        .map(|i| format!("http://h{}.web.test:{}/", i / args.per_host, args.port))
        .collect()
}

/// `--client NAME ARGS...`: runs the workload once and prints
/// `result OK FAILED WALL_S CPU_S PEAK_RSS_KB`.
fn run_client(argv: &[String]) -> Result<(), String> {
    let (name, rest) = argv.split_first().ok_or("--client needs a name")?;
    let args = parse_args(rest)?;
    let urls = urls(&args);
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let (ok, failed, first_error) = match name.as_str() {
        "volley" => run_volley(&args, urls, volley::Client::new()),
        "volley-system" => {
            let client = volley::Client::builder()
                .dns_resolver(volley::Resolver::system())
                .build();
            run_volley(&args, urls, client)
        }
        "reqwest" => run_reqwest(&args, urls),
        other => return Err(format!("unknown client {other:?}")),
    };
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    if let Some(e) = first_error {
        eprintln!("{name}: first error: {e}");
    }
    println!(
        "result {ok} {failed} {:.6} {:.6} {}",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        peak_rss_kb()
    );
    Ok(())
}

fn run_volley(
    args: &Args,
    urls: Vec<String>,
    client: volley::Client,
) -> (u64, u64, Option<String>) {
    let rt = volley::Runtime::new().expect("volley runtime");
    rt.block_on(async {
        let mut stream = client
            .fetch_all(urls)
            .concurrency(args.concurrency)
            .duplicates(volley::batch::Duplicates::Fetch)
            .keep_bodies(false)
            .stream();
        let mut first_error = None;
        while let Some(result) = stream.next().await {
            if let (Err(e), None) = (&result.outcome, &first_error) {
                first_error = Some(format!("{e:#}"));
            }
        }
        let s = stream.summary();
        (s.ok, s.failed, first_error)
    })
}

fn run_reqwest(args: &Args, urls: Vec<String>) -> (u64, u64, Option<String>) {
    volley_peers::install_ring_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = reqwest::Client::new();
    let urls = Rc::new(urls);
    let next = Rc::new(Cell::new(0usize));
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| {
                let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
                tokio::task::spawn_local(async move {
                    let (mut ok, mut failed, mut first_error) = (0, 0, None);
                    loop {
                        let i = next.get();
                        let Some(url) = urls.get(i) else { break };
                        next.set(i + 1);
                        let result = match client.get(url).send().await {
                            Ok(resp) => resp.bytes().await.map(drop),
                            Err(e) => Err(e),
                        };
                        match result {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    (ok, failed, first_error)
                })
            })
            .collect();
        let (mut ok, mut failed, mut first_error) = (0, 0, None);
        for task in tasks {
            let (o, f, e) = task.await.expect("reqwest task");
            ok += o;
            failed += f;
            first_error = first_error.or(e);
        }
        (ok, failed, first_error)
    })
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The parent.

struct Run {
    ok: u64,
    failed: u64,
    wall: f64,
    cpu: f64,
    rss_kb: u64,
    threads: usize,
    queries: [u64; 3],
}

/// Runs one client in a child process, sampling its thread count until it exits.
fn run_child(name: &str, args: &Args, dns: &mut DnsProcess) -> Result<Run, String> {
    let before = dns.stats()?;
    let mut argv = vec![
        "--client".to_owned(),
        name.to_owned(),
        "--hosts".into(),
        args.hosts.to_string(),
        "--per-host".into(),
        args.per_host.to_string(),
        "-c".into(),
        args.concurrency.to_string(),
        "--port".into(),
        args.port.to_string(),
    ];
    argv.extend([
        "--dns-delay-ms".into(),
        args.dns_delay.as_millis().to_string(),
    ]);
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(&argv)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let task_dir = format!("/proc/{}/task", child.id());
    let mut threads = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(dir) = std::fs::read_dir(&task_dir) {
            threads = threads.max(dir.count());
        }
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!("{name} still running after 300 s"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .ok_or_else(|| format!("{name} printed no result: {stdout:?}"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let after = dns.stats()?;
    Ok(Run {
        ok: num(0) as u64,
        failed: num(1) as u64,
        wall: num(2),
        cpu: num(3),
        rss_kb: num(4) as u64,
        threads,
        queries: [0, 1, 2].map(|i| after[i] - before[i]),
    })
}

fn orchestrate(argv: &[String]) -> Result<(), String> {
    let mut args = parse_args(argv)?;
    let _resolv = ResolvConfGuard::install()?;
    let mut dns = DnsProcess::start(args.dns_delay)?;
    let http = ServerProcess::start().map_err(|e| e.to_string())?;
    args.port = http.addrs[0].port();
    println!(
        "# {} GETs: {} host names × {} adjacent requests each, at most {} in flight; DNS answers \
         after {} ms; {} rounds; load {}",
        args.hosts * args.per_host,
        args.hosts,
        args.per_host,
        args.concurrency,
        args.dns_delay.as_millis(),
        args.rounds,
        loadavg()
    );
    let mut runs: Vec<Vec<Run>> = args.clients.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (i, name) in args.clients.iter().enumerate() {
            let run = run_child(name, &args, &mut dns)?;
            println!(
                "round {round} {name:<14} ok {:>6} failed {:>4}  wall {:>7.3} s  cpu {:>6.3} s  \
                 threads {:>3}  rss {:>6.1} MB  queries A {:>5} AAAA {:>5} TCP {}",
                run.ok,
                run.failed,
                run.wall,
                run.cpu,
                run.threads,
                run.rss_kb as f64 / 1024.0,
                run.queries[0],
                run.queries[1],
                run.queries[2]
            );
            runs[i].push(run);
        }
    }
    println!(
        "\nmedians over {} rounds (load {}):",
        args.rounds,
        loadavg()
    );
    println!(
        "| client | wall | CPU | most threads | peak RSS | A + AAAA queries | failed |\n|---|---|---|---|---|---|---|"
    );
    for (name, runs) in args.clients.iter().zip(&runs) {
        let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
        println!(
            "| {name} | {:.3} s | {:.3} s | {:.0} | {:.1} MB | {:.0} + {:.0} | {:.0} |",
            m(|r| r.wall),
            m(|r| r.cpu),
            m(|r| r.threads as f64),
            m(|r| r.rss_kb as f64) / 1024.0,
            m(|r| r.queries[0] as f64),
            m(|r| r.queries[1] as f64),
            m(|r| r.failed as f64),
        );
    }
    Ok(())
}
