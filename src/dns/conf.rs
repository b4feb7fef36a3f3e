//! `/etc/resolv.conf`, read the way glibc reads it (resolv.conf(5), glibc
//! `resolv/res_init.c`), and the order in which a name is tried against the search list
//! (glibc `res_nsearch`).
//!
//! - A keyword counts only at the start of a line and followed by a space or a tab, as in
//!   glibc and musl; lines starting with `#` or `;` are comments, and so is the rest of a line
//!   from a `#` or `;` (glibc cuts `nameserver` values there; here every line is cut).
//!   Unknown keywords and unparsable values are skipped, never an error.
//! - `nameserver ADDR`: IPv4 or IPv6, on port 53, at most [`MAX_NAMESERVERS`]. A scoped IPv6
//!   address is used when its zone is a number (`fe80::1%2`); one with an interface name
//!   (`fe80::1%eth0`) is skipped, since mapping a name to an index is I/O.
//! - `domain NAME` and `search NAME...`: whichever comes last wins.
//! - `options`: `ndots:N` (at most 15), `timeout:N` (seconds, at most 30), `attempts:N` (at
//!   most 5), `rotate`, `edns0`; numbers are read like C's `atoi` (leading digits, else 0)
//!   and clamped as glibc clamps. Unlike glibc, a timeout or attempts of 0 is raised to 1,
//!   so that a server is always asked (glibc's `res_send` does that for the timeout).
//!
//! Defaults when absent: the name server `127.0.0.1:53`, ndots 1, timeout 5 s, 2 attempts.
//!
//! The environment ([`ResolvConf::apply_environment`], given the values so that it stays
//! sans-IO): `LOCALDOMAIN` replaces the file's search list (glibc then ignores the file's
//! `domain` and `search` lines; an empty value gives an empty list); `RES_OPTIONS` is read as
//! one more `options` line, after the file's. When neither the file nor `LOCALDOMAIN` gave a
//! search list, the domain part of the host name (what follows its first dot) is the search
//! list, as glibc does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// The most name servers used (glibc's `MAXNS`).
pub(crate) const MAX_NAMESERVERS: usize = 3;

/// The largest `ndots` (glibc's `RES_MAXNDOTS`).
pub(crate) const MAX_NDOTS: u8 = 15;

/// The largest `timeout`, in seconds (glibc's `RES_MAXRETRANS`).
pub(crate) const MAX_TIMEOUT: u64 = 30;

/// The largest `attempts` (glibc's `RES_MAXRETRY`).
pub(crate) const MAX_ATTEMPTS: u8 = 5;

/// The DNS port.
const PORT: u16 = 53;

/// A parsed resolv.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvConf {
    /// The servers, in file order; never empty.
    pub(crate) nameservers: Vec<SocketAddr>,
    /// The search list, without trailing dots.
    pub(crate) search: Vec<String>,
    /// Names with at least this many dots are tried as they are first.
    pub(crate) ndots: u8,
    /// How long to wait for one server's answer.
    pub(crate) timeout: Duration,
    /// How many rounds over the servers.
    pub(crate) attempts: u8,
    /// Start each query at the next server, not always the first.
    pub(crate) rotate: bool,
    /// Send an EDNS0 OPT record.
    pub(crate) edns0: bool,
    /// Whether a `domain` or `search` line set the search list (even to nothing).
    pub(crate) search_set: bool,
}

impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), PORT)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            edns0: false,
            search_set: false,
        }
    }
}

/// The keyword's value if `line` is `keyword`, then a space or a tab, then the value.
fn keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// The number at the start of `s`, as C's `atoi` reads it (0 when there is none; a sign is
/// read, and a negative number gives 0 here).
fn atoi(s: &str) -> u64 {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.starts_with('-') {
        return 0;
    }
    digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
}

/// A name server address: IPv4, IPv6, or IPv6 with a numeric zone.
fn nameserver(value: &str) -> Option<SocketAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, PORT));
    }
    let (addr, zone) = value.split_once('%')?;
    let scope = zone.parse::<u32>().ok()?;
    let ip = addr.parse().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, PORT, 0, scope)))
}

