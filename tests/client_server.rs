//! The client against the embedded httpbin-like server: many requests at once, redirects,
//! bodies checked by checksum, statuses and charsets. The fault endpoints are in
//! `tests/faults.rs`, credentials on redirects in `tests/security.rs`.

mod util;

use util::{text_of, with_server};
use volley::{redirect, Client, ErrorKind};
use volley_testserver::seeded_bytes;

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
            "{err:#}"
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
