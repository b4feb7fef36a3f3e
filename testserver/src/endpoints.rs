//! The router and the httpbin endpoints.
//!
//! [`route`] is synchronous: it checks the method, parses the path and the query, and returns an
//! [`Action`], a response ready to send or a recipe for one that takes time (`/delay`,
//! `/drip`), is large (`/bytes`, `/range`) or streams (`/stream`). [`dispatch`] carries it out.
//! Before [`route`], `/fault/...` goes to `faults.rs`, and the endpoints with state per server
//! (`/limit`, `/flaky`, `/robots.txt`) to `polite.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::time::{Duration, SystemTime};

use super::codec::{base64_decode, base64_encode, parse_query, percent_decode, title_case};
#[cfg(any(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
))]
use super::compress;
use super::conn::{Conn, Next};
use super::faults;
use super::json::{self, Json};
use super::polite;
use super::random::{clock_seed, XorShift64Star};
use super::request::Request;
use super::response::{http_date, Framing, Response};
use volley::sleep;

/// Every path the server answers, with what it does: the `/` page and the `httpbin` example
/// print this list.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "this list, as HTML"),
    (
        "/get",
        "GET: the request's args, headers, origin and url as JSON",
    ),
    (
        "/post",
        "POST: like /get, plus data, files, form and json from the body",
    ),
    ("/put", "PUT: like /post"),
    ("/patch", "PATCH: like /post"),
    ("/delete", "DELETE: like /post"),
    ("/anything[/...]", "any method: like /post, plus method"),
    (
        "/count",
        "any method: the body's length and FNV-1a 64 hash as JSON, read without being kept (any size)",
    ),
    ("/headers", "the request headers as JSON"),
    ("/ip", "the client's address as JSON"),
    ("/user-agent", "the User-Agent as JSON"),
    (
        "/status/{code}",
        "an empty response with that status (3xx adds Location: /redirect/1)",
    ),
    (
        "/delay/{secs}",
        "the request as JSON, like /post, after secs seconds (at most 10)",
    ),
    (
        "/bytes/{n}?seed=S",
        "n bytes from xorshift64* seeded by S (at most 100 MiB)",
    ),
    (
        "/range/{n}",
        "n bytes of a-z repeated; one Range: bytes=a-b gives 206 (or 416)",
    ),
    ("/stream/{n}", "n JSON lines (at most 100), chunked"),
    (
        "/drip?duration=2&numbytes=10&delay=0&code=200",
        "numbytes '*' spread over duration seconds, after delay seconds, with Content-Length",
    ),
    (
        "/redirect/{n}",
        "302 to /relative-redirect/{n-1}, ..., then /get; ?absolute=true",
    ),
    (
        "/relative-redirect/{n}",
        "a chain of n relative 302 redirects ending at /get",
    ),
    (
        "/absolute-redirect/{n}",
        "a chain of n absolute 302 redirects ending at /get",
    ),
    (
        "/redirect-to?url=U&status_code=302",
        "redirects to U with that 3xx status",
    ),
    (
        "/links/{n}/{offset}",
        "an HTML page of n links to /links/{n}/{i} (n at most 200)",
    ),
    (
        "/web/{hosts}/{pages}/{i}",
        "page i of a site of pages pages spread over hosts host names h{k}.web.test: \
         HTML with about 10 absolute links to other pages of the site",
    ),
    (
        "/response-headers?K=V",
        "sets the headers K: V, and echoes them as JSON",
    ),
    ("/cookies", "the Cookie header as JSON"),
    (
        "/cookies/set?K=V",
        "sets cookies, then redirects to /cookies",
    ),
    (
        "/cookies/delete?K",
        "expires cookies, then redirects to /cookies",
    ),
    (
        "/basic-auth/{user}/{passwd}",
        "200 if Basic credentials match, else 401",
    ),
    (
        "/hidden-basic-auth/{user}/{passwd}",
        "200 if Basic credentials match, else 404",
    ),
    ("/bearer", "200 with a Bearer token, else 401"),
    (
        "/cache",
        "304 if If-Modified-Since or If-None-Match is sent, else the /get JSON",
    ),
    (
        "/cache/{secs}",
        "the /get JSON with Cache-Control: public, max-age=secs",
    ),
    (
        "/etag/{etag}",
        "304 if If-None-Match matches, 412 if If-Match does not",
    ),
    ("/encoding/utf8", "a UTF-8 page in several scripts"),
    ("/html", "a small HTML page"),
    ("/json", "a small JSON document"),
    ("/xml", "a small XML document"),
    (
        "/robots.txt",
        "robots rules (Disallow: /deny), or what ServerConfig::robots_txt sets",
    ),
    ("/deny", "a page robots.txt denies"),
    (
        "/limit/{n}?window_ms=1000&status=429",
        "at most n requests per client address, Host and key=K in any window_ms; the others \
         get status (429 or 503) with Retry-After as retry_after=secs, date or none, and the \
         requests sent before the announced time count as early; headers=ratelimit adds \
         RateLimit-Policy and RateLimit (headers=policy or state: one of them; headers=legacy: \
         RateLimit-Limit, -Remaining and -Reset)",
    ),
    (
        "/flaky/{n}?key=K&status=503",
        "fails the first n requests with key K (with status, plus Retry-After: S if \
         retry_after=S; or with fail=reset or fail=close, without a byte), then 200 with the \
         attempt number",
    ),
    (
        "/base64/{value}",
        "value, base64-decoded (URL-safe alphabet accepted)",
    ),
    ("/uuid", "a fresh version 4 UUID as JSON"),
    (
        "/add?name=X&delay=MS",
        "the tornado seed's endpoint: '.' after MS ms (default 1024)",
    ),
    #[cfg(feature = "gzip")]
    (
        "/gzip",
        "the request's headers, method and origin as JSON, gzip-encoded",
    ),
    #[cfg(feature = "deflate")]
    (
        "/deflate",
        "the request's headers, method and origin as JSON, deflate-encoded (zlib)",
    ),
    #[cfg(feature = "brotli")]
    (
        "/brotli",
        "the request's headers, method and origin as JSON, br-encoded (uncompressed meta-blocks)",
    ),
    #[cfg(feature = "zstd")]
    (
        "/zstd",
        "the request's headers, method and origin as JSON, zstd-encoded",
    ),
    #[cfg(feature = "gzip")]
    (
        "/bytes-gzip/{n}?seed=S&piece=P",
        "the bytes of /bytes/{n}?seed=S, gzip-encoded, chunked in pieces of P bytes",
    ),
    #[cfg(feature = "deflate")]
    (
        "/bytes-deflate/{n}?seed=S&piece=P&raw=false",
        "the bytes of /bytes/{n}?seed=S, deflate-encoded (raw=true: without the zlib wrapper)",
    ),
    (
        "/fault/stall-head",
        "reads the request, then sends nothing and keeps the connection",
    ),
    (
        "/fault/stall-body?after=10",
        "a head with Content-Length 2N, N bytes, then nothing",
    ),
    (
        "/fault/reset-body",
        "Content-Length 1000, 100 bytes, then an abortive close",
    ),
    (
        "/fault/close-before-response",
        "reads the request, closes without a byte",
    ),
    (
        "/fault/close-on-reuse",
        "a keep-alive 200 on a connection's first request, a close without a byte after",
    ),
    ("/fault/redirect-loop", "a 302 to itself, every time"),
    (
        "/fault/trickle?interval_ms=100",
        "a response whose head comes one byte per interval",
    ),
    (
        "/fault/huge-head?size=1048576",
        "a head with one header of size bytes",
    ),
    (
        "/fault/garbage",
        "non-HTTP bytes instead of a status line, then close",
    ),
    (
        "/fault/keep-alive-then-close",
        "a keep-alive response, then the server closes",
    ),
    (
        "/fault/early-response?code=413",
        "answers before reading the body, then drains it",
    ),
    ("/fault/bad-length", "Content-Length: ten"),
    (
        "/fault/bad-chunk",
        "a chunked body with a chunk size that is not hex",
    ),
    (
        "/fault/short-body",
        "Content-Length 100, 50 bytes, then close",
    ),
    (
        "/fault/chunked-trailers",
        "chunk extensions and an X-Checksum trailer",
    ),
    (
        "/fault/te-and-cl",
        "both Transfer-Encoding: chunked and a wrong Content-Length",
    ),
    (
        "/fault/until-close",
        "no length: the body ends when the connection closes",
    ),
    (
        "/fault/1xx",
        "100 Continue and 103 Early Hints before the 200",
    ),
    #[cfg(feature = "gzip")]
    (
        "/fault/gzip-bomb?size=10485760",
        "gzip of size zero bytes (about a thousandth of that on the wire)",
    ),
    #[cfg(feature = "gzip")]
    (
        "/fault/bad-gzip?flaw=header",
        "a gzip body with a bad header, crc, size or data",
    ),
    #[cfg(feature = "gzip")]
    (
        "/fault/gzip-truncated?cut=4",
        "a gzip body without its last cut bytes, with a matching Content-Length",
    ),
    #[cfg(feature = "deflate")]
    (
        "/fault/bad-deflate",
        "Content-Encoding: deflate on bytes that are not deflate",
    ),
];

