//! Proxies, against the embedded forward proxy (`volley_testserver::ProxyServer`) and origins on
//! loopback: absolute-form requests, `CONNECT` tunnels (through `proxy_tunnel(true)`, as TLS
//! does not exist yet), credentials that reach the proxy and never an origin, the errors of a
//! refused tunnel or proxy, and the environment variables, through an injected lookup (the
//! real environment is never read or changed here).

mod util;

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use util::{local, watchdog, with_server};
use volley::{Client, ClientBuilder, ErrorKind, Phase, Proxy, StatusCode, TcpListener};
use volley_testserver::{ProxyServer, Server};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `Proxy-Authorization` for `user` / `pa ss`.
const USER_PA_SS: &str = "Basic dXNlcjpwYSBzcw==";

/// Environment variables, as name and value.
type Vars<'a> = Vec<(&'a str, &'a str)>;

/// An environment of exactly these variables, for `ClientBuilder::proxy_env`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'static {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A client that reads proxies from `vars` only.
fn env_client(vars: &[(&str, &str)]) -> ClientBuilder {
    Client::builder().proxy_env(env(vars))
}

/// GETs `url` and returns the status and body, failing the test on an error.
async fn fetch(client: &Client, url: &str) -> (StatusCode, String) {
    let resp = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:#}"));
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e:#}: {body}"))
}

/// What a proxy has seen: requests plus `CONNECT`s.
fn seen(proxy: &ProxyServer) -> u64 {
    let stats = proxy.stats();
    stats.requests + stats.connects
}

/// A loopback port nothing listens on.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind(local()).unwrap();
    listener.local_addr().unwrap().port()
}

/// A raw origin that records each request head as received, and answers `ok` to each
/// (closing when asked to), so the exact request line and headers can be checked.
struct Recorder {
    addr: SocketAddr,
    heads: Rc<RefCell<Vec<String>>>,
    connections: Rc<Cell<usize>>,
}

impl Recorder {
    fn start() -> Recorder {
        let mut listener = TcpListener::bind(local()).unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Rc::new(RefCell::new(Vec::new()));
        let connections = Rc::new(Cell::new(0));
        let (log, count) = (heads.clone(), connections.clone());
        let _task = volley::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.set(count.get() + 1);
                let log = log.clone();
                let _conn = volley::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                            buf.drain(..end + 4);
                            let close = head.to_ascii_lowercase().contains("connection: close");
                            log.borrow_mut().push(head);
                            let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if conn.write_all(reply).await.is_err() || close {
                                return;
                            }
                        }
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        Recorder {
            addr,
            heads,
            connections,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.borrow().clone()
    }
}

/// True if a request head has a header `name` (any case).
fn has_header(head: &str, name: &str) -> bool {
    head.lines().skip(1).any(|line| {
        line.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

/// An http:// GET through a proxy goes out in absolute form, with the origin's `Host`; the
/// proxy counts it and the origin sees it (with the proxy's `Via`).
#[test]
fn get_through_proxy_uses_absolute_form() {
    let _dog = watchdog("get_through_proxy_uses_absolute_form", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let url = origin.url("/get?x=1");
        let (status, body) = fetch(&client, &url).await;
        assert_eq!(status, 200);
        let doc = json(&body);
        assert_eq!(doc["args"]["x"], "1");
        assert_eq!(doc["headers"]["Host"], origin.local_addr().to_string());
        assert_eq!(doc["headers"]["Via"], "1.1 volley-proxy");
        assert_eq!(origin.stats().requests, 1);
        let log = proxy.log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].method, "GET");
        assert_eq!(log[0].target, url, "absolute form");
        assert_eq!(
            log[0].host.as_deref(),
            Some(&*origin.local_addr().to_string())
        );
        assert_eq!(log[0].proxy_authorization, None);
        assert_eq!(log[0].status, 200);
        let stats = proxy.stats();
        assert_eq!((stats.requests, stats.forwarded, stats.connects), (1, 1, 0));
    });
}

/// A POST body goes through the proxy intact, small (joined to the head) or large (sent
/// after it).
#[test]
fn post_with_body_through_proxy() {
    let _dog = watchdog("post_with_body_through_proxy", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::all(&proxy.url()).unwrap())
            .build();
        for body in ["hello proxy".to_string(), "a".repeat(100_000)] {
            let resp = client
                .post(origin.url("/post"))
                .header("content-type", "text/plain")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let doc = json(&resp.text().await.unwrap());
            assert_eq!(doc["data"], body.as_str());
        }
        let log = proxy.log();
        assert_eq!(log.len(), 2);
        assert!(log.iter().all(|r| r.method == "POST" && r.status == 200));
        assert_eq!(origin.stats().requests, 2);
    });
}

