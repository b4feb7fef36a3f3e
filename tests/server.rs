//! The embedded httpbin-like server (`volley_testserver`), checked at the byte level with plain
//! `std::net::TcpStream` clients (read and write timeouts, so nothing hangs) and, for the
//! concurrency and shutdown tests, with volley's own `TcpStream` on the server's runtime.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use volley::Runtime;
use volley_testserver::{seeded_bytes, Server, ServerConfig, ServerThread, GARBAGE};

/// How long a test client waits for any one read or write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn start() -> ServerThread {
    Server::spawn_thread(local()).expect("start server thread")
}

/// Aborts the process if a test is still running after `secs` seconds: a hang fails the run.
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

fn watchdog(what: &'static str, secs: u64) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(secs)) {
            eprintln!("watchdog: {what} still running after {secs} s; aborting");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// A response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    /// The head as text, status line included.
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    trailers: Vec<(String, String)>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }
}

/// A blocking client over one connection, with its own read buffer.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("send");
    }

    /// `GET path` with `extra` header lines, and `Host: test` unless `extra` has a `Host`.
    fn get(&mut self, path: &str, extra: &str) -> Resp {
        let host = if extra.to_ascii_lowercase().contains("host:") {
            ""
        } else {
            "Host: test\r\n"
        };
        self.send(format!("GET {path} HTTP/1.1\r\n{host}{extra}\r\n"));
        self.response("GET")
    }

    /// Reads more bytes into the buffer; 0 at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads through the next CRLF (or LF) and returns the line without it.
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                return text.trim_end_matches(['\r', '\n']).to_string();
            }
            assert!(self.fill().expect("read") > 0, "EOF inside a line");
        }
    }

    fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().expect("read") > 0, "EOF inside a body");
        }
        self.buf.drain(..n).collect()
    }

    /// Reads until the server closes (or resets) the connection.
    fn read_to_close(&mut self) -> Vec<u8> {
        while let Ok(n) = self.fill() {
            if n == 0 {
                break;
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Reads one head: the status and the header lines.
    fn head(&mut self) -> (u16, String, Vec<(String, String)>) {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut head = status_line.clone();
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            head.push('\n');
            head.push_str(&line);
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_string(), value.trim().to_string()));
        }
        (status, head, headers)
    }

    /// Reads one final response to a `method` request, body framed as its headers say.
    fn response(&mut self, method: &str) -> Resp {
        let (status, head, headers) = self.head();
        let mut resp = Resp {
            status,
            head,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
        };
        if method == "HEAD" || status == 204 || status == 304 || status < 200 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.contains("chunked"))
        {
            loop {
                let line = self.line();
                let size = line.split(';').next().unwrap().trim();
                let size = usize::from_str_radix(size, 16).expect("chunk size");
                if size == 0 {
                    break;
                }
                let data = self.exact(size);
                resp.body.extend_from_slice(&data);
                assert_eq!(self.exact(2), b"\r\n", "CRLF after chunk data");
            }
            loop {
                let line = self.line();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').expect("trailer line");
                resp.trailers
                    .push((name.to_string(), value.trim().to_string()));
            }
        } else if let Some(len) = resp.header("content-length") {
            let len = len.parse().expect("numeric Content-Length");
            resp.body = self.exact(len);
        } else {
            resp.body = self.read_to_close();
        }
        resp
    }

    /// Asserts that the server closed the connection: EOF (or a reset) with nothing more.
    fn assert_closed(&mut self) {
        match self.fill() {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {n} more bytes: {:?}", self.buf),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// Asserts that nothing arrives within `wait`, and the connection stays open.
    fn assert_silent(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        match self.fill() {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }
}

/// FNV-1a 64, as `/fault/chunked-trailers` uses for its checksum.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `/get` echoes args (repeated keys as arrays), Title-Case headers, origin and url, with the
/// server's standard headers.
#[test]
fn get_returns_httpbin_json() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get(
        "/get?a=1&a=2&b=x%20y",
        "user-agent: probe/1\r\nx-custom-THING: v\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.head.starts_with("HTTP/1.1 200 OK"));
    assert_eq!(r.header("server"), Some("volley-httpbin"));
    assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["args"]["a"], serde_json::json!(["1", "2"]));
    assert_eq!(j["args"]["b"], "x y");
    assert_eq!(j["headers"]["User-Agent"], "probe/1");
    assert_eq!(j["headers"]["X-Custom-Thing"], "v");
    assert_eq!(j["headers"]["Host"], "test");
    assert_eq!(j["origin"], "127.0.0.1");
    assert_eq!(j["url"], "http://test/get?a=1&a=2&b=x%20y");
}

/// `/post` echoes a JSON body as `data` and parsed `json`, a form body as `form`; a wrong
/// method gets 405 with `Allow`.
#[test]
fn post_echoes_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let body = r#"{"k": [1, "two", {"n": null}]}"#;
    c.send(format!(
        "POST /post HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let j = c.response("POST").json();
    assert_eq!(j["data"], body);
    assert_eq!(j["json"], serde_json::json!({"k": [1, "two", {"n": null}]}));
    assert_eq!(j["form"], serde_json::json!({}));
    assert_eq!(j["files"], serde_json::json!({}));

    c.send(
        "PUT /put HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 12\r\n\r\na=1&b=x+y%21",
    );
    let j = c.response("PUT").json();
    assert_eq!(j["form"], serde_json::json!({"a": "1", "b": "x y!"}));
    assert_eq!(j["data"], "");
    assert_eq!(j["json"], Value::Null);

    let mut c = Client::connect(server.local_addr());
    c.send("GET /post HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response("GET");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

/// A chunked request body (with extensions and trailers) is decoded; `/anything` reports the
/// method.
#[test]
fn chunked_request_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send(
        "PATCH /anything/x/y HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    let j = c.response("PATCH").json();
    assert_eq!(j["data"], "hello world");
    assert_eq!(j["method"], "PATCH");
    assert_eq!(j["url"], "http://t/anything/x/y");
    // The connection is still usable afterwards.
    assert_eq!(c.get("/get", "").status, 200);
}

/// `Expect: 100-continue` gets an interim 100 before the body is sent.
#[test]
fn expect_continue() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("POST /post HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    let (status, _, _) = c.head();
    assert_eq!(status, 100);
    c.send("abc");
    assert_eq!(c.response("POST").json()["data"], "abc");
}

/// Two requests on one connection, and pipelined requests, are answered in order on one
/// accepted connection.
#[test]
fn keep_alive_and_pipelining() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let first = c.get("/get?n=1", "");
    assert_eq!(first.json()["args"]["n"], "1");
    assert_eq!(first.header("connection"), None);
    let second = c.get("/ip", "");
    assert_eq!(second.json()["origin"], "127.0.0.1");
    c.send(
        "GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(c.response("GET").status, 201);
    assert_eq!(c.response("GET").status, 202);
    let stats = server.stats();
    assert_eq!(stats.connections_accepted, 1);
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.open_connections, 1);
}

/// `Connection: close` and HTTP/1.0 without keep-alive close after the response; HTTP/1.0 with
/// keep-alive stays open.
#[test]
fn connection_close_and_http10() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/get", "Connection: close\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();

    let mut c = Client::connect(server.local_addr());
    c.send("GET /get HTTP/1.0\r\n\r\n");
    let r = c.response("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    c.assert_closed();

    let mut c = Client::connect(server.local_addr());
    c.send("GET /get HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response("GET").header("connection"), Some("keep-alive"));
    c.send("GET /get HTTP/1.0\r\n\r\n");
    assert_eq!(c.response("GET").status, 200);
    c.assert_closed();
}

/// `HEAD` gets the `GET` head, with its `Content-Length`, and no body.
#[test]
fn head_has_no_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("HEAD /bytes/1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response("HEAD");
    assert_eq!(r.header("content-length"), Some("1000"));
    // The next response follows at once: no body bytes were sent in between.
    let r = c.get("/status/203", "");
    assert_eq!(r.status, 203);
}

/// `/stream/3` sends three JSON lines in chunked coding.
#[test]
fn stream_is_chunked_json_lines() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/stream/3", "");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    let lines: Vec<&str> = r.text().lines().collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        let j: Value = serde_json::from_str(line).unwrap();
        assert_eq!(j["id"], i);
        assert_eq!(j["url"], "http://test/stream/3");
    }
    assert_eq!(c.get("/get", "").status, 200);
}

/// `/bytes/{n}?seed=S` is deterministic and equals `seeded_bytes`, small and large.
#[test]
fn bytes_are_seeded() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    for n in [0, 1, 13, 4096, 300_001] {
        let a = c.get(&format!("/bytes/{n}?seed=7"), "");
        assert_eq!(a.header("content-type"), Some("application/octet-stream"));
        assert_eq!(a.body, seeded_bytes(7, n), "n = {n}");
    }
    let a = c.get("/bytes/64?seed=1", "").body;
    let b = c.get("/bytes/64?seed=2", "").body;
    assert_ne!(a, b);
    assert_eq!(c.get("/bytes/200000000", "").status, 400);
}

/// `/status/{code}` sends that status, with httpbin's extra headers.
#[test]
fn status_codes() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/status/418", "");
    assert_eq!(
        (r.status, r.head.lines().next()),
        (418, Some("HTTP/1.1 418 I'm a teapot"))
    );
    let r = c.get("/status/302", "");
    assert_eq!(r.header("location"), Some("/redirect/1"));
    assert_eq!(r.header("content-length"), Some("0"));
    let r = c.get("/status/401", "");
    assert!(r.header("www-authenticate").is_some());
    let r = c.get("/status/204", "");
    assert_eq!((r.status, r.header("content-length")), (204, None));
    let r = c.get("/status/599", "");
    assert_eq!(r.status, 599);
    assert_eq!(c.get("/status/99", "").status, 400);
    assert_eq!(c.get("/status/abc", "").status, 400);
    assert_eq!(c.get("/no/such/path", "").status, 404);
}