/// Methods of the read-only endpoints.
const GET: &[&str] = &["GET", "HEAD"];

/// The largest `/bytes` and `/range` body.
const MAX_BYTES: u64 = 100 * 1024 * 1024;

/// The most hosts, and pages, of a `/web` site.
const MAX_WEB_HOSTS: u32 = 1_000_000;
const MAX_WEB_PAGES: u32 = 100_000_000;

/// How many links a `/web` page has, when the site has that many other pages.
const WEB_LINKS: usize = 10;

/// `/delay` waits at most this long, as httpbin does.
const MAX_DELAY_SECS: f64 = 10.0;

/// `/drip` and `/add` wait at most this long in all.
const MAX_DRIP_SECS: f64 = 60.0;

/// `/drip` sends at most this many bytes.
const MAX_DRIP_BYTES: u64 = 10 * 1024 * 1024;

/// Generated bodies up to this size are sent in one write with their head.
const SMALL_BODY: u64 = 64 * 1024;

/// What to do for a request.
#[derive(Debug)]
enum Action {
    /// Send this.
    Respond(Response),
    /// Send this after a pause.
    Delay(Duration, Response),
    /// Send a generated body of `len` bytes with this head.
    Sized {
        response: Response,
        len: u64,
        content: Content,
    },
    /// `/stream/{n}`.
    Stream(u32),
    /// `/drip`.
    Drip(Drip),
    /// `/bytes-gzip/{n}` and `/bytes-deflate/{n}`.
    #[cfg(any(feature = "gzip", feature = "deflate"))]
    Compressed {
        coding: compress::Coding,
        len: u64,
        seed: u64,
        piece: usize,
    },
}

/// The generated bodies of `/bytes` and `/range`.
#[derive(Debug)]
enum Content {
    /// xorshift64* output.
    Seeded(XorShift64Star),
    /// `a..z` repeated, starting at this position of the pattern.
    Alphabet(u64),
}

impl Content {
    /// Fills `buf` with the next bytes. Pieces must be multiples of 8 bytes except the last.
    fn fill(&mut self, buf: &mut [u8]) {
        match self {
            Content::Seeded(rng) => rng.fill(buf),
            Content::Alphabet(pos) => {
                for b in buf.iter_mut() {
                    *b = b'a' + (*pos % 26) as u8;
                    *pos += 1;
                }
            }
        }
    }
}

