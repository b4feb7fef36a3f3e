//! [`SystemResolver`]: the system's `getaddrinfo`, on a helper thread so the loop never
//! blocks; the option for set-ups that need NSS.

use std::net::ToSocketAddrs;

use super::resolve::{Resolve, Resolving};

/// The system's resolver: `getaddrinfo` on a helper thread, so the loop never blocks. It
/// honours `/etc/hosts`, NSS modules and the system's resolver configuration.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> Resolving {
        let name = host.to_owned();
        let lookup = crate::rt::spawn_blocking(move || {
            (name.as_str(), port).to_socket_addrs().map(Vec::from_iter)
        });
        Box::pin(async move { lookup.await? })
    }
}