/// Redirect chains: relative, absolute, and `/redirect-to`.
#[test]
fn redirects() {
    let server = start();
    let port = server.local_addr().port();
    let mut c = Client::connect(server.local_addr());
    let loc = |c: &mut Client, path: &str| {
        let r = c.get(path, &format!("Host: 127.0.0.1:{port}\r\n"));
        assert_eq!(r.status, 302, "{path}");
        r.header("location").unwrap().to_string()
    };
    assert_eq!(loc(&mut c, "/redirect/3"), "/relative-redirect/2");
    assert_eq!(loc(&mut c, "/relative-redirect/2"), "/relative-redirect/1");
    assert_eq!(loc(&mut c, "/relative-redirect/1"), "/get");
    assert_eq!(
        loc(&mut c, "/absolute-redirect/2"),
        format!("http://127.0.0.1:{port}/absolute-redirect/1")
    );
    assert_eq!(
        loc(&mut c, "/redirect/1?absolute=true"),
        format!("http://127.0.0.1:{port}/get")
    );
    let r = c.get(
        "/redirect-to?url=http%3A%2F%2Fexample.com%2Fx&status_code=307",
        "",
    );
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("http://example.com/x"))
    );
    assert_eq!(c.get("/redirect/0", "").status, 400);
}

/// `/range/{n}` serves the whole body, one byte range (206), or 416.
#[test]
fn ranges() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/range/30", "");
    assert_eq!(r.body, b"abcdefghijklmnopqrstuvwxyzabcd");
    let r = c.get("/range/30", "Range: bytes=24-27\r\n");
    assert_eq!((r.status, r.body.as_slice()), (206, &b"yzab"[..]));
    assert_eq!(r.header("content-range"), Some("bytes 24-27/30"));
    let r = c.get("/range/30", "Range: bytes=-3\r\n");
    assert_eq!(r.body, b"bcd");
    let r = c.get("/range/30", "Range: bytes=30-\r\n");
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */30"))
    );
}

