//! The `fetch_many` example as a command-line tool: `-i`, `-o`, `--resume` (with a `kill -9`
//! in the middle), `--save`, `--rate`, `--per-host`, `--threads`, its exit status and its
//! argument errors.
//! Each test runs the example's binary as a subprocess against a test server on loopback.
//!
//! The binary is built (or found fresh) by `util::example::build`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use volley_testserver::{Server, ServerThread};

mod util;

/// The longest one run of the binary may take before the test kills it and fails.
const WATCHDOG: Duration = Duration::from_secs(60);

/// The example's binary, built (or found fresh) once per test process.
fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| util::example::build("fetch_many"))
}

/// A fresh directory of this test's own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "volley-fetch-many-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with `args`, stdout and stderr captured, stdin from `stdin` (else empty).
fn start(args: &[&str], stdin: Option<&[u8]>) -> Child {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fetch_many");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input); // end of input
    child
}

/// Waits for `child`, killing it and failing past [`WATCHDOG`].
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "fetch_many still running after {WATCHDOG:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs the binary to its end. Its stdout and stderr are large only for the report, far
/// below a pipe's buffer, so reading them after the exit cannot block it.
fn run(args: &[&str]) -> Output {
    finish(start(args, None))
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    finish(start(args, Some(stdin)))
}

/// The exit code; fails on a signal or a panic message.
fn code(out: &Output) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    out.status.code().expect("an exit code, not a signal")
}

/// The `--json` summary on stdout.
fn summary(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every line of a JSONL file, parsed (each must be).
fn jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a whole last line: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The lines of `lines` by their `url`, each URL once.
fn by_url(lines: &[Value]) -> HashMap<String, Value> {
    let mut map = HashMap::new();
    for line in lines {
        let url = line["url"].as_str().expect("a url").to_owned();
        assert!(
            map.insert(url.clone(), line.clone()).is_none(),
            "{url} twice"
        );
    }
    map
}

fn server() -> ServerThread {
    Server::spawn_thread("127.0.0.1:0".parse().unwrap()).expect("start the test server")
}

use util::refused_port;

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `-i`: comments, blank lines, padding and invalid lines; `-o`: one line per URL with every
/// field. Invalid lines are results of their own and the run goes on, exiting 1.
#[test]
fn input_file_to_output_lines() {
    let server = server();
    let dir = TempDir::new("input");
    let get = server.url("/get");
    let not_found = server.url("/status/404");
    let bytes = server.url("/bytes/100?seed=3");
    let input = format!(
        "# a comment\n\n   {get}  \n\t{not_found}\nnot a url\n#{bytes}\nftp://127.0.0.1/x\n\n{bytes}\nhttp://127.0.0.1:1/a\u{7}b\n"
    );
    let (input_path, output_path) = (dir.path("urls.txt"), dir.path("out.jsonl"));
    std::fs::write(&input_path, input).unwrap();

    let out = run(&[
        "-i",
        path_str(&input_path),
        "-o",
        path_str(&output_path),
        "--json",
    ]);
    assert_eq!(code(&out), 1, "invalid lines fail the run");
    let lines = jsonl(&output_path);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let lines = by_url(&lines);
    for line in lines.values() {
        let mut keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "attempts",
                "bytes",
                "elapsed_ms",
                "error",
                "error_kind",
                "retry_reasons",
                "saved",
                "status",
                "url"
            ]
        );
        assert_eq!(line["saved"], Value::Null);
        assert_eq!(line["retry_reasons"], serde_json::json!([]));
    }
    for (url, status, length) in [
        (&get, 200, None),
        (&not_found, 404, Some(0)),
        (&bytes, 200, Some(100)),
    ] {
        let line = &lines[url.as_str()];
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["attempts"], 1);
        assert_eq!(line["error"], Value::Null);
        assert_eq!(line["error_kind"], Value::Null);
        assert!(line["elapsed_ms"].as_f64().unwrap() > 0.0, "{line}");
        let body = line["bytes"].as_u64().unwrap();
        match length {
            Some(n) => assert_eq!(body, n),
            None => assert!(body > 50, "/get's JSON: {line}"),
        }
    }
    for (url, why) in [
        ("not a url", "relative URL without a base"),
        ("ftp://127.0.0.1/x", "volley speaks http"),
        ("http://127.0.0.1:1/a\u{7}b", "control character"),
    ] {
        let line = &lines[url];
        assert_eq!(line["error_kind"], "invalid_url", "{line}");
        assert!(line["error"].as_str().unwrap().contains(why), "{line}");
        assert_eq!(line["status"], Value::Null);
        assert_eq!(line["bytes"], 0);
        assert_eq!(line["attempts"], 0);
        assert_eq!(line["elapsed_ms"].as_f64(), Some(0.0));
    }
    let s = summary(&out);
    assert_eq!(s["requests"], 6);
    assert_eq!(s["ok"], 3);
    assert_eq!(s["failed"], 3);
    assert_eq!(s["invalid"], 3);
    assert_eq!(s["skipped"], 0);
    assert_eq!(s["retries"], 0);
    assert_eq!(server.stats().requests, 3);
    let host = &s["hosts"][0];
    assert_eq!(host["host"], format!("http://{}", server.local_addr()));
    assert_eq!(host["requests"], 3);
    assert_eq!(host["statuses"]["200"], 2);
    assert_eq!(host["statuses"]["404"], 1);
}