/// One keep-alive connection to the proxy carries requests to different origins.
#[test]
fn keep_alive_to_proxy_across_origins() {
    let _dog = watchdog("keep_alive_to_proxy_across_origins", 90);
    with_server(|a| async move {
        let b = Server::bind(local()).unwrap();
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let mut reused = Vec::new();
        for url in [a.url("/get"), b.url("/get"), a.url("/get?again")] {
            let resp = client.get(&url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            reused.push(resp.timings().reused);
            resp.bytes().await.unwrap();
        }
        assert_eq!(reused, [false, true, true]);
        assert_eq!(proxy.stats().connections_accepted, 1);
        assert_eq!(proxy.stats().requests, 3);
        assert_eq!(client.idle_connections(), 1);
        assert_eq!((a.stats().requests, b.stats().requests), (2, 1));
    });
}

/// Credentials from the proxy URL (or `basic_auth`) reach the proxy as
/// `Proxy-Authorization`, and never an origin: not through the proxy, not inside a tunnel,
/// not on a direct request. No Debug output shows them.
#[test]
fn proxy_credentials_reach_the_proxy_only() {
    let _dog = watchdog("proxy_credentials_reach_the_proxy_only", 90);
    with_server(|_origin| async move {
        let recorder = Recorder::start();
        let proxy = ProxyServer::builder()
            .basic_auth("user", "pa ss")
            .bind(local())
            .unwrap();
        let in_url = Proxy::http(&format!("http://user:pa%20ss@{}", proxy.local_addr())).unwrap();
        let by_method = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "pa ss");
        for (i, p) in [in_url, by_method].into_iter().enumerate() {
            assert!(!format!("{p:?}").contains("pa ss"));
            let client = Client::builder().proxy(p).build();
            assert!(!format!("{client:?}").contains("dXNlcjpwYSBzcw"));
            let (status, body) = fetch(&client, &recorder.url(&format!("/forward/{i}"))).await;
            assert_eq!((status.as_u16(), body.as_str()), (200, "ok"));
        }
        // Through a tunnel, the credentials go in the CONNECT only.
        let tunnel = Client::builder()
            .proxy(
                Proxy::http(&proxy.url())
                    .unwrap()
                    .basic_auth("user", "pa ss"),
            )
            .proxy_tunnel(true)
            .build();
        let (status, _) = fetch(&tunnel, &recorder.url("/tunnel")).await;
        assert_eq!(status, 200);
        let log = proxy.log();
        assert_eq!(log.len(), 3);
        for entry in &log {
            assert_eq!(entry.proxy_authorization.as_deref(), Some(USER_PA_SS));
            assert_eq!(entry.status, 200, "{entry:?}");
        }
        assert_eq!(log[2].method, "CONNECT");
        // Direct (the host bypasses the proxy): the proxy's credentials stay home.
        let bypass = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "pa ss")
            .no_proxy(&recorder.addr.to_string());
        let direct = Client::builder().proxy(bypass).build();
        let (status, _) = fetch(&direct, &recorder.url("/direct")).await;
        assert_eq!(status, 200);
        assert_eq!(proxy.log().len(), 3, "the direct request skipped the proxy");
        let heads = recorder.heads();
        assert_eq!(heads.len(), 4);
        assert!(heads[2].starts_with("GET /tunnel HTTP/1.1\r\n"));
        assert!(heads[3].starts_with("GET /direct HTTP/1.1\r\n"));
        for head in &heads {
            assert!(!has_header(head, "proxy-authorization"), "{head}");
        }
    });
}

