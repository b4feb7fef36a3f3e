//! Policy: the path a built request takes on its way to the wire, and back. Between "request
//! built" ([`execute`] merges the headers and picks the content codings) and "one exchange
//! on a connection" (`exchange.rs`), it decides whether to try again and where to go next:
//!
//! - the stale-connection retry: a pooled connection that fails before any byte of a
//!   response is replaced by a fresh one, once, for a method that may be sent twice, unless
//!   a streamed body had begun (it cannot be sent again) ([`exchange`]);
//! - the redirect loop: whether a response is final, or which URL the next hop goes to
//!   ([`next_hop`]; how the request changes is [`redirect::follow`]). A 307 or 308, which
//!   keeps the body, is the final response when the body was streamed: it was sent once and
//!   cannot be sent again (reqwest does the same).
//! - cookies, with a store (feature `cookies`): each hop sends the stored cookies for its URL
//!   and stores its response's `Set-Cookie` fields (`cookies.rs`), so a cookie set by a
//!   redirect goes with the next hop.
//!
//! This is where retries, backoff and rate limits go: each decision here sees the request,
//! the attempt's outcome and the client's [`Config`](crate::Config), and may wait before the
//! next attempt. Keep the request future small while doing so: the functions here return
//! `async move` blocks rather than being `async fn`s (which store each argument twice), and
//! rare paths are boxed.

use std::borrow::Cow;
use std::future::Future;

use http::header::{ACCEPT_ENCODING, COOKIE, LOCATION};
use http::{HeaderMap, Method};
use url::Url;

use super::body::Body;
use super::conn::Deadlines;
use super::context::ClientContext;
use super::error::{Error, Kind, Phase};
use super::exchange::{attempt, Outgoing};
use super::proto::decode;
use super::redirect::{self, Policy};
use super::request::RequestCow;
use super::response::Response;
use super::timings::Clock;

/// A body this small is read to the end when a redirect is followed, so its connection can be
/// reused; a larger one closes its connection.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// The request future: sends `request`, follows redirects per the policy, and returns the
/// final response once its head has arrived.
///
/// Written as a plain function that returns an `async move` block: an `async fn` keeps each
/// argument twice (the captured one and the local it moves into), and this future lives in
/// every in-flight request. The block captures `hop` and works on it in place.
pub(crate) fn execute<'a>(
    ctx: &'a ClientContext,
    request: RequestCow<'a>,
    clock: Clock,
) -> impl Future<Output = Result<Response, Error>> + 'a {
    let config = &ctx.config;
    // An owned request gives up its parts; a borrowed one (a batch keeps its requests, to
    // send one again if no descriptor was free) is copied as far as a redirect may change it.
    // A borrowed request's streamed body cannot be taken (nor sent twice): refused below.
    let (method, url, own_headers, body, timeout, redirect, unsendable) = match request {
        RequestCow::Owned(r) => (
            r.method,
            r.url,
            Cow::Owned(r.headers),
            r.body,
            r.timeout,
            r.redirect,
            false,
        ),
        RequestCow::Borrowed(r) => {
            let body = r.body.as_ref().map(Body::try_clone);
            let unsendable = matches!(body, Some(None));
            (
                r.method.clone(),
                r.url.clone(),
                Cow::Borrowed(&r.headers),
                body.flatten(),
                r.timeout,
                r.redirect,
                unsendable,
            )
        }
    };
    let redirect = redirect.unwrap_or(config.redirect);
    let own_accept_encoding = own_headers.contains_key(ACCEPT_ENCODING);
    let mut hop = Hop {
        method,
        url,
        headers: merge_headers(&config.default_headers, own_headers),
        body,
        clock,
    };
    let codings = decode::for_request(config.decoding, own_accept_encoding, &mut hop.headers);
    // The cookie store fills in `Cookie` per hop, unless the request (or the client's
    // defaults) has its own.
    let store_cookies = ctx.cookies.enabled() && !hop.headers.contains_key(COOKIE);
    async move {
        let hop = &mut hop;
        if unsendable {
            let why = "a streamed body cannot be sent from a borrowed request \
                       (a batch keeps its requests to send them again: give it buffered bodies)";
            return Err(Error::new(Kind::InvalidRequest(why.into())).with_url(&hop.url));
        }
        // The clocks start when the request is first polled.
        let deadlines = Deadlines::start(
            timeout.or(config.timeout),
            config.connect_timeout,
            config.read_timeout,
        );
        let mut followed = 0;
        loop {
            if store_cookies {
                ctx.cookies.add_to(&hop.url, &mut hop.headers);
            }
            // The response lives only in this block: the drain below owns it, and a local
            // kept beside the drain would hold a whole response's room in every request's
            // future.
            let (drain, next) = {
                let response = exchange(
                    ctx,
                    &hop.method,
                    &hop.url,
                    &hop.headers,
                    hop.body.as_mut(),
                    &deadlines,
                    &mut hop.clock,
                )
                .await
                .map_err(|e| ctx.proxies.annotate(e, &hop.url))?;
                ctx.cookies.store(&hop.url, response.headers());
                let Some(next) = next_hop(&response, &hop.url, followed, redirect)? else {
                    return Ok(response.decoded(codings));
                };
                if !redirect::follow(
                    response.status(),
                    &hop.url,
                    &next,
                    &mut hop.method,
                    hop.headers.to_mut(),
                ) {
                    hop.body = None;
                } else if hop.body.as_ref().is_some_and(Body::is_stream) {
                    // A 307 or 308 would send the body again, and a streamed one was
                    // consumed: the redirect is the answer.
                    return Ok(response.decoded(codings));
                }
                // Boxed: the drain holds a whole response, and inlining it would make every
                // request's future that much larger for the rare redirect.
                (Box::pin(response.discard(DRAIN_LIMIT)), next)
            };
            drain.await;
            hop.url = next;
            followed += 1;
        }
    }
}