/// The parameters of `/drip`.
#[derive(Debug)]
struct Drip {
    duration: Duration,
    numbytes: u64,
    delay: Duration,
    code: u16,
}

/// Answers one request: faults take over the connection, everything else reads the body, then
/// routes.
pub(crate) async fn dispatch(conn: &mut Conn, mut req: Request) -> io::Result<Next> {
    let decoded: Vec<String> = req.path.split('/').skip(1).map(percent_decode).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if let ["fault", rest @ ..] = segs.as_slice() {
        return Box::pin(faults::dispatch(conn, req, rest)).await;
    }
    if let ["count"] = segs.as_slice() {
        // Bodies of any size, counted as they arrive and never held.
        return match conn.count_body(&req).await {
            Ok((len, hash)) => {
                let json = format!("{{\"length\": {len}, \"fnv1a64\": \"{hash:016x}\"}}\n");
                let response = Response::new(200).body("application/json", json);
                conn.send(&req, response).await
            }
            Err(e) => Ok(conn.refuse(Some(&req), e).await),
        };
    }
    if let Err(e) = conn.read_body(&mut req).await {
        return Ok(conn.refuse(Some(&req), e).await);
    }
    if let Some(answer) = polite::route(&conn.shared, &req, &segs) {
        return match answer {
            polite::Answer::Respond(response) => conn.send(&req, response).await,
            polite::Answer::Drop(next) => Ok(next),
        };
    }
    match route(&req, &segs).unwrap_or_else(Action::Respond) {
        Action::Respond(response) => conn.send(&req, response).await,
        Action::Delay(pause, response) => {
            sleep(pause).await;
            conn.send(&req, response).await
        }
        Action::Sized {
            response,
            len,
            content,
        } => Box::pin(send_sized(conn, &req, response, len, content)).await,
        Action::Stream(n) => Box::pin(stream(conn, &req, n)).await,
        Action::Drip(drip) => Box::pin(send_drip(conn, &req, drip)).await,
        #[cfg(any(feature = "gzip", feature = "deflate"))]
        Action::Compressed {
            coding,
            len,
            seed,
            piece,
        } => Box::pin(compress::send_bytes(conn, &req, coding, len, seed, piece)).await,
    }
}

/// 405 unless the method is one of `methods`.
fn allow(req: &Request, methods: &[&str]) -> Result<(), Response> {
    if methods.contains(&req.method.as_str()) {
        Ok(())
    } else {
        Err(Response::text(405, "method not allowed\n").header("Allow", methods.join(", ")))
    }
}

fn bad_request(why: &str) -> Response {
    Response::text(400, &format!("{why}\n"))
}

fn not_found() -> Response {
    Response::text(404, "not found\n")
}

/// Parses a path or query number, 400 if it is not one.
fn number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Response> {
    text.parse()
        .map_err(|_| bad_request(&format!("invalid {what}: {text:?}")))
}

/// Query argument `name` parsed, or `default` if absent; 400 if unparsable.
fn arg_or<T: std::str::FromStr>(req: &Request, name: &str, default: T) -> Result<T, Response> {
    match req.arg(name) {
        Some(v) => number(&v, name),
        None => Ok(default),
    }
}

/// Seconds as a duration, clamped to `[0, max]`; NaN counts as 0.
fn secs(value: f64, max: f64) -> Duration {
    Duration::from_secs_f64(if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, max)
    })
}

/// Whether `value` may go into a header as is: no CR, LF or other control character but tab.
fn header_safe(value: &str) -> bool {
    !value.chars().any(|c| c.is_control() && c != '\t')
}