/// Through a forward proxy, a 407 is an ordinary response (as in reqwest and curl), with
/// the proxy's `Proxy-Authenticate`; the origin is never asked.
#[test]
fn forward_407_is_a_response() {
    let _dog = watchdog("forward_407_is_a_response", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::builder()
            .basic_auth("user", "secret")
            .bind(local())
            .unwrap();
        let anonymous = Proxy::http(&proxy.url()).unwrap();
        let wrong = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "wrong");
        for p in [anonymous, wrong] {
            let client = Client::builder().proxy(p).build();
            let resp = client.get(origin.url("/get")).send().await.unwrap();
            assert_eq!(resp.status(), 407);
            let challenge = resp.headers()["proxy-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic "), "{challenge}");
            assert!(resp.text().await.unwrap().contains("proxy authentication"));
        }
        assert_eq!(proxy.stats().auth_failures, 2);
        assert_eq!(origin.stats().requests, 0);
        let right = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "secret");
        let client = Client::builder().proxy(right).build();
        assert_eq!(fetch(&client, &origin.url("/get")).await.0, 200);
    });
}

/// With `proxy_tunnel(true)`, an http:// request opens a CONNECT tunnel and goes through it
/// in origin form; the tunnel is pooled per origin and reused.
#[test]
fn connect_tunnel_is_used_and_pooled() {
    let _dog = watchdog("connect_tunnel_is_used_and_pooled", 90);
    with_server(|origin| async move {
        let recorder = Recorder::start();
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .proxy_tunnel(true)
            .build();
        let mut reused = Vec::new();
        for path in ["/a?q=1", "/b"] {
            let resp = client.get(recorder.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            reused.push(resp.timings().reused);
            assert_eq!(resp.text().await.unwrap(), "ok");
        }
        assert_eq!(reused, [false, true]);
        let heads = recorder.heads();
        let authority = recorder.addr.to_string();
        assert!(
            heads[0].starts_with("GET /a?q=1 HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(heads[1].starts_with("GET /b HTTP/1.1\r\n"), "{}", heads[1]);
        assert!(heads[0].contains(&format!("host: {authority}\r\n")));
        assert_eq!(recorder.connections.get(), 1);
        let log = proxy.log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].method, "CONNECT");
        assert_eq!(log[0].target, authority);
        assert_eq!(log[0].host.as_deref(), Some(&*authority));
        let stats = proxy.stats();
        assert_eq!(
            (
                stats.connects,
                stats.tunnels,
                stats.requests,
                stats.connections_accepted
            ),
            (1, 1, 0, 1)
        );
        // Another origin gets a tunnel of its own.
        let (status, _) = fetch(&client, &origin.url("/get")).await;
        assert_eq!(status, 200);
        assert_eq!(proxy.stats().connects, 2);
        assert_eq!(proxy.stats().connections_accepted, 2);
        assert_eq!(client.idle_connections(), 2);
        assert_eq!(origin.stats().requests, 1);
    });
}

/// A CONNECT answered with another status than 2xx or 407 is an error naming the proxy and
/// the status, in the connect phase; nothing reaches the origin.
#[test]
fn refused_connect_is_an_error_naming_proxy_and_status() {
    let _dog = watchdog("refused_connect_is_an_error_naming_proxy_and_status", 90);
    with_server(|origin| async move {
        let target = origin.local_addr().to_string();
        let any = ProxyServer::builder()
            .refuse_connect("*", 403)
            .bind(local())
            .unwrap();
        let this_one = ProxyServer::builder()
            .refuse_connect(&target, 502)
            .bind(local())
            .unwrap();
        for (proxy, status) in [(&any, 403), (&this_one, 502)] {
            let client = Client::builder()
                .proxy(Proxy::http(&proxy.url()).unwrap())
                .proxy_tunnel(true)
                .build();
            let e = client.get(origin.url("/get")).send().await.unwrap_err();
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(e.kind(), &ErrorKind::ProxyTunnel(status), "{e:#}");
            assert_eq!(e.proxy(), Some(&*proxy.url()));
            assert_eq!(e.phase(), Some(Phase::Connect));
            assert!(e.is_connect());
            let message = e.to_string();
            assert!(
                message.contains(&format!("proxy {}", proxy.url())),
                "{message}"
            );
            assert!(message.contains(&status.as_u16().to_string()), "{message}");
            assert!(message.contains(&origin.url("/get")), "{message}");
            assert_eq!(client.idle_connections(), 0);
        }
        assert_eq!((any.stats().refused, this_one.stats().refused), (1, 1));
        assert_eq!(origin.stats().requests, 0);
    });
}

/// A CONNECT answered with 407 is `ErrorKind::ProxyAuth`, naming the proxy; the right
/// credentials open the tunnel.
#[test]
fn connect_407_is_a_proxy_auth_error() {
    let _dog = watchdog("connect_407_is_a_proxy_auth_error", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::builder()
            .basic_auth("user", "secret")
            .bind(local())
            .unwrap();
        let anonymous = Proxy::http(&proxy.url()).unwrap();
        let wrong = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "wrong");
        for p in [anonymous, wrong] {
            let client = Client::builder().proxy(p).proxy_tunnel(true).build();
            let e = client.get(origin.url("/get")).send().await.unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::ProxyAuth, "{e:#}");
            assert_eq!(e.proxy(), Some(&*proxy.url()));
            assert_eq!(e.phase(), Some(Phase::Connect));
            let message = e.to_string();
            assert!(
                message.contains(&format!("proxy {}", proxy.url())),
                "{message}"
            );
            assert!(message.contains("407"), "{message}");
            assert!(!message.contains("wrong"), "{message}");
        }
        assert_eq!(proxy.stats().auth_failures, 2);
        assert_eq!(proxy.stats().tunnels, 0);
        assert_eq!(origin.stats().requests, 0);
        let right = Proxy::http(&proxy.url())
            .unwrap()
            .basic_auth("user", "secret");
        let client = Client::builder().proxy(right).proxy_tunnel(true).build();
        assert_eq!(fetch(&client, &origin.url("/get")).await.0, 200);
        assert_eq!(proxy.stats().tunnels, 1);
    });
}

