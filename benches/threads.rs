//! One loop or two: requests per second and client CPU per request of a threaded client's
//! batch on 1 and 2 loop threads (sharded by host), side by side in one run.
//!
//! ```text
//! cargo run --release -p volley-benches --bin threads
//! cargo run --release -p volley-benches --bin threads -- --rounds 5 --w2 10000 --tls 4000
//! ```
//!
//! Two workloads, over `--hosts` origins (default 10: test servers on as many ports of
//! 127.0.0.1, each a thread of a server process of its own, so that a host is an origin):
//!
//! - `w2`: `--w2` GETs (default 10,000) of `/delay/1`, all at once (concurrency = count): the
//!   10,000 × 1 s workload, where the time goes to establishing connections and timers;
//! - `tls`: `--tls` GETs (default 3,000) over HTTPS, 50 in flight, each on a new connection
//!   (the pool keeps none idle), so each pays a TCP connect and a TLS handshake (TLS 1.3,
//!   the session resumed where the client has one for the origin): a CPU-heavy workload.
//!
//! Each measurement is a child process (this binary with `--client`), so that its CPU time
//! (`CLOCK_PROCESS_CPUTIME_ID`: every thread's, user and system) is the client's alone; the servers run in
//! another child (`--serve`). Rounds alternate the order of 1 and 2 threads. Each row gives
//! requests/s and CPU µs per request; the summary gives medians and the ratio of 2 threads to
//! 1. Raw rounds go to `--json PATH` (default `threads-results.json`).
//!
//! These machines have 2 cores, and the servers share them: two client loops compete with
//! the servers for the same two cores, so this shows the cost of sharding (CPU per request)
//! more than its gain (requests/s).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use volley::threaded;
use volley_testserver::{testcert, Server, ServerConfig};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--serve") => serve(&args[1..]),
        Some("--client") => client(&args[1..]),
        _ => parent(&args),
    };
    if let Err(e) = result {
        eprintln!("threads: {e}");
        std::process::exit(1);
    }
}

/// The value after `name` in `args`, parsed, or `default`.
fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

/// `--serve H`: H plain and H TLS test servers on 127.0.0.1; prints their ports, then serves
/// until stdin closes.
fn serve(args: &[String]) -> Result<(), String> {
    let hosts: usize = args.first().and_then(|h| h.parse().ok()).unwrap_or(10);
    let _ = volley::raise_fd_limit();
    let local = "127.0.0.1:0".parse().expect("an address");
    let mut servers = Vec::new();
    let mut plain = Vec::new();
    let mut tls = Vec::new();
    for _ in 0..hosts {
        let server = Server::spawn_thread(local).map_err(|e| e.to_string())?;
        plain.push(server.local_addr().port().to_string());
        servers.push(server);
        let config = ServerConfig::default()
            .tls(testcert::CERT_PEM, testcert::KEY_PEM)
            .map_err(|e| e.to_string())?;
        let server = Server::spawn_thread_with(local, config).map_err(|e| e.to_string())?;
        tls.push(server.local_addr().port().to_string());
        servers.push(server);
    }
    println!("{}", plain.join(","));
    println!("{}", tls.join(","));
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    drop(servers);
    Ok(())
}

