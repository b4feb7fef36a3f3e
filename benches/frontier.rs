//! The Redis frontier's numbers (issue 17), with `fetch_many` workers as processes, a real
//! `redis-server` and in-process test servers (one origin per port of 127.0.0.1):
//!
//! - **overhead**: one worker through Redis (`--enqueue`, then `--from`) beside the same URLs
//!   through `-i`, at 1 s delays (10,000 URLs, `-c 1000`) and at zero delay (50,000 URLs,
//!   `-c 100`); wall time of the fetch, the enqueue timed apart; rounds alternate the order;
//! - **nothing lost**: 3 workers on 3,000 URLs over 6 hosts (`--rate 100`), one killed with
//!   SIGKILL once it has written 300 lines: the results in the frontier, the most lines any
//!   URL has in the `-o` files, and the requests the servers saw beyond 3,000;
//! - **politeness**: 3 workers with `--rate 18` on 3,000 URLs over 6 hosts that each admit 20
//!   requests in any second (429 beyond): the share answered 429, and the time beside the
//!   floor (500 per host / 18 per second).
//!
//! ```text
//! bash benches/frontier.sh     # builds fetch_many with --features redis, writes docs/frontier-results.txt
//! ```

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use volley::frontier::{Frontier, RedisFrontier};
use volley_testserver::{Server, ServerThread};