/// A proxy port that refuses connections is a connect error naming the proxy, for forward
/// and tunnelled requests alike.
#[test]
fn refused_proxy_port_is_a_connect_error_naming_the_proxy() {
    let _dog = watchdog("refused_proxy_port_is_a_connect_error_naming_the_proxy", 90);
    with_server(|origin| async move {
        let port = refused_port();
        let proxy_url = format!("http://127.0.0.1:{port}");
        for tunnel in [false, true] {
            let client = Client::builder()
                .proxy(Proxy::http(&proxy_url).unwrap())
                .proxy_tunnel(tunnel)
                .build();
            let e = client.get(origin.url("/get")).send().await.unwrap_err();
            assert_eq!(e.kind(), &ErrorKind::Connect, "{e:#}");
            assert!(e.is_connect());
            assert_eq!(e.proxy(), Some(&*proxy_url));
            let message = e.to_string();
            assert!(
                message.starts_with(&format!(
                    "connection failed to proxy {proxy_url} (requesting {})",
                    origin.url("/get")
                )),
                "{message}"
            );
        }
        assert_eq!(origin.stats().requests, 0);
    });
}

/// `http_proxy` wins over `HTTP_PROXY`, the scheme's own variable over `ALL_PROXY`, and
/// `HTTPS_PROXY` is not used for http:// URLs; the environment is read when the client is
/// built.
#[test]
fn environment_proxy_precedence() {
    let _dog = watchdog("environment_proxy_precedence", 90);
    with_server(|origin| async move {
        let upper = ProxyServer::bind(local()).unwrap();
        let lower = ProxyServer::bind(local()).unwrap();
        let all = ProxyServer::bind(local()).unwrap();
        let (u, l, a) = (upper.url(), lower.url(), all.url());
        let cases: Vec<(Vars<'_>, [u64; 3])> = vec![
            (vec![("HTTP_PROXY", &u)], [1, 0, 0]),
            (vec![("http_proxy", &l)], [0, 1, 0]),
            (vec![("HTTP_PROXY", &u), ("http_proxy", &l)], [0, 1, 0]),
            (vec![("HTTP_PROXY", &u), ("http_proxy", "")], [1, 0, 0]),
            (vec![("ALL_PROXY", &a)], [0, 0, 1]),
            (vec![("all_proxy", &a), ("HTTP_PROXY", &u)], [1, 0, 0]),
            (vec![("HTTPS_PROXY", &u), ("https_proxy", &l)], [0, 0, 0]),
            (vec![], [0, 0, 0]),
        ];
        for (vars, want) in cases {
            let before = [seen(&upper), seen(&lower), seen(&all)];
            let origin_before = origin.stats().requests;
            let client = env_client(&vars).build();
            assert_eq!(fetch(&client, &origin.url("/get")).await.0, 200);
            let after = [seen(&upper), seen(&lower), seen(&all)];
            let got: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
            assert_eq!(got, want, "{vars:?}");
            assert_eq!(origin.stats().requests, origin_before + 1);
        }
    });
}