impl ResolvConf {
    /// Parses the text of a resolv.conf. Never fails; see the module docs.
    pub(crate) fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            if let Some(value) = keyword(line, "nameserver") {
                let first = value.split_ascii_whitespace().next().unwrap_or("");
                if conf.nameservers.len() < MAX_NAMESERVERS {
                    if let Some(addr) = nameserver(first) {
                        conf.nameservers.push(addr);
                    }
                }
            } else if let Some(value) = keyword(line, "domain") {
                if let Some(domain) = value.split_ascii_whitespace().next() {
                    conf.search = search_list([domain]);
                    conf.search_set = true;
                }
            } else if let Some(value) = keyword(line, "search") {
                conf.search = search_list(value.split_ascii_whitespace());
                conf.search_set = true;
            } else if let Some(value) = keyword(line, "options") {
                conf.apply_options(value);
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf
    }

    /// Applies the environment glibc reads (see the module docs): `LOCALDOMAIN`,
    /// `RES_OPTIONS`, and the host name, which gives the search list when nothing else did.
    pub(crate) fn apply_environment(
        &mut self,
        localdomain: Option<&str>,
        res_options: Option<&str>,
        hostname: Option<&str>,
    ) {
        if let Some(domains) = localdomain {
            self.search = search_list(domains.split_ascii_whitespace());
            self.search_set = true;
        }
        if let Some(options) = res_options {
            self.apply_options(options);
        }
        if !self.search_set {
            let domain = hostname.and_then(|h| h.split_once('.')).map(|(_, d)| d);
            self.search = search_list(domain);
        }
    }

    /// Applies an `options` value (also the format of `RES_OPTIONS`).
    pub(crate) fn apply_options(&mut self, options: &str) {
        for option in options.split_ascii_whitespace() {
            if let Some(n) = option.strip_prefix("ndots:") {
                self.ndots = atoi(n).min(u64::from(MAX_NDOTS)) as u8;
            } else if let Some(n) = option.strip_prefix("timeout:") {
                self.timeout = Duration::from_secs(atoi(n).clamp(1, MAX_TIMEOUT));
            } else if let Some(n) = option.strip_prefix("attempts:") {
                self.attempts = atoi(n).clamp(1, u64::from(MAX_ATTEMPTS)) as u8;
            } else if option == "rotate" {
                self.rotate = true;
            } else if option == "edns0" {
                self.edns0 = true;
            }
        }
    }
}

