//! The client against real servers, not our embedded one: nginx (HTTP/1.1, keep-alive, ranges,
//! conditional requests), python's `http.server` (HTTP/1.0, one connection per request) and
//! `tests/peers/raw_http10.py` (the HTTP/1.0 framings `http.server` does not send: a body that
//! ends at the close, keep-alive, a body cut short), all serving the same files.
//!
//! `tests/peers/start.sh` starts them on loopback and exports the variables; `.ci/run` uses it:
//!
//! - `PEER_FILES_DIR`: the served directory, with the `MANIFEST` of `tests/peers/files.py`
//!   (name, size, CRC-32 and SHA-256 of each file: 0 B to 16 MiB of seeded pseudo-random bytes);
//! - `NGINX_URL`, and `NGINX_ACCESS_LOG` for keep-alive as nginx saw it;
//! - `PYHTTP_URL` (`python3 -m http.server`) and `PYRAW_URL` (`raw_http10.py`).
//!
//! A test whose server is not set prints `SKIPPED peers::<test>: ...` and passes, so a plain
//! `cargo test` needs neither nginx nor Python; under `CI=true` it fails instead. By hand:
//!
//! ```sh
//! bash tests/peers/start.sh     # prints the exports, then serves until Ctrl-C
//! cargo test --test peers       # in another shell, after pasting the exports
//! ```
//!
//! The files are read from `PEER_FILES_DIR` and checked against the manifest's sizes and CRC-32s
//! once; every body fetched is then compared with them byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use url::{Host, Url};
use volley::{Client, ClientBuilder, ErrorKind, Phase, Response, Runtime, StatusCode, Version};

#[path = "util/skip.rs"]
mod skip;
use skip::skip;

/// The sizes of the `f{size}.bin` files that `tests/peers/files.py` writes.
const SIZES: [usize; 8] = [0, 1, 13, 4095, 4096, 65536, (1 << 20) + 7, 16 << 20];

/// The batch tests' concurrency.
const CONCURRENCY: usize = 8;

/// One served file: its path under the served directory and its bytes.
struct PeerFile {
    name: String,
    data: Vec<u8>,
}

impl PeerFile {
    /// Its name in the directory listing of its directory.
    fn is_top_level(&self) -> bool {
        !self.name.contains('/')
    }
}

/// The files of `PEER_FILES_DIR`, read once per process and checked against its `MANIFEST`.
///
/// # Panics
///
/// If `PEER_FILES_DIR` is unset, a file is missing or differs from the manifest, or a size of
/// [`SIZES`] is not there.
fn peer_files() -> &'static [PeerFile] {
    static FILES: OnceLock<Vec<PeerFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = PathBuf::from(
            std::env::var_os("PEER_FILES_DIR")
                .expect("PEER_FILES_DIR must name the served directory (tests/peers/start.sh)"),
        );
        let path = dir.join("MANIFEST");
        let manifest = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e:#}", path.display()));
        let mut files = Vec::new();
        for line in manifest.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, size, crc, ..] = fields[..] else {
                panic!("{}: bad line {line:?}", path.display());
            };
            let size: usize = size.parse().unwrap();
            let crc = u32::from_str_radix(crc, 16).unwrap();
            let data = std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("reading {name} in {}: {e:#}", dir.display()));
            assert_eq!(
                data.len(),
                size,
                "{name}: size on disk against the MANIFEST"
            );
            assert_eq!(
                crc32(&data),
                crc,
                "{name}: CRC-32 on disk against the MANIFEST"
            );
            files.push(PeerFile {
                name: name.to_owned(),
                data,
            });
        }
        for size in SIZES {
            let name = format!("f{size}.bin");
            assert!(
                files.iter().any(|f| f.name == name && f.data.len() == size),
                "{name} ({size} B) is not in {}",
                path.display()
            );
        }
        files
    })
}

/// The file called `name`.
fn file(name: &str) -> &'static PeerFile {
    peer_files()
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no {name} in the MANIFEST"))
}

