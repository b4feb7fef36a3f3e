//! [`Robots`]: the rules a robots.txt file gives one crawler, parsed and matched as RFC 9309
//! says. Sans-IO, like `http/proto/`: bytes in, answers out; `cache.rs` fetches the file.
//!
//! Parsing reads the file as bytes, line by line (LF, CR or CRLF), so no byte can stop it:
//! a line that is not `key: value` with a known key is skipped, and bytes that are not UTF-8
//! stay what they are (a rule's `é` in Latin-1 matches the URL's `%E9`). Groups are runs of
//! `User-agent` lines followed by their rules (§2.1); the groups naming this crawler's product
//! token are combined, or else those of `*` (§2.2.1). Rules outside any group are ignored, so
//! an HTML page served as robots.txt gives no rules.
//!
//! Matching puts the rule and the URL's path and query in one canonical form before comparing
//! octets (§2.2.2): octets outside ASCII, controls, spaces and characters outside RFC 3986's
//! sets percent-encoded with upper-case hex; percent-encoded unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) decoded; percent-encoded reserved characters left encoded (`%2F`
//! is not `/`). `%2A` and `%24` in a rule are a literal `*` and `$` (§2.2.3), and so are `*`,
//! `%2A`, `$` and `%24` in a path. A rule matches a path that starts with it, `*` standing
//! for any run of octets and a final `$` for the end of the path. Of the matching rules the
//! longest (in canonical octets) wins, and `Allow` wins a tie (§2.2.2).

use std::time::Duration;

use url::Url;

/// The most of a robots.txt file that is parsed: 500 KiB, the least RFC 9309 §2.5 allows.
/// A longer file is cut at the last line break before this many bytes.
pub const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// The rules of a robots.txt file for one crawler (RFC 9309).
///
/// [`parse`](Robots::parse) never fails: whatever the bytes, the result is the rules it could
/// read, perhaps none, which allow everything.
///
/// ```
/// use volley::Robots;
///
/// let robots = Robots::parse(
///     b"User-agent: *\nDisallow: /private/\nAllow: /private/press/\nCrawl-delay: 2\n",
///     "volley/0.1",
/// );
/// assert!(robots.allowed_path("/index.html"));
/// assert!(!robots.allowed_path("/private/notes"));
/// assert!(robots.allowed_path("/private/press/2024")); // the longer rule wins
/// assert!(robots.allowed(&"http://example.com/robots.txt".parse().unwrap())); // always
/// assert_eq!(robots.crawl_delay(), Some(std::time::Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Robots {
    /// Longest first, and `Allow` before `Disallow` of the same length: the first that
    /// matches decides.
    rules: Vec<Rule>,
    crawl_delay: Option<Duration>,
}

/// One `Allow` or `Disallow` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    allow: bool,
    pattern: Pattern,
}

/// A rule's path pattern, in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The literal pieces between the `*` wildcards (so one piece when there is none).
    pieces: Vec<Vec<u8>>,
    /// Ends with `$`: the path must end where the pattern does.
    anchored: bool,
    /// Octets of the canonical pattern, `*` and `$` included: the rule's specificity.
    len: usize,
}