/// `NO_PROXY` sends matching hosts direct: exact names, subdomains, a leading dot, `*`, IP
/// addresses, CIDR blocks and ports; `no_proxy` wins over `NO_PROXY`.
#[test]
fn environment_no_proxy_matches() {
    let _dog = watchdog("environment_no_proxy_matches", 90);
    with_server(|origin| async move {
        let addr = origin.local_addr();
        let port = addr.port();
        let proxy = ProxyServer::builder()
            .resolve("origin.test", LOOPBACK)
            .resolve("api.origin.test", LOOPBACK)
            .bind(local())
            .unwrap();
        let name = format!("http://origin.test:{port}/get");
        let sub = format!("http://api.origin.test:{port}/get");
        let ip = format!("http://127.0.0.1:{port}/get");
        let with_port = format!("origin.test:{port}");
        let ip_port = format!("127.0.0.1:{port}");
        let cases: Vec<(Vars<'_>, &str, bool)> = vec![
            (vec![("NO_PROXY", "origin.test")], &name, true),
            (vec![("NO_PROXY", "origin.test")], &sub, true),
            (vec![("NO_PROXY", ".origin.test")], &name, true),
            (vec![("NO_PROXY", ".origin.test")], &sub, true),
            (vec![("NO_PROXY", "api.origin.test")], &name, false),
            (vec![("NO_PROXY", "rigin.test")], &name, false),
            (vec![("NO_PROXY", "other.test, origin.test")], &name, true),
            (vec![("NO_PROXY", "*")], &name, true),
            (vec![("NO_PROXY", "*")], &ip, true),
            (vec![("NO_PROXY", "127.0.0.1")], &ip, true),
            (vec![("NO_PROXY", "127.0.0.0/8")], &ip, true),
            (vec![("NO_PROXY", "10.0.0.0/8")], &ip, false),
            (vec![("NO_PROXY", "localhost")], &ip, false),
            (vec![("NO_PROXY", "127.0.0.1")], &name, false),
            (vec![("NO_PROXY", &with_port)], &name, true),
            (vec![("NO_PROXY", "origin.test:1")], &name, false),
            (vec![("NO_PROXY", &ip_port)], &ip, true),
            (vec![("NO_PROXY", "127.0.0.1:1")], &ip, false),
            (vec![("no_proxy", "origin.test")], &name, true),
            (
                vec![("NO_PROXY", "origin.test"), ("no_proxy", "other.test")],
                &name,
                false,
            ),
            (vec![("NO_PROXY", "")], &name, false),
        ];
        let proxy_url = proxy.url();
        for (mut vars, url, bypass) in cases {
            vars.push(("http_proxy", &proxy_url));
            let client = env_client(&vars)
                .resolve("origin.test", addr)
                .resolve("api.origin.test", addr)
                .build();
            let (proxied, served) = (seen(&proxy), origin.stats().requests);
            assert_eq!(fetch(&client, url).await.0, 200, "{vars:?} {url}");
            let through_proxy = seen(&proxy) - proxied == 1;
            assert_eq!(through_proxy, !bypass, "{vars:?} for {url}");
            assert_eq!(origin.stats().requests, served + 1);
        }
    });
}

/// httpoxy: in a CGI program (`REQUEST_METHOD` set), `HTTP_PROXY` could come from a request
/// header and is ignored; `http_proxy` and `ALL_PROXY` still apply.
#[test]
fn environment_httpoxy_rule() {
    let _dog = watchdog("environment_httpoxy_rule", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::bind(local()).unwrap();
        let p = proxy.url();
        let cases: Vec<(Vars<'_>, bool)> = vec![
            (vec![("REQUEST_METHOD", "GET"), ("HTTP_PROXY", &p)], false),
            (vec![("REQUEST_METHOD", ""), ("HTTP_PROXY", &p)], false),
            (vec![("HTTP_PROXY", &p)], true),
            (vec![("REQUEST_METHOD", "GET"), ("http_proxy", &p)], true),
            (vec![("REQUEST_METHOD", "GET"), ("ALL_PROXY", &p)], true),
        ];
        for (vars, proxied) in cases {
            let client = env_client(&vars).build();
            let before = seen(&proxy);
            assert_eq!(fetch(&client, &origin.url("/get")).await.0, 200);
            assert_eq!(seen(&proxy) - before == 1, proxied, "{vars:?}");
        }
    });
}

