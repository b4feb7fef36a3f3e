//! reqwest's conveniences, by reqwest's names, against the embedded test server: the serde
//! request builders (`json`, `query`, `form`; feature `json`), `Response::json`, the auth
//! helpers, `error_for_status_ref`, `remote_addr`, `content_length`, and the cookie store
//! (feature `cookies`).

mod util;

use util::{local, text_of, with_server};
use volley::header::AUTHORIZATION;
use volley::{Client, ErrorKind, Proxy, StatusCode, Url};

// ---------------------------------------------------------------------------------------------
// Auth helpers.

/// `basic_auth` takes anything that displays, writes `user:` for no password, and marks the
/// header sensitive; the server accepts the right credentials and refuses wrong ones.
#[test]
fn basic_auth_takes_display_values_and_is_sensitive() {
    with_server(|server| async move {
        let client = Client::new();
        let user = String::from("ann");
        let request = client
            .get(server.url("/get"))
            .basic_auth(&user, None::<&str>)
            .build()
            .unwrap();
        let auth = &request.headers()[AUTHORIZATION];
        assert_eq!(auth, "Basic YW5uOg=="); // base64("ann:")
        assert!(auth.is_sensitive());

        let ok = client
            .get(server.url("/basic-auth/ann/42"))
            .basic_auth(user, Some(42))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let refused = client
            .get(server.url("/basic-auth/ann/42"))
            .basic_auth("ann", Some("41"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    });
}

/// `basic_auth` replaces the URL's userinfo credentials rather than adding a second header.
#[test]
fn basic_auth_wins_over_url_userinfo() {
    with_server(|server| async move {
        let url = server
            .url("/basic-auth/ann/right")
            .replace("://", "://ann:wrong@");
        let resp = Client::new()
            .get(url)
            .basic_auth("ann", Some("right"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });
}

/// `bearer_auth` sends `Authorization: Bearer <token>`, marked sensitive; a token that cannot
/// be a header value fails `send` as an invalid request, before anything is sent.
#[test]
fn bearer_auth_is_sent_and_sensitive() {
    with_server(|server| async move {
        let client = Client::new();
        let request = client
            .get(server.url("/bearer"))
            .bearer_auth(7)
            .build()
            .unwrap();
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer 7");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());

        let doc = text_of(client.get(server.url("/bearer")).bearer_auth("t0k.en")).await;
        assert!(doc.contains(r#""token": "t0k.en""#), "{doc}");

        let err = client
            .get(server.url("/bearer"))
            .bearer_auth("a\r\nInjected: yes")
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidRequest(why) if why.contains("authorization")),
            "{err}"
        );
        assert_eq!(server.stats().requests, 1, "the bad token went nowhere");
    });
}

// ---------------------------------------------------------------------------------------------
// Response helpers.

/// `error_for_status_ref` is an error naming the URL for 4xx and 5xx, the response otherwise,
/// and leaves the response readable either way.
#[test]
fn error_for_status_ref_keeps_the_response() {
    with_server(|server| async move {
        let client = Client::new();
        for (code, fails) in [(200, false), (302, false), (404, true), (503, true)] {
            let url = server.url(&format!("/status/{code}"));
            let resp = client.get(&url).send().await.unwrap();
            match resp.error_for_status_ref() {
                Ok(same) => {
                    assert!(!fails, "{code}");
                    assert!(std::ptr::eq(same, &resp));
                }
                Err(e) => {
                    assert!(fails, "{code}");
                    assert_eq!(
                        e.kind(),
                        &ErrorKind::Status(StatusCode::from_u16(code).unwrap())
                    );
                    assert_eq!(e.url().map(Url::as_str), Some(url.as_str()));
                }
            }
            resp.bytes().await.unwrap();
        }
    });
}

/// `remote_addr` is the server's address, on a new connection and on a pooled one, and stays
/// after the body is read.
#[test]
fn remote_addr_is_the_servers_on_new_and_pooled_connections() {
    with_server(|server| async move {
        let client = Client::new();
        for _ in 0..2 {
            let mut resp = client.get(server.url("/get")).send().await.unwrap();
            assert_eq!(resp.remote_addr(), Some(server.local_addr()));
            while resp.chunk().await.unwrap().is_some() {}
            assert_eq!(resp.remote_addr(), Some(server.local_addr()));
        }
        assert_eq!(
            server.stats().connections_accepted,
            1,
            "the second request reused the first's"
        );
    });
}

/// Through an HTTP proxy, `remote_addr` is the proxy's address, as documented.
#[test]
fn remote_addr_through_a_proxy_is_the_proxys() {
    with_server(|server| async move {
        let proxy = volley_testserver::ProxyServer::bind(local()).unwrap();
        let client = Client::builder()
            .proxy(Proxy::http(&proxy.url()).unwrap())
            .build();
        let resp = client.get(server.url("/get")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.remote_addr(), Some(proxy.local_addr()));
    });
}

/// `content_length` is the declared length of a plain body, 0 for HEAD, `None` for chunked.
#[test]
fn content_length_follows_the_framing() {
    with_server(|server| async move {
        let client = Client::new();
        let resp = client.get(server.url("/bytes/1234")).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(1234));
        let resp = client.head(server.url("/bytes/1234")).send().await.unwrap();
        assert_eq!(resp.content_length(), Some(0));
        let resp = client.get(server.url("/stream/3")).send().await.unwrap();
        assert_eq!(resp.content_length(), None);
    });
}

/// `volley::Url` is `url::Url`, so a URL parsed by either is accepted.
#[test]
fn url_is_reexported() {
    let url: Url = Url::parse("http://127.0.0.1:1/x?y=1").unwrap();
    let request = Client::new().get(&url).build().unwrap();
    assert_eq!(request.url(), &url);
}

// ---------------------------------------------------------------------------------------------
// The serde conveniences (feature `json`).

#[cfg(feature = "json")]
mod json {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::error::Error as _;
    use volley::header::CONTENT_TYPE;

    /// The `/get`-like document of a request, parsed.
    async fn doc_of(request: volley::RequestBuilder) -> serde_json::Value {
        serde_json::from_str(&text_of(request).await).unwrap()
    }

    /// `.json` serializes the body and sets `Content-Type: application/json`.
    #[test]
    fn json_body_arrives_with_its_content_type() {
        with_server(|server| async move {
            let body = json!({ "id": 7, "tags": ["a", "b"], "nested": { "ok": true } });
            let echo = doc_of(Client::new().post(server.url("/post")).json(&body)).await;
            assert_eq!(echo["json"], body);
            assert_eq!(echo["headers"]["Content-Type"], "application/json");
        });
    }

    /// A `Content-Type` set before or after `.json` is kept, and sent once.
    #[test]
    fn json_keeps_a_content_type_of_the_request() {
        with_server(|server| async move {
            let client = Client::new();
            let ct = "application/vnd.api+json";
            let before = client
                .post(server.url("/post"))
                .header(CONTENT_TYPE, ct)
                .json(&[1, 2])
                .build()
                .unwrap();
            assert_eq!(before.headers().get_all(CONTENT_TYPE).iter().count(), 1);
            assert_eq!(before.headers()[CONTENT_TYPE], ct);
            let echo = doc_of(
                client
                    .post(server.url("/post"))
                    .header(CONTENT_TYPE, ct)
                    .json(&[1, 2]),
            )
            .await;
            assert_eq!(echo["headers"]["Content-Type"], ct);
            assert_eq!(echo["json"], json!([1, 2]));
        });
    }

    /// A value serde_json cannot serialize (a map with non-string keys) fails `send` as an
    /// invalid request naming the JSON body, and nothing is sent.
    #[test]
    fn json_serialization_error_is_an_invalid_request() {
        with_server(|server| async move {
            let bad: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 1)]);
            let url = server.url("/post");
            let err = Client::new()
                .post(&url)
                .json(&bad)
                .send()
                .await
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidRequest(why) if why.contains("JSON body")),
                "{err}"
            );
            assert_eq!(err.url().map(Url::as_str), Some(url.as_str()));
            assert!(
                err.to_string().contains("cannot serialize the JSON body"),
                "{err}"
            );
            assert_eq!(server.stats().requests, 0);
        });
    }

    /// `.query` appends to the URL's own query, percent-encoded, one call after another; an
    /// empty query adds no `?`.
    #[test]
    fn query_appends_to_the_urls_query() {
        with_server(|server| async move {
            let client = Client::new();
            let request = client
                .get(server.url("/get?a=1"))
                .query(&[("b", "x y")])
                .query(&BTreeMap::from([("c", "&="), ("d", "é")]))
                .build()
                .unwrap();
            assert_eq!(request.url().query(), Some("a=1&b=x+y&c=%26%3D&d=%C3%A9"));
            let echo = doc_of(client.get(server.url("/get?a=1")).query(&[("b", "x y")])).await;
            assert_eq!(echo["args"], json!({ "a": "1", "b": "x y" }));

            let empty: [(&str, &str); 0] = [];
            let request = client
                .get(server.url("/get"))
                .query(&empty)
                .build()
                .unwrap();
            assert_eq!(request.url().as_str(), server.url("/get"));
        });
    }

    /// A query serde_urlencoded cannot express (a nested map) fails `send` naming the query.
    #[test]
    fn query_serialization_error_is_an_invalid_request() {
        with_server(|server| async move {
            let err = Client::new()
                .get(server.url("/get"))
                .query(&json!({ "a": { "b": 1 } }))
                .send()
                .await
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidRequest(why) if why.contains("query")),
                "{err}"
            );
            assert_eq!(server.stats().requests, 0);
        });
    }

    /// `.form` sends an urlencoded body with its `Content-Type`; the server decodes it back.
    #[test]
    fn form_body_arrives_decoded() {
        with_server(|server| async move {
            let form = [("name", "Ann Lee"), ("sym", "a&b=c")];
            let request = Client::new()
                .post(server.url("/post"))
                .form(&form)
                .build()
                .unwrap();
            assert_eq!(
                request.body().unwrap().as_bytes().unwrap(),
                &b"name=Ann+Lee&sym=a%26b%3Dc"[..]
            );
            let echo = doc_of(Client::new().post(server.url("/post")).form(&form)).await;
            assert_eq!(echo["form"], json!({ "name": "Ann Lee", "sym": "a&b=c" }));
            assert_eq!(
                echo["headers"]["Content-Type"],
                "application/x-www-form-urlencoded"
            );
        });
    }

    /// A form serde_urlencoded cannot express (a bare number) fails `send` naming the form.
    #[test]
    fn form_serialization_error_is_an_invalid_request() {
        with_server(|server| async move {
            let err = Client::new()
                .post(server.url("/post"))
                .form(&5)
                .send()
                .await
                .unwrap_err();
            assert!(
                matches!(err.kind(), ErrorKind::InvalidRequest(why) if why.contains("form body")),
                "{err}"
            );
        });
    }

    /// `Response::json` parses the body into any `DeserializeOwned` type, decoded from gzip
    /// first when the server compressed it.
    #[test]
    fn response_json_parses_plain_and_compressed_bodies() {
        with_server(|server| async move {
            let client = Client::new();
            let doc: serde_json::Value = client
                .get(server.url("/get?x=1"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(doc["args"]["x"], "1");
            let doc: BTreeMap<String, serde_json::Value> = client
                .get(server.url("/gzip"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(doc["gzipped"], true);
        });
    }

    /// A body that is not JSON is a decode error naming the URL, its message says JSON, and
    /// the serde_json error is the source.
    #[test]
    fn response_json_error_is_a_decode_error_naming_the_url() {
        with_server(|server| async move {
            let url = server.url("/html");
            let err = Client::new()
                .get(&url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap_err();
            assert!(err.is_decode(), "{err:?}");
            assert!(matches!(err.kind(), ErrorKind::Decode(why) if why.contains("JSON")));
            assert_eq!(err.url().map(Url::as_str), Some(url.as_str()));
            let message = err.to_string();
            assert!(
                message.contains(&url) && message.contains("invalid JSON"),
                "{message}"
            );
            let source = err.source().expect("a source");
            assert!(source.downcast_ref::<serde_json::Error>().is_some());

            // JSON of the wrong shape for the type is the same kind of error.
            let err = Client::new()
                .get(server.url("/json"))
                .send()
                .await
                .unwrap()
                .json::<Vec<u8>>()
                .await
                .unwrap_err();
            assert!(err.is_decode(), "{err:?}");
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The cookie store (feature `cookies`).

#[cfg(feature = "cookies")]
mod cookies {
    use super::*;
    use volley::header::COOKIE;

    /// The cookies the test server's `/cookies` page says it received, as its JSON text.
    async fn received(client: &Client, server: &volley_testserver::Server) -> String {
        text_of(client.get(server.url("/cookies"))).await
    }

    /// `/cookies/set?a=1` sets the cookie on a 302 to `/cookies`: the redirect's next hop
    /// already sends it, and so does a later request, from a clone of the client too.
    #[test]
    fn cookie_set_by_a_redirect_goes_with_the_next_hop_and_later_requests() {
        with_server(|server| async move {
            let client = Client::builder().cookie_store(true).build();
            assert!(client.config().cookie_store());
            let page = text_of(client.get(server.url("/cookies/set?a=1&b=two"))).await;
            assert!(
                page.contains(r#""a": "1""#) && page.contains(r#""b": "two""#),
                "{page}"
            );

            let root = Url::parse(&server.url("/")).unwrap();
            let cookies = client.cookies(&root).unwrap();
            // The store's order of cookies is not fixed: compare them as a set.
            let mut pairs: Vec<&str> = cookies.to_str().unwrap().split("; ").collect();
            pairs.sort_unstable();
            assert_eq!(pairs, ["a=1", "b=two"]);
            assert!(cookies.is_sensitive());

            let page = received(&client.clone(), &server).await;
            assert!(page.contains(r#""a": "1""#), "{page}");
        });
    }

    /// A client without the store (the default) sends no cookie, even after a `Set-Cookie`.
    #[test]
    fn client_without_a_store_sends_none() {
        with_server(|server| async move {
            let client = Client::new();
            assert!(!client.config().cookie_store());
            let page = text_of(client.get(server.url("/cookies/set?a=1"))).await;
            assert!(page.contains(r#""cookies": {}"#), "{page}");
            let root = Url::parse(&server.url("/")).unwrap();
            assert_eq!(client.cookies(&root), None);
            assert!(!client.add_cookie_str("a=1", &root));
        });
    }

    /// A request's own `Cookie` header is sent instead of the store's.
    #[test]
    fn own_cookie_header_wins() {
        with_server(|server| async move {
            let client = Client::builder().cookie_store(true).build();
            text_of(client.get(server.url("/cookies/set?a=1"))).await;
            let page = text_of(client.get(server.url("/cookies")).header(COOKIE, "mine=2")).await;
            assert!(
                page.contains(r#""mine": "2""#) && !page.contains(r#""a""#),
                "{page}"
            );
        });
    }

    /// An expiring `Set-Cookie` (`/cookies/delete?a`) removes the cookie from the store.
    #[test]
    fn expired_cookie_is_removed() {
        with_server(|server| async move {
            let client = Client::builder().cookie_store(true).build();
            text_of(client.get(server.url("/cookies/set?a=1&b=2"))).await;
            let page = text_of(client.get(server.url("/cookies/delete?a"))).await;
            assert!(
                !page.contains(r#""a""#) && page.contains(r#""b": "2""#),
                "{page}"
            );
            let root = Url::parse(&server.url("/")).unwrap();
            assert_eq!(client.cookies(&root).unwrap(), "b=2");
        });
    }

    /// A cookie is sent only to the host that set it: another name for the same server gets
    /// none, until it sets its own.
    #[test]
    fn cookies_stay_with_their_host() {
        with_server(|server| async move {
            let client = Client::builder()
                .cookie_store(true)
                .resolve("other.test", server.local_addr())
                .build();
            text_of(client.get(server.url("/cookies/set?a=1"))).await;
            let other = format!("http://other.test:{}", server.local_addr().port());
            let page = text_of(client.get(format!("{other}/cookies"))).await;
            assert!(page.contains(r#""cookies": {}"#), "{page}");

            // A redirect from the other host back to 127.0.0.1 picks the store's up again.
            let back = format!("{other}/redirect-to?url={}", server.url("/cookies"));
            let page = text_of(client.get(back)).await;
            assert!(page.contains(r#""a": "1""#), "{page}");
        });
    }

    /// `add_cookie_str` seeds the store, and the cookie goes with matching requests only.
    #[test]
    fn add_cookie_str_seeds_the_store() {
        with_server(|server| async move {
            let client = Client::builder().cookie_store(true).build();
            let url = Url::parse(&server.url("/private/")).unwrap();
            assert!(client.add_cookie_str("s=1; Path=/private", &url));
            assert!(!client.add_cookie_str("not a cookie", &url));
            let page = received(&client, &server).await;
            assert!(
                page.contains(r#""cookies": {}"#),
                "path /cookies is outside /private: {page}"
            );
            assert_eq!(client.cookies(&url).unwrap(), "s=1");
        });
    }

    /// A batch through a client with a store sends and stores cookies too.
    #[test]
    fn batch_requests_use_the_store() {
        with_server(|server| async move {
            let client = Client::builder().cookie_store(true).build();
            text_of(client.get(server.url("/cookies/set?a=1"))).await;
            let report = client
                .fetch_all((0..3).map(|i| server.url(&format!("/cookies?i={i}"))))
                .run()
                .await;
            for result in &report.results {
                let fetched = result.outcome.as_ref().unwrap();
                let body = String::from_utf8_lossy(&fetched.body);
                assert!(body.contains(r#""a": "1""#), "{body}");
            }
        });
    }
}