/// Whether `name` is an RFC 9110 token, and so a valid header name.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Maps a request to its action; `Err` holds an error response.
fn route(req: &Request, segs: &[&str]) -> Result<Action, Response> {
    use Action::Respond;
    Ok(match segs {
        [""] => {
            allow(req, GET)?;
            Respond(index())
        }
        ["get"] => {
            allow(req, GET)?;
            Respond(Response::json(200, &get_json(req)))
        }
        [method @ ("post" | "put" | "patch" | "delete")] => {
            allow(req, &[method.to_ascii_uppercase().as_str()])?;
            Respond(Response::json(200, &body_json(req, false)))
        }
        ["anything", ..] => Respond(Response::json(200, &body_json(req, true))),
        ["headers"] => {
            allow(req, GET)?;
            Respond(Response::json(
                200,
                &Json::object([("headers", headers_json(req))]),
            ))
        }
        ["ip"] => {
            allow(req, GET)?;
            Respond(Response::json(
                200,
                &Json::object([("origin", Json::str(origin(req)))]),
            ))
        }
        ["user-agent"] => {
            allow(req, GET)?;
            let agent = req.header("user-agent").unwrap_or("");
            Respond(Response::json(
                200,
                &Json::object([("user-agent", Json::str(agent))]),
            ))
        }
        ["status", code] => Respond(status(number(code, "status code")?)?),
        ["delay", n] => {
            let pause = secs(number(n, "delay")?, MAX_DELAY_SECS);
            Action::Delay(pause, Response::json(200, &body_json(req, false)))
        }
        ["bytes", n] => {
            allow(req, GET)?;
            let len: u64 = number(n, "byte count")?;
            if len > MAX_BYTES {
                return Err(bad_request("at most 104857600 bytes"));
            }
            let seed = arg_or(req, "seed", clock_seed())?;
            Action::Sized {
                response: Response::new(200).header("Content-Type", "application/octet-stream"),
                len,
                content: Content::Seeded(XorShift64Star::new(seed)),
            }
        }
        ["range", n] => {
            allow(req, GET)?;
            range(req, number(n, "byte count")?)?
        }
        ["stream", n] => {
            allow(req, GET)?;
            Action::Stream(number::<u32>(n, "line count")?.min(100))
        }
        ["drip"] => {
            allow(req, GET)?;
            let code = arg_or(req, "code", 200u16)?;
            if !(200..=599).contains(&code) {
                return Err(bad_request("code must be 200 to 599"));
            }
            Action::Drip(Drip {
                duration: secs(arg_or(req, "duration", 2.0)?, MAX_DRIP_SECS),
                numbytes: arg_or(req, "numbytes", 10u64)?.min(MAX_DRIP_BYTES),
                delay: secs(arg_or(req, "delay", 0.0)?, MAX_DELAY_SECS),
                code,
            })
        }
        ["redirect", n] => {
            allow(req, GET)?;
            let n: u32 = number(n, "redirect count")?;
            let absolute = req
                .arg("absolute")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            Respond(redirect_chain(req, n, absolute)?)
        }
        ["relative-redirect", n] => {
            allow(req, GET)?;
            Respond(redirect_chain(req, number(n, "redirect count")?, false)?)
        }
        ["absolute-redirect", n] => {
            allow(req, GET)?;
            Respond(redirect_chain(req, number(n, "redirect count")?, true)?)
        }
        ["redirect-to"] => {
            let url = req
                .arg("url")
                .ok_or_else(|| bad_request("url is required"))?;
            if !header_safe(&url) {
                return Err(bad_request("url has control characters"));
            }
            let code = match arg_or(req, "status_code", 302u16)? {
                code @ 300..=399 => code,
                _ => 302,
            };
            Respond(Response::new(code).header("Location", url))
        }
        ["links", n] => {
            allow(req, GET)?;
            let n: u32 = number(n, "link count")?;
            Respond(Response::new(302).header("Location", format!("/links/{n}/0")))
        }
        ["links", n, offset] => {
            allow(req, GET)?;
            Respond(links(number(n, "link count")?, number(offset, "offset")?))
        }
        ["web", hosts, pages, i] => {
            allow(req, GET)?;
            let hosts: u32 = number(hosts, "host count")?;
            let pages: u32 = number(pages, "page count")?;
            if !(1..=MAX_WEB_HOSTS).contains(&hosts) || !(1..=MAX_WEB_PAGES).contains(&pages) {
                return Err(bad_request(
                    "a /web site has 1 to 1000000 hosts and 1 to 100000000 pages",
                ));
            }
            let i: u32 = number(i, "page number")?;
            if i >= pages {
                return Err(not_found());
            }
            Respond(web_page(req, hosts, pages, i))
        }
        ["response-headers"] => {
            allow(req, &["GET", "HEAD", "POST"])?;
            Respond(response_headers(req)?)
        }
        ["cookies"] => {
            allow(req, GET)?;
            Respond(Response::json(
                200,
                &Json::object([("cookies", cookies_json(req))]),
            ))
        }
        ["cookies", "set"] => {
            allow(req, GET)?;
            let mut response = Response::new(302).header("Location", "/cookies");
            for (name, value) in req.args() {
                if !is_token(&name) || !header_safe(&value) || value.contains(';') {
                    return Err(bad_request("invalid cookie"));
                }
                response = response.header("Set-Cookie", format!("{name}={value}; Path=/"));
            }
            Respond(response)
        }
        ["cookies", "set", name, value] => {
            allow(req, GET)?;
            if !is_token(name) || !header_safe(value) || value.contains(';') {
                return Err(bad_request("invalid cookie"));
            }
            Respond(
                Response::new(302)
                    .header("Location", "/cookies")
                    .header("Set-Cookie", format!("{name}={value}; Path=/")),
            )
        }
        ["cookies", "delete"] => {
            allow(req, GET)?;
            let mut response = Response::new(302).header("Location", "/cookies");
            for (name, _) in req.args() {
                if !is_token(&name) {
                    return Err(bad_request("invalid cookie name"));
                }
                response = response.header(
                    "Set-Cookie",
                    format!("{name}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/"),
                );
            }
            Respond(response)
        }
        [kind @ ("basic-auth" | "hidden-basic-auth"), user, passwd] => {
            allow(req, GET)?;
            Respond(basic_auth(req, user, passwd, *kind == "hidden-basic-auth"))
        }
        ["bearer"] => {
            allow(req, GET)?;
            let token = req
                .header("authorization")
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            Respond(match token {
                Some(token) => Response::json(
                    200,
                    &Json::object([
                        ("authenticated", Json::Bool(true)),
                        ("token", Json::str(token)),
                    ]),
                ),
                None => Response::new(401).header("WWW-Authenticate", "Bearer"),
            })
        }
        ["cache"] => {
            allow(req, GET)?;
            if req.header("if-modified-since").is_some() || req.header("if-none-match").is_some() {
                Respond(Response::new(304))
            } else {
                Respond(
                    Response::json(200, &get_json(req))
                        .header("Last-Modified", http_date(SystemTime::now()))
                        .header("ETag", format!("\"{:016x}\"", clock_seed())),
                )
            }
        }
        ["cache", n] => {
            allow(req, GET)?;
            let max_age: u64 = number(n, "max-age")?;
            Respond(
                Response::json(200, &get_json(req))
                    .header("Cache-Control", format!("public, max-age={max_age}")),
            )
        }
        ["etag", etag] => {
            allow(req, GET)?;
            Respond(etag_response(req, etag)?)
        }
        ["encoding", "utf8"] => {
            allow(req, GET)?;
            Respond(Response::html(200, UTF8_PAGE))
        }
        ["html"] => {
            allow(req, GET)?;
            Respond(Response::html(200, HTML_PAGE))
        }
        ["json"] => {
            allow(req, GET)?;
            Respond(Response::new(200).body("application/json", JSON_DOC))
        }
        ["xml"] => {
            allow(req, GET)?;
            Respond(Response::new(200).body("application/xml", XML_DOC))
        }
        ["deny"] => {
            allow(req, GET)?;
            Respond(Response::text(200, "YOU SHOULDN'T BE HERE\n"))
        }
        ["base64", value] => {
            allow(req, GET)?;
            Respond(match base64_decode(value) {
                Some(bytes) => Response::html(200, &String::from_utf8_lossy(&bytes)),
                None => Response::html(200, "Incorrect Base64 data try: SFRUUEJJTiBpcyBhd2Vzb21l"),
            })
        }
        #[cfg(feature = "gzip")]
        ["gzip"] => Respond(encoded_document(req, compress::Coding::Gzip)?),
        #[cfg(feature = "deflate")]
        ["deflate"] => Respond(encoded_document(req, compress::Coding::Zlib)?),
        #[cfg(feature = "brotli")]
        ["brotli"] => Respond(encoded_document(req, compress::Coding::Brotli)?),
        #[cfg(feature = "zstd")]
        ["zstd"] => Respond(encoded_document(req, compress::Coding::Zstd)?),
        #[cfg(feature = "gzip")]
        ["bytes-gzip", n] => compressed_bytes(req, n, compress::Coding::Gzip)?,
        #[cfg(feature = "deflate")]
        ["bytes-deflate", n] => {
            let coding = match req.arg("raw").as_deref() {
                Some("true" | "1") => compress::Coding::RawDeflate,
                _ => compress::Coding::Zlib,
            };
            compressed_bytes(req, n, coding)?
        }
        ["uuid"] => {
            allow(req, GET)?;
            Respond(Response::json(
                200,
                &Json::object([("uuid", Json::str(uuid4()))]),
            ))
        }
        ["add"] => {
            allow(req, GET)?;
            if req.arg("name").is_none() {
                return Err(bad_request("Missing argument name"));
            }
            let ms: i64 = match req.arg("delay") {
                Some(v) => v
                    .parse()
                    .map_err(|_| bad_request("Invalid value for delay"))?,
                None => 1024,
            };
            let pause = secs(ms as f64 / 1000.0, MAX_DRIP_SECS);
            Action::Delay(pause, Response::html(200, "."))
        }
        _ => Respond(not_found()),
    })
}