/// This process's CPU time so far, every thread's, those that have ended included
/// (`CLOCK_PROCESS_CPUTIME_ID`).
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `--client WORKLOAD THREADS COUNT PORTS`: runs one measurement, prints one JSON line.
fn client(args: &[String]) -> Result<(), String> {
    let [workload, threads, count, ports] = args else {
        return Err("--client WORKLOAD THREADS COUNT PORTS".into());
    };
    let threads: usize = threads.parse().map_err(|_| "THREADS")?;
    let count: usize = count.parse().map_err(|_| "COUNT")?;
    let ports: Vec<&str> = ports.split(',').collect();
    let _ = volley::raise_fd_limit();
    let tls = workload == "tls";
    let client = threaded::Client::builder()
        .threads(threads)
        .configure(move |b| {
            let ca = volley::Certificate::from_pem(testcert::CA_PEM).expect("the test CA");
            let b = b.add_root_certificate(ca).tls_built_in_roots(false);
            match tls {
                true => b.pool_max_idle_per_host(0),
                false => b,
            }
        })
        .build();
    let urls: Vec<String> = (0..count)
        .map(|i| {
            let port = ports[i % ports.len()];
            match tls {
                true => format!("https://127.0.0.1:{port}/get?n={i}"),
                false => format!("http://127.0.0.1:{port}/delay/1?n={i}"),
            }
        })
        .collect();
    let concurrency = if tls { 50 } else { count };
    let rt = volley::Runtime::new().map_err(|e| e.to_string())?;
    let cpu_before = cpu_time();
    let started = Instant::now();
    let report = rt.block_on(
        client
            .fetch_all(urls)
            .concurrency(concurrency)
            .keep_bodies(false)
            .run(),
    );
    let secs = started.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu_before).as_secs_f64();
    let s = &report.summary;
    println!(
        "{}",
        serde_json::json!({
            "workload": workload,
            "threads": threads,
            "requests": s.requests,
            "ok": s.ok,
            "failed": s.failed,
            "secs": secs,
            "req_per_s": s.requests as f64 / secs,
            "cpu_s": cpu,
            "cpu_us_per_req": cpu * 1e6 / s.requests.max(1) as f64,
        })
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn parent(args: &[String]) -> Result<(), String> {
    let rounds: usize = flag(args, "--rounds", 3)?;
    let w2: usize = flag(args, "--w2", 10_000)?;
    let tls_count: usize = flag(args, "--tls", 3_000)?;
    let hosts: usize = flag(args, "--hosts", 10)?;
    let json_path: String = flag(args, "--json", "threads-results.json".to_string())?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut server = Command::new(&me)
        .args(["--serve", &hosts.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(server.stdout.take().expect("piped")).lines();
    let mut port_line = || -> Result<String, String> {
        lines
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| "the server process printed no ports".to_string())
    };
    let plain = port_line()?;
    let tls = port_line()?;
    println!(
        "{hosts} origins per workload; w2: {w2} × /delay/1 at once; tls: {tls_count} GETs, 50 in flight, a new connection each"
    );
    println!(
        "{:>5} {:>6} {:>7} {:>9} {:>9} {:>8} {:>11}",
        "round", "load", "threads", "ok", "secs", "req/s", "cpu µs/req"
    );
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for (workload, count, ports) in [("w2", w2, &plain), ("tls", tls_count, &tls)] {
            let order: [usize; 2] = if round % 2 == 1 { [1, 2] } else { [2, 1] };
            for threads in order {
                let out = Command::new(&me)
                    .args([
                        "--client",
                        workload,
                        &threads.to_string(),
                        &count.to_string(),
                        ports,
                    ])
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout);
                let row: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
                    format!(
                        "{workload} on {threads}: {e}: {text} {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })?;
                println!(
                    "{round:>5} {workload:>6} {threads:>7} {:>9} {:>9.2} {:>8.0} {:>11.1}",
                    row["ok"],
                    row["secs"].as_f64().unwrap_or(0.0),
                    row["req_per_s"].as_f64().unwrap_or(0.0),
                    row["cpu_us_per_req"].as_f64().unwrap_or(0.0)
                );
                let mut row = row;
                row["round"] = round.into();
                rows.push(row);
            }
        }
    }
    drop(server.stdin.take());
    let _ = server.wait();
    println!("\nmedians over {rounds} rounds:");
    for workload in ["w2", "tls"] {
        let pick = |threads: u64, field: &str| {
            median(
                rows.iter()
                    .filter(|r| r["workload"] == workload && r["threads"] == threads)
                    .filter_map(|r| r[field].as_f64())
                    .collect(),
            )
        };
        let (rps1, rps2) = (pick(1, "req_per_s"), pick(2, "req_per_s"));
        let (cpu1, cpu2) = (pick(1, "cpu_us_per_req"), pick(2, "cpu_us_per_req"));
        println!(
            "{workload:>4}: 1 thread {rps1:.0} req/s, {cpu1:.1} µs CPU/req; 2 threads {rps2:.0} req/s, {cpu2:.1} µs CPU/req; 2/1: {:.2} × req/s, {:.2} × CPU/req",
            rps2 / rps1,
            cpu2 / cpu1
        );
    }
    let raw = serde_json::json!({ "rounds": rows, "hosts": hosts, "w2": w2, "tls": tls_count });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&raw).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write {json_path}: {e}"))?;
    println!("raw rounds: {json_path}");
    Ok(())
}
