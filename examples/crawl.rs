//! cargo run --release --example crawl -- [-w WORKERS] [-p PAGES] [START_URL]
//!
//! The seed's crawler (seeds/004): a queue of URLs, a few workers taking from it, links pulled
//! out of each page, kept only if they stay on the start URL's host and were not seen before,
//! and a limit on the pages visited.
//!
//! ```text
//! cargo run --release --example crawl                       # the embedded server's /links/200/0
//! cargo run --release --example crawl -- -p 50              # stop after 50 pages (CI)
//! cargo run --release --example crawl -- -w 10 http://127.0.0.1:8080/links/100/0
//! cargo test --example crawl                                # the link scanner's tests
//! ```
//!
//! With no URL it starts the embedded httpbin-like server on a free loopback port and crawls
//! `/links/200/0`: a site of 200 pages, `/links/200/0` to `/links/200/199`, each linking to
//! the 199 others. The first page discovers the whole site; every later page finds only links
//! already seen.
//!
//! - `-w N`: N workers (default 3, as in the seed's `gather(crawl(), crawl(), crawl())`).
//! - `-p N`: visit at most N pages (default 200).
//!
//! # How it is built
//!
//! The workers are volley tasks sharing one `Rc<RefCell<Crawl>>`: the queue of URLs to visit,
//! the set of URLs seen, and counts. No lock: everything runs on one thread, and a task is
//! never interrupted between two `.await`s, so a `borrow_mut` that does not span an `.await`
//! cannot be contended.
//!
//! The seed's worker stops as soon as the queue is empty (`asyncio.QueueEmpty`), so two of its
//! three workers quit at once, before the first page has even arrived ("No more urls!"). Here
//! an idle worker waits instead, until another worker adds links or the crawl is over: the
//! crawl is over when the queue is empty *and* no worker is fetching (nobody can add more), or
//! when the page limit is reached. Waiting is a list of wakers: a worker that finds nothing
//! to do parks its waker there, and every worker that finishes a page wakes them all.
//!
//! Why not a `Batch` from `Client::fetch_all`? A batch takes its requests from an iterator,
//! and once the iterator says `None` the batch has no more input, while a crawl's input grows
//! as pages are read. A batch fits a crawl level by level (one batch per link depth), at the
//! cost of idle slots at the end of every level; tasks and a queue fit it as it is.
//!
//! Links are found by [`scan_links`], a small scanner over the HTML's tags: the `href` of `<a>`
//! and `<area>` tags (as the seed's `soup.find_all('a')`), quoted with `"` or `'` or unquoted,
//! attribute and tag names in any case, character references such as `&amp;` decoded; comments
//! and the insides of `<script>` and `<style>` skipped; `javascript:`, `mailto:`, `tel:` and
//! `data:` links dropped. A `<base href>` changes the base URL links resolve against.
//! [`resolve_link`] then resolves each against the page's URL (`url::Url::join`), drops the
//! fragment, and keeps it only if it is http(s) on the start URL's origin (scheme, host, port).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::process::ExitCode;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use url::Url;
use volley::{header, Client, Runtime};

const USAGE: &str = "usage: crawl [-w WORKERS] [-p PAGES] [START_URL]";

const DEFAULT_WORKERS: usize = 3;
const DEFAULT_PAGES: usize = 200;
/// The embedded server's site: 200 pages that all link to one another.
const DEFAULT_START: &str = "/links/200/0";

/// The longest one page may take, and the largest page read.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_PAGE_BYTES: u64 = 8 << 20;