/// CRC-32 (IEEE, reflected, as zlib's `crc32` and the MANIFEST compute it).
fn crc32(data: &[u8]) -> u32 {
    static TABLE: OnceLock<[u32; 256]> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0; 256];
        for (i, entry) in (0u32..).zip(table.iter_mut()) {
            *entry = (0..8).fold(i, |c, _| {
                if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            });
        }
        table
    });
    !data
        .iter()
        .fold(!0u32, |c, &b| table[usize::from(c as u8 ^ b)] ^ (c >> 8))
}

/// Panics unless `got` is `want` byte for byte, saying where they part (never printing
/// megabytes).
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: got {} bytes (CRC-32 {:08x}), expected {} (CRC-32 {:08x}); \
             they differ from byte {at}",
            got.len(),
            crc32(got),
            want.len(),
            crc32(want)
        );
    }
}

/// A server under test.
struct Peer {
    /// Its base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    base: String,
}

impl Peer {
    /// `path` (starting with `/`) on this server.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The server named by the variable `var`, or `None` if it is unset or empty.
///
/// # Panics
///
/// If the URL is not `http://` on a loopback host: these tests never leave the machine.
fn peer(var: &str) -> Option<Peer> {
    let raw = std::env::var(var).ok()?;
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let url = Url::parse(raw).unwrap_or_else(|e| panic!("{var}={raw:?}: {e:#}"));
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    assert!(
        url.scheme() == "http" && loopback,
        "{var}={raw:?} must be http:// on loopback (127.0.0.0/8, ::1 or localhost)"
    );
    Some(Peer {
        base: raw.trim_end_matches('/').to_owned(),
    })
}

/// Runs `f` on a fresh runtime against the server of `var`, or prints a skip note.
fn with_peer<F, Fut>(var: &str, test: &str, f: F)
where
    F: FnOnce(Peer) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(peer) = peer(var) else {
        skip(
            &format!("peers::{test}"),
            &format!("{var} is not set (tests/peers/start.sh)"),
        );
        return;
    };
    // Read and check the files before the clock starts.
    peer_files();
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // Bound the whole test: a hang fails it instead of stalling the suite.
        volley::timeout(Duration::from_secs(60), f(peer))
            .await
            .expect("test timed out");
    });
}

/// A client with every wait bounded.
fn client() -> ClientBuilder {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
}

/// A header as a string ("" if absent).
fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers().get(name).map_or("", |v| {
        v.to_str().expect("a header that is not visible ASCII")
    })
}

