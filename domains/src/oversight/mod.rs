//! Oversight of the service hall: the seal register (an entry per stamped step), ratings (好差评)
//! with their rectification items, and the summary a supervisor reads.
//!
//! - [`projection`]: the register and rectification items, folded with the case steps they come
//!   from; default ratings; the oversight summary;
//! - [`service`]: the `Seals`, `Ratings` and `Oversight` gRPC services.

pub mod projection;
pub mod service;