/// Basic auth: 200 with matching credentials, 401 with a challenge otherwise.
#[test]
fn basic_auth() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    // "user:pa ss" in base64.
    let r = c.get(
        "/basic-auth/user/pa%20ss",
        "Authorization: Basic dXNlcjpwYSBzcw==\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"authenticated": true, "user": "user"})
    );
    let r = c.get(
        "/basic-auth/user/other",
        "Authorization: Basic dXNlcjpwYSBzcw==\r\n",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"Fake Realm\"")
    );
    assert_eq!(c.get("/hidden-basic-auth/a/b", "").status, 404);
}

/// Assorted documents: links, response-headers, cookies, cache, utf8, json, the seed's /add.
#[test]
fn documents() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/links/3/1", "");
    assert_eq!(
        r.text(),
        "<html><head><title>Links</title></head><body><a href='/links/3/0'>0</a> 1 \
         <a href='/links/3/2'>2</a> </body></html>"
    );
    let r = c.get("/response-headers?X-One=1&X-One=2&Foo=bar", "");
    let ones: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "X-One")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ones, ["1", "2"]);
    let j = r.json();
    assert_eq!(j["Foo"], "bar");
    assert_eq!(j["Content-Length"], r.body.len().to_string());
    let r = c.get("/cookies", "Cookie: a=1; b=two\r\n");
    assert_eq!(
        r.json(),
        serde_json::json!({"cookies": {"a": "1", "b": "two"}})
    );
    assert_eq!(c.get("/cache", "If-None-Match: \"x\"\r\n").status, 304);
    assert_eq!(c.get("/cache", "").status, 200);
    let r = c.get("/encoding/utf8", "");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.text().contains("Съешь"));
    assert!(serde_json::from_slice::<Value>(&c.get("/json", "").body).is_ok());
    let r = c.get("/add?name=seed&delay=10&abcdefghij", "");
    assert_eq!((r.status, r.text()), (200, "."));
    assert_eq!(c.get("/add?delay=10", "").status, 400);
    let r = c.get("/drip?duration=0.05&numbytes=5&code=201", "");
    assert_eq!((r.status, r.body.as_slice()), (201, &b"*****"[..]));
    assert_eq!(c.get("/delay/0.01", "").status, 200);
}