/// `-i -`: the URLs from standard input; the text report names retries and top hosts.
#[test]
fn input_from_stdin() {
    let server = server();
    let dir = TempDir::new("stdin");
    let output_path = dir.path("out.jsonl");
    let urls: Vec<String> = (0..20)
        .map(|i| server.url(&format!("/get?i={i}")))
        .collect();
    let out = run_with_stdin(
        &["-i", "-", "-o", path_str(&output_path), "-c", "5"],
        urls.join("\n").as_bytes(), // no newline after the last line
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let lines = by_url(&jsonl(&output_path));
    assert_eq!(lines.len(), 20);
    for url in &urls {
        assert_eq!(lines[url.as_str()]["status"], 200);
    }
    let report = String::from_utf8_lossy(&out.stdout);
    for expected in ["retries", "skipped", "top hosts by time", "requests   20"] {
        assert!(report.contains(expected), "{expected:?} in {report}");
    }
    assert!(report.contains(&format!("http://{}", server.local_addr())));
    assert_eq!(server.stats().requests, 20);
}

/// `--resume`: URLs in the file are skipped; a half-written last line is cut off and its URL
/// fetched again; a last whole line that is not JSON is cut off too; a file that is not ours
/// is refused and left alone.
#[test]
fn resume_skips_done_urls_and_repairs_the_last_line() {
    let server = server();
    let dir = TempDir::new("resume");
    let urls: Vec<String> = (0..6).map(|i| server.url(&format!("/get?i={i}"))).collect();
    let input_path = dir.path("urls.txt");
    std::fs::write(&input_path, urls.join("\n") + "\n").unwrap();
    let output_path = dir.path("out.jsonl");
    let done = |url: &str| {
        format!(
            r#"{{"url":"{url}","status":200,"bytes":1,"attempts":1,"elapsed_ms":1.0,"error":null,"error_kind":null,"retry_reasons":[],"saved":null}}"#
        ) + "\n"
    };
    let whole = done(&urls[0]) + &done(&urls[1]) + &done(&urls[2]);
    // The fourth line was being written when the run was killed.
    let half = &done(&urls[3])[..40];
    std::fs::write(&output_path, whole.clone() + half).unwrap();
    let args = [
        "-i",
        path_str(&input_path),
        "-o",
        path_str(&output_path),
        "--resume",
        "--json",
    ];
    let out = run(&args);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(&out)["skipped"], 3);
    assert_eq!(summary(&out)["requests"], 3);
    assert_eq!(server.stats().requests, 3, "URLs 3, 4 and 5 only");
    let text = std::fs::read_to_string(&output_path).unwrap();
    assert!(
        text.starts_with(&whole),
        "the done lines are kept as they were"
    );
    let lines = by_url(&jsonl(&output_path));
    assert_eq!(lines.len(), 6);
    for url in &urls[3..] {
        assert_eq!(lines[url.as_str()]["status"], 200);
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("half-written"));

    // Everything done: nothing is fetched, nothing written.
    let before = std::fs::read(&output_path).unwrap();
    let out = run(&args);
    assert_eq!(code(&out), 0);
    assert_eq!(summary(&out)["skipped"], 6);
    assert_eq!(server.stats().requests, 3);
    assert_eq!(std::fs::read(&output_path).unwrap(), before);

    // A whole last line that is not JSON is cut off as well.
    std::fs::write(&output_path, whole.clone() + "{\"url\": \"tru\n").unwrap();
    let out = run(&args);
    assert_eq!(code(&out), 0);
    assert_eq!(summary(&out)["skipped"], 3);
    assert_eq!(by_url(&jsonl(&output_path)).len(), 6);

    // A file with no line of ours is refused, untouched.
    std::fs::write(&output_path, "hello\nworld\n").unwrap();
    let out = run(&args);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not touching it"));
    assert_eq!(std::fs::read(&output_path).unwrap(), b"hello\nworld\n");
}

