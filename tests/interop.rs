//! The client against a real httpbin (python-httpbin under gunicorn), not our embedded one.
//!
//! Runs only when `HTTPBIN_URL` names one on loopback, e.g. `HTTPBIN_URL=http://127.0.0.1:8765`;
//! `.ci/run` starts one and sets it. Without it each test prints `SKIPPED interop::<test>: ...`
//! and passes, so a plain `cargo test` needs no Python; under `CI=true` it fails instead. The expectations below are what httpbin 0.10.x actually
//! sends, which differs from the embedded server in places (see `range_over_the_cap_is_a_404`
//! and `encoding_utf8_decodes_as_text`).

use std::future::Future;
use std::time::{Duration, Instant};

use url::{Host, Url};
use volley::{redirect, Client, ClientBuilder, ErrorKind, Runtime};

#[path = "util/skip.rs"]
mod skip;
use skip::skip;

/// Our default `User-Agent`, as the client sends it.
const USER_AGENT: &str = concat!("volley/", env!("CARGO_PKG_VERSION"));

/// The largest body httpbin's `/range/{n}` serves; above it, a 404.
const RANGE_CAP: usize = 102_400;

/// The httpbin under test.
struct Httpbin {
    /// The base URL without a trailing slash, e.g. `http://127.0.0.1:8765`.
    base: String,
}

impl Httpbin {
    /// `path` (starting with `/`) on this httpbin.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The httpbin named by `HTTPBIN_URL`, or `None` if it is unset or empty.
///
/// # Panics
///
/// If the URL is not `http://` on a loopback host: these tests never leave the machine.
fn httpbin() -> Option<Httpbin> {
    let raw = std::env::var("HTTPBIN_URL").ok()?;
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let url = Url::parse(raw).unwrap_or_else(|e| panic!("HTTPBIN_URL={raw:?}: {e:#}"));
    let loopback = match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    assert!(
        url.scheme() == "http" && loopback,
        "HTTPBIN_URL={raw:?} must be http:// on loopback (127.0.0.0/8, ::1 or localhost)"
    );
    Some(Httpbin {
        base: raw.trim_end_matches('/').to_owned(),
    })
}

/// A client with every wait bounded.
fn client() -> ClientBuilder {
    Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(20))
}

/// Runs `f` on a fresh runtime against the httpbin of `HTTPBIN_URL`, or prints a skip note.
fn with_httpbin<F, Fut>(test: &str, f: F)
where
    F: FnOnce(Httpbin) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(httpbin) = httpbin() else {
        skip(&format!("interop::{test}"), "HTTPBIN_URL is not set");
        return;
    };
    let rt = Runtime::new().unwrap();
    rt.block_on(async {
        // Bound the whole test: a hang fails it instead of stalling the suite.
        volley::timeout(Duration::from_secs(60), f(httpbin))
            .await
            .expect("test timed out");
    });
}

/// Parses a body as JSON, showing the body if it is not.
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e:#}): {body}"))
}