/// `/web/{hosts}/{pages}/{i}`: a page of absolute links to other pages of the site, each on
/// host `h{j % hosts}.web.test` and the port of the `Host` header; bad sizes get 400, a page
/// past the end 404.
#[test]
fn web_site_pages() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/web/7/100/3", "Host: h3.web.test:8123\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    let links: Vec<&str> = html
        .split("href='")
        .skip(1)
        .map(|rest| &rest[..rest.find('\'').unwrap()])
        .collect();
    assert_eq!(links.len(), 10, "{html}");
    assert_eq!(
        links[0], "http://h4.web.test:8123/web/7/100/4",
        "the next page first"
    );
    for link in &links {
        let j: u32 = link.rsplit('/').next().unwrap().parse().unwrap();
        assert!(j < 100 && j != 3, "{link}");
        assert_eq!(
            *link,
            format!("http://h{}.web.test:8123/web/7/100/{j}", j % 7)
        );
    }
    assert_eq!(
        c.get("/web/7/100/3", "Host: h3.web.test:8123\r\n").text(),
        html,
        "deterministic"
    );
    let r = c.get("/web/1/2/1", "Host: h0.web.test\r\n");
    assert!(
        r.text().contains("href='http://h0.web.test/web/1/2/0'"),
        "no port in Host"
    );
    assert_eq!(c.get("/web/7/100/100", "").status, 404);
    assert_eq!(c.get("/web/0/100/1", "").status, 400);
    assert_eq!(c.get("/web/7/0/0", "").status, 400);
    assert_eq!(c.get("/web/7/x/0", "").status, 400);
}