impl Robots {
    /// The rules in `body` for the crawler whose product token starts `user_agent` (its
    /// leading letters, `_` and `-`: `volley/0.1` is `volley`), matched without regard to
    /// case; if no group names it, the rules of the `*` groups; if there are none, no rules.
    /// Only the first [`MAX_ROBOTS_BYTES`] are read.
    ///
    /// ```
    /// use volley::Robots;
    ///
    /// let body = b"User-agent: *\nDisallow: /\n\nUser-agent: Volley\nDisallow: /tmp/\n";
    /// assert!(Robots::parse(body, "volley/0.1").allowed_path("/page"));
    /// assert!(!Robots::parse(body, "otherbot").allowed_path("/page"));
    /// ```
    pub fn parse(body: &[u8], user_agent: &str) -> Robots {
        let body = limit(body);
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let token = product_token(user_agent.as_bytes());

        // The groups naming us, and those of `*`: their rules and first crawl delay.
        let mut ours = Selected::default();
        let mut star = Selected::default();
        let mut named_us = false;
        // The group being read: which agents it names, and whether its agent lines are still
        // coming (another `User-agent` line joins it) or its rules have begun.
        let mut group: Option<(bool, bool)> = None;
        let mut in_agents = false;

        for line in body.split(|&b| b == b'\n' || b == b'\r') {
            let Some((key, value)) = key_value(line) else {
                continue;
            };
            if key.eq_ignore_ascii_case(b"user-agent") {
                if !in_agents {
                    group = Some((false, false));
                    in_agents = true;
                }
                let (is_ours, is_star) = group.as_mut().expect("a group was just started");
                if value == b"*" {
                    *is_star = true;
                } else if !token.is_empty() && product_token(value).eq_ignore_ascii_case(token) {
                    *is_ours = true;
                    named_us = true;
                }
                continue;
            }
            let allow = key.eq_ignore_ascii_case(b"allow");
            let disallow = key.eq_ignore_ascii_case(b"disallow");
            let delay = key.eq_ignore_ascii_case(b"crawl-delay");
            if !(allow || disallow || delay) {
                continue; // Sitemap, Host, and anything else: not ours to read
            }
            in_agents = false;
            let Some((is_ours, is_star)) = group else {
                continue; // a rule before any group: belongs to no one
            };
            for (selected, member) in [(&mut ours, is_ours), (&mut star, is_star)] {
                if !member {
                    continue;
                }
                if delay {
                    if selected.crawl_delay.is_none() {
                        selected.crawl_delay = parse_delay(value);
                    }
                } else if !value.is_empty() {
                    // An empty `Disallow:` (or `Allow:`) matches nothing.
                    selected.rules.push(Rule {
                        allow,
                        pattern: Pattern::new(value),
                    });
                }
            }
        }

        let Selected {
            mut rules,
            crawl_delay,
        } = if named_us { ours } else { star };
        rules.sort_by(|a, b| {
            b.pattern
                .len
                .cmp(&a.pattern.len)
                .then(b.allow.cmp(&a.allow))
        });
        Robots { rules, crawl_delay }
    }

    /// No rules: everything is allowed. What a missing robots.txt (a 4xx) means.
    pub fn allow_all() -> Robots {
        Robots::default()
    }

    /// Whether the crawler may fetch `url`, by its path and query. `/robots.txt` is always
    /// allowed.
    ///
    /// ```
    /// let robots = volley::Robots::parse(b"User-agent: *\nDisallow: /*?print=\n", "volley");
    /// assert!(robots.allowed(&"http://example.com/a?page=2".parse().unwrap()));
    /// assert!(!robots.allowed(&"http://example.com/a?print=1".parse().unwrap()));
    /// ```
    pub fn allowed(&self, url: &Url) -> bool {
        match url.query() {
            None => self.allowed_path(url.path()),
            Some(query) => self.allowed_path(&format!("{}?{query}", url.path())),
        }
    }

    /// Whether the crawler may fetch `path`: a URL's path, with its query after `?` if it has
    /// one, percent-encoded or not. `/robots.txt` is always allowed.
    ///
    /// ```
    /// let robots = volley::Robots::parse(b"User-agent: *\nDisallow: /caf%C3%A9\n", "volley");
    /// assert!(!robots.allowed_path("/café/menu"));
    /// assert!(!robots.allowed_path("/caf%c3%a9"));
    /// assert!(robots.allowed_path("/cafe"));
    /// ```
    pub fn allowed_path(&self, path: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mut canonical = Vec::with_capacity(path.len() + 1);
        if !path.starts_with('/') {
            canonical.push(b'/');
        }
        canonicalize(path.as_bytes(), false, &mut |piece| match piece {
            Piece::Octets(octets) => canonical.extend_from_slice(octets),
            Piece::Wildcard => unreachable!("a path has no wildcards"),
        });
        let file = canonical.split(|&b| b == b'?').next().unwrap_or_default();
        if file == b"/robots.txt" {
            return true;
        }
        self.rules
            .iter()
            .find(|rule| rule.pattern.matches(&canonical))
            .is_none_or(|rule| rule.allow)
    }

