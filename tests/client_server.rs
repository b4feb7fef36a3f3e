//! The client against the embedded httpbin-like server: many requests at once, redirects and
//! their credential rules, bodies checked by checksum, and the server's fault endpoints.

mod util;

use util::{text_of, with_server};
use volley::server::{seeded_bytes, Server};
use volley::{redirect, Client, ErrorKind, Phase};

/// 1,000 concurrent GETs of `/delay/0.1` on one runtime all succeed, over a bounded number
/// of connections that are then reused.
#[test]
fn thousand_concurrent_requests() {
    with_server(|server| async move {
        let client = Client::new();
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let client = client.clone();
                let url = server.url(&format!("/delay/0.1?i={i}"));
                volley::spawn(async move {
                    let resp = client.get(&url).send().await?;
                    let status = resp.status();
                    let body = resp.text().await?;
                    Ok::<_, volley::Error>((status, body.contains(&format!("\"i\": \"{i}\""))))
                })
            })
            .collect();
        for task in tasks {
            let (status, echoed) = task.await.unwrap().unwrap();
            assert_eq!(status, 200);
            assert!(echoed, "each response belongs to its own request");
        }
        assert_eq!(server.stats().connections_accepted, 1000);
        assert_eq!(
            client.idle_connections(),
            1000,
            "every connection went back to the pool"
        );
        // A second round reuses them: no new connection.
        let again = client.get(server.url("/get")).send().await.unwrap();
        assert_eq!(again.status(), 200);
        again.bytes().await.unwrap();
        assert_eq!(server.stats().connections_accepted, 1000);
    });
}

/// `/bytes/{n}?seed=S` arrives complete and uncorrupted, in every size class.
#[test]
fn bodies_match_their_checksum() {
    with_server(|server| async move {
        let client = Client::new();
        for (n, seed) in [(0, 1), (1, 2), (1000, 3), (65_536, 4), (1_000_003, 5)] {
            let body = client
                .get(server.url(&format!("/bytes/{n}?seed={seed}")))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert_eq!(body.len(), n);
            assert!(
                body[..] == seeded_bytes(seed, n)[..],
                "body of {n} bytes differs"
            );
        }
    });
}

/// Chunked bodies from `/stream/{n}` decode to n JSON lines.
#[test]
fn chunked_stream_decodes() {
    with_server(|server| async move {
        let resp = Client::new()
            .get(server.url("/stream/20"))
            .send()
            .await
            .unwrap();
        assert!(resp.content_length().is_none());
        let text = resp.text().await.unwrap();
        assert_eq!(text.lines().count(), 20);
    });
}

/// Relative and absolute redirect chains are followed to the final URL.
#[test]
fn redirect_chains_are_followed() {
    with_server(|server| async move {
        let client = Client::new();
        for path in [
            "/redirect/5",
            "/absolute-redirect/3",
            "/relative-redirect/2",
        ] {
            let resp = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            assert_eq!(resp.url().path(), "/get", "{path}");
        }
    });
}