/// The parsed command line.
#[derive(Debug)]
struct Args {
    workers: usize,
    pages: usize,
    start: Option<Url>,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        workers: DEFAULT_WORKERS,
        pages: DEFAULT_PAGES,
        start: None,
    };
    let positive = |name: &str, value: Option<String>| -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{name} needs a value"))?;
        match value.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} wants a positive integer, not {value:?}")),
        }
    };
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "-w" | "--workers" => args.workers = positive("-w", argv.next())?,
            "-p" | "--pages" => args.pages = positive("-p", argv.next())?,
            "-h" | "--help" => return Err(String::new()),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"))
            }
            url if args.start.is_none() => {
                let url = Url::parse(url).map_err(|e| format!("not a URL: {url:?} ({e})"))?;
                if url.scheme() != "http" {
                    return Err(format!("{url}: volley speaks plain http:// only"));
                }
                args.start = Some(url);
            }
            extra => return Err(format!("unexpected argument {extra:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("crawl: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("crawl: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crawl(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("crawl: {message}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The crawl: a shared queue and N worker tasks
// ---------------------------------------------------------------------------------------------

/// What the workers share.
#[derive(Debug)]
struct Crawl {
    /// URLs seen but not yet visited, oldest first: the crawl is breadth-first.
    queue: VecDeque<Url>,
    /// Every URL ever queued, so none is queued twice.
    seen: HashSet<Url>,
    /// The origin links must stay on.
    origin: url::Origin,
    /// Pages taken from the queue so far, and the most that may be.
    taken: usize,
    limit: usize,
    /// Workers fetching a page now: while any is, more links may come.
    busy: usize,
    /// Idle workers, woken when links are added or the crawl ends.
    idle: Vec<Waker>,
    /// Counts for the summary.
    visited: usize,
    errors: usize,
    links_found: usize,
    off_site: usize,
    bytes: u64,
}

impl Crawl {
    /// Queues `url` unless it was seen before. Returns whether it was new.
    fn offer(&mut self, url: Url) -> bool {
        if self.seen.contains(&url) {
            return false;
        }
        self.seen.insert(url.clone());
        self.queue.push_back(url);
        true
    }

    /// Wakes every idle worker, to look at the queue again.
    fn wake_idle(&mut self) {
        for waker in self.idle.drain(..) {
            waker.wake();
        }
    }
}

/// The next URL for a worker to visit, or `None` when the crawl is over.
async fn next_url(crawl: &RefCell<Crawl>) -> Option<Url> {
    poll_fn(|cx| {
        let mut c = crawl.borrow_mut();
        if c.taken >= c.limit {
            return Poll::Ready(None); // the page limit
        }
        if let Some(url) = c.queue.pop_front() {
            c.taken += 1;
            c.busy += 1;
            return Poll::Ready(Some(url));
        }
        if c.busy == 0 {
            return Poll::Ready(None); // nothing queued and nobody left to queue more
        }
        // Woken by the next worker that finishes a page.
        c.idle.push(cx.waker().clone());
        Poll::Pending
    })
    .await
}

/// One worker: take a URL, fetch it, queue its new links, until the crawl is over.
async fn worker(id: usize, client: Client, crawl: Rc<RefCell<Crawl>>) {
    while let Some(url) = next_url(&crawl).await {
        let page = fetch_page(&client, &url).await;
        let mut c = crawl.borrow_mut();
        c.busy -= 1;
        match page {
            Ok(page) => {
                c.visited += 1;
                // A redirect's target is visited too: don't queue it again.
                if let Some(to) = &page.redirected_to {
                    if to.origin() == c.origin {
                        c.seen.insert(to.clone());
                    }
                }
                c.bytes += page.bytes as u64;
                c.links_found += page.links.len();
                let found = page.links.len();
                let mut new = 0;
                let mut off_site = 0;
                for link in page.links.iter().cloned() {
                    match link {
                        Some(link) => new += usize::from(c.offer(link)),
                        None => off_site += 1,
                    }
                }
                c.off_site += off_site;
                println!(
                    "[worker {id}] {} {:>6} bytes {:>4} links ({new} new) {url}{}",
                    page.status,
                    page.bytes,
                    found,
                    match &page.redirected_to {
                        Some(to) => format!(" -> {to}"),
                        None => String::new(),
                    },
                );
            }
            Err(e) => {
                c.errors += 1;
                println!("[worker {id}] error: {e}");
            }
        }
        // New links, or perhaps the end of the crawl: either way the idle workers must look.
        c.wake_idle();
    }
}

/// What a worker learned from one page.
#[derive(Debug)]
struct Page {
    status: u16,
    bytes: usize,
    /// The final URL, if redirects led elsewhere.
    redirected_to: Option<Url>,
    /// Each link found: the URL to visit, or `None` for a link that leaves the site.
    links: Vec<Option<Url>>,
}

/// Fetches `url` and finds its links, if it is a successful HTML page on the site.
async fn fetch_page(client: &Client, url: &Url) -> Result<Page, volley::Error> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let final_url = response.url().clone();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map_or(true, |ct| ct.contains("html"));
    let body = response.bytes().await?;
    let mut page = Page {
        status: status.as_u16(),
        bytes: body.len(),
        redirected_to: (final_url != *url).then(|| final_url.clone()),
        links: Vec::new(),
    };
    // Only the links of successful HTML pages that are still on the site count. Links are
    // ASCII in practice; any bytes of another charset become U+FFFD and do not get in the way.
    if status.is_success() && is_html && final_url.origin() == url.origin() {
        let html = String::from_utf8_lossy(&body);
        let scan = scan_links(&html);
        let base = scan
            .base
            .and_then(|base| final_url.join(&base).ok())
            .unwrap_or(final_url);
        let origin = url.origin();
        page.links = scan
            .hrefs
            .iter()
            .map(|href| resolve_link(&base, href, &origin))
            .collect();
    }
    Ok(page)
}

async fn crawl(args: Args) -> Result<bool, String> {
    // No URL: serve ourselves, on this same thread.
    let server = match &args.start {
        Some(_) => None,
        None => {
            let addr = "127.0.0.1:0".parse().expect("a valid address");
            let server = volley::server::Server::bind(addr)
                .map_err(|e| format!("cannot start the embedded server: {e}"))?;
            Some(server)
        }
    };
    let start = match (&args.start, &server) {
        (Some(url), _) => url.clone(),
        (None, Some(server)) => Url::parse(&server.url(DEFAULT_START)).expect("a valid URL"),
        (None, None) => unreachable!("a server is started when no URL is given"),
    };
    let mut start_clean = start.clone();
    start_clean.set_fragment(None);

    println!(
        "crawling {start_clean} with {} workers, at most {} pages, staying on {}\n",
        args.workers,
        args.pages,
        start.origin().ascii_serialization()
    );
    let crawl = Rc::new(RefCell::new(Crawl {
        queue: VecDeque::new(),
        seen: HashSet::new(),
        origin: start.origin(),
        taken: 0,
        limit: args.pages,
        busy: 0,
        idle: Vec::new(),
        visited: 0,
        errors: 0,
        links_found: 0,
        off_site: 0,
        bytes: 0,
    }));
    crawl.borrow_mut().offer(start_clean);

    let client = Client::builder()
        .timeout(PAGE_TIMEOUT)
        .max_body_size(MAX_PAGE_BYTES)
        .build();
    let started = Instant::now();
    // The seed's `asyncio.gather(crawl(), crawl(), crawl())`: spawn them all, then await them.
    let workers: Vec<_> = (1..=args.workers)
        .map(|id| volley::spawn(worker(id, client.clone(), crawl.clone())))
        .collect();
    for handle in workers {
        handle
            .await
            .map_err(|e| format!("a worker task failed: {e}"))?;
    }
    let elapsed = started.elapsed();

    let c = crawl.borrow();
    let reason = if c.taken >= c.limit && !c.queue.is_empty() {
        format!(
            "stopped at the page limit ({}), {} pages still queued",
            c.limit,
            c.queue.len()
        )
    } else {
        "no more pages to visit".to_owned()
    };
    println!("\n{reason}");
    println!("  pages      {} visited, {} errors", c.visited, c.errors);
    println!(
        "  links      {} found on the pages, {} distinct URLs on {}, {} leaving it",
        c.links_found,
        c.seen.len(),
        c.origin.ascii_serialization(),
        c.off_site,
    );
    println!("  bytes      {}", c.bytes);
    println!(
        "  elapsed    {:.3} s ({:.0} pages/s with {} workers)",
        elapsed.as_secs_f64(),
        (c.visited + c.errors) as f64 / elapsed.as_secs_f64().max(1e-6),
        args.workers
    );
    // Nothing fetched at all is a failure; some pages failing is only reported.
    Ok(c.visited > 0)
}

// ---------------------------------------------------------------------------------------------
// Links: a scanner over the HTML, then resolution and filtering
// ---------------------------------------------------------------------------------------------

/// What [`scan_links`] finds in a page.
#[derive(Debug, Default, PartialEq, Eq)]
struct Scan {
    /// The first `<base href>`, if any, as written (character references decoded).
    base: Option<String>,
    /// Every link's `href`, in page order, as written (trimmed, references decoded), without
    /// `javascript:`, `mailto:`, `tel:` and `data:` links and empty ones.
    hrefs: Vec<String>,
}

/// Finds the `href` of every `<a>` and `<area>` tag, and the first `<base href>`.
///
/// A scanner over tags, not a full HTML parser: it knows tags, attributes (quoted with `"`
/// or `'`, or unquoted), comments, and the raw text of `<script>` and `<style>`, so that an
/// `href=` in text, in another attribute's value, in a comment or in a script is not taken
/// for a link. Names match in any case. Only the first `href` of a tag counts, as in HTML.
fn scan_links(html: &str) -> Scan {
    let b = html.as_bytes();
    let mut scan = Scan::default();
    let mut i = 0;
    // Every index used to slice `html` is at an ASCII byte or the end: a char boundary.
    while let Some(lt) = find(b, i, b"<") {
        i = lt + 1;
        if b[i..].starts_with(b"!--") {
            // A comment runs to the next `-->`.
            i = find(b, i + 3, b"-->").map_or(b.len(), |end| end + 3);
            continue;
        }
        if matches!(b.get(i), Some(b'!' | b'?' | b'/')) {
            // <!DOCTYPE ...>, <?...?>, or an end tag: nothing to take.
            i = find(b, i, b">").map_or(b.len(), |end| end + 1);
            continue;
        }
        if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            continue; // a `<` in text, as in `a < b`
        }
        let name_start = i;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let tag = html[name_start..i].to_ascii_lowercase();
        let mut href: Option<&str> = None;
        // Attributes, up to the end of the tag.
        loop {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            if i >= b.len() {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            let attr_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/')
            {
                i += 1;
            }
            let attr = &html[attr_start..i];
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = None;
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                match b.get(i) {
                    Some(&quote @ (b'"' | b'\'')) => {
                        let end = find(b, i + 1, &[quote]).unwrap_or(b.len());
                        value = Some(&html[i + 1..end]);
                        i = (end + 1).min(b.len());
                    }
                    Some(_) => {
                        let start = i;
                        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                            i += 1;
                        }
                        value = Some(&html[start..i]);
                    }
                    None => {}
                }
            } else if attr.is_empty() {
                i += 1; // a stray `=`: step over it
            }
            if href.is_none() && attr.eq_ignore_ascii_case("href") {
                href = value;
            }
        }
        match (tag.as_str(), href) {
            ("a" | "area", Some(href)) => {
                let href = decode_entities(href);
                let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
                if !href.is_empty() && !is_not_a_page(href) {
                    scan.hrefs.push(href.to_owned());
                }
            }
            ("base", Some(href)) if scan.base.is_none() => {
                let href = decode_entities(href);
                scan.base = Some(
                    href.trim_matches(|c: char| c.is_ascii_whitespace())
                        .to_owned(),
                );
            }
            ("script" | "style", _) => {
                // Raw text: skip to the matching end tag, whatever it contains.
                let end = format!("</{tag}");
                i = find_ignore_case(b, i, end.as_bytes()).unwrap_or(b.len());
            }
            _ => {}
        }
    }
    scan
}

