//! robots.txt (RFC 9309): which URLs a crawler may fetch, and how slowly.
//!
//! [`Robots`] is one file's rules for one crawler, parsed from bytes (`rules.rs`, sans-IO);
//! [`RobotsCache`] fetches each origin's robots.txt with a [`Client`](crate::Client), once
//! per origin however many tasks ask, keeps it for a day, and answers
//! [`check`](RobotsCache::check) with a [`RobotsVerdict`]: allowed (with the origin's crawl
//! delay), disallowed, or deferred while the file is unreachable (`cache.rs`).
//!
//! ```
//! use volley::robots::{RobotsCache, RobotsVerdict};
//! use volley::{Client, Runtime, Url};
//!
//! Runtime::new()?.block_on(async {
//!     let server = volley_testserver::Server::bind("127.0.0.1:0".parse().unwrap())?;
//!     let robots = RobotsCache::new(Client::new(), "volley");
//!     for path in ["/html", "/deny"] {
//!         let url = Url::parse(&server.url(path))?;
//!         match robots.check(&url).await {
//!             RobotsVerdict::Allowed { .. } => { /* fetch it */ }
//!             RobotsVerdict::Disallowed => assert_eq!(path, "/deny"),
//!             RobotsVerdict::Deferred(why) => println!("{url}: later ({why})"),
//!         }
//!     }
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Where it sits: above `http`, whose client fetches the files (with a redirect limit of its
//! own per request), and `rt`, which runs each fetch as a task; below `batch`. Nothing of
//! `http` imports it.

mod cache;
mod rules;

pub use cache::{
    RobotsCache, RobotsCacheBuilder, RobotsStatus, RobotsVerdict, Unavailable, Unreachable,
};
pub use rules::{Robots, MAX_ROBOTS_BYTES};
