//! [`Request`]: what a request is before it is sent (method, URL, headers, body, timeout),
//! and [`IntoUrl`], what a request URL can be given as.

use std::cell::RefCell;
use std::time::Duration;

use http::{HeaderMap, Method};
use url::Url;

use super::body::Body;
use super::error::{Error, Kind};
use super::redirect::Policy;

/// A request ready to send: method, URL, headers, optional body and timeout.
///
/// Not `Clone`, as its body may be a stream that can be sent only once:
/// [`try_clone`](Self::try_clone) copies a request whose body is buffered (or absent).
#[derive(Debug)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    /// The request's own headers; the client's defaults are added when it is sent.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Body>,
    /// The total timeout of this request, overriding the client's.
    pub(crate) timeout: Option<Duration>,
    /// The redirect policy of this request, overriding the client's (crate-internal: the
    /// robots.txt fetch follows its own number of redirects).
    pub(crate) redirect: Option<Policy>,
}

impl Request {
    /// A request with no headers of its own and no body.
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            timeout: None,
            redirect: None,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The request's own headers (the client's defaults are added when sent).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// The body, if any.
    pub fn body(&self) -> Option<&Body> {
        self.body.as_ref()
    }

    /// The body, to change or take.
    pub fn body_mut(&mut self) -> &mut Option<Body> {
        &mut self.body
    }

    /// A copy of the request, or `None` if its body is a stream (which can be sent only
    /// once; see [`Body`]).
    pub fn try_clone(&self) -> Option<Request> {
        let body = match &self.body {
            Some(body) => Some(body.try_clone()?),
            None => None,
        };
        Some(Request {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body,
            timeout: self.timeout,
            redirect: self.redirect,
        })
    }

    /// The URL, taking the request apart.
    pub(crate) fn into_url(self) -> Url {
        self.url
    }
}

/// A request to send, given away or lent: a `Cow` for a type that is not `Clone` (a batch
/// lends its requests, to send one again if no descriptor was free).
#[derive(Debug)]
// As `Cow` is: moved once into the request future, where boxing would cost an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RequestCow<'a> {
    Owned(Request),
    Borrowed(&'a Request),
}

/// Something that can be a request URL: `&str`, `String`, or a parsed `Url`. A string with
/// CR, LF or NUL in it is an [`Kind::InvalidUrl`], though the URL parser would accept it.
pub trait IntoUrl: sealed::Sealed {
    /// Parses into a URL, or says why not.
    fn into_url(self) -> Result<Url, Error>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for url::Url {}
    impl Sealed for &url::Url {}
}

impl IntoUrl for &str {
    fn into_url(self) -> Result<Url, Error> {
        // The URL parser would drop CR and LF silently and percent-encode NUL, sending another
        // request than the one asked for: refuse them instead.
        if self.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(Error::new(Kind::InvalidUrl(self.to_owned()))
                .with_source("the url contains CR, LF or NUL"));
        }
        parse(self).map_err(|e| Error::new(Kind::InvalidUrl(self.to_owned())).with_source(e))
    }
}

impl IntoUrl for String {
    fn into_url(self) -> Result<Url, Error> {
        self.as_str().into_url()
    }
}

impl IntoUrl for &String {
    fn into_url(self) -> Result<Url, Error> {
        self.as_str().into_url()
    }
}

impl IntoUrl for Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self)
    }
}

impl IntoUrl for &Url {
    fn into_url(self) -> Result<Url, Error> {
        Ok(self.clone())
    }
}

/// How many origins [`parse`] remembers on each thread.
const RECENT_ORIGINS: usize = 8;

/// The `http` and `https` URLs (without credentials) of the last [`RECENT_ORIGINS`] origins
/// this thread parsed from strings, and which one the next new origin replaces.
#[derive(Default)]
struct Recent {
    urls: Vec<Url>,
    next: usize,
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::default();
}

/// `Url::parse(s)`, with the same result, and faster when `s` has the origin of one of the
/// last few URLs this thread parsed (a batch over a few hosts, a load test): then only its
/// path, query and fragment are parsed, against that URL (see [`parse_near`]). Parsing the
/// origin is most of the work: an IP address, or a domain name through IDNA.
fn parse(s: &str) -> Result<Url, url::ParseError> {
    RECENT.with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return Url::parse(s);
        };
        if let Some(url) = recent.urls.iter().find_map(|base| parse_near(s, base)) {
            return Ok(url);
        }
        let url = Url::parse(s)?;
        // Credentials are not kept past their request.
        let credentials = !url.username().is_empty() || url.password().is_some();
        if matches!(url.scheme(), "http" | "https") && !credentials {
            let Recent { urls, next } = &mut *recent;
            let origin = &url[..url::Position::BeforePath];
            if let Some(same) = urls
                .iter_mut()
                .find(|u| &u[..url::Position::BeforePath] == origin)
            {
                // A URL of a known origin that had to be parsed whole (`//x`, upper case).
                *same = url.clone();
            } else if urls.len() < RECENT_ORIGINS {
                urls.push(url.clone());
            } else {
                urls[*next] = url.clone();
                *next = (*next + 1) % RECENT_ORIGINS;
            }
        }
        Ok(url)
    })
}

