//! One exchange on a connection, below the policy: the request's route and head bytes
//! ([`Outgoing`]), then one [`attempt`]: a connection (from the pool, or resolved, connected,
//! tunnelled and TLS'd), the request written and the final head read; then
//! [`Outgoing::response`], a [`Response`] whose body is still on the connection. Deciding
//! what to do when an attempt fails is `policy.rs`'s job; an attempt only says whether its
//! pooled connection had gone stale.

use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONNECTION};
use http::{HeaderMap, Method};
use url::Url;

#[cfg(feature = "tls")]
use super::conn::start_tls;
use super::conn::{connect, read_head, send_request, Conn, Deadlines, Sent};
use super::context::ClientContext;
use super::error::{Error, Kind, Phase};
use super::names::resolve;
use super::pool::PoolKey;
use super::proto::encode::{basic_auth_from_url, encode_head};
use super::proto::head::{framing, has_token, ResponseHead};
use super::proxy::{open_tunnel, Route};
use super::response::{BodySource, Response};
use super::timings::Clock;

/// Bodies up to this size are sent in the same write as the head.
const JOIN_BODY_LIMIT: usize = 16 * 1024;

/// A request ready for the wire, for one hop: where it goes and the bytes to write. Made
/// once per hop; every attempt writes the same bytes.
pub(crate) struct Outgoing<'a> {
    method: &'a Method,
    url: &'a Url,
    /// The request's headers (its `User-Agent` and `Proxy-Authorization` go on a `CONNECT`).
    headers: &'a HeaderMap,
    route: Route<'a>,
    /// The encoded head, with the body when it is small enough to join it.
    head: Vec<u8>,
    /// A body too large to join the head: written after it.
    tail: &'a [u8],
    key: PoolKey,
    /// The request asked to close the connection after the response.
    client_closes: bool,
}

impl<'a> Outgoing<'a> {
    /// Routes the request (direct or through a proxy) and encodes its head. Fails before
    /// any connection for a scheme this build cannot send, or a request that cannot be
    /// encoded.
    pub(crate) fn new(
        ctx: &'a ClientContext,
        method: &'a Method,
        url: &'a Url,
        headers: &'a HeaderMap,
        body: Option<&'a Bytes>,
    ) -> Result<Outgoing<'a>, Error> {
        // Decided first, so that an https:// URL refused below still names its proxy.
        let route = ctx.proxies.route(url)?;
        let https = url.scheme() == "https";
        if url.scheme() != "http" && !(https && cfg!(feature = "tls")) {
            return Err(Error::new(Kind::UnsupportedScheme(url.scheme().to_owned())).with_url(url));
        }
        let mut head = Vec::with_capacity(256 + body.map_or(0, |b| b.len().min(JOIN_BODY_LIMIT)));
        let mut sent_headers = Cow::Borrowed(headers);
        if !headers.contains_key(AUTHORIZATION) {
            if let Some(value) = basic_auth_from_url(url) {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    sent_headers.to_mut().insert(AUTHORIZATION, value);
                }
            }
        }
        route.proxy_headers(&mut sent_headers);
        encode_head(
            &mut head,
            method,
            url,
            route.target_form(),
            &sent_headers,
            body.map(|b| b.len() as u64),
        )
        .map_err(|e| Error::new(Kind::InvalidRequest(e.to_string())).with_url(url))?;
        // A small body joins the head in one write; a large one follows it.
        let tail: &[u8] = match body {
            Some(b) if b.len() <= JOIN_BODY_LIMIT => {
                head.extend_from_slice(b);
                &[]
            }
            Some(b) => b,
            None => &[],
        };
        Ok(Outgoing {
            method,
            url,
            headers,
            route,
            head,
            tail,
            key: route.pool_key(url)?,
            client_closes: has_token(headers, &CONNECTION, "close"),
        })
    }
}

/// What an [`attempt`] got: the connection, with the final head read from it.
pub(crate) struct Exchanged {
    conn: Conn,
    head: ResponseHead,
    sent: Sent,
}

