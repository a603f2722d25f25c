//! Oversight of the service hall: the seal register (an entry per stamped step), the county's
//! letters of entrustment that say which township keeps which entrusted seal, ratings (好差评)
//! with their rectification items, and the summary a supervisor reads.
//!
//! - [`projection`]: the register and rectification items, folded with the case steps they come
//!   from; default ratings; the oversight summary;
//! - [`letters`]: letters of entrustment and the gate of issuing an entrusted item's result;
//! - [`service`]: the `Seals`, `Entrustment`, `Ratings` and `Oversight` gRPC services.

pub mod letters;
pub mod projection;
pub mod service;