/// An https:// URL with an https proxy configured goes through a `CONNECT` tunnel, then TLS
/// to the origin over it: here the origin speaks plain HTTP, so the handshake fails, and the
/// error names the TLS phase and the proxy. Without a proxy for https, the error names none.
/// (TLS itself through the proxy: `tests/https.rs`.)
#[cfg(feature = "tls")]
#[test]
fn https_through_proxy_tunnels_then_speaks_tls() {
    let _dog = watchdog("https_through_proxy_tunnels_then_speaks_tls", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::bind(local()).unwrap();
        let https_url = format!("https://127.0.0.1:{}/get", origin.local_addr().port());
        let explicit = Client::builder()
            .proxy(Proxy::https(&proxy.url()).unwrap())
            .build();
        let from_env = env_client(&[("HTTPS_PROXY", &proxy.url())]).build();
        for client in [explicit, from_env] {
            let e = client.get(&https_url).send().await.unwrap_err();
            assert!(e.is_tls(), "{e:#}");
            assert_eq!(e.phase(), Some(volley::Phase::Tls), "{e:#}");
            assert_eq!(e.proxy(), Some(&*proxy.url()));
            assert!(e.to_string().contains("via proxy"), "{e:#}");
        }
        assert_eq!(proxy.stats().connections_accepted, 2);
        let http_only = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let e = http_only.get(&https_url).send().await.unwrap_err();
        assert!(e.is_tls(), "{e:#}");
        assert_eq!(e.proxy(), None);
        volley::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxy.stats().connections_accepted, 2);
        assert_eq!(origin.stats().connections_accepted, 3);
    });
}

/// Without the `tls` feature, an https:// URL with an https proxy configured is routed to it,
/// then refused with `UnsupportedScheme` before any byte reaches the proxy; the error names
/// the proxy. Without a proxy for https, the error names none.
#[cfg(not(feature = "tls"))]
#[test]
fn https_through_proxy_is_unsupported_before_any_byte() {
    let _dog = watchdog("https_through_proxy_is_unsupported_before_any_byte", 90);
    with_server(|origin| async move {
        let proxy = ProxyServer::bind(local()).unwrap();
        let https_url = format!("https://127.0.0.1:{}/get", origin.local_addr().port());
        let explicit = Client::builder()
            .proxy(Proxy::https(&proxy.url()).unwrap())
            .build();
        let from_env = env_client(&[("HTTPS_PROXY", &proxy.url())]).build();
        for client in [explicit, from_env] {
            let e = client.get(&https_url).send().await.unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::UnsupportedScheme("https".into()),
                "{e:#}"
            );
            assert_eq!(e.proxy(), Some(&*proxy.url()));
            assert!(e.to_string().contains("via proxy"), "{e:#}");
        }
        let http_only = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let e = http_only.get(&https_url).send().await.unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::UnsupportedScheme("https".into()));
        assert_eq!(e.proxy(), None);
        // Give a stray connect time to arrive.
        volley::sleep(Duration::from_millis(50)).await;
        assert_eq!(proxy.stats().connections_accepted, 0);
        assert_eq!(origin.stats().connections_accepted, 0);
    });
}

/// Builder proxies replace the environment's; `no_proxy()` turns both off, and a proxy
/// given after it counts.
#[test]
fn builder_proxies_override_the_environment() {
    let _dog = watchdog("builder_proxies_override_the_environment", 90);
    with_server(|origin| async move {
        let from_env = ProxyServer::bind(local()).unwrap();
        let explicit = ProxyServer::bind(local()).unwrap();
        let vars = [("http_proxy", from_env.url()), ("NO_PROXY", "*".into())];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cases: Vec<(ClientBuilder, [u64; 2])> = vec![
            (env_client(&vars[..1]), [1, 0]),
            (
                env_client(&vars).proxy(Proxy::http(&explicit.url()).unwrap()),
                [0, 1],
            ),
            (env_client(&vars[..1]).no_proxy(), [0, 0]),
            (
                env_client(&vars[..1])
                    .proxy(Proxy::http(&explicit.url()).unwrap())
                    .no_proxy(),
                [0, 0],
            ),
            (
                env_client(&vars[..1])
                    .no_proxy()
                    .proxy(Proxy::http(&explicit.url()).unwrap()),
                [0, 1],
            ),
        ];
        for (i, (builder, want)) in cases.into_iter().enumerate() {
            let client = builder.build();
            let before = [seen(&from_env), seen(&explicit)];
            assert_eq!(fetch(&client, &origin.url("/get")).await.0, 200);
            let got = [seen(&from_env) - before[0], seen(&explicit) - before[1]];
            assert_eq!(got, want, "case {i}");
        }
    });
}

