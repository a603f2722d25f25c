//! The matter catalogue (事项清单): the county's list of government-service and public-service
//! items, and for each item which townships may handle it, how (authorised, entrusted or not
//! delegated), in which batch, under which seal, with which time limits and materials.
//!
//! This module owns the domain model ([`model`]), file import/export ([`import`]), the
//! projection of the county's versions into the node's tables ([`projection`]: versions apply
//! strictly in order and must produce the published hash, built on [`Item::content_hash`] and
//! [`catalogue_hash`]) and the `Catalogue` and `Node` gRPC services ([`service`]).

pub mod import;
pub mod model;
pub mod projection;
pub mod service;

pub use import::{COLUMNS, ImportErrors, MAX_IMPORT_BYTES, RowError, parse, parse_csv, parse_json, to_csv, to_json};
pub use model::{
    Category, DelegationMode, Item, ItemLevel, ItemType, Material, MaterialForm, ModelError, SealType, UnknownTerm,
    VARIANTS_SHOWN, VariantChoice, WindowType, ambiguous_code_message, catalogue_hash, catalogue_hash_of,
    choose_variant,
};