/// Search domains without trailing dots; the root (`.`) and empty ones are dropped.
fn search_list<'a>(domains: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    domains
        .into_iter()
        .map(|d| d.trim_end_matches('.'))
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The names to query for `name`, in glibc's order (`res_nsearch`):
///
/// - an absolute name (a trailing dot): only itself;
/// - a name with at least `ndots` dots: itself, then with each search domain appended;
/// - otherwise: with each search domain appended, then itself.
///
/// An empty name gives nothing.
pub(crate) fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    if name.is_empty() {
        return Vec::new();
    }
    if name.ends_with('.') {
        return vec![name.to_owned()];
    }
    let dots = name.bytes().filter(|&b| b == b'.').count();
    let searched = conf.search.iter().map(|domain| format!("{name}.{domain}"));
    if dots >= usize::from(conf.ndots) {
        std::iter::once(name.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_owned())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults() {
        let want = ResolvConf::default();
        assert_eq!(want.nameservers, vec![addr("127.0.0.1:53")]);
        assert_eq!((want.ndots, want.attempts), (1, 2));
        assert_eq!(want.timeout, Duration::from_secs(5));
        for text in [
            "",
            "\n\n",
            "# only a comment\n",
            "garbage\n\x00\u{feff}",
            "nameserver",
        ] {
            assert_eq!(ResolvConf::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_typical_file() {
        let text = "\
# Generated by NetworkManager
search corp.example.com example.com.
nameserver 192.0.2.53
nameserver 2001:db8::53 # the v6 one
options edns0 ndots:2 trust-ad timeout:3 attempts:4 rotate
";
        let conf = ResolvConf::parse(text);
        assert_eq!(
            conf,
            ResolvConf {
                nameservers: vec![addr("192.0.2.53:53"), addr("[2001:db8::53]:53")],
                search: vec!["corp.example.com".into(), "example.com".into()],
                ndots: 2,
                timeout: Duration::from_secs(3),
                attempts: 4,
                rotate: true,
                edns0: true,
                search_set: true,
            }
        );
    }

    /// Table: one file, and the fields to check.
    #[test]
    fn lines() {
        type Check = fn(&ResolvConf) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            (
                "at most three servers",
                "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n",
                |c| c.nameservers.len() == 3 && c.nameservers[2] == addr("10.0.0.3:53"),
            ),
            (
                "a bad server does not count toward the three",
                "nameserver nope\nnameserver 10.0.0.1\nnameserver 300.1.1.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
                |c| c.nameservers == [addr("10.0.0.1:53"), addr("10.0.0.2:53"), addr("10.0.0.3:53")],
            ),
            (
                "numeric zone",
                "nameserver fe80::1%2\n",
                |c| c.nameservers == [addr("[fe80::1%2]:53")],
            ),
            (
                "named zone skipped",
                "nameserver fe80::1%eth0\nnameserver 10.0.0.1\n",
                |c| c.nameservers == [addr("10.0.0.1:53")],
            ),
            (
                "only named zone: the default",
                "nameserver fe80::1%eth0\n",
                |c| c.nameservers == [addr("127.0.0.1:53")],
            ),
            (
                "a port is not glibc syntax",
                "nameserver 10.0.0.1:5353\nnameserver [::1]:53\n",
                |c| c.nameservers == [addr("127.0.0.1:53")],
            ),
            (
                "tab after the keyword, extra words ignored",
                "nameserver\t10.0.0.1 10.0.0.2\n",
                |c| c.nameservers == [addr("10.0.0.1:53")],
            ),
            (
                "keyword must start the line",
                " nameserver 10.0.0.1\n\tsearch a.example\n",
                |c| c.nameservers == [addr("127.0.0.1:53")] && c.search.is_empty(),
            ),
            (
                "keyword must be followed by a blank",
                "nameserver10.0.0.1\nsearcha.example\n",
                |c| c.nameservers == [addr("127.0.0.1:53")] && c.search.is_empty(),
            ),
            (
                "comments, both kinds, whole line and trailing",
                "#nameserver 10.0.0.9\n;nameserver 10.0.0.8\nnameserver 10.0.0.1;x\nsearch a.example # b.example\n",
                |c| c.nameservers == [addr("10.0.0.1:53")] && c.search == ["a.example"],
            ),
            (
                "search then domain: domain wins",
                "search a.example b.example\ndomain c.example\n",
                |c| c.search == ["c.example"],
            ),
            (
                "domain then search: search wins",
                "domain c.example\nsearch a.example b.example\n",
                |c| c.search == ["a.example", "b.example"],
            ),
            (
                "domain keeps its first word",
                "domain c.example d.example\n",
                |c| c.search == ["c.example"],
            ),
            (
                "root and empty search entries dropped",
                "search . a.example.\n",
                |c| c.search == ["a.example"],
            ),
            (
                "clamped: ndots 15, timeout 30, attempts 5",
                "options ndots:99 timeout:99999999999999999999999 attempts:6\n",
                |c| c.ndots == 15 && c.timeout == Duration::from_secs(30) && c.attempts == 5,
            ),
            (
                "zero timeout and attempts raised to 1, ndots 0 kept",
                "options ndots:0 timeout:0 attempts:0\n",
                |c| c.ndots == 0 && c.timeout == Duration::from_secs(1) && c.attempts == 1,
            ),
            (
                "atoi: leading digits, garbage is 0, negative is 0",
                "options ndots:3x timeout:x attempts:-2\n",
                |c| c.ndots == 3 && c.timeout == Duration::from_secs(1) && c.attempts == 1,
            ),
            (
                "later options override, across lines",
                "options ndots:4\noptions ndots:2 rotate\n",
                |c| c.ndots == 2 && c.rotate && !c.edns0,
            ),
            (
                "unknown options and lines ignored",
                "options inet6 no-tld-query use-vc ndots:\nsortlist 10.0.0.0/8\nlookup file bind\n\u{0}\u{fffd}\n",
                |c| *c == ResolvConf { ndots: 0, ..ResolvConf::default() },
            ),
            (
                "CRLF line endings",
                "nameserver 10.0.0.1\r\nsearch a.example\r\n",
                |c| c.nameservers == [addr("10.0.0.1:53")] && c.search == ["a.example"],
            ),
        ];
        for (what, text, check) in cases {
            let conf = ResolvConf::parse(text);
            assert!(check(&conf), "{what}: {conf:?}");
        }
    }

    #[test]
    fn res_options_format() {
        let mut conf = ResolvConf::default();
        conf.apply_options("ndots:3 attempts:1");
        assert_eq!((conf.ndots, conf.attempts), (3, 1));
    }

    #[test]
    fn search_order() {
        let conf = |ndots, search: &[&str]| ResolvConf {
            ndots,
            search: search.iter().map(|s| s.to_string()).collect(),
            ..ResolvConf::default()
        };
        let two = conf(1, &["corp.example", "example.org"]);
        let cases: &[(&str, &ResolvConf, &[&str])] = &[
            // No dot, ndots 1: the search list first, then the name.
            (
                "host",
                &two,
                &["host.corp.example", "host.example.org", "host"],
            ),
            // One dot, ndots 1: the name first.
            (
                "www.example.com",
                &two,
                &[
                    "www.example.com",
                    "www.example.com.corp.example",
                    "www.example.com.example.org",
                ],
            ),
            // Absolute: only itself.
            ("www.example.com.", &two, &["www.example.com."]),
            ("host.", &two, &["host."]),
            // ndots 5 (Kubernetes): a name with fewer dots goes through the list first.
            (
                "api.example.com",
                &conf(5, &["ns.svc.cluster.local"]),
                &["api.example.com.ns.svc.cluster.local", "api.example.com"],
            ),
            // ndots 0: even a bare name is tried as it is first.
            (
                "host",
                &conf(0, &["a.example"]),
                &["host", "host.a.example"],
            ),
            // No search list.
            ("host", &conf(1, &[]), &["host"]),
            ("", &two, &[]),
        ];
        for (name, conf, want) in cases {
            assert_eq!(
                candidates(name, conf),
                *want,
                "{name:?} ndots {}",
                conf.ndots
            );
        }
    }

    #[test]
    fn environment() {
        let env = |file: &str, local: Option<&str>, opts: Option<&str>, host: Option<&str>| {
            let mut conf = ResolvConf::parse(file);
            conf.apply_environment(local, opts, host);
            conf
        };
        // LOCALDOMAIN replaces the file's list; empty gives none, and no host-name domain.
        let conf = env(
            "search a.example\n",
            Some("b.example c.example."),
            None,
            None,
        );
        assert_eq!(conf.search, ["b.example", "c.example"]);
        let conf = env(
            "search a.example\n",
            Some(""),
            None,
            Some("box.corp.example"),
        );
        assert!(conf.search.is_empty());
        // The host name's domain only when nothing set a list, even an empty one.
        let conf = env(
            "nameserver 10.0.0.1\n",
            None,
            None,
            Some("box.corp.example"),
        );
        assert_eq!(conf.search, ["corp.example"]);
        let conf = env("search .\n", None, None, Some("box.corp.example"));
        assert!(conf.search.is_empty());
        let conf = env("domain a.example\n", None, None, Some("box.corp.example"));
        assert_eq!(conf.search, ["a.example"]);
        for host in [None, Some("box"), Some("box."), Some("")] {
            assert!(env("", None, None, host).search.is_empty(), "{host:?}");
        }
        // RES_OPTIONS after the file's options.
        let conf = env(
            "options ndots:3 attempts:4\n",
            None,
            Some("ndots:5 rotate"),
            None,
        );
        assert_eq!((conf.ndots, conf.attempts, conf.rotate), (5, 4, true));
    }
}