/// The `/` page: [`ENDPOINTS`] as an HTML list.
fn index() -> Response {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><title>volley-httpbin</title></head><body>\n\
         <h1>volley-httpbin</h1>\n<ul>\n",
    );
    for (path, what) in ENDPOINTS {
        let _ = writeln!(
            html,
            "<li><code>{}</code>: {}</li>",
            escape_html(path),
            escape_html(what)
        );
    }
    html.push_str("</ul>\n</body></html>\n");
    Response::html(200, &html)
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
}

/// The client's IP address, as httpbin's `origin`.
fn origin(req: &Request) -> String {
    req.peer.ip().to_string()
}

/// Query or form pairs as httpbin shows them: sorted keys; a repeated key gives an array.
fn args_json(pairs: Vec<(String, String)>) -> Json {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        grouped.entry(k).or_default().push(v);
    }
    Json::object(grouped.into_iter().map(|(k, mut vs)| {
        let value = if vs.len() == 1 {
            Json::String(vs.remove(0))
        } else {
            Json::Array(vs.into_iter().map(Json::String).collect())
        };
        (k, value)
    }))
}

/// The request headers: Title-Case names, sorted, repeated headers joined with `,`.
fn headers_json(req: &Request) -> Json {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &req.headers {
        headers
            .entry(title_case(name))
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    Json::object(headers.into_iter().map(|(k, v)| (k, Json::String(v))))
}

/// httpbin's `/get` document.
fn get_json(req: &Request) -> Json {
    Json::object([
        ("args", args_json(req.args())),
        ("headers", headers_json(req)),
        ("origin", Json::str(origin(req))),
        ("url", Json::str(req.url())),
    ])
}

/// `/gzip`, `/deflate`, `/brotli` and `/zstd`.
#[cfg(any(
    feature = "gzip",
    feature = "deflate",
    feature = "brotli",
    feature = "zstd"
))]
fn encoded_document(req: &Request, coding: compress::Coding) -> Result<Response, Response> {
    allow(req, GET)?;
    Ok(compress::document(
        req,
        coding,
        headers_json(req),
        origin(req),
    ))
}

/// `/bytes-gzip/{n}` and `/bytes-deflate/{n}`: their limits are those of `/bytes`.
#[cfg(any(feature = "gzip", feature = "deflate"))]
fn compressed_bytes(req: &Request, n: &str, coding: compress::Coding) -> Result<Action, Response> {
    allow(req, GET)?;
    let len: u64 = number(n, "byte count")?;
    if len > MAX_BYTES {
        return Err(bad_request("at most 104857600 bytes"));
    }
    Ok(Action::Compressed {
        coding,
        len,
        seed: arg_or(req, "seed", clock_seed())?,
        piece: arg_or(req, "piece", 64 * 1024usize)?.max(1),
    })
}