fn main() {
    if let Err(e) = run() {
        eprintln!("frontier: {e}");
        std::process::exit(1);
    }
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A redis-server of this run's own, on a free loopback port.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Result<Redis, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::temp_dir().join(format!("volley-frontier-bench-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server (apt-get install redis-server): {e}")
            })?;
        let redis = Redis { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("redis-server did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }

    fn url(&self, name: &str) -> String {
        format!("redis://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Bench {
    fetch_many: PathBuf,
    dir: PathBuf,
}

impl Bench {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.fetch_many);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    /// Runs fetch_many to its end; its wall time and `--json` summary.
    fn run(&self, args: &[&str]) -> Result<(f64, serde_json::Value), String> {
        let started = Instant::now();
        let out = self.cmd(args).output().map_err(|e| e.to_string())?;
        let secs = started.elapsed().as_secs_f64();
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = serde_json::from_str(text.trim()).map_err(|e| {
            format!(
                "fetch_many {args:?}: {e}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        Ok((secs, summary))
    }

    /// A file of `n` URLs over `servers`, `path` with `{i}` replaced.
    fn urls(&self, name: &str, servers: &[ServerThread], n: usize, path: &str) -> PathBuf {
        let file = self.dir.join(name);
        let text: String = (0..n)
            .map(|i| servers[i % servers.len()].url(&path.replace("{i}", &i.to_string())) + "\n")
            .collect();
        std::fs::write(&file, text).expect("write the URL file");
        file
    }
}

impl Bench {
    /// Six test servers and a frontier `name` holding `n` of their URLs (`path`).
    fn enqueued(
        &self,
        redis: &Redis,
        name: &str,
        n: usize,
        path: &str,
    ) -> Result<(Vec<ServerThread>, String), String> {
        let hosts = servers(6)?;
        let file = self.urls(&format!("{name}.txt"), &hosts, n, path);
        let frontier = redis.url(name);
        self.run(&[
            "--enqueue",
            &frontier,
            "-i",
            file.to_str().unwrap(),
            "--json",
        ])?;
        Ok((hosts, frontier))
    }
}

fn servers(n: usize) -> Result<Vec<ServerThread>, String> {
    (0..n)
        .map(|_| Server::spawn_thread("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string()))
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each -o line's URL, counted over `paths`.
fn lines_per_url(paths: &[PathBuf]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for path in paths {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if let Some(url) = v["url"].as_str() {
                    *counts.entry(url.to_owned()).or_default() += 1;
                }
            }
        }
    }
    counts
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds = flag(&args, "--rounds", 3);
    let delayed = flag(&args, "--delayed", 10_000);
    let zero = flag(&args, "--zero", 50_000);
    let fetch_many = args
        .iter()
        .position(|a| a == "--fetch-many")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .ok_or("--fetch-many PATH (built with --features redis)")?;
    let _ = volley::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("volley-frontier-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bench = Bench { fetch_many, dir };
    let redis = Redis::start()?;

    // Overhead.
    let hosts = servers(10)?;
    println!("overhead: one worker through Redis beside -i, 10 origins; wall seconds of the fetch");
    println!(
        "{:>5} {:>6} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "round", "load", "urls", "-i s", "enqueue s", "--from s", "from/-i"
    );
    let mut ratios: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut rows = Vec::new();
    for round in 1..=rounds {
        for (load, n, c, path) in [
            ("1s", delayed, 1000, format!("/delay/1?r={round}&i={{i}}")),
            ("0s", zero, 100, format!("/get?r={round}&i={{i}}")),
        ] {
            let file = bench.urls(&format!("{load}-{round}.txt"), &hosts, n, &path);
            let file = file.to_str().unwrap();
            let c = c.to_string();
            let frontier = redis.url(&format!("over-{load}-{round}"));
            let direct = |b: &Bench| b.run(&["-i", file, "-c", &c, "--json"]);
            let through = |b: &Bench| -> Result<(f64, f64), String> {
                let (enqueue, _) = b.run(&["--enqueue", &frontier, "-i", file, "--json"])?;
                let (secs, _) = b.run(&["--from", &frontier, "-c", &c, "--json"])?;
                Ok((enqueue, secs))
            };
            let ((direct_s, _), (enqueue_s, from_s)) = match round % 2 {
                1 => (direct(&bench)?, through(&bench)?),
                _ => {
                    let t = through(&bench)?;
                    (direct(&bench)?, t)
                }
            };
            let ratio = from_s / direct_s;
            ratios.entry(load).or_default().push(ratio);
            println!("{round:>5} {load:>6} {n:>9} {direct_s:>9.2} {enqueue_s:>10.2} {from_s:>9.2} {ratio:>9.3}");
            rows.push((load, direct_s, from_s));
        }
    }
    for load in ["1s", "0s"] {
        let direct = median(rows.iter().filter(|r| r.0 == load).map(|r| r.1).collect());
        let from = median(rows.iter().filter(|r| r.0 == load).map(|r| r.2).collect());
        println!(
            "median at {load} delay: -i {direct:.2} s, --from {from:.2} s: requests/s through Redis = {:.3} × -i (median of the rounds' ratios: {:.3})",
            direct / from,
            1.0 / median(ratios[load].clone())
        );
    }
    drop(hosts);

    // Nothing lost.
    let (hosts, frontier) = bench.enqueued(&redis, "kill", 3000, "/get?i={i}")?;
    let outs: Vec<PathBuf> = (0..3)
        .map(|w| bench.dir.join(format!("kill{w}.jsonl")))
        .collect();
    let worker = |out: &Path| {
        bench
            .cmd(&[
                "--from",
                &frontier,
                "-o",
                out.to_str().unwrap(),
                "-c",
                "20",
                "--rate",
                "100",
            ])
            .args(["--lease", "2", "--json"])
            .spawn()
            .map_err(|e| e.to_string())
    };
    let mut doomed = worker(&outs[0])?;
    let survivors: Vec<Child> = outs[1..]
        .iter()
        .map(|o| worker(o))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    while lines_per_url(&outs[..1]).len() < 300 {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the first worker wrote nothing".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed_at = lines_per_url(&outs[..1]).len();
    doomed.kill().map_err(|e| e.to_string())?;
    let _ = doomed.wait();
    for child in survivors {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "a worker failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut f = RedisFrontier::open(&frontier).map_err(|e| e.to_string())?;
    let results = f.results("0", 100_000).map_err(|e| e.to_string())?;
    let distinct: std::collections::HashSet<&String> = results.iter().map(|r| &r.1).collect();
    let lines = lines_per_url(&outs);
    let most = lines.values().copied().max().unwrap_or(0);
    let twice = lines.values().filter(|&&n| n == 2).count();
    let requests: u64 = hosts.iter().map(|s| s.stats().requests).sum();
    println!(
        "\nnothing lost: 3 workers, 3,000 URLs over 6 hosts, one killed (SIGKILL) after {killed_at} lines: \
         {} results in the frontier ({} URLs), drained: {}; -o lines per URL at most {most} ({twice} URLs twice); \
         the servers saw {requests} requests ({} beyond 3,000); {secs:.1} s",
        results.len(),
        distinct.len(),
        f.is_drained().map_err(|e| e.to_string())?,
        requests.saturating_sub(3000),
    );
    drop(hosts);

    // Politeness across the cluster.
    let (hosts, frontier) = bench.enqueued(&redis, "rate", 3000, "/limit/20?i={i}")?;
    let started = Instant::now();
    let workers: Vec<Child> = (0..3)
        .map(|_| {
            bench
                .cmd(&[
                    "--from", &frontier, "--rate", "18", "--lease", "10", "--json",
                ])
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let mut fetched = Vec::new();
    for child in workers {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        fetched.push(v["fetched"].as_u64().unwrap_or(0));
    }
    let secs = started.elapsed().as_secs_f64();
    let limited: u64 = hosts.iter().map(|s| s.stats().limited).sum();
    let requests: u64 = hosts.iter().map(|s| s.stats().requests).sum();
    let floor = 500.0 / 18.0;
    println!(
        "\npoliteness: 3 workers at --rate 18, 3,000 URLs over 6 hosts that admit 20 per second: \
         {requests} requests, {limited} answered 429 ({:.2} %); {secs:.1} s = {:.2} × the floor of {floor:.1} s; \
         URLs per worker {fetched:?}",
        limited as f64 * 100.0 / requests.max(1) as f64,
        secs / floor
    );
    let _ = std::fs::remove_dir_all(&bench.dir);
    Ok(())
}