/// A run killed with `kill -9` in the middle and resumed: every URL ends with exactly one
/// line, and only the requests in flight at the kill (at most `-c`) were sent twice.
#[test]
fn kill_9_then_resume_fetches_each_url_once() {
    const URLS: usize = 300;
    const CONCURRENCY: usize = 8;
    let server = server();
    let dir = TempDir::new("kill");
    let urls: Vec<String> = (0..URLS)
        .map(|i| server.url(&format!("/delay/0.05?i={i}")))
        .collect();
    let input_path = dir.path("urls.txt");
    std::fs::write(&input_path, urls.join("\n") + "\n").unwrap();
    let output_path = dir.path("out.jsonl");
    let c = CONCURRENCY.to_string();
    let args = [
        "-i",
        path_str(&input_path),
        "-o",
        path_str(&output_path),
        "-c",
        &c,
        "--json",
    ];

    // 300 URLs of 50 ms, 8 at a time: about 1.9 s. Kill it once 40 lines are in the file.
    let mut child = start(&args, None);
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let lines = std::fs::read(&output_path)
            .map(|b| b.iter().filter(|b| **b == b'\n').count())
            .unwrap_or(0);
        if lines >= 40 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "ended before the kill");
        assert!(Instant::now() < deadline, "no lines after {WATCHDOG:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = std::fs::read(&output_path).unwrap();
    let whole_at_kill = at_kill.iter().filter(|b| **b == b'\n').count();
    assert!(
        whole_at_kill < URLS,
        "killed in the middle: {whole_at_kill} lines"
    );

    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = run(&resume);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert!(
        s["skipped"].as_u64().unwrap() + 1 >= whole_at_kill as u64,
        "the lines written before the kill are skipped (a last one may be cut): {s}"
    );

    let lines = by_url(&jsonl(&output_path)); // fails on a URL with two lines
    assert_eq!(lines.len(), URLS);
    for url in &urls {
        assert_eq!(lines[url.as_str()]["status"], 200, "{url}");
    }
    let requests = server.stats().requests as usize;
    eprintln!(
        "{whole_at_kill} lines at the kill ({} bytes), {} skipped on resume, {requests} requests",
        at_kill.len(),
        s["skipped"]
    );
    assert!(
        requests <= URLS + CONCURRENCY,
        "{requests} requests for {URLS} URLs at -c {CONCURRENCY}"
    );
}