/// `s` parsed against `base`, if `s` is `base`'s serialized scheme, userinfo, host and port
/// followed by a path that begins with one `/`, with no C0 control and no trailing space:
/// then joining that path to `base` gives what parsing `s` whole gives, by the same code for
/// the path, query and fragment. `None` for anything else (`//x` or `/\x` would be read as
/// an authority; the parser strips tabs and newlines and trims the ends).
fn parse_near(s: &str, base: &Url) -> Option<Url> {
    if !matches!(base.scheme(), "http" | "https") {
        return None;
    }
    let rest = s.strip_prefix(&base[..url::Position::BeforePath])?;
    let bytes = rest.as_bytes();
    let path_absolute = bytes.first() == Some(&b'/') && !matches!(bytes.get(1), Some(b'/' | b'\\'));
    if !path_absolute || bytes.iter().any(|&b| b < 0x20) || bytes.last() == Some(&b' ') {
        return None;
    }
    base.join(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever `parse_near` answers, it answers what `Url::parse` does: tricky paths and
    /// 30,000 generated ones against bases with a port, userinfo, IPv6 and the default port.
    #[test]
    fn parse_near_is_parse() {
        let bases = [
            "http://127.0.0.1:8080/a/b?q#f",
            "https://u:p@example.com/",
            "http://[::1]:9/x",
            "http://example.com",
            "https://xn--bcher-kva.example/",
        ];
        let tricky = [
            "/",
            "/a",
            "/a/../b",
            "/./x",
            "/%2e%2e/x",
            "/a?b#c",
            "/?",
            "/#",
            "/\\x",
            "//x",
            "/a b",
            "/\u{e4}",
            "/a\tb",
            "/x ",
            "/@x",
            "/:80",
            "/a\\b",
            "/%zz",
            "/a?b c#d e",
            "x",
            "",
            "?q",
            "#f",
            ".evil/",
            ":81/",
            "/..",
            "/a/./b/../../c",
            "/\u{7f}",
        ];
        let alphabet = [
            "/", "\\", ".", "%", "2e", "a", "?", "#", " ", "\u{e4}", "@", ":", "[", "|", "\t", "..",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut hits = 0;
        for base in bases {
            let base = Url::parse(base).unwrap();
            let prefix = &base[..url::Position::BeforePath];
            let mut rests: Vec<String> = tricky.iter().map(|t| t.to_string()).collect();
            for _ in 0..6_000 {
                let len = 1 + next() % 7;
                let rest: String = std::iter::once("/")
                    .chain((0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]))
                    .collect();
                rests.push(rest);
            }
            for rest in rests {
                let s = format!("{prefix}{rest}");
                if let Some(near) = parse_near(&s, &base) {
                    hits += 1;
                    assert_eq!(Some(&near), Url::parse(&s).ok().as_ref(), "{s:?}");
                    assert_eq!(near.as_str(), Url::parse(&s).unwrap().as_str());
                }
            }
        }
        // Most generated paths begin with one `/` and have no tab: those are answered.
        assert!(hits > 15_000, "parse_near answered {hits} times only");
    }

    /// Another origin, another scheme, or a URL that reads as another authority is parsed
    /// whole; the thread keeps the last few origins it parsed.
    #[test]
    fn parse_follows_the_last_origin() {
        let cases = [
            "http://a.test/x",
            "http://a.test/y?z=1",
            "http://a.test.evil/y",
            "http://a.test//b.test/",
            "https://a.test/x",
            "http://a.test:81/x",
            "HTTP://A.TEST/x",
            "http://a.test/\\b",
            "ftp://a.test/x",
            "http://a.test/x",
        ];
        for s in cases {
            assert_eq!(parse(s), Url::parse(s), "{s}");
        }
        assert_eq!(parse("not a url"), Url::parse("not a url"));
        let secret = "http://user:secret@c.test/x";
        assert_eq!(parse(secret), Url::parse(secret));
        // One URL per origin is kept, the last parsed whole: for `http://a.test`,
        // `http://a.test/\\b` (now `http://a.test//b`; the last case was parsed against it);
        // not the `ftp` one, nor the one with credentials.
        RECENT.with(|r| {
            let kept: Vec<String> = r.borrow().urls.iter().map(|u| u.to_string()).collect();
            let want = [
                "http://a.test//b",
                "http://a.test.evil/y",
                "https://a.test/x",
                "http://a.test:81/x",
            ];
            assert_eq!(kept, want);
        });
        // Past eight origins, the oldest makes room, and still each parse is `Url::parse`'s.
        for i in 0..20 {
            let s = format!("http://h{i}.test/p?{i}");
            assert_eq!(parse(&s), Url::parse(&s));
            assert_eq!(parse(&s), Url::parse(&s));
        }
        RECENT.with(|r| assert_eq!(r.borrow().urls.len(), RECENT_ORIGINS));
    }
}