/// Oversized heads get 431 and oversized bodies 413, then the connection closes.
#[test]
fn limits() {
    let mut config = ServerConfig::default();
    config.max_head_size = 4096;
    config.max_body_size = 1000;
    let server = Server::spawn_thread_with(local(), config).unwrap();
    let mut c = Client::connect(server.local_addr());
    let big = "a".repeat(5000);
    c.send(format!("GET /get HTTP/1.1\r\nX-Big: {big}\r\n\r\n"));
    let r = c.response("GET");
    assert_eq!((r.status, r.header("connection")), (431, Some("close")));
    c.assert_closed();

    let mut c = Client::connect(server.local_addr());
    c.send("POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n");
    let r = c.response("POST");
    assert_eq!(r.status, 413);
    c.assert_closed();

    let mut c = Client::connect(server.local_addr());
    c.send("POST /post HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n");
    assert_eq!(c.response("POST").status, 413);

    let mut c = Client::connect(server.local_addr());
    c.send("POST /post HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert_eq!(c.response("POST").status, 400);
}

/// A connection idle past the configured timeout is closed by the server.
#[test]
fn idle_timeout_closes() {
    let mut config = ServerConfig::default();
    config.idle_timeout = Some(Duration::from_millis(100));
    let server = Server::spawn_thread_with(local(), config).unwrap();
    let mut c = Client::connect(server.local_addr());
    assert_eq!(c.get("/get", "").status, 200);
    c.assert_closed();
}

/// `/fault/stall-head` sends nothing and keeps the connection open.
#[test]
fn fault_stall_head() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/stall-head HTTP/1.1\r\nHost: t\r\n\r\n");
    c.assert_silent(Duration::from_millis(300));
    assert_eq!(server.stats().open_connections, 1);
}

/// `/fault/stall-body` sends a head promising 2N bytes and N of them, then nothing.
#[test]
fn fault_stall_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/stall-body?after=5 HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, _, headers) = c.head();
    assert_eq!(status, 200);
    assert!(headers.contains(&("Content-Length".into(), "10".into())));
    assert_eq!(c.exact(5), b"*****");
    c.assert_silent(Duration::from_millis(300));
}

/// `/fault/reset-body` promises 1000 bytes, sends 100 and resets the connection (RST, not FIN).
#[test]
fn fault_reset_body() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/reset-body HTTP/1.1\r\nHost: t\r\n\r\n");
    let (_, _, headers) = c.head();
    assert!(headers.contains(&("Content-Length".into(), "1000".into())));
    // Some of the 100 bytes may arrive before the RST; what must not come is a clean EOF.
    let outcome = loop {
        match c.fill() {
            Ok(0) => break None,
            Ok(_) => continue,
            Err(e) => break Some(e.kind()),
        }
    };
    assert_eq!(
        outcome,
        Some(std::io::ErrorKind::ConnectionReset),
        "after {} body bytes",
        c.buf.len()
    );
    assert!(c.buf.len() <= 100);
}

/// `/fault/close-before-response` closes without sending a byte.
#[test]
fn fault_close_before_response() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/close-before-response HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.read_to_close().is_empty());
}

/// `/fault/close-on-reuse` answers a connection's first request with a keep-alive 200 and
/// closes without a byte on its second; a fresh connection gets a 200 again.
#[test]
fn fault_close_on_reuse() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/fault/close-on-reuse", "");
    assert_eq!((r.status, r.header("connection")), (200, None));
    assert_eq!(r.text(), "first request on this connection\n");
    c.send("GET /fault/close-on-reuse HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.read_to_close().is_empty());
    let mut fresh = Client::connect(server.local_addr());
    assert_eq!(fresh.get("/fault/close-on-reuse", "").status, 200);
    assert_eq!(server.stats().requests, 3);
}

