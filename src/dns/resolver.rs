//! [`Resolver`]: the one type the client takes a resolver as, [`NativeResolver`] (the
//! default, made from the system's files at its first lookup), [`SystemResolver`], or one of
//! your own.

use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

use super::native::NativeResolver;
use super::resolve::{Resolve, Resolving};
use super::system::SystemResolver;

/// A resolver for [`ClientBuilder::dns_resolver`](crate::ClientBuilder::dns_resolver):
/// the native one (the default), the system's, or one of your own, behind one type.
///
/// ```no_run
/// use volley::{Client, Resolver};
///
/// // Hosts that only NSS knows (LDAP, mDNS's .local, ...): ask getaddrinfo.
/// let client = Client::builder().dns_resolver(Resolver::system()).build();
/// # drop(client);
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Rc<dyn Resolve>,
}

impl Resolver {
    /// The [`NativeResolver`] on the reactor, configured by [`NativeResolver::from_system`]
    /// when it first looks up a name (so a client that only ever sees IP addresses reads no
    /// file). The client's default.
    pub fn native() -> Resolver {
        Resolver::custom(LazyNative::default())
    }

    /// The system's resolver, `getaddrinfo`, on a helper thread: see [`SystemResolver`].
    pub fn system() -> Resolver {
        Resolver::custom(SystemResolver)
    }

    /// A resolver of your own.
    pub fn custom(resolver: impl Resolve + 'static) -> Resolver {
        Resolver {
            inner: Rc::new(resolver),
        }
    }
}

impl Default for Resolver {
    /// [`Resolver::native`].
    fn default() -> Resolver {
        Resolver::native()
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolve for Resolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        self.inner.resolve(host, port)
    }

    fn caches_answers(&self) -> bool {
        self.inner.caches_answers()
    }
}

impl From<NativeResolver> for Resolver {
    fn from(resolver: NativeResolver) -> Resolver {
        Resolver::custom(resolver)
    }
}

impl From<SystemResolver> for Resolver {
    fn from(resolver: SystemResolver) -> Resolver {
        Resolver::custom(resolver)
    }
}

/// A [`NativeResolver`] made from the system's configuration at its first lookup.
#[derive(Default)]
struct LazyNative(OnceCell<NativeResolver>);

impl Resolve for LazyNative {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        self.0
            .get_or_init(NativeResolver::from_system)
            .resolve(host, port)
    }

    fn caches_answers(&self) -> bool {
        true
    }
}