/// One hop: an [`attempt`] on a pooled connection or a new one. A pooled connection that
/// fails before any response byte is replaced by a fresh one, once, for idempotent methods:
/// the server closed it while it sat idle. Not once a streamed body has begun: the failure
/// is the answer, as the body cannot be sent again.
// Not an `async fn`, which would store each argument twice in every request's future.
#[allow(clippy::manual_async_fn)]
fn exchange<'a>(
    ctx: &'a ClientContext,
    method: &'a Method,
    url: &'a Url,
    headers: &'a HeaderMap,
    body: Option<&'a mut Body>,
    deadlines: &'a Deadlines,
    clock: &'a mut Clock,
) -> impl Future<Output = Result<Response, Error>> + 'a {
    async move {
        let (bytes, mut stream) = match body {
            Some(body) => body.parts_mut(),
            None => (None, None),
        };
        let declared = stream.as_deref().map(|s| s.len());
        let out = Outgoing::new(ctx, method, url, headers, bytes, declared)?;
        let mut fresh_only = false;
        let exchanged = loop {
            match attempt(
                ctx,
                &out,
                fresh_only,
                deadlines,
                clock,
                stream.as_deref_mut(),
            )
            .await
            {
                Ok(exchanged) => break exchanged,
                Err(failed)
                    if failed.stale
                        && is_idempotent(method)
                        && !stream.as_deref().is_some_and(|s| s.started()) =>
                {
                    fresh_only = true
                }
                Err(failed) => return Err(failed.error),
            }
        };
        out.response(ctx, exchanged, deadlines, clock)
    }
}

/// Where a response sends the request next: `None` if it is the final response (not a
/// redirect, no `Location`, or redirects off), the next URL if the redirect is to be
/// followed, an error if it may not be (one too many, an invalid `Location`, or a scheme
/// other than `http` and `https`).
fn next_hop(
    response: &Response,
    url: &Url,
    followed: usize,
    policy: Policy,
) -> Result<Option<Url>, Error> {
    let max = policy.max();
    let location = response.headers().get(LOCATION);
    if !redirect::is_redirect(response.status()) || location.is_none() || max == 0 {
        return Ok(None);
    }
    if followed >= max {
        return Err(Error::new(Kind::TooManyRedirects(max)).with_url(url));
    }
    let next = location
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url.join(l).ok())
        .ok_or_else(|| {
            Error::new(Kind::InvalidResponse(
                "redirect with an invalid location".into(),
            ))
            .with_url(url)
            .with_phase(Phase::ReadHead)
        })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(Error::new(Kind::UnsupportedScheme(next.scheme().to_owned())).with_url(&next));
    }
    Ok(Some(next))
}

/// What a request carries from hop to hop while redirects are followed.
struct Hop<'a> {
    method: Method,
    url: Url,
    /// The client's default headers, borrowed while the request adds none of its own.
    headers: Cow<'a, HeaderMap>,
    body: Option<Body>,
    clock: Clock,
}

/// The client's default headers with the request's own on top: a request's header replaces
/// every default of that name. Borrows the defaults when the request has no headers.
fn merge_headers<'a>(defaults: &'a HeaderMap, own: Cow<'_, HeaderMap>) -> Cow<'a, HeaderMap> {
    if own.is_empty() {
        return Cow::Borrowed(defaults);
    }
    let mut headers = defaults.clone();
    for name in own.keys() {
        headers.remove(name);
    }
    match own {
        Cow::Owned(own) => headers.extend(own),
        Cow::Borrowed(own) => {
            for (name, value) in own {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    Cow::Owned(headers)
}

/// GET, HEAD, PUT, DELETE, OPTIONS and TRACE may be sent twice (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}
