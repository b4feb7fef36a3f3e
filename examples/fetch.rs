//! cargo run --release --example fetch -- [-i] [-I] [-L] [-X METHOD] [-H 'Name: value']... [-d DATA]... [-m SECS] [--max-redirs N] [--resolve HOST:PORT:ADDR]... [--system-dns] [--tls] URL
//!
//! A curl-like fetch of one URL, and a stable interface for scripts:
//!
//! - the response body goes to stdout, byte for byte;
//! - `-i` first prints the status line, each header as `Name: value` and a blank line, with
//!   CRLF line endings; `-I` sends HEAD and implies `-i`;
//! - the flags it shares with curl do what curl's do:
//!   - `-X` sets the method, `-H` adds a header;
//!   - `-d` sends a body, as `application/x-www-form-urlencoded` unless a `-H` sets
//!     `Content-Type`, and makes the method POST unless `-X` says otherwise; several `-d`
//!     are joined with `&`;
//!   - redirects are followed only with `-L` (up to 50, or `--max-redirs N`); without it,
//!     a 3xx is the response;
//!   - `-m` sets the total timeout in seconds;
//! - `--resolve HOST:PORT:ADDR[,ADDR]...` sends requests for HOST to those addresses, as
//!   curl's (IPv6 addresses in brackets); unlike curl's, the mapping holds for every port of
//!   HOST, and PORT is only checked to be a number; `--system-dns` resolves with
//!   `getaddrinfo` instead of volley's own resolver;
//! - exit status 0 means a complete response, whatever its status; on any error it prints one
//!   `error: ...` line to stderr (the error and its causes, `{:#}`) and exits 1 (2 for bad
//!   arguments).
//!
//! With no URL it starts the embedded httpbin-like server and fetches its `/get`; with `--tls`
//! the server speaks HTTPS with the TEST-ONLY certificate of `volley_testserver::testcert`, whose
//! CA the client then trusts. `https://` URLs need no flag.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use volley::{redirect, Client, Method, Runtime};

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    include: bool,
    head: bool,
    method: Option<String>,
    headers: Vec<(String, String)>,
    data: Option<Vec<u8>>,
    max_time: Option<Duration>,
    /// `-L`: follow redirects.
    location: bool,
    max_redirects: Option<usize>,
    /// Serve the embedded server over HTTPS (no URL given).
    tls: bool,
    /// Fixed addresses for host names (`--resolve`).
    resolve: Vec<(String, std::net::SocketAddr)>,
    /// Resolve with getaddrinfo (`--system-dns`).
    system_dns: bool,
    url: Option<String>,
}

const USAGE: &str = "usage: fetch [-i] [-I] [-L] [-X METHOD] [-H 'Name: value']... [-d DATA]... [-m SECS] [--max-redirs N] [--resolve HOST:PORT:ADDR]... [--system-dns] [--tls] URL";

