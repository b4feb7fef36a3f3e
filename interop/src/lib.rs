//! Nothing to see: this package holds the `from_tokio` example and the tests of volley's
//! threaded client under tokio, smol and `futures::executor`.