/// True for links that lead to no page: `javascript:`, `mailto:`, `tel:`, `data:`.
fn is_not_a_page(href: &str) -> bool {
    ["javascript:", "mailto:", "tel:", "data:"]
        .iter()
        .any(|scheme| {
            href.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        })
}

/// `href` resolved against `base`, without its fragment, if it is an http(s) URL on `origin`;
/// else `None`.
fn resolve_link(base: &Url, href: &str, origin: &url::Origin) -> Option<Url> {
    let mut url = base.join(href).ok()?;
    url.set_fragment(None);
    let web = matches!(url.scheme(), "http" | "https");
    (web && url.origin() == *origin).then_some(url)
}

/// Decodes HTML character references: `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&nbsp;`,
/// and numeric ones (`&#38;`, `&#x26;`). Others are left as they are.
fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let code = match name.strip_prefix('#') {
                        Some(hex) if hex.starts_with(['x', 'X']) => {
                            u32::from_str_radix(&hex[1..], 16).ok()
                        }
                        Some(dec) => dec.parse().ok(),
                        None => None,
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The first index at or after `from` where `needle` starts.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// [`find`], ignoring ASCII case.
fn find_ignore_case(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hrefs(html: &str) -> Vec<String> {
        scan_links(html).hrefs
    }

    #[test]
    fn quoted_single_quoted_and_unquoted() {
        let html = r#"<a href="/one">1</a> <a href='/two'>2</a> <a href=/three>3</a>
                      <a href=four.html>4</a>"#;
        assert_eq!(hrefs(html), ["/one", "/two", "/three", "four.html"]);
    }

    #[test]
    fn names_in_any_case_and_spacing() {
        let html = "<A HREF=\"/upper\">x</A><a\nclass=x\n  HrEf = '/mixed' >y</a><AREA href=/map>";
        assert_eq!(hrefs(html), ["/upper", "/mixed", "/map"]);
    }

    #[test]
    fn character_references_are_decoded() {
        let html = r#"<a href="/search?q=1&amp;page=2">x</a><a href="/a&#38;b&#x26;c&lt;">y</a>
                      <a href="/keep&unknown;&">z</a>"#;
        assert_eq!(
            hrefs(html),
            ["/search?q=1&page=2", "/a&b&c<", "/keep&unknown;&"]
        );
    }

    #[test]
    fn non_page_schemes_and_empty_links_are_skipped() {
        let html = r#"<a href="javascript:void(0)">j</a><a href="MAILTO:x@example.com">m</a>
                      <a href="tel:+123">t</a><a href="data:text/plain,hi">d</a>
                      <a href="">e</a><a href="   ">s</a><a href=" /kept ">k</a><a>none</a>"#;
        assert_eq!(hrefs(html), ["/kept"]);
    }

    #[test]
    fn only_links_of_a_and_area_tags() {
        let html = r#"<link href="/style.css" rel=stylesheet><img src="/i.png" href="/img">
                      <abbr href="/abbr">x</abbr><a title="href=/not-this" href="/this">y</a>
                      <p>text with href="/in-text" in it, and a < b</p>"#;
        assert_eq!(hrefs(html), ["/this"]);
    }

    #[test]
    fn comments_scripts_and_styles_are_skipped() {
        let html = r#"<!-- <a href="/commented">x</a> --><a href="/after-comment">y</a>
            <script>var s = '<a href="/in-script">';</script>
            <STYLE>a[href="/in-style"] {}</STYLE><a href="/after-style">z</a>
            <!DOCTYPE html><a href="/last">w</a>"#;
        assert_eq!(hrefs(html), ["/after-comment", "/after-style", "/last"]);
    }

    #[test]
    fn first_href_of_a_tag_wins_and_base_is_found() {
        let html = r#"<base href="http://example.com/dir/"><base href="/ignored/">
                      <a href="/first" href="/second">x</a>"#;
        let scan = scan_links(html);
        assert_eq!(scan.base.as_deref(), Some("http://example.com/dir/"));
        assert_eq!(scan.hrefs, ["/first"]);
    }

    #[test]
    fn broken_html_does_not_panic() {
        for html in [
            "<",
            "<a",
            "<a href",
            "<a href=",
            "<a href=\"/unterminated",
            "<a =x href=/ok>",
            "<!--",
            "<script>",
            "<a href='é/ü'>",
            "&",
            "<a href=\"&#xFFFFFFFF;&#;&\">",
        ] {
            let _ = scan_links(html);
        }
        assert_eq!(hrefs("<a =x href=/ok>"), ["/ok"]);
        assert_eq!(hrefs("<a href='é/ü'>"), ["é/ü"]);
    }

    #[test]
    fn httpbin_links_page() {
        let html = "<html><head><title>Links</title></head><body>0 \
                    <a href='/links/3/1'>1</a> <a href='/links/3/2'>2</a> </body></html>";
        assert_eq!(hrefs(html), ["/links/3/1", "/links/3/2"]);
    }

    #[test]
    fn resolution_stays_on_the_origin_and_drops_fragments() {
        let page = Url::parse("http://127.0.0.1:8080/dir/page.html").unwrap();
        let origin = page.origin();
        let resolve = |href| resolve_link(&page, href, &origin).map(|u| u.to_string());
        assert_eq!(
            resolve("other.html#part").as_deref(),
            Some("http://127.0.0.1:8080/dir/other.html")
        );
        assert_eq!(
            resolve("../up?x=1").as_deref(),
            Some("http://127.0.0.1:8080/up?x=1")
        );
        assert_eq!(
            resolve("//127.0.0.1:8080/abs").as_deref(),
            Some("http://127.0.0.1:8080/abs")
        );
        assert_eq!(resolve("http://127.0.0.1:8081/other-port"), None);
        assert_eq!(resolve("https://127.0.0.1:8080/other-scheme"), None);
        assert_eq!(resolve("http://localhost:8080/other-host"), None);
        assert_eq!(resolve("ftp://127.0.0.1:8080/"), None);
        assert_eq!(
            resolve("#top").as_deref(),
            Some("http://127.0.0.1:8080/dir/page.html")
        );
    }
}