/// httpbin's `/post` document, with `method` for `/anything`.
///
/// A form-urlencoded body fills `form` (and `data` is empty); any other body is `data`, as
/// text if it is UTF-8, else as a base64 `data:` URL, and `json` if it parses as JSON.
/// Multipart bodies are not decoded: `files` is always empty.
fn body_json(req: &Request, with_method: bool) -> Json {
    let is_form = req.header("content-type").is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let text = std::str::from_utf8(&req.body).ok();
    let (data, form, parsed) = if is_form {
        let pairs = parse_query(&String::from_utf8_lossy(&req.body));
        (String::new(), args_json(pairs), Json::Null)
    } else {
        let data = match text {
            Some(text) => text.to_string(),
            None => format!(
                "data:application/octet-stream;base64,{}",
                base64_encode(&req.body)
            ),
        };
        let parsed = text.and_then(json::parse).unwrap_or(Json::Null);
        (data, Json::object::<String>([]), parsed)
    };
    let mut pairs = vec![
        ("args", args_json(req.args())),
        ("data", Json::String(data)),
        ("files", Json::object::<String>([])),
        ("form", form),
        ("headers", headers_json(req)),
        ("json", parsed),
    ];
    if with_method {
        pairs.push(("method", Json::str(req.method.as_str())));
    }
    pairs.push(("origin", Json::str(origin(req))));
    pairs.push(("url", Json::str(req.url())));
    Json::object(pairs)
}

/// `/status/{code}`, with httpbin's extras for redirects, 401, 407 and 418.
fn status(code: u16) -> Result<Response, Response> {
    if !(200..=999).contains(&code) {
        return Err(bad_request(
            "status code must be 200 to 999 (see /fault/1xx)",
        ));
    }
    Ok(match code {
        301 | 302 | 303 | 305 | 307 | 308 => Response::new(code).header("Location", "/redirect/1"),
        401 => Response::new(code).header("WWW-Authenticate", "Basic realm=\"Fake Realm\""),
        407 => Response::new(code).header("Proxy-Authenticate", "Basic realm=\"Fake Realm\""),
        418 => {
            Response::text(code, TEAPOT).header("X-More-Info", "http://tools.ietf.org/html/rfc2324")
        }
        _ => Response::new(code),
    })
}

/// One step of a redirect chain of `n`: to `/get` when `n` is 1.
fn redirect_chain(req: &Request, n: u32, absolute: bool) -> Result<Response, Response> {
    if n == 0 {
        return Err(bad_request("redirect count must be at least 1"));
    }
    let next = match (n, absolute) {
        (1, _) => "/get".to_string(),
        (n, false) => format!("/relative-redirect/{}", n - 1),
        (n, true) => format!("/absolute-redirect/{}", n - 1),
    };
    let location = if absolute {
        format!("http://{}{next}", req.host())
    } else {
        next
    };
    Ok(Response::new(302).header("Location", location))
}

/// httpbin's links page: `n` links (1 to 200), the one at `offset` as plain text.
fn links(n: u32, offset: u32) -> Response {
    let n = n.clamp(1, 200);
    let mut html = String::from("<html><head><title>Links</title></head><body>");
    for i in 0..n {
        if i == offset {
            let _ = write!(html, "{i} ");
        } else {
            let _ = write!(html, "<a href='/links/{n}/{i}'>{i}</a> ");
        }
    }
    html.push_str("</body></html>");
    Response::html(200, &html)
}

/// Page `i` of the `/web` site of `pages` pages over `hosts` hosts: links to the pages of
/// [`web_links`], each at `http://h{j % hosts}.web.test:{port}/web/{hosts}/{pages}/{j}`, the
/// port taken from the request's `Host` header (none if it has none).
fn web_page(req: &Request, hosts: u32, pages: u32, i: u32) -> Response {
    let host = req.host();
    let port = match host.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!(":{port}")
        }
        _ => String::new(),
    };
    let mut html = format!(
        "<html><head><title>Page {i}</title></head><body>\
         <p>Page {i} of {pages}, on h{}.web.test, one of {hosts} hosts.</p>\n",
        i % hosts
    );
    for j in web_links(pages, i) {
        let _ = writeln!(
            html,
            "<a href='http://h{}.web.test{port}/web/{hosts}/{pages}/{j}'>{j}</a>",
            j % hosts
        );
    }
    html.push_str("</body></html>");
    Response::html(200, &html)
}

/// The pages that page `i` of a `/web` site of `pages` pages links to: `i + 1` first (so
/// every page is reachable from page 0), then pages picked by a hash of `i` and a counter,
/// without `i` itself or repeats, [`WEB_LINKS`] in all when the site is large enough (a
/// small site may get fewer: the picks stop after 64 tries).
fn web_links(pages: u32, i: u32) -> Vec<u32> {
    let want = WEB_LINKS.min(pages as usize - 1);
    let mut links = Vec::with_capacity(want);
    if i + 1 < pages {
        links.push(i + 1);
    }
    for k in 0..64u64 {
        if links.len() >= want {
            break;
        }
        let j = (mix64(u64::from(i) << 32 | k) % u64::from(pages)) as u32;
        if j != i && !links.contains(&j) {
            links.push(j);
        }
    }
    links
}

/// SplitMix64's finalizer: a cheap, well-spread hash of a 64-bit number.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `/response-headers`: the query pairs as headers, and as a JSON body that also shows
/// `Content-Type` and (its own) `Content-Length`, as httpbin does.
fn response_headers(req: &Request) -> Result<Response, Response> {
    const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "connection"];
    let mut content_type = "application/json".to_string();
    let mut headers = Vec::new();
    for (name, value) in req.args() {
        if !is_token(&name) || !header_safe(&value) {
            return Err(bad_request("invalid header name or value"));
        }
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value;
        } else if !FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            headers.push((name, value));
        }
    }
    let document = |length: usize| {
        let mut pairs = vec![
            ("Content-Length".to_string(), vec![length.to_string()]),
            ("Content-Type".to_string(), vec![content_type.clone()]),
        ];
        for (name, value) in &headers {
            match pairs.iter_mut().find(|(n, _)| n == name) {
                Some((_, values)) => values.push(value.clone()),
                None => pairs.push((name.clone(), vec![value.clone()])),
            }
        }
        Json::object(pairs.into_iter().map(|(name, mut values)| {
            let value = if values.len() == 1 {
                Json::String(values.remove(0))
            } else {
                Json::Array(values.into_iter().map(Json::String).collect())
            };
            (name, value)
        }))
        .to_pretty()
    };
    // The body states its own length: iterate to the fixed point (two rounds at most in
    // practice, as the digit count settles at once).
    let mut length = 0;
    let mut body = document(length);
    while body.len() != length {
        length = body.len();
        body = document(length);
    }
    let mut response = Response::new(200).body(&content_type, body);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    Ok(response)
}