/// `--save DIR`: each body in `DIR/<16 hex digits of the URL's FNV-1a>`; a body that cannot
/// be written fails its URL with `save` and the others go on.
#[test]
fn save_writes_bodies_and_reports_write_errors() {
    let server = server();
    let dir = TempDir::new("save");
    let save = dir.path("bodies"); // made by the run
    let (a, b, c) = (
        server.url("/bytes/1000?seed=7"),
        server.url("/bytes/10?seed=8"),
        server.url("/bytes/5?seed=9"),
    );
    let name = |url: &str| format!("{:016x}", volley_testserver::fnv1a64(url.as_bytes()));
    // Where c's body should go, a directory: writing it fails.
    std::fs::create_dir_all(save.join(name(&c))).unwrap();
    let output_path = dir.path("out.jsonl");
    let out = run(&[
        "-o",
        path_str(&output_path),
        "--save",
        path_str(&save),
        &a,
        &b,
        &c,
    ]);
    assert_eq!(code(&out), 1, "a body not saved fails the run");
    let lines = by_url(&jsonl(&output_path));
    for (url, seed, len) in [(&a, 7, 1000), (&b, 8, 10)] {
        let line = &lines[url.as_str()];
        let path = save.join(name(url));
        assert_eq!(line["saved"], path_str(&path), "{line}");
        assert_eq!(line["error"], Value::Null);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            volley_testserver::seeded_bytes(seed, len)
        );
    }
    let line = &lines[c.as_str()];
    assert_eq!(line["error_kind"], "save", "{line}");
    assert_eq!(line["status"], 200, "the response itself came");
    assert_eq!(line["bytes"], 5);
    assert_eq!(line["saved"], Value::Null);
    assert!(line["error"].as_str().unwrap().contains(&name(&c)));
}