    /// The `Crawl-delay` of the crawler's group: how long to wait between two requests to
    /// the host, as the file says (a cache caps it, see
    /// [`RobotsCacheBuilder::max_crawl_delay`](crate::robots::RobotsCacheBuilder::max_crawl_delay)).
    /// `None` if the group has none, or none that is a non-negative number of seconds.
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.crawl_delay
    }

    /// How many `Allow` and `Disallow` rules apply to the crawler.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

/// The rules and crawl delay of the groups of one agent, combined.
#[derive(Default)]
struct Selected {
    rules: Vec<Rule>,
    crawl_delay: Option<Duration>,
}

/// The first [`MAX_ROBOTS_BYTES`] of `body`; a longer body is cut after its last whole line.
fn limit(body: &[u8]) -> &[u8] {
    if body.len() <= MAX_ROBOTS_BYTES {
        return body;
    }
    let head = &body[..MAX_ROBOTS_BYTES];
    if matches!(body[MAX_ROBOTS_BYTES], b'\n' | b'\r') {
        return head;
    }
    match head.iter().rposition(|&b| b == b'\n' || b == b'\r') {
        Some(end) => &head[..end],
        None => &[],
    }
}

/// A line's key and value, both trimmed, without the comment: `None` for a blank line, a
/// comment, or a line without `:`.
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = match line.iter().position(|&b| b == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    };
    let colon = line.iter().position(|&b| b == b':')?;
    Some((trim(&line[..colon]), trim(&line[colon + 1..])))
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The product token `value` starts with: its leading letters, `_` and `-` (RFC 9309 §2.2.1),
/// so `ExampleBot/1.1 (+https://...)` is `ExampleBot`.
fn product_token(value: &[u8]) -> &[u8] {
    let value = trim(value);
    let end = value
        .iter()
        .position(|&b| !(b.is_ascii_alphabetic() || b == b'_' || b == b'-'))
        .unwrap_or(value.len());
    &value[..end]
}