/// `/fault/redirect-loop` redirects to itself, on the same connection, every time.
#[test]
fn fault_redirect_loop() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    for _ in 0..3 {
        let r = c.get("/fault/redirect-loop", "");
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/fault/redirect-loop"));
        assert!(r.body.is_empty());
    }
    assert_eq!(server.stats().connections_accepted, 1);
}

/// `/fault/trickle` delivers a valid response, its head one byte at a time.
#[test]
fn fault_trickle() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/fault/trickle?interval_ms=2", "");
    assert_eq!((r.status, r.text()), (200, "trickle\n"));
    assert_eq!(c.get("/get", "").status, 200);
}

/// `/fault/huge-head` sends one header of the requested size.
#[test]
fn fault_huge_head() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/huge-head?size=100000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, _, headers) = c.head();
    assert_eq!(status, 200);
    let huge = headers.iter().find(|(n, _)| n == "X-Huge").unwrap();
    assert_eq!(huge.1.len(), 100_000);
    assert!(huge.1.bytes().all(|b| b == b'a'));
    assert_eq!(c.read_to_close(), b"ok");
}

/// `/fault/garbage` sends exactly `GARBAGE`, then closes.
#[test]
fn fault_garbage() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/garbage HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_to_close(), GARBAGE);
}

/// `/fault/keep-alive-then-close` looks reusable but is closed after the response.
#[test]
fn fault_keep_alive_then_close() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/fault/keep-alive-then-close", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None);
    assert!(r.header("content-length").is_some());
    // A reused connection finds EOF (the send itself may or may not fail).
    let _ = c.stream.write_all(b"GET /get HTTP/1.1\r\nHost: t\r\n\r\n");
    c.assert_closed();
}

/// `/fault/early-response` answers before the body is read; a client that sends its whole
/// (large) body first and reads afterwards does not deadlock.
#[test]
fn fault_early_response() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let len = 8 * 1024 * 1024;
    c.send(format!(
        "POST /fault/early-response HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n"
    ));
    c.send(vec![b'x'; len]);
    let r = c.response("POST");
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    c.assert_closed();
}

/// `/fault/bad-length`, `bad-chunk`, `short-body`, `te-and-cl` and `until-close` send their
/// broken framing byte for byte.
#[test]
fn fault_bad_framing() {
    let server = start();
    let fetch = |path: &str| {
        let mut c = Client::connect(server.local_addr());
        c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        c
    };
    let mut c = fetch("/fault/bad-length");
    let (_, head, _) = c.head();
    assert!(head.contains("Content-Length: ten"));
    assert_eq!(c.read_to_close(), b"0123456789");

    let mut c = fetch("/fault/bad-chunk");
    let (_, head, _) = c.head();
    assert!(head.contains("Transfer-Encoding: chunked"));
    assert_eq!(
        c.read_to_close(),
        b"5\r\nhello\r\nZZ\r\nnot hex\r\n0\r\n\r\n"
    );

    let mut c = fetch("/fault/short-body");
    let (_, _, headers) = c.head();
    assert!(headers.contains(&("Content-Length".into(), "100".into())));
    assert_eq!(c.read_to_close(), vec![b'*'; 50]);

    let mut c = fetch("/fault/te-and-cl");
    let r = c.response("GET");
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.body, b"hello world\n");
    c.assert_closed();

    let mut c = fetch("/fault/until-close");
    let r = c.response("GET");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(
        r.text(),
        "this body has no length;\nit ends when the server closes the connection.\n"
    );
}

/// `/fault/chunked-trailers` sends chunk extensions and a checksum trailer that matches.
#[test]
fn fault_chunked_trailers() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    let r = c.get("/fault/chunked-trailers", "");
    assert_eq!(r.text(), "chunked body with trailers\n");
    assert_eq!(r.header("trailer"), Some("X-Checksum"));
    let expected = format!("fnv1a64={:016x}", fnv1a64(&r.body));
    assert_eq!(r.trailers, [("X-Checksum".to_string(), expected)]);
    assert_eq!(c.get("/get", "").status, 200);
}