/// `/range/{n}`: the whole body, or the one `bytes=` range asked for.
fn range(req: &Request, n: u64) -> Result<Action, Response> {
    if n > MAX_BYTES {
        return Err(bad_request("at most 104857600 bytes"));
    }
    let base = |status| {
        Response::new(status)
            .header("Content-Type", "application/octet-stream")
            .header("ETag", format!("range{n}"))
            .header("Accept-Ranges", "bytes")
    };
    let whole = || Action::Sized {
        response: base(200),
        len: n,
        content: Content::Alphabet(0),
    };
    let Some(spec) = req
        .header("range")
        .and_then(|r| r.trim().strip_prefix("bytes="))
    else {
        return Ok(whole());
    };
    if spec.contains(',') {
        return Ok(whole()); // several ranges: not supported, send everything
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(whole());
    };
    let unsatisfiable = || Response::new(416).header("Content-Range", format!("bytes */{n}"));
    let (start, end) = match (first.trim(), last.trim()) {
        ("", "") => return Ok(whole()),
        ("", suffix) => {
            let suffix: u64 = number(suffix, "range")?;
            if suffix == 0 || n == 0 {
                return Err(unsatisfiable());
            }
            (n.saturating_sub(suffix), n - 1)
        }
        (first, last) => {
            let start: u64 = number(first, "range")?;
            let end = match last {
                "" => n.saturating_sub(1),
                last => number::<u64>(last, "range")?.min(n.saturating_sub(1)),
            };
            if start >= n || start > end {
                return Err(unsatisfiable());
            }
            (start, end)
        }
    };
    Ok(Action::Sized {
        response: base(206).header("Content-Range", format!("bytes {start}-{end}/{n}")),
        len: end - start + 1,
        content: Content::Alphabet(start),
    })
}

/// The cookies of the `Cookie` header, sorted by name.
fn cookies_json(req: &Request) -> Json {
    let mut cookies = BTreeMap::new();
    for header in req.header_values("cookie") {
        for pair in header.split(';') {
            if let Some((name, value)) = pair.split_once('=') {
                cookies.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }
    Json::object(cookies.into_iter().map(|(k, v)| (k, Json::String(v))))
}

/// `/basic-auth` and `/hidden-basic-auth`.
fn basic_auth(req: &Request, user: &str, passwd: &str, hidden: bool) -> Response {
    let credentials = req
        .header("authorization")
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, coded)| base64_decode(coded.trim()))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let matches = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(u, p)| u == user && p == passwd);
    match (matches, hidden) {
        (true, _) => Response::json(
            200,
            &Json::object([
                ("authenticated", Json::Bool(true)),
                ("user", Json::str(user)),
            ]),
        ),
        (false, false) => {
            Response::new(401).header("WWW-Authenticate", "Basic realm=\"Fake Realm\"")
        }
        (false, true) => not_found(),
    }
}

/// `/etag/{etag}`: conditional requests against a fixed entity tag.
fn etag_response(req: &Request, etag: &str) -> Result<Response, Response> {
    if !header_safe(etag) || etag.contains('"') {
        return Err(bad_request("invalid etag"));
    }
    let listed = |header: &str| {
        req.header(header).map(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
                .any(|t| t == etag || t == "*")
        })
    };
    let tag = format!("\"{etag}\"");
    if listed("if-none-match") == Some(true) {
        return Ok(Response::new(304).header("ETag", tag));
    }
    if listed("if-match") == Some(false) {
        return Ok(Response::new(412));
    }
    Ok(Response::json(200, &get_json(req)).header("ETag", tag))
}