/// A `Crawl-delay` value in seconds, whole or decimal; one too large for a `Duration` is the
/// largest.
fn parse_delay(value: &[u8]) -> Option<Duration> {
    let secs: f64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

impl Pattern {
    /// The canonical form of a rule's value (not empty).
    fn new(value: &[u8]) -> Pattern {
        let (body, anchored) = match value.strip_suffix(b"$") {
            Some(body) => (body, true),
            None => (value, false),
        };
        let mut pieces = vec![Vec::new()];
        let mut len = usize::from(anchored);
        canonicalize(body, true, &mut |piece| match piece {
            Piece::Octets(octets) => {
                len += octets.len();
                pieces
                    .last_mut()
                    .expect("never empty")
                    .extend_from_slice(octets);
            }
            Piece::Wildcard => {
                len += 1;
                pieces.push(Vec::new());
            }
        });
        Pattern {
            pieces,
            anchored,
            len,
        }
    }

    /// Whether the canonical `path` matches: starts with the pattern, each `*` taking any
    /// run of octets, and ends with it if it is anchored. The pieces are found leftmost
    /// first, which is enough for wildcards of this kind: time linear in the pattern's pieces
    /// times the path, never exponential.
    fn matches(&self, path: &[u8]) -> bool {
        let (first, rest) = self.pieces.split_first().expect("never empty");
        let Some(mut at) = path.strip_prefix(first.as_slice()).map(|_| first.len()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No wildcard: a prefix, or with `$` the whole path.
            return !self.anchored || at == path.len();
        };
        for piece in middle {
            match find(&path[at..], piece) {
                Some(found) => at += found + piece.len(),
                None => return false,
            }
        }
        if self.anchored {
            path.len() - at >= last.len() && path.ends_with(last)
        } else {
            find(&path[at..], last).is_some()
        }
    }
}

/// The first index of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What [`canonicalize`] hands on: octets of the canonical form, or a rule's wildcard.
enum Piece<'a> {
    Octets(&'a [u8]),
    Wildcard,
}

/// Puts `input` (a rule's value, or a path) in the canonical form described in the module
/// docs, piece by piece. In a rule (`pattern`), a raw `*` is a wildcard.
fn canonicalize(input: &[u8], pattern: bool, out: &mut dyn FnMut(Piece<'_>)) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        i += 1;
        if pattern && b == b'*' {
            out(Piece::Wildcard);
            continue;
        }
        let octet = if b == b'%' {
            match (hex(input.get(i)), hex(input.get(i + 1))) {
                (Some(hi), Some(lo)) => {
                    i += 2;
                    hi << 4 | lo
                }
                // A `%` that starts no escape is itself encoded.
                _ => {
                    out(Piece::Octets(b"%25"));
                    continue;
                }
            }
        } else {
            b
        };
        let encoded = b == b'%';
        if is_unreserved(octet) || octet == b'*' || octet == b'$' || (!encoded && is_reserved(b)) {
            out(Piece::Octets(&[octet]));
        } else {
            let escape = [
                b'%',
                HEX[usize::from(octet >> 4)],
                HEX[usize::from(octet & 15)],
            ];
            out(Piece::Octets(&escape));
        }
    }
}

/// The value of an ASCII hex digit.
fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    (b as char).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2: gen-delims and sub-delims.
fn is_reserved(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `agent` may fetch `path` by `robots`.
    fn allowed(robots: &[u8], agent: &str, path: &str) -> bool {
        Robots::parse(robots, agent).allowed_path(path)
    }

    /// RFC 9309 §5.1, the simple example, as printed (the figure's `EOF` line included, which
    /// is no rule).
    const RFC_5_1: &[u8] = b"User-Agent: *\n\
        Disallow: *.gif$\n\
        Disallow: /example/\n\
        Allow: /publications/\n\
        \n\
        User-Agent: foobot\n\
        Disallow:/\n\
        Allow:/example/page.html\n\
        Allow:/example/allowed.gif\n\
        \n\
        User-Agent: barbot\n\
        User-Agent: bazbot\n\
        Disallow: /example/page.html\n\
        \n\
        User-Agent: quxbot\n\
        \n\
        EOF\n";

    #[test]
    fn rfc_5_1_the_star_group_applies_to_bots_it_does_not_name() {
        for agent in ["otherbot", "OtherBot/2.0", ""] {
            assert!(!allowed(RFC_5_1, agent, "/image.gif"), "{agent}");
            assert!(!allowed(RFC_5_1, agent, "/a/b/image.gif"), "{agent}");
            assert!(
                allowed(RFC_5_1, agent, "/image.gif?size=2"),
                "{agent}: $ ends it"
            );
            assert!(allowed(RFC_5_1, agent, "/image.gifs"), "{agent}");
            assert!(!allowed(RFC_5_1, agent, "/example/"), "{agent}");
            assert!(!allowed(RFC_5_1, agent, "/example/page.html"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/example"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/publications/x.html"), "{agent}");
            // `/publications/` (14 octets) is longer than `*.gif$` (6).
            assert!(allowed(RFC_5_1, agent, "/publications/a.gif"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/"), "{agent}");
        }
    }

    #[test]
    fn rfc_5_1_foobot_may_fetch_its_two_pages_only() {
        for agent in ["foobot", "FooBot", "FOOBOT/1.0 (+https://foo.example/bot)"] {
            assert!(allowed(RFC_5_1, agent, "/example/page.html"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/example/allowed.gif"), "{agent}");
            assert!(!allowed(RFC_5_1, agent, "/"), "{agent}");
            assert!(!allowed(RFC_5_1, agent, "/example/other.html"), "{agent}");
            // Its own group replaces the `*` group: no Allow for /publications/.
            assert!(!allowed(RFC_5_1, agent, "/publications/x.html"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/robots.txt"), "{agent}: always");
        }
    }

    #[test]
    fn rfc_5_1_barbot_and_bazbot_share_a_group() {
        for agent in ["barbot", "bazbot"] {
            assert!(!allowed(RFC_5_1, agent, "/example/page.html"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/example/page.htm"), "{agent}");
            assert!(allowed(RFC_5_1, agent, "/example/other.html"), "{agent}");
            // The `*` rules are not theirs.
            assert!(allowed(RFC_5_1, agent, "/image.gif"), "{agent}");
        }
    }

    #[test]
    fn rfc_5_1_quxbot_has_an_empty_group_and_may_fetch_anything() {
        let robots = Robots::parse(RFC_5_1, "quxbot");
        assert_eq!(robots.rule_count(), 0);
        for path in ["/", "/example/page.html", "/image.gif", "/EOF"] {
            assert!(robots.allowed_path(path), "{path}");
        }
    }

    /// §5.2: the longest match wins, whatever the order of the lines.
    #[test]
    fn rfc_5_2_longest_match() {
        for robots in [
            &b"User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n"
                [..],
            b"User-Agent: foobot\nDisallow: /example/page/disallowed.gif\nAllow: /example/page/\n",
        ] {
            assert!(allowed(robots, "foobot", "/example/page/"));
            assert!(allowed(robots, "foobot", "/example/page/allowed.gif"));
            assert!(!allowed(robots, "foobot", "/example/page/disallowed.gif"));
            assert!(!allowed(robots, "foobot", "/example/page/disallowed.gif?x"));
        }
    }

    /// §2.2.2's table: the rule as written, and the URL as a crawler sees it.
    #[test]
    fn rfc_2_2_2_percent_encoding_table() {
        let cases: [(&str, &[&str]); 4] = [
            ("/foo/bar?baz=quz", &["/foo/bar?baz=quz"]),
            (
                "/foo/bar/ツ",
                &["/foo/bar/%E3%83%84", "/foo/bar/%e3%83%84", "/foo/bar/ツ"],
            ),
            ("/foo/bar/%E3%83%84", &["/foo/bar/%E3%83%84", "/foo/bar/ツ"]),
            (
                "/foo/bar/%62%61%7A",
                &["/foo/bar/baz", "/foo/bar/%62%61%7a"],
            ),
        ];
        for (rule, paths) in cases {
            let robots = format!("User-agent: *\nDisallow: {rule}\n");
            for path in paths {
                assert!(!allowed(robots.as_bytes(), "bot", path), "{rule} vs {path}");
            }
        }
        // And the other way round: a rule written plainly matches the encoded URL.
        assert!(!allowed(
            b"User-agent: *\nDisallow: /foo/bar/baz\n",
            "bot",
            "/foo/bar/%62%61%7A"
        ));
        // Lower-case hex in a rule is the same escape.
        assert!(!allowed(
            b"User-agent: *\nDisallow: /foo/bar/%e3%83%84\n",
            "bot",
            "/foo/bar/ツ"
        ));
    }

    /// Reserved characters encoded are not the characters themselves (RFC 3986 §2.2).
    #[test]
    fn encoded_reserved_characters_stay_distinct() {
        let robots = b"User-agent: *\nDisallow: /a%2Fb\n";
        assert!(!allowed(robots, "bot", "/a%2fb"));
        assert!(allowed(robots, "bot", "/a/b"));
        let robots = b"User-agent: *\nDisallow: /a/b\n";
        assert!(allowed(robots, "bot", "/a%2Fb"));
    }

    /// §2.2.3: `#`, `$` and `*`, and `%2A` and `%24` for a literal `*` and `$`.
    #[test]
    fn rfc_2_2_3_special_characters() {
        let robots = b"User-agent: *\n\
            allow: / # comment in line\n\
            # comment on its own line\n\
            disallow: /this/path/exactly$\n\
            disallow: /this/*/exactly\n\
            disallow: /path/file-with-a-%2A.html\n\
            disallow: /path/foo-%24\n";
        assert!(!allowed(robots, "bot", "/this/path/exactly"));
        let anchored = b"User-agent: *\ndisallow: /this/path/exactly$\n";
        assert!(!allowed(anchored, "bot", "/this/path/exactly"));
        assert!(allowed(anchored, "bot", "/this/path/exactly/not"));
        assert!(allowed(anchored, "bot", "/this/path/exactly?q"));
        assert!(!allowed(robots, "bot", "/this/a/b/exactly"));
        assert!(!allowed(robots, "bot", "/this/x/exactly?and=more"));
        assert!(allowed(robots, "bot", "/this/exactly"));
        assert!(!allowed(robots, "bot", "/path/file-with-a-*.html"));
        assert!(!allowed(robots, "bot", "/path/file-with-a-%2A.html"));
        assert!(
            allowed(robots, "bot", "/path/file-with-a-x.html"),
            "%2A is no wildcard"
        );
        assert!(!allowed(robots, "bot", "/path/foo-$"));
        assert!(allowed(robots, "bot", "/path/foo-"), "%24 is no anchor");
        // `/` # comment: the comment is not part of the rule.
        assert!(allowed(robots, "bot", "/other"));
    }

    /// §2.2.1: every group naming the crawler counts, and the product token is matched
    /// without regard to case.
    #[test]
    fn rfc_2_2_1_groups_for_the_same_agent_are_combined() {
        let robots = b"user-agent: ExampleBot\ndisallow: /foo\ndisallow: /bar\n\n\
            user-agent: *\ndisallow: /star\n\n\
            User-Agent: examplebot\nDISALLOW: /baz\n";
        for path in ["/foo", "/bar", "/baz/x"] {
            assert!(!allowed(robots, "ExampleBot/1.1", path), "{path}");
        }
        assert!(allowed(robots, "examplebot", "/star"));
        assert!(!allowed(robots, "otherbot", "/star"));
        assert!(allowed(robots, "otherbot", "/foo"));
        assert_eq!(Robots::parse(robots, "EXAMPLEBOT").rule_count(), 3);
    }

    #[test]
    fn agent_lines_separated_by_blank_lines_and_comments_are_one_group() {
        let robots = b"User-agent: a\n\n# the next one too\nUser-agent: b\nDisallow: /x\n\
            User-agent: c\nDisallow: /y\n";
        assert!(!allowed(robots, "a", "/x"));
        assert!(!allowed(robots, "b", "/x"));
        assert!(allowed(robots, "b", "/y"));
        assert!(!allowed(robots, "c", "/y"));
        assert!(allowed(robots, "c", "/x"));
    }

    #[test]
    fn a_group_may_name_us_and_star_at_once() {
        let robots = b"User-agent: *\nUser-agent: volley\nDisallow: /both\n";
        assert!(!allowed(robots, "volley", "/both"));
        assert!(!allowed(robots, "other", "/both"));
    }

    #[test]
    fn product_tokens_are_whole_tokens() {
        let robots =
            b"User-agent: Googlebot-Image\nDisallow: /\n\nUser-agent: volley/0.9\nDisallow: /v\n";
        assert!(
            allowed(robots, "Googlebot", "/page"),
            "Googlebot is not Googlebot-Image"
        );
        assert!(!allowed(robots, "Googlebot-Image", "/page"));
        assert!(
            !allowed(robots, "volley", "/v"),
            "a version on the line is not the token"
        );
        assert!(allowed(robots, "volleyball", "/v"));
        assert!(allowed(robots, "volley", "/page"));
    }

    #[test]
    fn allow_wins_a_tie() {
        for robots in [
            &b"User-agent: *\nDisallow: /same\nAllow: /same\n"[..],
            b"User-agent: *\nAllow: /same\nDisallow: /same\n",
            b"User-agent: *\nDisallow: /s*e\nAllow: /sa*\n",
        ] {
            assert!(allowed(robots, "bot", "/same"));
        }
    }

    #[test]
    fn robots_txt_is_always_allowed() {
        let robots = Robots::parse(b"User-agent: *\nDisallow: /\n", "bot");
        assert!(robots.allowed_path("/robots.txt"));
        assert!(robots.allowed_path("/robots.txt?x=1"));
        assert!(robots.allowed(&"http://example.com/robots.txt".parse().unwrap()));
        assert!(!robots.allowed_path("/robots.txt.bak"));
        assert!(!robots.allowed_path("/"));
        assert!(!robots.allowed_path(""));
    }

    #[test]
    fn urls_are_matched_by_path_and_query() {
        let robots = Robots::parse(
            b"User-agent: *\nDisallow: /search?\nDisallow: /*&sort=\nDisallow: /caf\xC3\xA9\n",
            "bot",
        );
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(robots.allowed(&url("http://e.com/search")));
        assert!(!robots.allowed(&url("http://e.com/search?q=1")));
        assert!(!robots.allowed(&url("http://e.com/list?page=1&sort=asc")));
        assert!(
            robots.allowed(&url("http://e.com/list?page=1#&sort=asc")),
            "not the fragment"
        );
        assert!(!robots.allowed(&url("http://e.com/café")));
        assert!(!robots.allowed(&url("http://e.com/caf%C3%A9/x")));
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_break_parsing() {
        // A Latin-1 é, a stray 0xFF in an agent line, NUL, and a BOM.
        let robots = b"\xEF\xBB\xBFUser-agent: \xFF\xFE\nUser-agent: *\nDisallow: /caf\xE9\n\
            \x00garbage\xC3\x28\nDisallow: /x\n";
        let parsed = Robots::parse(robots, "bot");
        assert_eq!(parsed.rule_count(), 2);
        assert!(!parsed.allowed_path("/caf%E9"));
        assert!(!parsed.allowed_path("/caf%e9s"));
        assert!(parsed.allowed_path("/cafe"));
        assert!(!parsed.allowed_path("/x"));
        // A path with raw non-ASCII text is encoded the same way.
        let parsed = Robots::parse(b"User-agent: *\nDisallow: /\xE3\x83\x84\n", "bot");
        assert!(!parsed.allowed_path("/ツ"));
    }

    #[test]
    fn unknown_lines_and_rules_outside_groups_are_ignored() {
        let robots = b"Disallow: /before-any-group\n\
            Sitemap: https://example.com/sitemap.xml\n\
            Host: example.com\n\
            this line has no colon\n\
            Noindex: /x\n\
            User-agent: *\n\
            Sitemap: https://example.com/other.xml\n\
            Disallow: /in-group\n\
            Clean-param: ref /articles/\n";
        let parsed = Robots::parse(robots, "bot");
        assert_eq!(parsed.rule_count(), 1);
        assert!(parsed.allowed_path("/before-any-group"));
        assert!(!parsed.allowed_path("/in-group"));
    }

    #[test]
    fn an_html_page_gives_no_rules() {
        let html = b"<!DOCTYPE html>\n<html><head><title>Not Found</title></head>\n\
            <body><h1>Oops</h1><p>Try: /help</p>\n<p>Disallow: /everything</p>\n\
            Disallow: /looks-like-a-rule\n</body></html>\n";
        let parsed = Robots::parse(html, "volley");
        assert_eq!(parsed, Robots::allow_all());
        assert!(parsed.allowed_path("/looks-like-a-rule"));
    }

    #[test]
    fn empty_values_and_line_endings() {
        // CR only, CRLF and LF; an empty Disallow allows everything.
        let robots = b"User-agent: *\rDisallow:\r\nAllow:\nDisallow: /x\r";
        let parsed = Robots::parse(robots, "bot");
        assert_eq!(parsed.rule_count(), 1);
        assert!(parsed.allowed_path("/"));
        assert!(!parsed.allowed_path("/x"));
        // Spaces and tabs around keys and values.
        let parsed = Robots::parse(b"  user-AGENT \t:\t* \n\tdisallow :  /t \n", "bot");
        assert!(!parsed.allowed_path("/t"));
        // Nothing at all.
        assert_eq!(Robots::parse(b"", "bot"), Robots::allow_all());
    }

    #[test]
    fn crawl_delay_is_the_groups_first_valid_value() {
        let delay = |robots: &[u8], agent| Robots::parse(robots, agent).crawl_delay();
        let robots = b"User-agent: *\nCrawl-delay: 2.5\n\nUser-agent: slow\nCrawl-delay: abc\n\
            Crawl-delay: -1\nCrawl-delay: 10\nCrawl-delay: 20\n";
        assert_eq!(delay(robots, "other"), Some(Duration::from_millis(2500)));
        assert_eq!(delay(robots, "slow"), Some(Duration::from_secs(10)));
        assert_eq!(
            delay(b"User-agent: *\nCrawl-delay: 1e300\n", "x"),
            Some(Duration::MAX)
        );
        assert_eq!(delay(b"User-agent: *\nCrawl-delay: NaN\n", "x"), None);
        assert_eq!(
            delay(b"Crawl-delay: 5\nUser-agent: *\nDisallow: /\n", "x"),
            None
        );
        assert_eq!(delay(b"User-agent: *\nDisallow: /\n", "x"), None);
    }

    #[test]
    fn only_the_first_500_kib_are_read() {
        // A comment line up to the limit, then a rule that ends exactly at it.
        let rule = b"Disallow: /cut-here";
        let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
        body.resize(MAX_ROBOTS_BYTES - rule.len() - 1, b'#');
        body.push(b'\n');
        body.extend_from_slice(rule);
        assert_eq!(body.len(), MAX_ROBOTS_BYTES);
        // The line goes on past the limit: it is dropped, and all after it.
        let mut crossing = body.clone();
        crossing.extend_from_slice(b"-and-more\nDisallow: /late\n");
        let parsed = Robots::parse(&crossing, "bot");
        assert!(!parsed.allowed_path("/early"));
        assert!(parsed.allowed_path("/cut-here"));
        assert!(parsed.allowed_path("/late"));
        // The line ends at the limit: it is whole, and kept.
        let mut ending = body.clone();
        ending.extend_from_slice(b"\nDisallow: /late\n");
        let parsed = Robots::parse(&ending, "bot");
        assert!(!parsed.allowed_path("/cut-here"));
        assert!(parsed.allowed_path("/late"));
        // Under the limit, the last line counts even without a line break.
        assert!(!Robots::parse(&body, "bot").allowed_path("/cut-here"));
    }

    #[test]
    fn wildcards_match_without_backtracking_blowup() {
        let mut robots = b"User-agent: *\nDisallow: /".to_vec();
        robots.extend(std::iter::repeat_n(&b"a*"[..], 2000).flatten());
        robots.extend_from_slice(b"b$\n");
        let parsed = Robots::parse(&robots, "bot");
        let path = format!("/{}", "a".repeat(5000));
        let started = std::time::Instant::now();
        assert!(parsed.allowed_path(&path));
        assert!(!parsed.allowed_path(&format!("{path}b")));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn canonical_forms() {
        let canon = |s: &str| {
            let mut out = Vec::new();
            canonicalize(s.as_bytes(), false, &mut |p| {
                if let Piece::Octets(o) = p {
                    out.extend_from_slice(o)
                }
            });
            String::from_utf8(out).unwrap()
        };
        assert_eq!(canon("/a b<c>|é"), "/a%20b%3Cc%3E%7C%C3%A9");
        assert_eq!(canon("/%7e%2f%2A%24%zz%"), "/~%2F*$%25zz%25");
        assert_eq!(canon("/a%252F"), "/a%252F");
        let pattern = Pattern::new(b"/a*b%2A$");
        assert_eq!(pattern.pieces, [b"/a".to_vec(), b"b*".to_vec()]);
        assert!(pattern.anchored);
        assert_eq!(pattern.len, 6);
    }
}