/// More redirects than the policy allows is an error naming the limit; with no policy the
/// 3xx itself is the response.
#[test]
fn redirect_limit_and_none() {
    with_server(|server| async move {
        let client = Client::builder()
            .redirect(redirect::Policy::limited(2))
            .build();
        let err = client
            .get(server.url("/redirect/5"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::TooManyRedirects(2));
        assert!(
            err.to_string().contains("too many redirects (more than 2)"),
            "{err}"
        );
        let client = Client::builder().redirect(redirect::Policy::none()).build();
        let resp = client.get(server.url("/redirect/5")).send().await.unwrap();
        assert_eq!(resp.status(), 302);
    });
}

/// 303 turns a POST into a GET without its body; 307 keeps method and body.
#[test]
fn redirects_rewrite_the_method_per_status() {
    with_server(|server| async move {
        let client = Client::new();
        let to = |code: u16| server.url(&format!("/redirect-to?url=/anything&status_code={code}"));
        let json = text_of(client.post(to(303)).body("payload")).await;
        assert!(json.contains("\"method\": \"GET\""), "{json}");
        assert!(!json.contains("payload"), "{json}");
        let json = text_of(client.post(to(307)).body("payload")).await;
        assert!(json.contains("\"method\": \"POST\""), "{json}");
        assert!(json.contains("\"data\": \"payload\""), "{json}");
    });
}

/// Authorization and Cookie go along to the same origin and are dropped for another port.
#[test]
fn credentials_are_dropped_across_origins() {
    with_server(|server| async move {
        let other = Server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client = Client::new();
        let send = |target: String| {
            let url = server.url(&format!("/redirect-to?url={target}"));
            client
                .get(url)
                .header("authorization", "Bearer secret")
                .header("cookie", "session=1")
                .send()
        };
        let same = send(server.url("/headers"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            same.contains("Bearer secret") && same.contains("session=1"),
            "{same}"
        );
        let cross = send(other.url("/headers"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !cross.contains("Bearer secret") && !cross.contains("session=1"),
            "{cross}"
        );
    });
}

/// Userinfo in the URL becomes Basic auth.
#[test]
fn userinfo_becomes_basic_auth() {
    with_server(|server| async move {
        let url = server
            .url("/basic-auth/user/pa%20ss")
            .replace("http://", "http://user:pa%20ss@");
        let resp = Client::new().get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp
            .text()
            .await
            .unwrap()
            .contains("\"authenticated\": true"));
    });
}

/// A reset mid-body is an I/O error in the body phase, never a short Ok.
#[test]
fn reset_mid_body_is_an_error() {
    with_server(|server| async move {
        let resp = Client::new()
            .get(server.url("/fault/reset-body"))
            .send()
            .await
            .unwrap();
        let err = resp.bytes().await.unwrap_err();
        assert_eq!(err.phase(), Some(Phase::ReadBody), "{err}");
    });
}

/// A keep-alive response followed by a server-side close: the next request succeeds.
#[test]
fn keep_alive_then_close_next_request_succeeds() {
    with_server(|server| async move {
        let client = Client::new();
        for _ in 0..3 {
            let resp = client
                .get(server.url("/fault/keep-alive-then-close"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
        let resp = client.get(server.url("/get")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    });
}

/// A server that answers before reading a large request body causes no deadlock: the
/// client stops sending and reads the answer.
#[test]
fn early_response_to_a_large_body() {
    with_server(|server| async move {
        let body = vec![b'x'; 8 << 20];
        let resp = Client::new()
            .post(server.url("/fault/early-response"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
    });
}

/// Garbage instead of a status line is an invalid-response error.
#[test]
fn garbage_is_an_invalid_response() {
    with_server(|server| async move {
        let err = Client::new()
            .get(server.url("/fault/garbage"))
            .send()
            .await
            .unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::InvalidResponse(_)), "{err}");
    });
}

/// A 1 MiB head hits the 64 KiB default limit.
#[test]
fn huge_head_hits_the_limit() {
    with_server(|server| async move {
        let err = Client::new()
            .get(server.url("/fault/huge-head"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::TooLarge {
                what: volley::Limit::Head,
                limit: 65536
            },
            "{err}"
        );
    });
}

/// 4xx and 5xx are responses; error_for_status turns them into errors.
#[test]
fn error_statuses_are_responses() {
    with_server(|server| async move {
        let client = Client::new();
        let resp = client.get(server.url("/status/503")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        let err = resp.error_for_status().unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::Status(volley::StatusCode::SERVICE_UNAVAILABLE)
        );
        let ok = client.get(server.url("/status/200")).send().await.unwrap();
        assert!(ok.error_for_status().is_ok());
    });
}

/// text() decodes UTF-8 by default.
#[test]
fn text_decodes_utf8() {
    with_server(|server| async move {
        let client = Client::new();
        let utf8 = text_of(client.get(server.url("/encoding/utf8"))).await;
        assert!(
            utf8.contains("größeren") && utf8.contains("Ξεσκεπάζω"),
            "{utf8}"
        );
    });
}