/// A random (version 4) UUID.
fn uuid4() -> String {
    let mut bytes = [0u8; 16];
    XorShift64Star::new(clock_seed()).fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Sends a generated body: with its head in one write if small, else in 64 KiB writes.
async fn send_sized(
    conn: &mut Conn,
    req: &Request,
    mut response: Response,
    len: u64,
    mut content: Content,
) -> io::Result<Next> {
    if len <= SMALL_BODY {
        let mut body = vec![0; len as usize];
        content.fill(&mut body);
        response.body = body;
        return conn.send(req, response).await;
    }
    let (persistence, next) = conn.persistence(req, false);
    conn.write_all(&response.head(Framing::Length(len), persistence))
        .await?;
    if req.method == "HEAD" {
        return Ok(next);
    }
    let mut chunk = vec![0; SMALL_BODY as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(SMALL_BODY) as usize;
        content.fill(&mut chunk[..n]);
        conn.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    Ok(next)
}

/// `/stream/{n}`: `n` lines of JSON, one chunk each (until close for an HTTP/1.0 client).
async fn stream(conn: &mut Conn, req: &Request, n: u32) -> io::Result<Next> {
    let chunked = req.minor_version >= 1;
    let (persistence, next) = conn.persistence(req, !chunked);
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    let mut out = Response::new(200)
        .header("Content-Type", "application/json")
        .head(framing, persistence);
    if req.method == "HEAD" {
        conn.write_all(&out).await?;
        return Ok(next);
    }
    let Json::Object(mut fields) = get_json(req) else {
        unreachable!("get_json makes an object");
    };
    fields.push(("id".to_string(), Json::Null));
    for i in 0..n {
        if let Some((_, id)) = fields.last_mut() {
            *id = Json::int(i);
        }
        let mut line = Json::Object(fields.clone()).to_line();
        line.push('\n');
        if chunked {
            let _ = write!(out_string(&mut out), "{:x}\r\n", line.len());
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(line.as_bytes());
        }
        conn.write_all(&out).await?;
        out.clear();
    }
    if chunked {
        conn.write_all(b"0\r\n\r\n").await?;
    }
    Ok(next)
}

/// A `fmt::Write` view of a byte buffer, for `write!` of ASCII.
fn out_string(out: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct Bytes<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for Bytes<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    Bytes(out)
}

/// `/drip`: after `delay`, a head with `Content-Length: numbytes`, then one `*` every
/// `duration / numbytes`.
async fn send_drip(conn: &mut Conn, req: &Request, drip: Drip) -> io::Result<Next> {
    sleep(drip.delay).await;
    let (persistence, next) = conn.persistence(req, false);
    let with_body = Response::status_allows_body(drip.code);
    let numbytes = if with_body { drip.numbytes } else { 0 };
    let framing = if with_body {
        Framing::Length(numbytes)
    } else {
        Framing::None
    };
    let head = Response::new(drip.code)
        .header("Content-Type", "application/octet-stream")
        .head(framing, persistence);
    conn.write_all(&head).await?;
    if req.method == "HEAD" || numbytes == 0 {
        return Ok(next);
    }
    let pause = drip.duration / numbytes as u32;
    if pause.is_zero() {
        conn.write_all(&vec![b'*'; numbytes as usize]).await?;
        return Ok(next);
    }
    for i in 0..numbytes {
        conn.write_all(b"*").await?;
        if i + 1 < numbytes {
            sleep(pause).await;
        }
    }
    Ok(next)
}

const TEAPOT: &str = "\n    -=[ teapot ]=-\n\n       _...._\n     .'  _ _ `.\n    | .\"` ^ `\". _,\n    \\_;`\"---\"`|//\n      |       ;/\n      \\_     _/\n        `\"\"\"`\n";

const UTF8_PAGE: &str =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>UTF-8 demo</title></head><body>\n\
<h1>Unicode Demo</h1>\n<ul>\n\
<li>Français: Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter.</li>\n\
<li>Deutsch: Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.</li>\n\
<li>Ελληνικά: Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.</li>\n\
<li>Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.</li>\n\
<li>日本語: いろはにほへと ちりぬるを</li>\n\
<li>中文: 我能吞下玻璃而不伤身体。</li>\n\
<li>한국어: 키스의 고유조건은 입술끼리 만나야 하고</li>\n\
<li>עברית: דג סקרן שט בים מאוכזב</li>\n\
<li>العربية: نص حكيم له سر قاطع</li>\n\
<li>Math: ∀x ∈ ℝ: ⌈x⌉ = −⌊−x⌋, ∑ 1/n² = π²/6</li>\n\
<li>Emoji: 🦀 🚀 ✓</li>\n\
</ul>\n</body></html>\n";

const HTML_PAGE: &str = "<!DOCTYPE html>\n<html>\n  <head>\n    <title>volley-httpbin</title>\n  </head>\n  <body>\n\
      <h1>Herman Melville - Moby-Dick</h1>\n\
      <div>\n        <p>\n          Call me Ishmael. Some years ago - never mind how long precisely - having little\n\
          or no money in my purse, and nothing particular to interest me on shore, I thought\n\
          I would sail about a little and see the watery part of the world.\n        </p>\n      </div>\n\
  </body>\n</html>\n";

const JSON_DOC: &str = r#"{
  "slideshow": {
    "author": "Yours Truly",
    "date": "date of publication",
    "slides": [
      {
        "title": "Wake up to WonderWidgets!",
        "type": "all"
      },
      {
        "items": [
          "Why <em>WonderWidgets</em> are great",
          "Who <em>buys</em> WonderWidgets"
        ],
        "title": "Overview",
        "type": "all"
      }
    ],
    "title": "Sample Slide Show"
  }
}
"#;

const XML_DOC: &str = r#"<?xml version='1.0' encoding='us-ascii'?>
<slideshow title="Sample Slide Show" date="Date of publication" author="Yours Truly">
    <slide type="all">
      <title>Wake up to WonderWidgets!</title>
    </slide>
    <slide type="all">
        <title>Overview</title>
        <item>Why <em>WonderWidgets</em> are great</item>
        <item>Who <em>buys</em> WonderWidgets</item>
    </slide>
</slideshow>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// `/web` links: about 10 distinct pages other than the page itself, the next page
    /// first, the same every time, and every page reachable from page 0.
    #[test]
    fn web_links_reach_the_whole_site() {
        for pages in [1u32, 2, 3, 11, 1000] {
            let mut reached = vec![false; pages as usize];
            let mut queue = vec![0u32];
            reached[0] = true;
            while let Some(i) = queue.pop() {
                let links = web_links(pages, i);
                assert_eq!(links, web_links(pages, i), "deterministic");
                assert!(!links.contains(&i));
                let mut distinct = links.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), links.len(), "no repeats");
                if i + 1 < pages {
                    assert_eq!(links[0], i + 1);
                }
                if pages > 11 {
                    assert_eq!(links.len(), WEB_LINKS);
                }
                for j in links {
                    assert!(j < pages);
                    if !reached[j as usize] {
                        reached[j as usize] = true;
                        queue.push(j);
                    }
                }
            }
            assert!(reached.iter().all(|&r| r), "{pages} pages");
        }
    }
}
