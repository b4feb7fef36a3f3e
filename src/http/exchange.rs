//! One exchange on a connection, below the policy: the request's route and head bytes
//! ([`Outgoing`]), then one [`attempt`]: a connection (from the pool, or resolved, connected,
//! tunnelled and TLS'd), the request written (a streamed body after its head, piece by
//! piece: [`send_stream`]) and the final head read; then
//! [`Outgoing::response`], a [`Response`] whose body is still on the connection. Deciding
//! what to do when an attempt fails is `policy.rs`'s job; an attempt only says whether its
//! pooled connection had gone stale.

use std::borrow::Cow;
use std::future::Future;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_LENGTH};
use http::{HeaderMap, Method};
use url::Url;

use super::body::Streaming;
#[cfg(feature = "tls")]
use super::conn::start_tls;
use super::conn::{connect, read_head, send_request, Conn, Deadlines, Sent};
use super::context::ClientContext;
use super::error::{BodyFailure, Error, Kind, Phase};
use super::names::resolve;
use super::pool::PoolKey;
use super::proto::encode::{basic_auth_from_url, chunk_prefix, encode_head, BodyLen, LAST_CHUNK};
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
    /// How a streamed body is framed; `None` if the body is not streamed.
    stream: Option<BodyLen>,
    key: PoolKey,
    /// The request asked to close the connection after the response.
    client_closes: bool,
}