/// Exit status 1 for a refused port and for a final 503 once its retries ran out; 0 for a
/// 404, which is an answer.
#[test]
fn exit_status_of_failures() {
    let server = server();
    let refused = format!("http://127.0.0.1:{}/x", refused_port());
    let out = run(&["--json", "--retries", "0", &refused]);
    assert_eq!(code(&out), 1);
    assert_eq!(summary(&out)["failed"], 1);

    let dir = TempDir::new("exit");
    let output_path = dir.path("out.jsonl");
    let unavailable = server.url("/status/503");
    let out = run(&[
        "--json",
        "--retries",
        "1",
        "-o",
        path_str(&output_path),
        &unavailable,
    ]);
    assert_eq!(code(&out), 1, "a final 503 after the retries fails");
    let s = summary(&out);
    assert_eq!(
        (s["gave_up"].as_u64(), s["retries"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s["hosts"][0]["statuses"]["503"], 2);
    let line = &jsonl(&output_path)[0];
    assert_eq!(line["status"], 503);
    assert_eq!(line["attempts"], 2);
    assert_eq!(line["retry_reasons"], serde_json::json!(["status 503"]));
    assert_eq!(server.stats().requests, 2);

    let out = run(&["--json", &server.url("/status/404")]);
    assert_eq!(code(&out), 0, "a 404 is an answer");
}

/// `--rate 20`: 10 URLs of one host start 50 ms apart, so the run takes at least 0.45 s;
/// `--per-host 2`: 6 URLs of 200 ms take three rounds.
#[test]
fn rate_and_per_host_pace_a_host() {
    let server = server();
    let urls: Vec<String> = (0..10)
        .map(|i| server.url(&format!("/get?i={i}")))
        .collect();
    let mut args = vec!["--json", "--rate", "20"];
    args.extend(urls.iter().map(String::as_str));
    let started = Instant::now();
    let out = run(&args);
    let took = started.elapsed();
    assert_eq!(code(&out), 0);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(summary(&out)["elapsed_s"].as_f64().unwrap() >= 0.4);
    assert!(took < Duration::from_secs(15), "{took:?}");

    let urls: Vec<String> = (0..6)
        .map(|i| server.url(&format!("/delay/0.2?i={i}")))
        .collect();
    let mut args = vec!["--json", "--per-host", "2", "-c", "10"];
    args.extend(urls.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(code(&out), 0);
    let elapsed = summary(&out)["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 0.55, "three rounds of 0.2 s: {elapsed}");
}

/// Bad arguments: a clear message and status 2, never a panic; a read error on `-i` ends the
/// run with status 1 and says so.
#[test]
fn bad_arguments_and_unreadable_input() {
    let dir = TempDir::new("args");
    let input_path = dir.path("urls.txt");
    std::fs::write(&input_path, "http://127.0.0.1:1/\n").unwrap();
    let input = path_str(&input_path);
    let missing = dir.path("missing.txt");
    let cases: &[(&[&str], &str)] = &[
        (&["--resume"], "--resume needs -o"),
        (&["-i", input, "-n", "5"], "-n cannot be used with -i"),
        (
            &["-i", input, "http://127.0.0.1:1/"],
            "cannot be used together",
        ),
        (&["-i", path_str(&missing)], "cannot open -i"),
        (&["-i"], "-i needs a file name"),
        (&["-i", input, "-o", input], "is the -i file"),
        (&["--rate", "0"], "--rate wants a positive number"),
        (&["--rate", "fast"], "--rate wants a positive number"),
        (
            &["--retries", "-1"],
            "--retries wants a non-negative integer",
        ),
        (&["--per-host", "0"], "--per-host wants a positive integer"),
        (
            &["--max-retry-after", "soon"],
            "--max-retry-after wants seconds",
        ),
        (&["--save"], "--save needs a file name"),
        (&["--threads", "0"], "--threads wants a positive integer"),
        (&["--threads", "x"], "--threads wants a positive integer"),
        (&["--threads"], "--threads needs a value"),
        (&["--bogus"], "unknown option --bogus"),
    ];
    for (args, message) in cases {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: {message:?} in {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&input_path).unwrap(),
        "http://127.0.0.1:1/\n"
    );

    // A directory opens, and its first read fails.
    let out = run(&["-i", path_str(&dir.0), "--json"]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read -i"));
}

/// A URL the input names twice is fetched once; its repeat gets a `duplicate` line of its
/// own, which is not a failure.
#[test]
fn a_repeated_url_is_fetched_once_and_reported_as_a_duplicate() {
    let server = server();
    let dir = TempDir::new("duplicates");
    let output_path = dir.path("out.jsonl");
    let url = server.url("/get?same=1");
    let other = server.url("/get?other=1");
    let out = run_with_stdin(
        &["-i", "-", "-o", path_str(&output_path), "--json"],
        format!("{url}\n{other}\n{url}\n").as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let lines = jsonl(&output_path);
    assert_eq!(lines.len(), 3);
    let kinds: Vec<&Value> = lines.iter().map(|l| &l["error_kind"]).collect();
    assert_eq!(kinds.iter().filter(|k| k.is_null()).count(), 2, "{lines:?}");
    let duplicate = lines
        .iter()
        .find(|l| l["error_kind"] == "duplicate")
        .expect("a duplicate line");
    assert_eq!(duplicate["url"], url.as_str());
    assert_eq!(duplicate["attempts"], 0);
    assert_eq!(summary(&out)["duplicates"], 1);
    assert_eq!(server.stats().requests, 2);
}

/// The `threads` of a `--json` summary: the most threads the process had, or 0 without
/// `/proc`.
fn most_threads(s: &Value) -> u64 {
    s["threads"].as_u64().expect("a thread count")
}

/// `-i FILE -o FILE --threads 2`: 300 URLs over six servers (six hosts, sharded over two
/// loops), an invalid line and a repeated URL. Every line of the input gets exactly one line,
/// no URL is fetched twice, and the summary counts what the file says; then `--resume` with
/// `--threads 2` skips every line.
#[test]
fn threads_shard_an_input_file_over_loops() {
    const URLS: usize = 300;
    const SERVERS: usize = 6;
    let servers: Vec<ServerThread> = (0..SERVERS).map(|_| server()).collect();
    let dir = TempDir::new("threads");
    let urls: Vec<String> = (0..URLS)
        .map(|i| servers[i % SERVERS].url(&format!("/get?i={i}")))
        .collect();
    let repeated = &urls[7];
    let mut input = urls[..150].join("\n") + "\nnot a url\n";
    input += &(urls[150..].join("\n") + "\n" + repeated + "\n");
    let (input_path, output_path) = (dir.path("urls.txt"), dir.path("out.jsonl"));
    std::fs::write(&input_path, input).unwrap();
    let args = [
        "-i",
        path_str(&input_path),
        "-o",
        path_str(&output_path),
        "--threads",
        "2",
        "-c",
        "20",
        "--json",
    ];

    let out = run(&args);
    assert_eq!(
        code(&out),
        1,
        "the invalid line fails the run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = jsonl(&output_path);
    assert_eq!(lines.len(), URLS + 2, "one line per input line");
    let mut seen: HashMap<&str, Vec<&Value>> = HashMap::new();
    for line in &lines {
        seen.entry(line["url"].as_str().expect("a url"))
            .or_default()
            .push(line);
    }
    assert_eq!(seen.len(), URLS + 1, "each URL, and the invalid line");
    for url in &urls {
        let mine = &seen[url.as_str()];
        let fetched: Vec<_> = mine.iter().filter(|l| l["error_kind"].is_null()).collect();
        assert_eq!(fetched.len(), 1, "{url} fetched once: {mine:?}");
        assert_eq!(fetched[0]["status"], 200, "{url}");
        if url == repeated {
            assert_eq!(mine.len(), 2, "{mine:?}");
            assert!(
                mine.iter().any(|l| l["error_kind"] == "duplicate"),
                "{mine:?}"
            );
        } else {
            assert_eq!(mine.len(), 1, "{url}: {mine:?}");
        }
    }
    assert_eq!(seen["not a url"][0]["error_kind"], "invalid_url");
    let s = summary(&out);
    assert_eq!(s["requests"], URLS + 2, "{s}");
    assert_eq!(s["ok"], URLS, "{s}");
    assert_eq!(
        s["failed"], 1,
        "the invalid line; the duplicate is not a failure: {s}"
    );
    assert_eq!(s["invalid"], 1, "{s}");
    assert_eq!(s["duplicates"], 1, "{s}");
    assert_eq!(s["skipped"], 0, "{s}");
    assert_eq!(s["hosts"].as_array().unwrap().len(), SERVERS, "{s}");
    let threads = most_threads(&s);
    assert!(
        threads == 0 || threads >= 3,
        "this thread and two loops: {s}"
    );
    for server in &servers {
        assert_eq!(
            server.stats().requests as usize,
            URLS / SERVERS,
            "no URL twice"
        );
    }

    // Resumed, on two loops: every line of the input is done, nothing is fetched or written.
    let before = std::fs::read(&output_path).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let out = run(&resume);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let resumed = summary(&out);
    assert_eq!(
        (resumed["skipped"].as_u64(), resumed["requests"].as_u64()),
        (Some(URLS as u64 + 2), Some(0)),
        "{resumed}"
    );
    assert_eq!(std::fs::read(&output_path).unwrap(), before);
    for server in &servers {
        assert_eq!(server.stats().requests as usize, URLS / SERVERS);
    }

    // On one loop, the same counts.
    let one_loop = dir.path("one-loop.jsonl");
    let out = run(&[
        "-i",
        path_str(&input_path),
        "-o",
        path_str(&one_loop),
        "-c",
        "20",
        "--json",
    ]);
    assert_eq!(code(&out), 1);
    let one = summary(&out);
    for key in [
        "requests",
        "ok",
        "failed",
        "invalid",
        "duplicates",
        "skipped",
    ] {
        assert_eq!(one[key], s[key], "{key}: {one} on one loop, {s} on two");
    }
    assert_eq!(jsonl(&one_loop).len(), lines.len());
}

/// `--threads 2 -n 200` over URL arguments of three servers; `--threads 2` with no URL (the
/// embedded server, which keeps answering on the main thread while the loops send); and
/// `-i -` with `--threads 2`, standard input read on the thread that deals the URLs.
#[test]
fn threads_with_url_arguments_and_the_embedded_server() {
    let servers: Vec<ServerThread> = (0..3).map(|_| server()).collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url("/get?n={n}")).collect();
    let mut args = vec!["--threads", "2", "-n", "200", "--json"];
    args.extend(urls.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(
        (s["requests"].as_u64(), s["ok"].as_u64()),
        (Some(200), Some(200)),
        "{s}"
    );
    assert_eq!(s["hosts"].as_array().unwrap().len(), 3, "{s}");
    let threads = most_threads(&s);
    assert!(
        threads == 0 || threads >= 3,
        "this thread and two loops: {s}"
    );
    let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
    assert_eq!(requests, 200);

    let out = run(&["--threads", "2", "-n", "20", "--json"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(
        (s["requests"].as_u64(), s["ok"].as_u64()),
        (Some(20), Some(20)),
        "{s}"
    );

    let urls: Vec<String> = (0..30)
        .map(|i| servers[i % 3].url(&format!("/get?stdin={i}")))
        .collect();
    let out = run_with_stdin(
        &["-i", "-", "--threads", "2", "--json"],
        (urls.join("\n") + "\n").as_bytes(),
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&out);
    assert_eq!(
        (s["requests"].as_u64(), s["ok"].as_u64()),
        (Some(30), Some(30)),
        "{s}"
    );
    let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
    assert_eq!(requests, 230);
}

/// `--enqueue`, `--from` and `--status`: a frontier in a real redis-server (one per test, on a
/// loopback port), workers as processes.
#[cfg(feature = "redis")]
mod frontier {
    use super::*;
    use crate::util::redis_server::RedisServer;
    use std::collections::HashMap as Map;

    /// `n` URLs over the `servers`' origins (`/limit/{limit}` answers 200 unless a host is
    /// asked more than `limit` times in a second), written to a file of `dir`.
    fn url_file(dir: &TempDir, servers: &[ServerThread], n: usize, limit: u32) -> PathBuf {
        let path = dir.path("urls.txt");
        let text: String = (0..n)
            .map(|i| {
                let server = &servers[i % servers.len()];
                format!("{}\n", server.url(&format!("/limit/{limit}?i={i}")))
            })
            .collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    fn servers(n: usize) -> Vec<ServerThread> {
        (0..n)
            .map(|_| Server::spawn_thread("127.0.0.1:0".parse().unwrap()).unwrap())
            .collect()
    }

    /// A Redis, `hosts` test servers and a frontier named `name` in it with `n` of their URLs
    /// enqueued (see [`url_file`]); `None` if redis-server is missing (skipped, or failed
    /// under CI).
    fn enqueued(
        name: &str,
        hosts: usize,
        n: usize,
        limit: u32,
    ) -> Option<(RedisServer, TempDir, Vec<ServerThread>, String)> {
        let redis = RedisServer::start(&format!("fetch_many_cli::{name}"), false)?;
        let dir = TempDir::new(name);
        let servers = servers(hosts);
        let urls = url_file(&dir, &servers, n, limit);
        let frontier = redis.url(name);
        let out = run(&["--enqueue", &frontier, "-i", urls.to_str().unwrap()]);
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        Some((redis, dir, servers, frontier))
    }

    /// Each -o line's URL, counted over the files.
    fn lines_per_url(paths: &[PathBuf]) -> Map<String, usize> {
        let mut counts = Map::new();
        for path in paths.iter().filter(|p| p.exists()) {
            // A worker killed mid-write may leave a half line: it is not a result.
            let text = std::fs::read_to_string(path).unwrap();
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line) {
                    *counts
                        .entry(v["url"].as_str().unwrap().to_owned())
                        .or_default() += 1;
                }
            }
        }
        counts
    }

    /// Enqueuing the same URLs again adds nothing; `--status` counts them per shard.
    #[test]
    fn enqueue_adds_each_url_once_and_status_counts_them() {
        let Some(redis) = RedisServer::start("fetch_many_cli::enqueue", false) else {
            return;
        };
        let dir = TempDir::new("enqueue");
        let servers = servers(3);
        let urls = url_file(&dir, &servers, 90, 1000);
        let frontier = redis.url("enq");
        let urls = urls.to_str().unwrap();
        let first = run(&["--enqueue", &frontier, "-i", urls, "--json"]);
        assert_eq!(code(&first), 0);
        assert_eq!(summary(&first)["added"], 90);
        let again = run(&["--enqueue", &frontier, "-i", urls, "--json"]);
        assert_eq!(
            (
                summary(&again)["added"].clone(),
                summary(&again)["known"].clone()
            ),
            (0.into(), 90.into())
        );
        let status = run(&["--status", &frontier, "--json"]);
        assert_eq!(code(&status), 0);
        let status = summary(&status);
        assert_eq!(status["total"]["queued"], 90);
        let busy = status["shards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["queued"] != 0)
            .count();
        assert!(
            (1..=3).contains(&busy),
            "3 hosts in at most 3 shards: {status}"
        );
        let table = run(&["--status", &frontier]);
        assert!(String::from_utf8_lossy(&table.stdout).contains("all"));
    }

    /// Three workers, one killed with `kill -9` mid-run: every URL ends with exactly one
    /// result in the frontier, the survivors drain it and exit 0, and no URL was fetched more
    /// than twice (only those the dead worker held can be).
    #[test]
    fn a_worker_killed_mid_run_loses_no_url() {
        let Some((_redis, dir, servers, frontier)) = enqueued("kill", 6, 3000, 100_000) else {
            return;
        };
        let outs: Vec<PathBuf> = (0..3).map(|w| dir.path(&format!("out{w}.jsonl"))).collect();
        // 100 requests per second per host: 3000 over 6 hosts take about 5 s.
        let worker = |out: &PathBuf| {
            let out = out.to_str().unwrap().to_owned();
            start(
                &[
                    "--from", &frontier, "-o", &out, "-c", "20", "--rate", "100", "--lease", "3",
                    "--json",
                ],
                None,
            )
        };
        let mut doomed = worker(&outs[0]);
        let survivors: Vec<Child> = outs[1..].iter().map(worker).collect();
        // Kill it once it has written some results.
        let deadline = Instant::now() + Duration::from_secs(20);
        while lines_per_url(&outs[..1]).len() < 100 {
            assert!(Instant::now() < deadline, "the first worker wrote nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
        doomed.kill().unwrap(); // SIGKILL
        let _ = doomed.wait();
        for child in survivors {
            let out = finish(child);
            assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        }
        let mut f = volley::frontier::RedisFrontier::open(&frontier).unwrap();
        use volley::frontier::Frontier;
        assert!(f.is_drained().unwrap());
        assert_eq!(f.status().unwrap().total().done, 3000);
        let results = f.results("0", 10_000).unwrap();
        assert_eq!(results.len(), 3000);
        let distinct: std::collections::HashSet<&String> = results.iter().map(|r| &r.1).collect();
        assert_eq!(distinct.len(), 3000, "one final result per URL");
        let lines = lines_per_url(&outs);
        assert_eq!(lines.len(), 3000);
        assert!(
            lines.values().all(|&n| n <= 2),
            "no URL fetched more than twice"
        );
        let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
        // The dead worker held at most its window (100) unfinished.
        assert!((3000..=3100).contains(&requests), "{requests} requests");
    }

    /// Politeness across the cluster: three workers with `--rate 18` against hosts that allow
    /// 20 requests per second: each host is held by one worker at a time, so the servers
    /// refuse almost none (at most 2 %).
    #[test]
    fn three_workers_keep_each_hosts_rate() {
        let Some((_redis, _dir, servers, frontier)) = enqueued("rate", 6, 360, 20) else {
            return;
        };
        let workers: Vec<Child> = (0..3)
            .map(|_| {
                start(
                    &[
                        "--from", &frontier, "--rate", "18", "--lease", "5", "--json",
                    ],
                    None,
                )
            })
            .collect();
        let mut fetched = 0;
        for child in workers {
            let out = finish(child);
            assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
            fetched += summary(&out)["fetched"].as_u64().unwrap();
        }
        assert_eq!(fetched, 360, "each URL fetched once");
        let limited: u64 = servers.iter().map(|s| s.stats().limited).sum();
        let requests: u64 = servers.iter().map(|s| s.stats().requests).sum();
        assert!(limited * 50 <= requests, "{limited} of {requests} refused");
    }

    /// A Redis that is not there: exit 1, the URL named.
    #[test]
    fn an_unreachable_redis_fails_clearly() {
        let frontier = format!("redis://127.0.0.1:{}/none", refused_port());
        for args in [vec!["--from", &frontier], vec!["--status", &frontier]] {
            let out = run(&args);
            assert_eq!(code(&out), 1);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(&frontier), "{stderr}");
        }
        let out = run(&["--from", "redis://127.0.0.1:1"]);
        assert_eq!(code(&out), 2, "no frontier name is a usage error");
    }
}