/// curl's default `--max-redirs` with `-L`.
const CURL_MAX_REDIRS: usize = 50;

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(arg) = argv.next() {
        let mut value = |name: &str| argv.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-i" | "--include" => args.include = true,
            "-I" | "--head" => args.head = true,
            "-X" | "--request" => args.method = Some(value("-X")?),
            "-H" | "--header" => {
                let line = value("-H")?;
                let (name, val) = line
                    .split_once(':')
                    .ok_or_else(|| format!("header {line:?} is not 'Name: value'"))?;
                args.headers
                    .push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "-d" | "--data" => {
                // As curl: several -d are joined with '&'.
                let data = value("-d")?.into_bytes();
                match &mut args.data {
                    Some(joined) => {
                        joined.push(b'&');
                        joined.extend_from_slice(&data);
                    }
                    None => args.data = Some(data),
                }
            }
            "-L" | "--location" => args.location = true,
            "-m" | "--max-time" => {
                let secs: f64 = value("-m")?
                    .parse()
                    .map_err(|_| "-m takes seconds".to_owned())?;
                args.max_time = Some(
                    Duration::try_from_secs_f64(secs).map_err(|_| "-m takes seconds".to_owned())?,
                );
            }
            "--max-redirs" | "--max-redirects" => {
                args.max_redirects = Some(
                    value("--max-redirs")?
                        .parse()
                        .map_err(|_| "--max-redirs takes a number".to_owned())?,
                )
            }
            "--resolve" => {
                let spec = value("--resolve")?;
                args.resolve.extend(parse_resolve(&spec)?);
            }
            "--system-dns" => args.system_dns = true,
            "--tls" if cfg!(feature = "tls") => args.tls = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}\n{USAGE}"))
            }
            url if args.url.is_none() => args.url = Some(url.to_owned()),
            extra => return Err(format!("unexpected argument {extra:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

/// `HOST:PORT:ADDR[,ADDR]...`, as curl's `--resolve`: the host name and its addresses (with
/// the port given, which the client replaces by each URL's).
fn parse_resolve(spec: &str) -> Result<Vec<(String, std::net::SocketAddr)>, String> {
    let bad = || format!("--resolve wants HOST:PORT:ADDR[,ADDR]..., not {spec:?}");
    let (host, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (port, addrs) = rest.split_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    addrs
        .split(',')
        .map(|a| {
            let ip = a
                .strip_prefix('[')
                .and_then(|a| a.strip_suffix(']'))
                .unwrap_or(a);
            let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
            Ok((host.to_owned(), std::net::SocketAddr::new(ip, port)))
        })
        .collect()
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fetch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn fetch(args: Args) -> Result<(), String> {
    // With no URL, serve ourselves: the embedded httpbin-like server on a free port.
    let server = match &args.url {
        Some(_) => None,
        None => Some(
            volley_testserver::Server::bind_with(
                "127.0.0.1:0".parse().unwrap(),
                server_config(args.tls)?,
            )
            .map_err(|e| e.to_string())?,
        ),
    };
    let url = match (&args.url, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => server.url("/get"),
        (None, None) => unreachable!("a server is started when no URL is given"),
    };

    let mut builder = trust_test_ca(Client::builder(), args.tls)?;
    for (host, addr) in &args.resolve {
        builder = builder.resolve(host, *addr);
    }
    if args.system_dns {
        builder = builder.dns_resolver(volley::Resolver::system());
    }
    builder = builder.redirect(redirect_policy(&args));
    if let Some(t) = args.max_time {
        builder = builder.timeout(t);
    }
    let client = builder.build();

    // `{:#}`: the error's message and its causes, on the one `error: ...` line.
    let mut response = build_request(&client, &args, &url)?
        .send()
        .await
        .map_err(|e| format!("{e:#}"))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.include || args.head {
        let version = match response.version() {
            volley::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        let mut head = format!(
            "{version} {} {}\r\n",
            response.status().as_u16(),
            response.reason()
        );
        for (name, value) in response.headers() {
            head.push_str(&format!(
                "{}: {}\r\n",
                name,
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())
            .map_err(|e| format!("writing to stdout: {e}"))?;
    }
    // Stream the body: each piece goes out as it arrives.
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("{e:#}"))? {
        out.write_all(&chunk)
            .map_err(|e| format!("writing to stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(())
}

/// curl's: no redirect is followed without `-L`; with it, up to `--max-redirs` (50).
fn redirect_policy(args: &Args) -> redirect::Policy {
    match args.location {
        true => redirect::Policy::limited(args.max_redirects.unwrap_or(CURL_MAX_REDIRS)),
        false => redirect::Policy::none(),
    }
}

/// The request the flags ask for, as curl would send it: the method (`-X`, else HEAD for
/// `-I`, POST with `-d`, GET), the headers (`-H`), and the body (`-d`, form-encoded unless a
/// `-H` sets `Content-Type`).
fn build_request(
    client: &Client,
    args: &Args,
    url: &str,
) -> Result<volley::RequestBuilder, String> {
    let method = match (&args.method, args.head, &args.data) {
        (Some(m), _, _) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))?
        }
        (None, true, _) => Method::HEAD,
        (None, false, Some(_)) => Method::POST,
        (None, false, None) => Method::GET,
    };
    let mut request = client.request(method, url);
    for (name, value) in &args.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(data) = &args.data {
        let typed = args
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if !typed {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        request = request.body(data.clone());
    }
    Ok(request)
}

/// The embedded server's settings: HTTPS with the TEST-ONLY certificate if `tls`.
fn server_config(tls: bool) -> Result<volley_testserver::ServerConfig, String> {
    let config = volley_testserver::ServerConfig::default();
    #[cfg(feature = "tls")]
    if tls {
        use volley_testserver::testcert;
        return config
            .tls(testcert::CERT_PEM, testcert::KEY_PEM)
            .map_err(|e| format!("cannot load the test certificate: {e}"));
    }
    let _ = tls;
    Ok(config)
}

/// Trusts the TEST-ONLY CA of the embedded server's certificate, if `tls`.
fn trust_test_ca(
    builder: volley::ClientBuilder,
    tls: bool,
) -> Result<volley::ClientBuilder, String> {
    #[cfg(feature = "tls")]
    if tls {
        let ca = volley::Certificate::from_pem(volley_testserver::testcert::CA_PEM)
            .map_err(|e| format!("{e:#}"))?;
        return Ok(builder.add_root_certificate(ca));
    }
    let _ = tls;
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_specs() {
        let addr = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(
            parse_resolve("example.com:443:127.0.0.1").unwrap(),
            vec![("example.com".to_owned(), addr("127.0.0.1:443"))]
        );
        assert_eq!(
            parse_resolve("h.test:80:[::1],192.0.2.1").unwrap(),
            vec![
                ("h.test".to_owned(), addr("[::1]:80")),
                ("h.test".to_owned(), addr("192.0.2.1:80"))
            ]
        );
        for bad in [
            "",
            "h",
            "h:80",
            ":80:127.0.0.1",
            "h:x:127.0.0.1",
            "h:80:nope",
            "h:80:",
        ] {
            assert!(parse_resolve(bad).is_err(), "{bad:?}");
        }
    }

    fn argv(args: &[&str]) -> impl Iterator<Item = String> {
        args.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// One row per flag shared with curl: the request curl would send for it. Regressions
    /// (issue 14): `-d` sent no `Content-Type`, and redirects were followed without `-L`.
    #[test]
    fn curl_flags_make_curls_request() {
        struct Case {
            flags: &'static [&'static str],
            method: &'static str,
            content_type: Option<&'static str>,
            body: Option<&'static str>,
            redirects: usize,
        }
        const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
        #[rustfmt::skip]
        let cases = [
            Case { flags: &[], method: "GET", content_type: None, body: None, redirects: 0 },
            Case { flags: &["-d", "a=b"], method: "POST", content_type: FORM, body: Some("a=b"), redirects: 0 },
            Case { flags: &["-d", "a=b", "-d", "c=d"], method: "POST", content_type: FORM, body: Some("a=b&c=d"), redirects: 0 },
            Case { flags: &["-d", "{}", "-H", "Content-Type: application/json"], method: "POST", content_type: Some("application/json"), body: Some("{}"), redirects: 0 },
            Case { flags: &["-X", "PUT", "-d", "x"], method: "PUT", content_type: FORM, body: Some("x"), redirects: 0 },
            Case { flags: &["-I"], method: "HEAD", content_type: None, body: None, redirects: 0 },
            Case { flags: &["-X", "DELETE"], method: "DELETE", content_type: None, body: None, redirects: 0 },
            Case { flags: &["-L"], method: "GET", content_type: None, body: None, redirects: CURL_MAX_REDIRS },
            Case { flags: &["-L", "--max-redirs", "3"], method: "GET", content_type: None, body: None, redirects: 3 },
            Case { flags: &["--max-redirs", "3"], method: "GET", content_type: None, body: None, redirects: 0 },
        ];
        let client = Client::new();
        for case in cases {
            let mut all = case.flags.to_vec();
            all.push("http://127.0.0.1:9/");
            let args = parse_args(argv(&all)).unwrap();
            let request = build_request(&client, &args, "http://127.0.0.1:9/")
                .unwrap()
                .build()
                .unwrap();
            let flags = case.flags.join(" ");
            assert_eq!(request.method().as_str(), case.method, "{flags}");
            let content_type = request.headers().get("content-type");
            assert_eq!(
                content_type.map(|v| v.to_str().unwrap()),
                case.content_type,
                "{flags}"
            );
            assert_eq!(
                request
                    .body()
                    .map(|b| std::str::from_utf8(b.as_bytes().unwrap()).unwrap()),
                case.body,
                "{flags}"
            );
            assert_eq!(redirect_policy(&args).max(), case.redirects, "{flags}");
        }
    }

    /// End to end against the test server, as httpbin sees it: `-d a=b` arrives as a form;
    /// without `-L` a redirect is the response, with `-L` it is followed.
    #[test]
    fn form_and_redirects_reach_the_server_as_curls() {
        let rt = Runtime::new().unwrap();
        rt.block_on(async {
            let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let send = |flags: &[&str], path: &str| {
                let mut all = flags.to_vec();
                let url = server.url(path);
                all.push(&url);
                let args = parse_args(argv(&all)).unwrap();
                let client = Client::builder().redirect(redirect_policy(&args)).build();
                let request = build_request(&client, &args, &url).unwrap();
                async move { request.send().await.unwrap() }
            };
            let form = send(&["-d", "a=b"], "/anything")
                .await
                .text()
                .await
                .unwrap();
            let form: serde_json::Value = serde_json::from_str(&form).unwrap();
            assert_eq!(form["form"]["a"], "b", "{form}");
            assert_eq!(send(&[], "/redirect/1").await.status(), 302);
            assert_eq!(send(&["-L"], "/redirect/1").await.status(), 200);
        });
    }
}
