//! The endpoints for testing polite clients, which depend on the server: `/robots.txt`, as
//! [`ServerConfig::robots_txt`] sets it.
//!
//! Like `faults.rs`, this module does not import the router that calls it.
//!
//! [`ServerConfig::robots_txt`]: crate::ServerConfig::robots_txt

use super::request::Request;
use super::response::Response;
use super::{Event, Shared};

/// What `/robots.txt` says when [`ServerConfig::robots_txt`](crate::ServerConfig::robots_txt)
/// is not set.
pub(crate) const DEFAULT_ROBOTS_TXT: &str = "User-agent: *\nDisallow: /deny\n";

/// Answers the endpoints of this module; `None` for any other path.
pub(crate) fn route(shared: &Shared, req: &Request, segs: &[&str]) -> Option<Response> {
    let answer = match segs {
        ["robots.txt"] => robots(shared, req),
        _ => return None,
    };
    Some(answer.unwrap_or_else(|response| response))
}

/// `/robots.txt`: the configured document, else [`DEFAULT_ROBOTS_TXT`]; every request counts.
fn robots(shared: &Shared, req: &Request) -> Result<Response, Response> {
    shared.count(Event::RobotsFetch);
    if req.method != "GET" && req.method != "HEAD" {
        return Err(Response::text(405, "method not allowed\n").header("Allow", "GET, HEAD"));
    }
    Ok(match &shared.config.robots_txt {
        Some(robots) => {
            Response::new(robots.status).body(&robots.content_type, robots.body.clone())
        }
        None => Response::text(200, DEFAULT_ROBOTS_TXT),
    })
}
