//! What the comparison binaries share: the neutral server run as a child process of the
//! binary itself, wrk as a measured client, and the statistics they report.

#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary's own `--serve` mode, running in a child process so that the client's CPU time
/// and memory are its own. The child prints its listeners on one line, comma-separated, each
/// `ip:port` (or a bare port: `127.0.0.1`); it exits when its standard input closes.
pub struct ServerProcess {
    child: Child,
    /// The addresses the server listens on, in the order it printed them.
    pub addrs: Vec<SocketAddr>,
}

impl ServerProcess {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `current_exe --serve` and reads the addresses it listens on.
    pub fn start() -> io::Result<ServerProcess> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addrs = line
            .trim()
            .split(',')
            .map(|a| {
                a.parse::<SocketAddr>().ok().or_else(|| {
                    let port = a.parse::<u16>().ok()?;
                    Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| io::Error::other(format!("server said {line:?}, not addresses")))?;
        Ok(ServerProcess { child, addrs })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // EOF: the server exits
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The median (NaN if empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The load averages from `/proc/loadavg`, for the report.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Answers each request head on `stream` (anything up to a blank line) with `response`,
/// pipelined heads included, until the peer closes: the neutral keep-alive server's loop, for
/// plain TCP and TLS streams alike.
pub async fn answer_each_head<S>(mut stream: S, response: &[u8])
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(4 * response.len());
    // How much of "\r\n\r\n" the bytes so far end with.
    let mut matched = 0u8;
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        out.clear();
        for &b in &buf[..n] {
            matched = match (matched, b) {
                (0 | 2, b'\r') => matched + 1,
                (1 | 3, b'\n') => matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if matched == 4 {
                out.extend_from_slice(response);
                matched = 0;
            }
        }
        if !out.is_empty()
            && (stream.write_all(&out).await.is_err() || stream.flush().await.is_err())
        {
            return;
        }
    }
}

/// Installs rustls's *ring* provider as the process default, once. reqwest is built with
/// `rustls-no-provider` (see Cargo.toml) and panics at `Client::new()` without one, even for
/// plain `http://`; every binary that builds a reqwest client calls this first.
pub fn install_ring_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One run of `wrk`: what it reported, and the CPU time of the wrk process itself.
#[derive(Clone, Copy, Debug)]
pub struct WrkRun {
    /// Requests completed (wrk's count).
    pub requests: f64,
    /// wrk's own requests per second.
    pub rps: f64,
    /// Answers other than 2xx/3xx, as wrk counts them (they are among `requests`).
    pub non_2xx: f64,
    /// Socket errors (connect, read, write, timeout), as wrk counts them (not among
    /// `requests`).
    pub socket_errors: f64,
    /// User and system CPU seconds of the wrk process, all its threads.
    pub user_s: f64,
    pub sys_s: f64,
}

impl WrkRun {
    /// CPU microseconds per request.
    pub fn cpu_us_per_req(&self) -> f64 {
        (self.user_s + self.sys_s) * 1e6 / self.requests.max(1.0)
    }
}

/// How long wrk runs in each round of the comparisons that run it.
pub const WRK_SECONDS: u32 = 5;

/// True if `wrk` can be started.
pub fn wrk_available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs `wrk -t1 -c<connections> -d<seconds>s URL` as a child process. Its CPU time is the wrk
/// process's own: `utime + stime` of `/proc/<pid>/stat`, read once wrk has exited and before
/// it is reaped (a zombie keeps its totals there, its threads' included), in clock ticks of
/// 10 ms.
pub fn wrk(url: &str, connections: usize, seconds: u32) -> Result<WrkRun, String> {
    let mut child = Command::new("wrk")
        .args([
            "-t1".to_string(),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            url.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("wrk: {e}"))?;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut text)
            .map_err(|e| format!("wrk: reading its output: {e}"))?;
    }
    // Its output ends when wrk exits: wait until it is a zombie, then read its times.
    let stat_path = format!("/proc/{}/stat", child.id());
    let mut times = None;
    for _ in 0..2000 {
        let Ok(stat) = std::fs::read_to_string(&stat_path) else {
            break;
        };
        // The fields after the command name (in parentheses): the state is the first, utime
        // the 12th and stime the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        if fields.first() == Some(&"Z") {
            let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
            times = tick(11).zip(tick(12));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = child.wait().map_err(|e| format!("wrk: {e}"))?;
    if !status.success() {
        return Err(format!("wrk exited with {status}: {text}"));
    }
    let (utime, stime) = times.ok_or("wrk: could not read its CPU time from /proc")?;
    let requests: f64 = text
        .lines()
        .find_map(|l| l.split_once(" requests in"))
        .and_then(|(n, _)| n.trim().parse().ok())
        .ok_or_else(|| format!("wrk: no request count in {text:?}"))?;
    let rps: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("wrk: no Requests/sec in {text:?}"))?;
    let (mut non_2xx, mut socket_errors) = (0.0, 0.0);
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx += n.trim().parse::<f64>().unwrap_or(0.0);
        }
        if let Some(errors) = line.strip_prefix("Socket errors:") {
            for part in errors.split(',') {
                socket_errors += part
                    .split_whitespace()
                    .last()
                    .and_then(|n| n.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        }
    }
    let hz = 100.0; // USER_HZ
    Ok(WrkRun {
        requests,
        rps,
        non_2xx,
        socket_errors,
        user_s: utime / hz,
        sys_s: stime / hz,
    })
}