/// `Proxy::no_proxy` skips a proxy for matching hosts: the next proxy that applies is used,
/// or none.
#[test]
fn proxy_no_proxy_falls_through_to_the_next() {
    let _dog = watchdog("proxy_no_proxy_falls_through_to_the_next", 90);
    with_server(|origin| async move {
        let first = ProxyServer::bind(local()).unwrap();
        let second = ProxyServer::bind(local()).unwrap();
        let skip = || Proxy::http(&first.url()).unwrap().no_proxy("127.0.0.1");
        let both = Client::builder()
            .proxy(skip())
            .proxy(Proxy::all(&second.url()).unwrap())
            .build();
        assert_eq!(fetch(&both, &origin.url("/get")).await.0, 200);
        assert_eq!((seen(&first), seen(&second)), (0, 1));
        let alone = Client::builder().proxy(skip()).build();
        assert_eq!(fetch(&alone, &origin.url("/get")).await.0, 200);
        assert_eq!((seen(&first), seen(&second)), (0, 1));
        assert_eq!(origin.stats().requests, 2);
    });
}

/// Proxy URLs that cannot be used say why, without their credentials: a builder error for
/// `Proxy::http` and friends, a request error (naming the variable) for the environment.
#[test]
fn unusable_proxy_urls_are_clear_errors() {
    let _dog = watchdog("unusable_proxy_urls_are_clear_errors", 90);
    let cases = [
        (
            "socks5://user:secret@127.0.0.1:1080",
            "SOCKS proxies are not supported",
        ),
        ("https://127.0.0.1:3128", "https:// proxies"),
        ("ftp://127.0.0.1", "unsupported proxy scheme \"ftp\""),
        ("http://", "proxy url"),
        ("", "empty"),
    ];
    for (url, says) in cases {
        for e in [
            Proxy::http(url).unwrap_err(),
            Proxy::https(url).unwrap_err(),
            Proxy::all(url).unwrap_err(),
        ] {
            assert!(matches!(e.kind(), ErrorKind::InvalidProxy(_)), "{e:?}");
            let message = e.to_string();
            assert!(message.starts_with("invalid proxy: "), "{message}");
            assert!(message.contains(says), "{url:?}: {message}");
            assert!(!format!("{e:#}").contains("secret"), "{e:#}");
        }
    }
    assert_eq!(
        Proxy::http("127.0.0.1:3128").unwrap().url(),
        "http://127.0.0.1:3128"
    );
    with_server(|origin| async move {
        let client = env_client(&[("ALL_PROXY", "socks5://user:secret@127.0.0.1:1080")]).build();
        let e = client.get(origin.url("/get")).send().await.unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidProxy(_)), "{e:?}");
        let message = e.to_string();
        assert!(message.contains("ALL_PROXY"), "{message}");
        assert!(message.contains("SOCKS"), "{message}");
        assert!(!format!("{e:#}").contains("secret"), "{e:#}");
        assert_eq!(origin.stats().connections_accepted, 0);
    });
}

