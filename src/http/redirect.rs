//! The redirect [`Policy`], and how a request changes when it follows a redirect.

use http::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, PROXY_AUTHORIZATION,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, StatusCode};
use url::Url;

/// How many redirects a client follows.
///
/// The default follows up to 10. Statuses 301, 302, 303, 307 and 308 with a `Location` are
/// followed; 303, and 301 or 302 after a POST, become a GET without a body; 307 and 308 keep
/// the method and body. `http` and `https` targets are followed (`https` with the `tls`
/// feature); any other scheme is an error.
///
/// `Authorization`, `Cookie` and `Proxy-Authorization` are dropped when the origin changes:
/// the scheme, the host or the port (RFC 6454). A change of scheme alone is a change of
/// origin both ways: https → http would send them in clear text, and http → https on the same
/// host goes to another port (443, not 80) that may belong to someone else. reqwest drops them
/// on a change of host or port (with default ports filled in), which covers the same cases
/// except a scheme change on an explicit, unchanged port; volley drops them then too.
/// Credentials in a URL's userinfo are never carried to the next hop either: each hop sends
/// only those of its own URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    max: usize,
}

impl Policy {
    /// Follow at most `max` redirects; one more is an error.
    pub fn limited(max: usize) -> Policy {
        Policy { max }
    }

    /// Follow none: a 3xx is returned as the response.
    pub fn none() -> Policy {
        Policy { max: 0 }
    }

    /// The most redirects followed.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::limited(10)
    }
}

/// Whether `status` is a redirect this client follows.
pub(crate) fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Rewrites `method`, `headers` and whether to keep the body for a redirect with `status`
/// from `from` to `to`. Returns whether the body is kept.
pub(crate) fn follow(
    status: StatusCode,
    from: &Url,
    to: &Url,
    method: &mut Method,
    headers: &mut HeaderMap,
) -> bool {
    let to_get = match status.as_u16() {
        303 => *method != Method::HEAD,
        301 | 302 => *method == Method::POST,
        _ => false,
    };
    if to_get {
        *method = Method::GET;
        for name in [
            CONTENT_TYPE,
            CONTENT_LENGTH,
            CONTENT_ENCODING,
            TRANSFER_ENCODING,
        ] {
            headers.remove(name);
        }
    }
    let same_origin = from.scheme() == to.scheme()
        && from.host_str() == to.host_str()
        && from.port_or_known_default() == to.port_or_known_default();
    if !same_origin {
        for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
            headers.remove(name);
        }
    }
    !to_get
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Method and body rewriting per status, and credentials dropped across origins.
    #[test]
    fn rewrites_per_rfc_9110() {
        let a = Url::parse("http://a.test/x").unwrap();
        let a2 = Url::parse("http://a.test/y").unwrap();
        let b = Url::parse("http://b.test/y").unwrap();
        let a_port = Url::parse("http://a.test:8080/y").unwrap();
        let cases = [
            (303, Method::POST, &a2, Method::GET, false),
            (303, Method::PUT, &a2, Method::GET, false),
            (303, Method::HEAD, &a2, Method::HEAD, true),
            (301, Method::POST, &a2, Method::GET, false),
            (302, Method::POST, &a2, Method::GET, false),
            (302, Method::PUT, &a2, Method::PUT, true),
            (301, Method::GET, &a2, Method::GET, true),
            (307, Method::POST, &a2, Method::POST, true),
            (308, Method::PUT, &a2, Method::PUT, true),
        ];
        for (status, method, to, want_method, want_body) in cases {
            let mut m = method.clone();
            let mut h = HeaderMap::new();
            let keep = follow(
                StatusCode::from_u16(status).unwrap(),
                &a,
                to,
                &mut m,
                &mut h,
            );
            assert_eq!((m, keep), (want_method, want_body), "{status} {method}");
        }
        let a_https = Url::parse("https://a.test/y").unwrap();
        let a_https_80 = Url::parse("https://a.test:80/y").unwrap();
        for (to, kept) in [
            (&a2, true),
            (&b, false),
            (&a_port, false),
            (&a_https, false),
            (&a_https_80, false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, "Basic x".parse().unwrap());
            h.insert(COOKIE, "a=b".parse().unwrap());
            h.insert(PROXY_AUTHORIZATION, "Basic y".parse().unwrap());
            h.insert("x-other", "1".parse().unwrap());
            follow(StatusCode::FOUND, &a, to, &mut Method::GET.clone(), &mut h);
            assert_eq!(h.contains_key(AUTHORIZATION), kept, "{to}");
            assert_eq!(h.contains_key(COOKIE), kept, "{to}");
            assert_eq!(h.contains_key(PROXY_AUTHORIZATION), kept, "{to}");
            assert!(h.contains_key("x-other"));
        }
        // https → http, same host and port: dropped.
        let secure = Url::parse("https://a.test/x").unwrap();
        let plain_443 = Url::parse("http://a.test:443/x").unwrap();
        for to in [&a, &plain_443] {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, "Basic x".parse().unwrap());
            follow(
                StatusCode::FOUND,
                &secure,
                to,
                &mut Method::GET.clone(),
                &mut h,
            );
            assert!(!h.contains_key(AUTHORIZATION), "{to}");
        }
    }
}