impl Outgoing<'_> {
    /// The response of a successful attempt: its body framing decided, and its body left
    /// on the connection, which goes back to the pool once the body is read.
    pub(crate) fn response(
        self,
        ctx: &ClientContext,
        exchanged: Exchanged,
        deadlines: &Deadlines,
        clock: &Clock,
    ) -> Result<Response, Error> {
        let Exchanged { conn, head, sent } = exchanged;
        let url = self.url;
        let mut plan = framing(self.method, &head).map_err(|e| {
            Error::new(Kind::InvalidResponse(e.to_string()))
                .with_url(url)
                .with_phase(Phase::ReadHead)
        })?;
        plan.reusable &= !self.client_closes && sent == Sent::Complete;
        let source = BodySource {
            conn,
            pool: ctx.pool.clone(),
            key: self.key,
            deadlines: *deadlines,
            clock: *clock,
            max_body: ctx.config.max_body_size,
            max_head: ctx.config.max_response_header_size,
        };
        Ok(Response::new(head, url.clone(), plan, source))
    }
}

/// Why an [`attempt`] failed.
pub(crate) struct Failed {
    pub(crate) error: Error,
    /// The attempt used a pooled connection and it failed before any byte of a response:
    /// the server most likely closed it while it sat idle.
    pub(crate) stale: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed {
            error,
            stale: false,
        }
    }
}

/// One attempt at `out`: a connection (a pooled one unless `fresh_only`, else resolved,
/// connected, tunnelled and TLS'd), the request written, the final head read.
///
/// A plain function returning an `async move` block, like the request future it runs in
/// (see `policy::execute`): the block captures its arguments once.
// Not an `async fn`, which would store each argument twice in every request's future.
#[allow(clippy::manual_async_fn)]
pub(crate) fn attempt<'r>(
    ctx: &'r ClientContext,
    out: &'r Outgoing<'r>,
    fresh_only: bool,
    deadlines: &'r Deadlines,
    clock: &'r mut Clock,
) -> impl Future<Output = Result<Exchanged, Failed>> + 'r {
    async move {
        let config = &ctx.config;
        let url = out.url;
        let pooled = match fresh_only {
            false => ctx.pool.checkout(&out.key).await,
            true => None,
        };
        let reused = pooled.is_some();
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut conn = match pooled {
            Some(conn) => conn,
            None => {
                let started = Instant::now();
                let (addrs, looked_up) = deadlines
                    .run(
                        Phase::Resolve,
                        url,
                        resolve(config, &ctx.dns, out.route.connect_url(url)),
                    )
                    .await?
                    .map_err(|e| e.with_url(url))?;
                let resolved = Instant::now();
                if looked_up {
                    clock.timings.dns += resolved - started;
                }
                let mut conn = connect(&addrs, deadlines, url).await?;
                if let Some(proxy) = out.route.tunnel() {
                    // Boxed: rare, and it would add its size to every request's future.
                    let max_head = config.max_response_header_size;
                    Box::pin(open_tunnel(
                        &mut conn,
                        proxy,
                        url,
                        out.headers,
                        deadlines,
                        max_head,
                    ))
                    .await?;
                }
                clock.timings.connect += resolved.elapsed();
                conn
            }
        };
        #[cfg(feature = "tls")]
        if url.scheme() == "https" && !reused {
            // Boxed: the handshake future holds a whole TLS session, and inlining it would
            // make every request's future, http:// ones too, that much larger.
            let tls = &mut clock.timings.tls;
            conn = Box::pin(start_tls(conn, &ctx.tls, deadlines, url, tls)).await?;
        }
        clock.timings.reused = reused;
        let parts: [&[u8]; 2] = [&out.head, out.tail];
        let sent = send_request(&mut conn, &parts, deadlines, url)
            .await
            .map_err(|error| Failed {
                error,
                stale: reused,
            })?;
        let max_head = config.max_response_header_size;
        let head = read_head(&mut conn, deadlines, url, max_head, clock)
            .await
            .map_err(|failure| Failed {
                error: failure.error,
                stale: reused && failure.nothing_received,
            })?;
        Ok(Exchanged { conn, head, sent })
    }
}