/// Whether the response's head lets its connection carry another request (RFC 9112 §9.3):
/// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
fn head_allows_reuse(resp: &Response) -> bool {
    let has = |token: &str| {
        resp.headers()
            .get_all("connection")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match resp.version() {
        Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

/// A string no other request in any run carries, to find our lines in nginx's access log.
fn marker(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{}-{nanos}", std::process::id())
}

/// nginx's view of the requests whose target holds `marker`: (connection serial number,
/// request number on that connection) for each, in log order, once `count` are logged (up to
/// 5 s: nginx logs a request just after its last byte is sent). `None` without
/// `NGINX_ACCESS_LOG`.
fn nginx_log(marker: &str, count: usize) -> Option<Vec<(u64, u64)>> {
    let path = std::env::var_os("NGINX_ACCESS_LOG")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        // Each line: `$connection $connection_requests "$request" $status $body_bytes_sent`.
        let lines: Vec<(u64, u64)> = log
            .lines()
            .filter(|line| line.contains(marker))
            .map(|line| {
                let mut fields = line.split(' ');
                let mut number = || -> u64 {
                    let field = fields.next().unwrap_or("");
                    field
                        .parse()
                        .unwrap_or_else(|_| panic!("nginx access log line {line:?}"))
                };
                (number(), number())
            })
            .collect();
        if lines.len() >= count || Instant::now() >= deadline {
            assert_eq!(lines.len(), count, "nginx logged {lines:?} for {marker}");
            return Some(lines);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn crc32_is_zlibs() {
    // The standard check value, and zlib.crc32 of one of the files' bytes.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"hello from a subdirectory\n"), 0x7be9_bdda);
}

// --- nginx -----------------------------------------------------------------------------------

/// Every file, one after another on one client: 200, the length nginx declares, the exact bytes,
/// and one keep-alive connection for all of them.
#[test]
fn nginx_serves_every_file_intact() {
    with_peer(
        "NGINX_URL",
        "nginx_serves_every_file_intact",
        |nginx| async move {
            let client = client().build();
            for (i, f) in peer_files().iter().enumerate() {
                let resp = client
                    .get(nginx.url(&format!("/{}", f.name)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", f.name);
                assert_eq!(resp.version(), Version::HTTP_11, "{}", f.name);
                assert_eq!(
                    resp.content_length(),
                    Some(f.data.len() as u64),
                    "{}",
                    f.name
                );
                assert_eq!(
                    resp.timings().reused,
                    i > 0,
                    "{}: request {i} on the one keep-alive connection",
                    f.name
                );
                let body = resp.bytes().await.unwrap();
                assert_same(&f.name, &body, &f.data);
                assert_eq!(client.idle_connections(), 1, "{}: back in the pool", f.name);
            }
        },
    );
}

/// Twenty requests reuse one connection, as the client says (`timings().reused`, the pool)
/// and as nginx saw it (one connection serial number, request numbers 1 to 20 on it).
#[test]
fn nginx_keep_alive_reuses_one_connection() {
    with_peer(
        "NGINX_URL",
        "nginx_keep_alive_reuses_one_connection",
        |nginx| async move {
            let client = client().build();
            let marker = marker("keep-alive");
            let want = file("f13.bin");
            for i in 0..20 {
                let resp = client
                    .get(nginx.url(&format!("/f13.bin?{marker}&i={i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.timings().reused, i > 0, "request {i}");
                if i > 0 {
                    assert_eq!(resp.timings().connect, Duration::ZERO, "request {i}");
                }
                assert_same("f13.bin", &resp.bytes().await.unwrap(), &want.data);
                assert_eq!(client.idle_connections(), 1, "after request {i}");
            }
            let Some(log) = nginx_log(&marker, 20) else {
                skip(
                    "peers: nginx's side of keep-alive",
                    "NGINX_ACCESS_LOG is not set",
                );
                return;
            };
            let connections: BTreeSet<u64> = log.iter().map(|&(c, _)| c).collect();
            assert_eq!(connections.len(), 1, "nginx saw {log:?}");
            let numbers: Vec<u64> = log.iter().map(|&(_, n)| n).collect();
            assert_eq!(numbers, (1..=20).collect::<Vec<u64>>(), "nginx saw {log:?}");
        },
    );
}

/// HEAD: the length of the GET's body in `Content-Length`, no body, and the connection goes
/// back to the pool; the GET that follows on it gets its own response, whole.
#[test]
fn nginx_head_has_length_no_body_and_keeps_the_connection() {
    with_peer(
        "NGINX_URL",
        "nginx_head_has_length_no_body_and_keeps_the_connection",
        |nginx| async move {
            let client = client().build();
            for name in ["f0.bin", "f65536.bin", "f16777216.bin"] {
                let f = file(name);
                let url = nginx.url(&format!("/{name}"));
                let resp = client.head(&url).send().await.unwrap();
                assert_eq!(resp.status(), 200, "HEAD {name}");
                assert_eq!(
                    header(&resp, "content-length"),
                    f.data.len().to_string(),
                    "HEAD {name}"
                );
                let body = resp.bytes().await.unwrap();
                assert!(body.is_empty(), "HEAD {name}: {} body bytes", body.len());
                assert_eq!(client.idle_connections(), 1, "after HEAD {name}");

                let resp = client.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), 200, "GET {name}");
                assert!(resp.timings().reused, "GET {name} after HEAD: reused");
                assert_same(name, &resp.bytes().await.unwrap(), &f.data);
                assert_eq!(client.idle_connections(), 1, "after GET {name}");
            }
        },
    );
}

/// Byte ranges: 206 with exactly the bytes asked for (a span, a suffix, an open end, a span of
/// the 16 MiB file, two spans as multipart/byteranges), 416 for a range past the end, and the
/// connection reused throughout.
#[test]
fn nginx_range_requests() {
    with_peer("NGINX_URL", "nginx_range_requests", |nginx| async move {
        let client = client().build();
        let small = file("f4096.bin");
        let big = file("f16777216.bin");
        let cases: [(&PeerFile, &str, usize, usize); 4] = [
            (small, "bytes=100-199", 100, 200),
            (small, "bytes=-10", 4086, 4096),
            (small, "bytes=4000-", 4000, 4096),
            (big, "bytes=8388600-8454143", 8_388_600, 8_454_144),
        ];
        for (i, (f, range, start, end)) in cases.into_iter().enumerate() {
            let resp = client
                .get(nginx.url(&format!("/{}", f.name)))
                .header("range", range)
                .send()
                .await
                .unwrap();
            let what = format!("{} {range}", f.name);
            assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{what}");
            assert_eq!(
                header(&resp, "content-range"),
                format!("bytes {start}-{}/{}", end - 1, f.data.len()),
                "{what}"
            );
            assert_eq!(resp.content_length(), Some((end - start) as u64), "{what}");
            assert_eq!(resp.timings().reused, i > 0, "{what}");
            assert_same(&what, &resp.bytes().await.unwrap(), &f.data[start..end]);
            assert_eq!(client.idle_connections(), 1, "{what}");
        }

        // Two ranges: one multipart/byteranges body with a part for each.
        let resp = client
            .get(nginx.url("/f4096.bin"))
            .header("range", "bytes=0-0,-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert!(resp.timings().reused);
        let content_type = header(&resp, "content-type").to_owned();
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_else(|| panic!("two ranges: Content-Type {content_type:?}"))
            .to_owned();
        let body = resp.bytes().await.unwrap();
        for (part, byte) in [
            ("0-0/4096", small.data[0]),
            ("4095-4095/4096", small.data[4095]),
        ] {
            let head = format!("Content-Range: bytes {part}\r\n\r\n");
            let at = body
                .windows(head.len())
                .position(|w| w == head.as_bytes())
                .unwrap_or_else(|| {
                    panic!("no part {part} in {:?}", String::from_utf8_lossy(&body))
                });
            assert_eq!(body[at + head.len()], byte, "the byte of part {part}");
            let next = format!("\r\n--{boundary}\r\n");
            let after = at + head.len() + 1;
            assert!(
                body[after..].starts_with(next.as_bytes())
                    || body[after..].starts_with(format!("\r\n--{boundary}--").as_bytes()),
                "part {part} is one byte, then a boundary"
            );
        }
        assert!(body.ends_with(format!("\r\n--{boundary}--\r\n").as_bytes()));
        assert_eq!(client.idle_connections(), 1);

        // Past the end: 416, with the length in Content-Range and a small HTML body, which is
        // read so that the connection serves the next request.
        let resp = client
            .get(nginx.url("/f4096.bin"))
            .header("range", "bytes=5000-6000")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(header(&resp, "content-range"), "bytes */4096");
        assert!(resp.timings().reused);
        let text = resp.text().await.unwrap();
        assert!(text.contains("416"), "{text}");
        assert_eq!(client.idle_connections(), 1, "after the 416");
        let resp = client.get(nginx.url("/f4096.bin")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.timings().reused,
            "the request after the 416 reuses its connection"
        );
        assert_same(
            "f4096.bin after a 416",
            &resp.bytes().await.unwrap(),
            &small.data,
        );
    });
}

/// A missing file: 404 with nginx's HTML page, an error for `error_for_status`, and the
/// connection kept for the next request.
#[test]
fn nginx_404_keeps_the_connection() {
    with_peer(
        "NGINX_URL",
        "nginx_404_keeps_the_connection",
        |nginx| async move {
            let client = client().build();
            let resp = client
                .get(nginx.url("/no-such-file.bin"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NOT_FOUND);
            assert_eq!(header(&resp, "content-type"), "text/html");
            let text = resp.text().await.unwrap();
            assert!(text.contains("404 Not Found"), "{text}");
            assert_eq!(client.idle_connections(), 1, "after the 404");

            let err = client
                .get(nginx.url("/no-such-file.bin"))
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::Status(s) if *s == StatusCode::NOT_FOUND),
                "{err:#}"
            );

            let resp = client.get(nginx.url("/f13.bin")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_same(
                "f13.bin",
                &resp.bytes().await.unwrap(),
                &file("f13.bin").data,
            );
        },
    );
}

/// `If-None-Match` and `If-Modified-Since` from nginx's own validators: 304 with no body
/// although a 65536-byte file stands behind it, and the connection reused after it.
#[test]
fn nginx_conditional_get_is_304_without_body() {
    with_peer(
        "NGINX_URL",
        "nginx_conditional_get_is_304_without_body",
        |nginx| async move {
            let client = client().build();
            let url = nginx.url("/f65536.bin");
            let f = file("f65536.bin");
            let resp = client.get(&url).send().await.unwrap();
            let etag = header(&resp, "etag").to_owned();
            let modified = header(&resp, "last-modified").to_owned();
            assert!(
                !etag.is_empty() && !modified.is_empty(),
                "{:?}",
                resp.headers()
            );
            assert_same("f65536.bin", &resp.bytes().await.unwrap(), &f.data);

            for (name, value) in [("if-none-match", &etag), ("if-modified-since", &modified)] {
                let resp = client.get(&url).header(name, value).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{name}");
                assert!(resp.timings().reused, "{name}");
                let body = resp.bytes().await.unwrap();
                assert!(body.is_empty(), "{name}: {} body bytes", body.len());
                assert_eq!(client.idle_connections(), 1, "after the 304 for {name}");
            }
            let resp = client.get(&url).send().await.unwrap();
            assert!(resp.timings().reused, "the GET after the 304s");
            assert_same(
                "f65536.bin after 304s",
                &resp.bytes().await.unwrap(),
                &f.data,
            );
        },
    );
}

/// A directory listing (nginx's autoindex) names every file, and `/sub` redirects to `/sub/`.
#[test]
fn nginx_directory_listing_and_redirect() {
    with_peer(
        "NGINX_URL",
        "nginx_directory_listing_and_redirect",
        |nginx| async move {
            let client = client().build();
            let resp = client.get(nginx.url("/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let html = resp.text().await.unwrap();
            for f in peer_files().iter().filter(|f| f.is_top_level()) {
                assert!(
                    html.contains(&format!("href=\"{}\"", f.name)),
                    "{}: {html}",
                    f.name
                );
            }
            assert!(html.contains("href=\"sub/\""), "{html}");

            let resp = client.get(nginx.url("/sub")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.url().path(), "/sub/", "the 301 was followed");
            assert!(resp.timings().reused, "the redirect reused the connection");
            let html = resp.text().await.unwrap();
            assert!(html.contains("href=\"hello.txt\""), "{html}");
            assert_eq!(client.idle_connections(), 1);
        },
    );
}

/// Every file three times through `fetch_all` at 8 in flight: all 200, in input order, every
/// body intact, and connections reused (at most 8 opened, as nginx saw too).
#[test]
fn nginx_batch_fetches_every_file_concurrently() {
    with_peer(
        "NGINX_URL",
        "nginx_batch_fetches_every_file_concurrently",
        |nginx| async move {
            let client = client().build();
            let files = peer_files();
            let marker = marker("batch");
            let urls: Vec<String> = (0..3)
                .flat_map(|round| {
                    let (nginx, marker) = (&nginx, &marker);
                    files
                        .iter()
                        .map(move |f| nginx.url(&format!("/{}?{marker}&round={round}", f.name)))
                })
                .collect();
            let n = urls.len();
            let report = client
                .fetch_all(urls)
                .concurrency(CONCURRENCY)
                // Every file in rounds: the same URLs again, fetched again.
                .duplicates(volley::batch::Duplicates::Fetch)
                .keep_bodies(true)
                .run()
                .await;
            check_batch(&report, files, true);
            let total: usize = files.iter().map(|f| f.data.len()).sum();
            assert_eq!(report.summary.bytes, 3 * total as u64);

            let reused = report.results.iter().filter(|r| r.timings.reused).count();
            assert!(
                reused >= n - CONCURRENCY,
                "{reused} of {n} requests reused a connection: more than {CONCURRENCY} opened"
            );
            let idle = client.idle_connections();
            assert!((1..=CONCURRENCY).contains(&idle), "{idle} idle connections");
            if let Some(log) = nginx_log(&marker, n) {
                let connections: BTreeSet<u64> = log.iter().map(|&(c, _)| c).collect();
                assert!(
                    connections.len() <= CONCURRENCY,
                    "nginx saw {} connections: {log:?}",
                    connections.len()
                );
            }
        },
    );
}

/// Checks a batch of `files` fetched in rounds, in input order: every result a 200 with the
/// file's bytes; with `reuse` false, none over a reused connection.
fn check_batch(report: &volley::batch::BatchReport, files: &[PeerFile], reuse: bool) {
    let n = report.results.len();
    assert!(n > 0 && n.is_multiple_of(files.len()), "{n} results");
    assert_eq!(report.summary.ok, n as u64, "{:?}", report.summary.errors);
    assert_eq!(report.summary.failed, 0, "{:?}", report.summary.errors);
    assert_eq!(
        report.summary.statuses,
        BTreeMap::from([(200, n as u64)]),
        "statuses"
    );
    for (i, result) in report.results.iter().enumerate() {
        let f = &files[i % files.len()];
        assert_eq!(result.index, i);
        let fetched = result
            .outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("request {i} ({}): {e:#}", f.name));
        assert_eq!(fetched.status, 200, "request {i} ({})", f.name);
        assert_eq!(
            fetched.body_len,
            f.data.len() as u64,
            "request {i} ({})",
            f.name
        );
        assert_same(&format!("request {i} ({})", f.name), &fetched.body, &f.data);
        if !reuse {
            assert!(!result.timings.reused, "request {i} ({}) reused", f.name);
        }
    }
}

// --- python3 -m http.server (HTTP/1.0) -------------------------------------------------------

/// Every file from python's HTTP/1.0 server: 200, `Content-Length`, the exact bytes, and no
/// connection kept, since the server did not offer keep-alive.
#[test]
fn pyhttp_serves_every_file_intact_without_reuse() {
    with_peer(
        "PYHTTP_URL",
        "pyhttp_serves_every_file_intact_without_reuse",
        |pyhttp| async move {
            let client = client().build();
            for f in peer_files() {
                let resp = client
                    .get(pyhttp.url(&format!("/{}", f.name)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", f.name);
                assert_eq!(resp.version(), Version::HTTP_10, "{}", f.name);
                assert_eq!(
                    header(&resp, "content-length"),
                    f.data.len().to_string(),
                    "{}",
                    f.name
                );
                assert!(
                    !head_allows_reuse(&resp),
                    "{}: {:?}",
                    f.name,
                    resp.headers()
                );
                assert!(
                    !resp.timings().reused,
                    "{}: an HTTP/1.0 connection reused",
                    f.name
                );
                assert_same(&f.name, &resp.bytes().await.unwrap(), &f.data);
                assert_eq!(client.idle_connections(), 0, "{}: pooled", f.name);
            }
        },
    );
}

/// The directory listing names every file; `/sub` is a 301 to a relative `/sub/`, followed on
/// a new connection.
#[test]
fn pyhttp_directory_listing() {
    with_peer(
        "PYHTTP_URL",
        "pyhttp_directory_listing",
        |pyhttp| async move {
            let client = client().build();
            let resp = client.get(pyhttp.url("/")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.version(), Version::HTTP_10);
            assert!(
                header(&resp, "content-type").starts_with("text/html"),
                "{:?}",
                resp.headers()
            );
            let html = resp.text().await.unwrap();
            assert!(html.contains("Directory listing for /"), "{html}");
            for f in peer_files().iter().filter(|f| f.is_top_level()) {
                assert!(
                    html.contains(&format!("href=\"{}\"", f.name)),
                    "{}: {html}",
                    f.name
                );
            }
            assert!(html.contains("href=\"sub/\""), "{html}");
            assert_eq!(client.idle_connections(), 0);

            let resp = client.get(pyhttp.url("/sub")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.url().path(), "/sub/", "the 301 was followed");
            assert!(
                !resp.timings().reused,
                "the 301's HTTP/1.0 connection reused"
            );
            let html = resp.text().await.unwrap();
            assert!(html.contains("Directory listing for /sub/"), "{html}");
            assert!(html.contains("href=\"hello.txt\""), "{html}");
            assert_eq!(client.idle_connections(), 0);
        },
    );
}

/// A missing file is a 404 with python's error page; HEAD has the length and no body; neither
/// connection is kept.
#[test]
fn pyhttp_404_and_head() {
    with_peer("PYHTTP_URL", "pyhttp_404_and_head", |pyhttp| async move {
        let client = client().build();
        let resp = client
            .get(pyhttp.url("/no-such-file.bin"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.version(), Version::HTTP_10);
        let text = resp.text().await.unwrap();
        assert!(text.contains("Error code: 404"), "{text}");
        assert_eq!(client.idle_connections(), 0, "after the 404");

        let resp = client.head(pyhttp.url("/f65536.bin")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-length"), "65536");
        assert!(!resp.timings().reused);
        let body = resp.bytes().await.unwrap();
        assert!(body.is_empty(), "HEAD: {} body bytes", body.len());
        assert_eq!(client.idle_connections(), 0, "after the HEAD");

        let resp = client.get(pyhttp.url("/f65536.bin")).send().await.unwrap();
        assert!(!resp.timings().reused);
        assert_same(
            "f65536.bin",
            &resp.bytes().await.unwrap(),
            &file("f65536.bin").data,
        );
    });
}

/// Every file twice through `fetch_all` at 8 in flight: all intact, none over a reused
/// connection, nothing pooled.
#[test]
fn pyhttp_batch_fetches_every_file() {
    with_peer(
        "PYHTTP_URL",
        "pyhttp_batch_fetches_every_file",
        |pyhttp| async move {
            let client = client().build();
            let files = peer_files();
            let urls: Vec<String> = (0..2)
                .flat_map(|_| files.iter().map(|f| pyhttp.url(&format!("/{}", f.name))))
                .collect();
            let report = client
                .fetch_all(urls)
                .concurrency(CONCURRENCY)
                // Every file in rounds: the same URLs again, fetched again.
                .duplicates(volley::batch::Duplicates::Fetch)
                .keep_bodies(true)
                .run()
                .await;
            check_batch(&report, files, false);
            assert_eq!(client.idle_connections(), 0);
        },
    );
}

// --- tests/peers/raw_http10.py ---------------------------------------------------------------

/// HTTP/1.0 without `Content-Length`: each body, 16 MiB included, is everything up to the
/// server's close, and the connection is not kept.
#[test]
fn raw_close_delimited_bodies_are_read_to_the_close() {
    with_peer(
        "PYRAW_URL",
        "raw_close_delimited_bodies_are_read_to_the_close",
        |raw| async move {
            let client = client().build();
            for f in peer_files() {
                let resp = client
                    .get(raw.url(&format!("/close/{}", f.name)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", f.name);
                assert_eq!(resp.version(), Version::HTTP_10, "{}", f.name);
                assert!(
                    !resp.headers().contains_key("content-length")
                        && !resp.headers().contains_key("transfer-encoding"),
                    "{}: {:?}",
                    f.name,
                    resp.headers()
                );
                assert_eq!(resp.content_length(), None, "{}", f.name);
                assert!(!resp.timings().reused, "{}", f.name);
                assert_same(&f.name, &resp.bytes().await.unwrap(), &f.data);
                assert_eq!(client.idle_connections(), 0, "{}: pooled", f.name);
            }
        },
    );
}

/// HTTP/1.0 with `Connection: keep-alive` and `Content-Length`: the one case where an HTTP/1.0
/// connection is kept, and it is: every file over one connection.
#[test]
fn raw_http10_keep_alive_is_reused() {
    with_peer(
        "PYRAW_URL",
        "raw_http10_keep_alive_is_reused",
        |raw| async move {
            let client = client().build();
            for (i, f) in peer_files().iter().enumerate() {
                let resp = client
                    .get(raw.url(&format!("/keep-alive/{}", f.name)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{}", f.name);
                assert_eq!(resp.version(), Version::HTTP_10, "{}", f.name);
                assert!(head_allows_reuse(&resp), "{}: {:?}", f.name, resp.headers());
                assert_eq!(resp.timings().reused, i > 0, "{}: request {i}", f.name);
                assert_same(&f.name, &resp.bytes().await.unwrap(), &f.data);
                assert_eq!(client.idle_connections(), 1, "{}: pooled", f.name);
            }
        },
    );
}

/// A body that stops short of its `Content-Length` when the server closes is an error in the
/// body phase, never a short `Ok`, whether read whole or piece by piece; nothing is pooled.
#[test]
fn raw_truncated_body_is_an_error() {
    with_peer(
        "PYRAW_URL",
        "raw_truncated_body_is_an_error",
        |raw| async move {
            let client = client().build();
            for name in ["f1.bin", "f4096.bin", "f1048583.bin", "f16777216.bin"] {
                let f = file(name);
                let resp = client
                    .get(raw.url(&format!("/truncated/{name}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{name}");
                assert_eq!(resp.content_length(), Some(f.data.len() as u64), "{name}");
                let err = match resp.bytes().await {
                    Ok(body) => panic!("{name}: Ok with {} of {} bytes", body.len(), f.data.len()),
                    Err(e) => e,
                };
                assert!(
                    matches!(err.kind(), ErrorKind::Io(Phase::ReadBody)),
                    "{name}: {err:#}"
                );
                assert_eq!(err.phase(), Some(Phase::ReadBody), "{name}: {err:#}");
                assert_eq!(client.idle_connections(), 0, "{name}: pooled");
            }

            // Piece by piece: exactly the half that was sent, then the error.
            let f = file("f65536.bin");
            let mut resp = client
                .get(raw.url("/truncated/f65536.bin"))
                .send()
                .await
                .unwrap();
            let mut got = Vec::new();
            let err = loop {
                match resp.chunk().await {
                    Ok(Some(piece)) => got.extend_from_slice(&piece),
                    Ok(None) => panic!("f65536.bin: the end after {} bytes", got.len()),
                    Err(e) => break e,
                }
            };
            assert_same(
                "the truncated f65536.bin",
                &got,
                &f.data[..f.data.len() / 2],
            );
            assert_eq!(err.phase(), Some(Phase::ReadBody), "{err:#}");
            assert_eq!(client.idle_connections(), 0);
        },
    );
}
