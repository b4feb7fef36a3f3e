//! cargo run --release --example fetch -- [-i] [-I] [-X METHOD] [-H 'Name: value']... [-d DATA] [-m SECS] [--max-redirects N] [--resolve HOST:PORT:ADDR]... [--system-dns] [--tls] URL
//!
//! A curl-like fetch of one URL, and a stable interface for scripts:
//!
//! - the response body goes to stdout, byte for byte;
//! - `-i` first prints the status line, each header as `Name: value` and a blank line, with
//!   CRLF line endings; `-I` sends HEAD and implies `-i`;
//! - `-X` sets the method, `-H` adds a header, `-d` sends a body (and makes the method POST
//!   unless `-X` says otherwise), `-m` sets the total timeout in seconds, `--max-redirects`
//!   the redirect limit (default 10, as the library's);
//! - `--resolve HOST:PORT:ADDR[,ADDR]...` sends requests for HOST to those addresses, as
//!   curl's (IPv6 addresses in brackets); unlike curl's, the mapping holds for every port of
//!   HOST, and PORT is only checked to be a number; `--system-dns` resolves with
//!   `getaddrinfo` instead of volley's own resolver;
//! - exit status 0 means a complete response, whatever its status; on any error it prints one
//!   `error: ...` line to stderr and exits 1 (2 for bad arguments).
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
    max_redirects: Option<usize>,
    /// Serve the embedded server over HTTPS (no URL given).
    tls: bool,
    /// Fixed addresses for host names (`--resolve`).
    resolve: Vec<(String, std::net::SocketAddr)>,
    /// Resolve with getaddrinfo (`--system-dns`).
    system_dns: bool,
    url: Option<String>,
}

const USAGE: &str = "usage: fetch [-i] [-I] [-X METHOD] [-H 'Name: value']... [-d DATA] [-m SECS] [--max-redirects N] [--resolve HOST:PORT:ADDR]... [--system-dns] [--tls] URL";

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
            "-d" | "--data" => args.data = Some(value("-d")?.into_bytes()),
            "-m" | "--max-time" => {
                let secs: f64 = value("-m")?
                    .parse()
                    .map_err(|_| "-m takes seconds".to_owned())?;
                args.max_time = Some(
                    Duration::try_from_secs_f64(secs).map_err(|_| "-m takes seconds".to_owned())?,
                );
            }
            "--max-redirects" => {
                args.max_redirects = Some(
                    value("--max-redirects")?
                        .parse()
                        .map_err(|_| "--max-redirects takes a number".to_owned())?,
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
    if let Some(n) = args.max_redirects {
        builder = builder.redirect(redirect::Policy::limited(n));
    }
    if let Some(t) = args.max_time {
        builder = builder.timeout(t);
    }
    let client = builder.build();

    let method = match (&args.method, args.head, &args.data) {
        (Some(m), _, _) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("invalid method {m:?}"))?
        }
        (None, true, _) => Method::HEAD,
        (None, false, Some(_)) => Method::POST,
        (None, false, None) => Method::GET,
    };
    let mut request = client.request(method, &url);
    for (name, value) in &args.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(data) = args.data {
        request = request.body(data);
    }

    let mut response = request.send().await.map_err(|e| e.to_string())?;
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
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        out.write_all(&chunk)
            .map_err(|e| format!("writing to stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing to stdout: {e}"))?;
    Ok(())
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
            .map_err(|e| e.to_string())?;
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
}