/// Redirects through a proxy are followed through it, same origin or not, with the redirect
/// policy's credential rule unchanged (`Authorization` dropped across origins).
#[test]
fn redirects_through_the_proxy() {
    let _dog = watchdog("redirects_through_the_proxy", 90);
    with_server(|a| async move {
        let b = Server::bind(local()).unwrap();
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let resp = client.get(a.url("/redirect/2")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.url().as_str(), a.url("/get"));
        resp.bytes().await.unwrap();
        assert_eq!(proxy.stats().requests, 3);
        assert_eq!(proxy.stats().connections_accepted, 1);
        let to_b = format!("/redirect-to?url={}", b.url("/headers"));
        let resp = client
            .get(a.url(&to_b))
            .basic_auth("user", Some("pass"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.url().as_str(), b.url("/headers"));
        let doc = json(&resp.text().await.unwrap());
        assert_eq!(doc["headers"]["Via"], "1.1 volley-proxy");
        assert!(doc["headers"].get("Authorization").is_none(), "{doc}");
        assert_eq!(proxy.stats().requests, 5);
        assert_eq!(b.stats().requests, 1);
        assert_eq!(proxy.stats().connections_accepted, 1);
    });
}

/// A proxy that accepts but never answers: the CONNECT handshake runs under the connect
/// timeout, a forwarded request under the read timeout, and both errors name the proxy.
#[test]
fn silent_proxy_times_out_naming_the_proxy() {
    let _dog = watchdog("silent_proxy_times_out_naming_the_proxy", 90);
    with_server(|origin| async move {
        // Never accepted: the kernel completes the handshakes, and nothing ever answers.
        let silent = TcpListener::bind(local()).unwrap();
        let proxy_url = format!("http://{}", silent.local_addr().unwrap());
        let short = Duration::from_millis(200);
        for (tunnel, phase) in [(true, Phase::Connect), (false, Phase::ReadHead)] {
            let client = Client::builder()
                .proxy(Proxy::http(&proxy_url).unwrap())
                .proxy_tunnel(tunnel)
                .connect_timeout(short)
                .read_timeout(short)
                .build();
            let e = client.get(origin.url("/get")).send().await.unwrap_err();
            assert_eq!(
                e.kind(),
                &ErrorKind::Timeout {
                    phase,
                    after: short
                },
                "{e:#}"
            );
            assert_eq!(e.proxy(), Some(&*proxy_url));
            assert!(
                e.to_string().contains(&format!("via proxy {proxy_url}")),
                "{e:#}"
            );
        }
        assert_eq!(origin.stats().requests, 0);
    });
}

/// A fake proxy: each connection's first head (anything up to a blank line) gets `reply`,
/// then the connection is closed. An empty `reply` closes at once.
fn scripted_proxy(reply: &'static [u8]) -> String {
    let mut listener = TcpListener::bind(local()).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _task = volley::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let _conn = volley::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(reply).await;
            });
        }
    });
    url
}

/// Whatever goes wrong with a tunnel's `CONNECT` is a connect error naming the proxy (the
/// request never reached the origin): a proxy that closes, one that answers garbage, and one
/// that sends bytes past its 200 (which must not pass for the origin's response).
#[test]
fn failed_tunnels_are_connect_errors() {
    let _dog = watchdog("failed_tunnels_are_connect_errors", 90);
    with_server(|origin| async move {
        let cases: [(&'static [u8], &str); 3] = [
            (b"", "closed before any response byte"),
            (b"NOPE\r\n\r\n", "the proxy's answer to CONNECT"),
            (
                b"HTTP/1.1 200 Connection established\r\n\r\n\
                  HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfake",
                "the proxy sent 42 bytes after its answer to CONNECT",
            ),
        ];
        for (reply, why) in cases {
            let proxy_url = scripted_proxy(reply);
            let client = Client::builder()
                .proxy(Proxy::http(&proxy_url).unwrap())
                .proxy_tunnel(true)
                .build();
            let e = client.get(origin.url("/get")).send().await.unwrap_err();
            let chain = format!("{e:#}");
            eprintln!("{chain}");
            assert_eq!(e.kind(), &ErrorKind::Connect, "{chain}");
            assert!(e.is_connect(), "{chain}");
            assert_eq!(e.phase(), Some(Phase::Connect), "{chain}");
            assert_eq!(e.proxy(), Some(&*proxy_url), "{chain}");
            assert!(chain.contains(why), "{chain}");
            assert_eq!(client.idle_connections(), 0);
        }
        assert_eq!(origin.stats().requests, 0);
    });
}

/// A tunnelled request's own `Proxy-Authorization` is for the proxy: it goes on the
/// `CONNECT` (instead of the configured credentials) and not to the origin.
#[test]
fn tunnelled_request_proxy_authorization_goes_on_connect() {
    let _dog = watchdog("tunnelled_request_proxy_authorization_goes_on_connect", 90);
    with_server(|_origin| async move {
        let recorder = Recorder::start();
        let proxy = ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap().basic_auth("other", "x"))
            .proxy_tunnel(true)
            .build();
        let resp = client
            .get(recorder.url("/"))
            .header("proxy-authorization", USER_PA_SS)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.text().await.unwrap(), "ok");
        let log = proxy.log();
        assert_eq!(log[0].method, "CONNECT");
        assert_eq!(log[0].proxy_authorization.as_deref(), Some(USER_PA_SS));
        let heads = recorder.heads();
        assert!(
            !has_header(&heads[0], "proxy-authorization"),
            "{}",
            heads[0]
        );
    });
}
