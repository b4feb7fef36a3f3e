//! Responses: a status, headers and a body, serialised with `Server`, `Date` and framing headers
//! into one buffer, so that a small response leaves in one write.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::json::Json;

/// The `Server` header of every response.
pub(crate) const SERVER_NAME: &str = "volley-httpbin";

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the connection closes.
    UntilClose,
    /// No body and no length header (1xx, 204, 304).
    None,
}

/// What the `Connection` header says, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Persistence {
    /// HTTP/1.1 keep-alive, the default: no header.
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// A response to send.
#[derive(Clone, Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Headers besides `Server`, `Date`, `Content-Length`, `Transfer-Encoding` and
    /// `Connection`, which serialisation adds.
    pub(crate) headers: Vec<(Cow<'static, str>, String)>,
    pub(crate) body: Vec<u8>,
    /// Close the connection after this response, whatever the client asked.
    pub(crate) close: bool,
}

impl Response {
    /// An empty response with `status`.
    pub(crate) fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// Adds a header.
    pub(crate) fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type`.
    pub(crate) fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        self.headers
            .push((Cow::Borrowed("Content-Type"), content_type.to_string()));
        self.body = body.into();
        self
    }

    /// A pretty-printed JSON body, as httpbin sends.
    pub(crate) fn json(status: u16, value: &Json) -> Response {
        Response::new(status).body("application/json", value.to_pretty())
    }

    /// A `text/plain` body.
    pub(crate) fn text(status: u16, text: &str) -> Response {
        Response::new(status).body("text/plain; charset=utf-8", text)
    }

    /// A `text/html` body.
    pub(crate) fn html(status: u16, html: &str) -> Response {
        Response::new(status).body("text/html; charset=utf-8", html)
    }

    /// Marks the response as the last on its connection.
    pub(crate) fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Whether a response with this status may carry a body (not 1xx, 204 or 304).
    pub(crate) fn status_allows_body(status: u16) -> bool {
        !(status < 200 || status == 204 || status == 304)
    }

    /// The head alone, with `framing` and `persistence`.
    pub(crate) fn head(&self, framing: Framing, persistence: Persistence) -> Vec<u8> {
        let mut head = String::with_capacity(160 + 40 * self.headers.len());
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: {SERVER_NAME}\r\nDate: {}\r\n",
            self.status,
            reason(self.status),
            http_date(SystemTime::now())
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        match framing {
            Framing::Length(n) => {
                let _ = write!(head, "Content-Length: {n}\r\n");
            }
            Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
            Framing::UntilClose | Framing::None => {}
        }
        match persistence {
            Persistence::Default => {}
            Persistence::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
            Persistence::Close => head.push_str("Connection: close\r\n"),
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    /// Head and body in one buffer, the body framed by `Content-Length`. `head_only` (a HEAD
    /// request) keeps the length header but leaves the body out.
    pub(crate) fn encode(&self, head_only: bool, persistence: Persistence) -> Vec<u8> {
        let has_body = Response::status_allows_body(self.status);
        let framing = if has_body {
            Framing::Length(self.body.len() as u64)
        } else {
            Framing::None
        };
        let mut out = self.head(framing, persistence);
        if has_body && !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of `status` (RFC 9110 and a few registered extras), or `Unknown`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        511 => "Network Authentication Required",
        _ => "Unknown",
    }
}

/// `time` as an IMF-fixdate (RFC 9110 section 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize], // 1970-01-01 was a Thursday
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian `(year, month, day)` of a count of days since 1970-01-01, by Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn encodes_one_buffer() {
        let r = Response::text(200, "hi").header("X-A", "b");
        let bytes = String::from_utf8(r.encode(false, Persistence::Close)).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\nServer: volley-httpbin\r\nDate: "));
        assert!(bytes.ends_with(
            "Content-Type: text/plain; charset=utf-8\r\nX-A: b\r\nContent-Length: 2\r\n\
             Connection: close\r\n\r\nhi"
        ));
        let head_only = String::from_utf8(r.encode(true, Persistence::Default)).unwrap();
        assert!(head_only.ends_with("Content-Length: 2\r\n\r\n"));
        let empty = String::from_utf8(Response::new(204).encode(false, Persistence::Default));
        assert!(!empty.unwrap().contains("Content-Length"));
    }
}
