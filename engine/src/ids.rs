//! Node identities: administrative division codes and the tree they imply.
//!
//! A node's id is its division code — 6 digits for the county (`441424`), 9 for a township
//! (`441424100`), 12 for a village (`441424100201`). The code alone tells the tier and the whole
//! chain of ancestors, so routing needs no lookup table.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The three tiers of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    County,
    Township,
    Village,
}

impl Tier {
    /// Number of digits in a division code of this tier.
    pub const fn code_len(self) -> usize {
        match self {
            Tier::County => 6,
            Tier::Township => 9,
            Tier::Village => 12,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::County => "county",
            Tier::Township => "township",
            Tier::Village => "village",
        }
    }

    /// The tier directly below, if any.
    pub const fn child(self) -> Option<Tier> {
        match self {
            Tier::County => Some(Tier::Township),
            Tier::Township => Some(Tier::Village),
            Tier::Village => None,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "county" => Ok(Tier::County),
            "township" => Ok(Tier::Township),
            "village" => Ok(Tier::Village),
            other => Err(IdError::UnknownTier(other.to_owned())),
        }
    }
}

/// Why a string is not a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("node id {0:?} must be a division code of 6, 9 or 12 digits")]
    BadCode(String),
    #[error("unknown tier {0:?} (expected county, township or village)")]
    UnknownTier(String),
}

/// A validated division code naming one node of the tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    pub fn new(code: impl Into<String>) -> Result<Self, IdError> {
        let code = code.into();
        let valid_len = matches!(code.len(), 6 | 9 | 12);
        if valid_len && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(NodeId(code))
        } else {
            Err(IdError::BadCode(code))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn tier(&self) -> Tier {
        match self.0.len() {
            6 => Tier::County,
            9 => Tier::Township,
            _ => Tier::Village,
        }
    }

    /// The parent node, or `None` for the county.
    pub fn parent(&self) -> Option<NodeId> {
        match self.tier() {
            Tier::County => None,
            Tier::Township => Some(NodeId(self.0[..6].to_owned())),
            Tier::Village => Some(NodeId(self.0[..9].to_owned())),
        }
    }

    /// The county this node belongs to.
    pub fn county(&self) -> NodeId {
        NodeId(self.0[..6].to_owned())
    }

    /// True when `other` is this node or lies below it.
    pub fn contains(&self, other: &str) -> bool {
        other.len() >= self.0.len() && other.starts_with(self.0.as_str())
    }

    /// True when `other` lies strictly below this node.
    pub fn is_ancestor_of(&self, other: &str) -> bool {
        other.len() > self.0.len() && other.starts_with(self.0.as_str())
    }

    /// The direct child of this node on the way down to `descendant`, if `descendant` lies below.
    pub fn child_toward(&self, descendant: &str) -> Option<NodeId> {
        let child_len = self.tier().child()?.code_len();
        if self.is_ancestor_of(descendant) && descendant.len() >= child_len {
            Some(NodeId(descendant[..child_len].to_owned()))
        } else {
            None
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::new(s)
    }
}

impl TryFrom<String> for NodeId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        NodeId::new(s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> String {
        id.0
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tiers_and_parents_follow_the_code_length() {
        assert_eq!(id("441424").tier(), Tier::County);
        assert_eq!(id("441424100").parent(), Some(id("441424")));
        assert_eq!(id("441424100201").parent(), Some(id("441424100")));
        assert_eq!(id("441424").parent(), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        for bad in ["", "44142", "4414241000", "44142410020a", "441424-100"] {
            assert!(NodeId::new(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn child_toward_names_the_next_hop_down() {
        let county = id("441424");
        assert_eq!(county.child_toward("441424100201"), Some(id("441424100")));
        assert_eq!(county.child_toward("441424"), None);
        assert_eq!(county.child_toward("441425100"), None);
        assert_eq!(id("441424100").child_toward("441424100201"), Some(id("441424100201")));
        assert_eq!(id("441424100201").child_toward("441424100201"), None);
        assert!(county.contains("441424"));
        assert!(!county.is_ancestor_of("441424"));
    }
}