/// `/fault/1xx` sends 100 and 103 (with a `Link`) before the final 200.
#[test]
fn fault_informational() {
    let server = start();
    let mut c = Client::connect(server.local_addr());
    c.send("GET /fault/1xx HTTP/1.1\r\nHost: t\r\n\r\n");
    let (status, _, _) = c.head();
    assert_eq!(status, 100);
    let (status, _, headers) = c.head();
    assert_eq!(status, 103);
    assert_eq!(headers[0].0, "Link");
    let r = c.response("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "the final response, after 100 and 103\n");
}

/// 1,000 concurrent `/delay/0.1` requests on one runtime all complete.
#[test]
fn thousand_concurrent_delays() {
    const CLIENTS: usize = 1000;
    volley::raise_fd_limit().expect("raise the open-file limit");
    let _dog = watchdog("thousand_concurrent_delays", 90);
    let rt = Runtime::new().unwrap();
    let stats = rt.block_on(async {
        let server = Server::bind(local()).unwrap();
        let addr = server.local_addr();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                volley::spawn(async move {
                    let mut conn = volley::TcpStream::connect(addr).await?;
                    conn.write_all(
                        b"GET /delay/0.1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    )
                    .await?;
                    let mut response = Vec::new();
                    conn.read_to_end(&mut response).await?;
                    Ok::<_, io::Error>(response)
                })
            })
            .collect();
        let all = volley::timeout(Duration::from_secs(60), async {
            for client in clients {
                let response = client.await.unwrap().expect("client I/O");
                assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
                assert!(response.ends_with(b"}\n"));
            }
        });
        all.await.expect("1000 delayed requests within 60 s");
        server.stats()
    });
    assert_eq!(stats.connections_accepted, CLIENTS as u64);
    assert_eq!(stats.requests, CLIENTS as u64);
    assert!(stats.max_open_connections <= CLIENTS);
}

/// Dropping an in-process server closes its listener at once and its connections soon after.
#[test]
fn in_process_drop_stops() {
    let _dog = watchdog("in_process_drop_stops", 30);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind(local()).unwrap();
        let addr = server.local_addr();
        let mut conn = volley::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /fault/stall-head HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        volley::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.stats().open_connections, 1);
        drop(server);
        let refused = volley::TcpStream::connect(addr).await;
        assert_eq!(
            refused.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        let mut rest = Vec::new();
        let read = volley::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
        match read.expect("the stalled connection is closed") {
            Ok(n) => assert_eq!(n, 0),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
        }
    });
}

/// A graceful shutdown lets an in-flight request finish (with `Connection: close`) and closes
/// idle connections.
#[test]
fn graceful_shutdown() {
    let _dog = watchdog("graceful_shutdown", 30);
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        let server = Server::bind(local()).unwrap();
        let addr = server.local_addr();
        let mut idle = volley::TcpStream::connect(addr).await.unwrap();
        let busy = volley::spawn(async move {
            let mut conn = volley::TcpStream::connect(addr).await.unwrap();
            conn.write_all(b"GET /delay/0.2 HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut response = Vec::new();
            conn.read_to_end(&mut response).await.unwrap();
            response
        });
        volley::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        server.shutdown_gracefully(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let response = busy.await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).await.unwrap_or(0), 0);
    });
}

/// A `ServerThread` can be moved to and shared with other threads; its URLs name its port.
#[test]
fn server_thread_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let server = start();
    assert_send_sync(&server);
    let port = server.local_addr().port();
    assert_eq!(server.url("/get"), format!("http://127.0.0.1:{port}/get"));
    assert_eq!(server.url("x"), format!("http://127.0.0.1:{port}/x"));
    thread::spawn(move || server.shutdown()).join().unwrap();
}

/// `Server::bind` outside a runtime is an error, not a panic.
#[test]
fn bind_outside_runtime_fails() {
    assert!(Server::bind(local()).is_err());
}