/// `/get` echoes our User-Agent, a custom header and the URL we asked for, and the
/// keep-alive connection goes back to the pool and is reused.
#[test]
fn get_echoes_our_headers() {
    with_httpbin("get_echoes_our_headers", |httpbin| async move {
        let client = client().build();
        for round in 0..2 {
            let resp = client
                .get(httpbin.url("/get?round=1"))
                .header("X-Volley-Interop", format!("round {round}"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "application/json");
            let body = json(&resp.text().await.unwrap());
            let headers = &body["headers"];
            assert_eq!(headers["User-Agent"], USER_AGENT, "{body}");
            assert_eq!(
                headers["X-Volley-Interop"],
                format!("round {round}"),
                "{body}"
            );
            assert_eq!(headers["Accept"], "*/*", "{body}");
            assert_eq!(body["args"]["round"], "1", "{body}");
            // httpbin rebuilds the URL from our request line and Host header.
            assert_eq!(body["url"], httpbin.url("/get?round=1"), "{body}");
            assert_eq!(
                client.idle_connections(),
                1,
                "round {round}: one keep-alive connection, reused"
            );
        }
    });
}

/// `/stream/50` is chunked and decodes, piece by piece, to 50 JSON lines with ids 0 to 49.
#[test]
fn stream_50_is_chunked_json_lines() {
    with_httpbin("stream_50_is_chunked_json_lines", |httpbin| async move {
        let mut resp = client()
            .build()
            .get(httpbin.url("/stream/50"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["transfer-encoding"], "chunked");
        assert_eq!(resp.content_length(), None);
        let mut body = Vec::new();
        while let Some(piece) = resp.chunk().await.unwrap() {
            assert!(
                !piece.is_empty(),
                "chunk() returns None at the end, not empty"
            );
            body.extend_from_slice(&piece);
        }
        assert!(
            resp.trailers().is_none_or(|t| t.is_empty()),
            "httpbin sends no trailers: {:?}",
            resp.trailers()
        );
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50, "{text}");
        for (i, line) in lines.iter().enumerate() {
            let line = json(line);
            assert_eq!(line["id"], i, "{line}");
            assert_eq!(line["url"], httpbin.url("/stream/50"), "{line}");
        }
    });
}

/// httpbin's `range` pattern: `abcdefghijklmnopqrstuvwxyz` repeated, cut at `n` bytes.
fn alphabet(n: usize) -> Vec<u8> {
    (b'a'..=b'z').cycle().take(n).collect()
}

/// `/range/102400`, the largest httpbin serves, arrives whole as abc…z repeated.
#[test]
fn range_body_is_the_alphabet_pattern() {
    with_httpbin("range_body_is_the_alphabet_pattern", |httpbin| async move {
        let resp = client()
            .build()
            .get(httpbin.url(&format!("/range/{RANGE_CAP}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some(RANGE_CAP as u64));
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes 0-{}/{RANGE_CAP}", RANGE_CAP - 1)
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len(), RANGE_CAP);
        let want = alphabet(RANGE_CAP);
        if let Some(at) = body.iter().zip(&want).position(|(a, b)| a != b) {
            panic!("body differs from abc..z at byte {at}");
        }
    });
}

/// `/range/200000` is over httpbin's cap of 102400 bytes: a 404 with a plain-text reason,
/// not a 200000-byte body as the embedded server sends.
#[test]
fn range_over_the_cap_is_a_404() {
    with_httpbin("range_over_the_cap_is_a_404", |httpbin| async move {
        let resp = client()
            .build()
            .get(httpbin.url("/range/200000"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["etag"], "range200000");
        let text = resp.text().await.unwrap();
        assert_eq!(text, "number of bytes must be in the range (0, 102400]");
    });
}

/// `/drip?duration=1&numbytes=10` trickles 10 `*` bytes over about a second.
#[test]
fn drip_delivers_ten_bytes() {
    with_httpbin("drip_delivers_ten_bytes", |httpbin| async move {
        let started = Instant::now();
        let mut resp = client()
            .build()
            .get(httpbin.url("/drip?duration=1&numbytes=10"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some(10));
        let mut body = Vec::new();
        let mut pieces = 0;
        while let Some(piece) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&piece);
            pieces += 1;
        }
        assert_eq!(body, b"**********");
        assert!(
            pieces >= 2,
            "a drip arrives in several pieces, got {pieces}"
        );
        // httpbin sleeps 0.1 s between bytes; a lower bound only, so a slow machine passes.
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "drip took {:?}",
            started.elapsed()
        );
    });
}

/// `/redirect/5` is followed through 5 relative redirects to `/get`; a limit of 2 stops it.
#[test]
fn redirect_5_ends_at_get() {
    with_httpbin("redirect_5_ends_at_get", |httpbin| async move {
        let resp = client()
            .build()
            .get(httpbin.url("/redirect/5"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.url().as_str().ends_with("/get"), "{}", resp.url());
        assert_eq!(resp.url().as_str(), httpbin.url("/get"));
        let body = json(&resp.text().await.unwrap());
        assert_eq!(body["url"], httpbin.url("/get"), "{body}");

        let err = client()
            .redirect(redirect::Policy::limited(2))
            .build()
            .get(httpbin.url("/redirect/5"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(2), "{err:#}");

        let resp = client()
            .redirect(redirect::Policy::none())
            .build()
            .get(httpbin.url("/redirect/5"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "/relative-redirect/4");
    });
}

/// `/status/418` is a response, not an error: status 418 with httpbin's teapot.
#[test]
fn status_418_is_a_response() {
    with_httpbin("status_418_is_a_response", |httpbin| async move {
        let resp = client()
            .build()
            .get(httpbin.url("/status/418"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 418);
        assert_eq!(resp.reason(), "I'M A TEAPOT");
        assert_eq!(
            resp.headers()["x-more-info"],
            "http://tools.ietf.org/html/rfc2324"
        );
        let text = resp.text().await.unwrap();
        assert!(text.contains("-=[ teapot ]=-"), "{text}");
        let err = client()
            .build()
            .get(httpbin.url("/status/418"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Status(volley::StatusCode::IM_A_TEAPOT)
        );
    });
}

/// POST to `/anything` echoes the method and the body in `data`, for a body sent with the
/// head and for one larger than the 16 KiB sent in the same write.
#[test]
fn anything_post_echoes_the_body() {
    with_httpbin("anything_post_echoes_the_body", |httpbin| async move {
        let client = client().build();
        let large: String = (0..64 * 1024)
            .map(|i| char::from(b'A' + (i % 26) as u8))
            .collect();
        for payload in ["hello volley: POST body".to_owned(), large] {
            let resp = client
                .post(httpbin.url("/anything?via=post"))
                .header("content-type", "text/plain")
                .body(payload.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = json(&resp.text().await.unwrap());
            assert_eq!(body["method"], "POST");
            assert_eq!(body["args"]["via"], "post");
            assert_eq!(body["headers"]["Content-Length"], payload.len().to_string());
            assert_eq!(body["headers"]["Content-Type"], "text/plain");
            let data = body["data"].as_str().expect("data is a string");
            assert_eq!(
                data.len(),
                payload.len(),
                "data echoed for a body of {} bytes",
                payload.len()
            );
            if let Some(at) = data.bytes().zip(payload.bytes()).position(|(a, b)| a != b) {
                panic!("data echoed differs from the body at byte {at}");
            }
        }
    });
}

/// A pooled connection that gunicorn closed while idle (its keep-alive is 2 s) is not
/// reused: a POST after the pause, which is never retried, goes out on a new connection.
#[test]
fn server_closed_idle_connection_is_not_reused() {
    with_httpbin(
        "server_closed_idle_connection_is_not_reused",
        |httpbin| async move {
            let client = client().build();
            let resp = client.get(httpbin.url("/get")).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
            assert_eq!(client.idle_connections(), 1);
            volley::sleep(Duration::from_secs(3)).await;
            let resp = client
                .post(httpbin.url("/anything"))
                .header("content-type", "text/plain")
                .body("after the idle close")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = json(&resp.text().await.unwrap());
            assert_eq!(body["data"], "after the idle close", "{body}");
            assert_eq!(client.idle_connections(), 1);
        },
    );
}

/// `/links/10/0` is an HTML page with 9 links, to `/links/10/1` through `/links/10/9`.
#[test]
fn links_page_has_nine_hrefs() {
    with_httpbin("links_page_has_nine_hrefs", |httpbin| async move {
        let resp = client()
            .build()
            .get(httpbin.url("/links/10/0"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let html = resp.text().await.unwrap();
        assert!(html.starts_with("<html>"), "{html}");
        assert_eq!(html.matches("href=").count(), 9, "{html}");
        for n in 1..10 {
            assert!(
                html.contains(&format!("href='/links/10/{n}'")),
                "{n}: {html}"
            );
        }
        assert!(
            !html.contains("href='/links/10/0'"),
            "no link to itself: {html}"
        );
    });
}

/// `/encoding/utf8` (Markus Kuhn's UTF-8 demo, 14 KiB) decodes with text() to exactly the
/// characters httpbin sent: the same string as a strict UTF-8 decoding of bytes().
#[test]
fn encoding_utf8_decodes_as_text() {
    with_httpbin("encoding_utf8_decodes_as_text", |httpbin| async move {
        let client = client().build();
        let fetch = || async {
            let resp = client
                .get(httpbin.url("/encoding/utf8"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
            resp
        };
        let raw = fetch().await.bytes().await.unwrap();
        let strict = std::str::from_utf8(&raw).expect("httpbin sends valid UTF-8");
        let text = fetch().await.text().await.unwrap();
        assert!(text == strict, "text() differs from the UTF-8 of bytes()");
        // The demo holds one U+FFFD of its own (in "ﬁ�⑀₂"), sent as valid UTF-8: decoding
        // must keep that one and add none.
        assert_eq!(text.matches('\u{FFFD}').count(), 1);
        for sample in [
            "Markus Kuhn [ˈmaʳkʊs kuːn]",
            // Oxia accents (U+1F77, U+1F79) as httpbin sends them, not NFC's tonos forms.
            "Σὲ γνωρ\u{1F77}ζω ἀπὸ τὴν κ\u{1F79}ψη",
            "ᚻᛖ ᚳᚹᚫᚦ ᚦᚫᛏ ᚻᛖ ᛒᚢᛞᛖ",
            "∮ E⋅da = Q,  n → ∞",
        ] {
            assert!(text.contains(sample), "{sample:?} missing from: {text}");
        }
    });
}

/// httpbin's `/gzip` and `/deflate` arrive decoded, without `Content-Encoding` and
/// `Content-Length`, and httpbin saw our `Accept-Encoding`; with an `Accept-Encoding` of our
/// own, `/gzip` is left as gzip.
#[cfg(all(feature = "gzip", feature = "deflate"))]
#[test]
fn gzip_and_deflate_are_decoded() {
    with_httpbin("gzip_and_deflate_are_decoded", |httpbin| async move {
        let client = client().build();
        for (path, flag) in [("/gzip", "gzipped"), ("/deflate", "deflated")] {
            let resp = client.get(httpbin.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert!(resp.headers().get("content-encoding").is_none(), "{path}");
            assert!(resp.headers().get("content-length").is_none(), "{path}");
            assert_eq!(resp.content_length(), None, "{path}");
            let body = json(&resp.text().await.unwrap());
            assert_eq!(body[flag], true, "{body}");
            let sent = body["headers"]["Accept-Encoding"].as_str().unwrap_or("");
            assert!(sent.starts_with("gzip, deflate"), "{body}");
        }
        let resp = client
            .get(httpbin.url("/gzip"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let raw = resp.bytes().await.unwrap();
        assert_eq!(&raw[..2], b"\x1f\x8b", "the gzip bytes themselves");
    });
}

/// httpbin's `/brotli` (a real brotli encoder's output) arrives decoded.
#[cfg(feature = "brotli")]
#[test]
fn brotli_is_decoded() {
    with_httpbin("brotli_is_decoded", |httpbin| async move {
        let client = client().build();
        let resp = client.get(httpbin.url("/brotli")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("content-encoding").is_none());
        let body = json(&resp.text().await.unwrap());
        assert_eq!(body["brotli"], true, "{body}");
    });
}