impl<'a> Outgoing<'a> {
    /// Routes the request (direct or through a proxy) and encodes its head. Fails before
    /// any connection for a scheme this build cannot send, or a request that cannot be
    /// encoded. `body` is a buffered body; `stream`, for a streamed one, its declared length.
    pub(crate) fn new(
        ctx: &'a ClientContext,
        method: &'a Method,
        url: &'a Url,
        headers: &'a HeaderMap,
        body: Option<&'a Bytes>,
        stream: Option<Option<u64>>,
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
        let stream = match stream {
            Some(len) => Some(stream_framing(len, headers, url)?),
            None => None,
        };
        encode_head(
            &mut head,
            method,
            url,
            route.target_form(),
            &sent_headers,
            stream.or(body.map(|b| BodyLen::Known(b.len() as u64))),
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
            stream,
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

/// How a streamed body of declared length `len` is framed: `Content-Length` if it is known,
/// from the body or from the request's own `Content-Length` header (which must then agree),
/// else chunked.
fn stream_framing(len: Option<u64>, headers: &HeaderMap, url: &Url) -> Result<BodyLen, Error> {
    let header = match headers.get(CONTENT_LENGTH) {
        None => None,
        Some(value) => {
            let parsed = value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            let why = "invalid Content-Length header for a streamed body";
            Some(parsed.ok_or_else(|| Error::new(Kind::InvalidRequest(why.into())).with_url(url))?)
        }
    };
    match (len, header) {
        (Some(len), Some(header)) if len != header => {
            let why = format!("Content-Length {header} differs from the body's length {len}");
            Err(Error::new(Kind::InvalidRequest(why)).with_url(url))
        }
        (Some(n), _) | (None, Some(n)) => Ok(BodyLen::Known(n)),
        (None, None) => Ok(BodyLen::Chunked),
    }
}

/// Writes a streamed body after its head, one piece per write (chunked: the size line, then
/// the piece), each under the write timeout; the wait for the next piece is bounded by the
/// total timeout only. A body that gives more or fewer bytes than its `Content-Length`, or
/// fails, is an error: the caller drops the connection, so the server never sees a short body
/// as complete (nor a chunked one end: its last chunk is not sent). `Interrupted` if the
/// server answered before taking it all.
async fn send_stream(
    conn: &mut Conn,
    stream: &mut Streaming,
    framing: BodyLen,
    deadlines: &Deadlines,
    url: &Url,
) -> Result<Sent, Error> {
    let declared = match framing {
        BodyLen::Known(n) => Some(n),
        BodyLen::Chunked => None,
    };
    let mismatch = |given| {
        let declared = declared.unwrap_or_default();
        Error::new(Kind::RequestBody(BodyFailure::LengthMismatch {
            declared,
            given,
        }))
        .with_url(url)
    };
    let mut given = 0u64;
    let mut prefix = Vec::new();
    let mut first = true;
    loop {
        let next = stream.next();
        let piece = match deadlines.total {
            Some((after, end)) => crate::rt::timeout_at(end, next).await.map_err(|_| {
                let phase = Phase::Send;
                Error::new(Kind::Timeout { phase, after }).with_url(url)
            })?,
            None => next.await,
        }
        .map_err(|e| e.with_url(url))?;
        let Some(piece) = piece else { break };
        if piece.is_empty() {
            continue;
        }
        given += piece.len() as u64;
        if declared.is_some_and(|declared| given > declared) {
            return Err(mismatch(given));
        }
        let parts: [&[u8]; 2] = match declared {
            Some(_) => [&piece, &[]],
            None => {
                chunk_prefix(&mut prefix, piece.len(), first);
                [&prefix, &piece]
            }
        };
        first = false;
        if send_request(conn, &parts, deadlines, url).await? == Sent::Interrupted {
            return Ok(Sent::Interrupted);
        }
    }
    match declared {
        Some(declared) if given != declared => Err(mismatch(given)),
        Some(_) => Ok(Sent::Complete),
        None => {
            let end: [&[u8]; 2] = [if first { b"" } else { b"\r\n" }, LAST_CHUNK];
            send_request(conn, &end, deadlines, url).await
        }
    }
}

/// One attempt at `out`: a connection (a pooled one unless `fresh_only`, else resolved,
/// connected, tunnelled and TLS'd), the request written (with `stream`, a streamed body, after
/// the head), the final head read.
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
    stream: Option<&'r mut Streaming>,
) -> impl Future<Output = Result<Exchanged, Failed>> + 'r {
    async move {
        let config = &ctx.config;
        let url = out.url;
        // The pooled connection, if any, lives only in this block: kept beside `conn` it
        // would take room (112 bytes) in every request's future while the request is sent
        // and its head read. A new connection's setup (resolve, connect, tunnel: 512 bytes)
        // is boxed, for the time it takes: inline, its room would stay in the request's
        // future for the whole exchange, ten thousand times over when ten thousand requests
        // wait on slow servers; boxed, it costs one allocation per new connection.
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let (mut conn, reused) = {
            let pooled = match fresh_only {
                false => ctx.pool.checkout(&out.key).await,
                true => None,
            };
            match pooled {
                Some(conn) => (conn, true),
                None => (Box::pin(fresh(ctx, out, deadlines, clock)).await?, false),
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
        let mut sent = send_request(&mut conn, &parts, deadlines, url)
            .await
            .map_err(|error| Failed {
                error,
                stale: reused,
            })?;
        if let (Some(stream), Some(framing), Sent::Complete) = (stream, out.stream, &sent) {
            // Boxed: rare, and it would add its size to every request's future.
            sent = Box::pin(send_stream(&mut conn, stream, framing, deadlines, url))
                .await
                .map_err(|error| Failed {
                    // Only an I/O error can mean a stale connection; the policy retries only
                    // if no piece of the body was taken.
                    stale: reused && matches!(error.kind(), Kind::Io(_)),
                    error,
                })?;
        }
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

/// A new connection for `out`: resolved, connected and, through a proxy that tunnels,
/// tunnelled (TLS is the caller's).
async fn fresh(
    ctx: &ClientContext,
    out: &Outgoing<'_>,
    deadlines: &Deadlines,
    clock: &mut Clock,
) -> Result<Conn, Error> {
    let config = &ctx.config;
    let url = out.url;
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
    Ok(conn)
}
