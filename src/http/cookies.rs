//! [`Cookies`]: a client's cookie store (feature `cookies`, turned on per client with
//! [`ClientBuilder::cookie_store`](crate::ClientBuilder::cookie_store)), over the
//! `cookie_store` crate, which does RFC 6265's domain, path, expiry and `Secure` matching.
//!
//! `policy.rs` is its only user on the request path: before each hop it asks for the
//! `Cookie` header of the hop's URL, and after each response head it stores the `Set-Cookie`
//! fields, so a redirect chain that sets a cookie sends it on the next hop. Without the
//! feature, or with the store off, every method does nothing, and the request path pays for
//! one `Option` test.

#[cfg(not(feature = "cookies"))]
use http::HeaderMap;
#[cfg(not(feature = "cookies"))]
use url::Url;

#[cfg(feature = "cookies")]
pub(crate) use store::Cookies;

#[cfg(feature = "cookies")]
mod store {
    use std::borrow::Cow;
    use std::cell::RefCell;

    use cookie_store::{CookieStore, RawCookie};
    use http::header::{COOKIE, SET_COOKIE};
    use http::{HeaderMap, HeaderValue};
    use url::Url;

    /// The cookie store of a client and its clones, or `None` when the client has none. A
    /// `RefCell`: a client lives on one thread, and no borrow is held across an `.await`.
    #[derive(Debug, Default)]
    pub(crate) struct Cookies(Option<RefCell<CookieStore>>);

    impl Cookies {
        /// An empty store if `enabled`, else none.
        pub(crate) fn new(enabled: bool) -> Cookies {
            Cookies(enabled.then(|| RefCell::new(CookieStore::new())))
        }

        /// Whether the client has a store.
        pub(crate) fn enabled(&self) -> bool {
            self.0.is_some()
        }

        /// The `Cookie` header for a request to `url`: `name=value` pairs joined by `; `, or
        /// `None` if no stored cookie matches.
        pub(crate) fn header_for(&self, url: &Url) -> Option<HeaderValue> {
            let store = self.0.as_ref()?.borrow();
            let mut value = String::new();
            for (name, v) in store.get_request_values(url) {
                if !value.is_empty() {
                    value.push_str("; ");
                }
                value.push_str(name);
                value.push('=');
                value.push_str(v);
            }
            if value.is_empty() {
                return None;
            }
            let mut value = HeaderValue::try_from(value).ok()?;
            value.set_sensitive(true);
            Some(value)
        }

        /// Sets `headers`' `Cookie` to the cookies stored for `url`, or removes it if none
        /// match (a redirect's previous hop may have set one). Copies borrowed headers only
        /// when it changes them.
        pub(crate) fn add_to(&self, url: &Url, headers: &mut Cow<'_, HeaderMap>) {
            match self.header_for(url) {
                Some(value) => {
                    headers.to_mut().insert(COOKIE, value);
                }
                None if headers.contains_key(COOKIE) => {
                    headers.to_mut().remove(COOKIE);
                }
                None => {}
            }
        }

        /// Stores the cookies of a response's `Set-Cookie` fields, as set by `url`. A field
        /// that does not parse, or that `url` may not set (another domain, a `Secure` cookie
        /// over `http://`), is ignored.
        pub(crate) fn store(&self, url: &Url, headers: &HeaderMap) {
            let Some(store) = &self.0 else { return };
            let mut fields = headers.get_all(SET_COOKIE).iter().peekable();
            if fields.peek().is_none() {
                return;
            }
            let cookies = fields
                .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
                .filter_map(|s| RawCookie::parse(s.to_owned()).ok());
            store.borrow_mut().store_response_cookies(cookies, url);
        }

        /// Stores one `Set-Cookie` value as if `url` had sent it; false if there is no store
        /// or the cookie was refused.
        pub(crate) fn add_str(&self, cookie: &str, url: &Url) -> bool {
            let Some(store) = &self.0 else { return false };
            store.borrow_mut().parse(cookie, url).is_ok()
        }
    }
}

/// Without the `cookies` feature: no store, and every method does nothing.
#[cfg(not(feature = "cookies"))]
#[derive(Debug, Default)]
pub(crate) struct Cookies;

#[cfg(not(feature = "cookies"))]
impl Cookies {
    /// Whether the client has a store: never, in this build.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        false
    }

    #[inline]
    pub(crate) fn add_to(&self, _url: &Url, _headers: &mut std::borrow::Cow<'_, HeaderMap>) {}

    #[inline]
    pub(crate) fn store(&self, _url: &Url, _headers: &HeaderMap) {}
}
