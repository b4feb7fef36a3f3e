//! [`Request`]: what a request is before it is sent (method, URL, headers, body, timeout),
//! and [`IntoUrl`], what a request URL can be given as.

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
        Url::parse(self).map_err(|e| Error::new(Kind::InvalidUrl(self.to_owned())).with_source(e))
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
