//! `/etc/hosts` (hosts(5)): lines of an IP address then a canonical name and aliases,
//! separated by spaces or tabs; `#` starts a comment. Names match without regard to ASCII
//! case, and a trailing dot on the name looked up is ignored. When several lines name the
//! same host, its addresses accumulate in file order (duplicates once), as glibc returns
//! them with `multi on`, the default since glibc 2.26.
//!
//! Lines that do not parse (a bad address, an address without names) are skipped, as are
//! IPv6 addresses with a zone (`fe80::1%lo`), which would need an interface lookup.

use std::collections::HashMap;
use std::net::IpAddr;

/// A parsed hosts file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hosts {
    /// Addresses by lower-cased name.
    names: HashMap<String, Vec<IpAddr>>,
}

impl Hosts {
    /// Parses the text of a hosts file. Never fails; see the module docs.
    pub(crate) fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name.is_empty() {
                    continue;
                }
                let addrs = hosts.names.entry(name).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        hosts
    }

    /// The addresses of `name`, in file order, both families.
    pub(crate) fn get(&self, name: &str) -> Option<&[IpAddr]> {
        let name = name.strip_suffix('.').unwrap_or(name);
        let found = match self.names.get(name) {
            Some(addrs) => addrs,
            None => self.names.get(&name.to_ascii_lowercase())?,
        };
        Some(found)
    }

    /// How many names are known.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn lookups() {
        let text = "\
# The usual.
127.0.0.1\tlocalhost
::1        localhost ip6-localhost ip6-loopback
192.0.2.10 Web.Example.COM web www   # trailing comment
192.0.2.11 web.example.com
192.0.2.10 web.example.com
2001:db8::10 web.example.com
fe80::1%lo0 scoped
300.1.1.1 badaddr
not-an-ip host
10.0.0.1
   10.0.0.2   indented
10.0.0.3 absolute.example.
#10.0.0.4 commented
\u{0}\u{fffd} garbage line
10.0.0.5 crlf\r
";
        let hosts = Hosts::parse(text);
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("localhost", Some(&["127.0.0.1", "::1"])),
            ("LOCALHOST", Some(&["127.0.0.1", "::1"])),
            ("localhost.", Some(&["127.0.0.1", "::1"])),
            ("ip6-loopback", Some(&["::1"])),
            (
                "web.example.com",
                Some(&["192.0.2.10", "192.0.2.11", "2001:db8::10"]),
            ),
            (
                "WEB.example.com",
                Some(&["192.0.2.10", "192.0.2.11", "2001:db8::10"]),
            ),
            ("www", Some(&["192.0.2.10"])),
            ("indented", Some(&["10.0.0.2"])),
            ("absolute.example", Some(&["10.0.0.3"])),
            ("crlf", Some(&["10.0.0.5"])),
            ("trailing", None),
            ("comment", None),
            ("scoped", None),
            ("badaddr", None),
            ("host", None),
            ("commented", None),
            ("garbage", None),
            ("example.com", None),
            ("", None),
        ];
        for (name, want) in cases {
            let want = want.map(ips);
            assert_eq!(hosts.get(name).map(<[IpAddr]>::to_vec), want, "{name:?}");
        }
    }

    #[test]
    fn empty_and_garbage() {
        for text in ["", "\n", "# nothing\n", "\u{0}\u{1}\u{2}", "::::\n1.2.3\n"] {
            assert_eq!(Hosts::parse(text).len(), 0, "{text:?}");
        }
    }
}
