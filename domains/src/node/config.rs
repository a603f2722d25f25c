//! Node configuration: a TOML file, overridden by `TONGBAN_NODE_*` environment variables,
//! validated before anything starts so a bad configuration fails with one clear sentence.
//!
//! ```toml
//! node_id  = "441424100"                 # division code; must match the certificate
//! listen   = "0.0.0.0:7100"
//! parent   = "https://county.example:7000" # absent at the county
//! data_dir = "/var/lib/tongban"           # SQLite file <data_dir>/<node_id>.db
//! # database_url = "postgres://tongban@db/tongban"   # instead of data_dir
//!
//! [tls]
//! ca   = "pki/ca.pem"
//! cert = "pki/nodes/441424100.pem"
//! key  = "pki/nodes/441424100.key"
//!
//! [log]
//! format = "human"   # or "json"
//! filter = "info"
//!
//! [sync]
//! batch_events = 1000
//! checksum_interval_secs = 300
//!
//! [warnings]            # red/yellow thresholds; missing keys keep their defaults
//! yellow_fraction = 0.2
//! acceptance_red_days = 5
//!
//! [supervision]         # the county's scan for red cases (督办)
//! scan_interval_secs = 300
//!
//! [ratings]             # townships' and villages' run recording default ratings (好差评)
//! default_scan_interval_secs = 3600
//! ```
//! Environment: [`ENV_PREFIX`] and the key, `__` separating a section from its key:
//! `TONGBAN_NODE_NODE_ID`, `TONGBAN_NODE_LISTEN`, `TONGBAN_NODE_PARENT`, `TONGBAN_NODE_DATA_DIR`,
//! `TONGBAN_NODE_DATABASE_URL`, `TONGBAN_NODE_TLS__CA`, `TONGBAN_NODE_LOG__FORMAT`, …. The prefix
//! is the node's own: the command line's variables (`TONGBAN_CLI_*`) and the simulation's
//! (`TONGBAN_SIM_*`) share a machine with nodes, and any unknown key is an error here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::case::warnings::WarningThresholds;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::store::StoreLocation;
pub use tongban_engine::config::{LogConfig, LogFormat, SyncConfig};
use tongban_engine::ids::{NodeId, Tier};
use tongban_engine::tls::TlsFiles;

/// The prefix of the environment variables a node reads as its settings.
pub const ENV_PREFIX: &str = "TONGBAN_NODE_";

/// Why a configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {source}")]
    Load {
        path: String,
        #[source]
        source: Box<figment::Error>,
    },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A node's configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node_id: NodeId,
    pub listen: SocketAddr,
    /// `https://host:port` of the parent node; required below the county.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub database_url: Option<String>,
    pub tls: TlsFiles,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub sync: SyncConfig,
    /// Red/yellow warning thresholds; missing keys take [`WarningThresholds::default`].
    #[serde(default)]
    pub warnings: WarningThresholds,
    #[serde(default)]
    pub supervision: SupervisionConfig,
    #[serde(default)]
    pub ratings: RatingsConfig,
}

/// How often a township or village looks for issued cases left unrated for seven days, to record
/// the default "basically satisfied" rating.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatingsConfig {
    /// Seconds between runs (at least 1). Default 3600: the period is counted in days.
    #[serde(default = "default_rating_scan_secs")]
    pub default_scan_interval_secs: u64,
}

fn default_rating_scan_secs() -> u64 {
    3600
}

impl Default for RatingsConfig {
    fn default() -> Self {
        RatingsConfig {
            default_scan_interval_secs: default_rating_scan_secs(),
        }
    }
}

/// The county's periodic scan for red cases, which opens supervision records (督办).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Seconds between scans (at least 1). Default 300.
    #[serde(default = "default_scan_secs")]
    pub scan_interval_secs: u64,
}

fn default_scan_secs() -> u64 {
    300
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            scan_interval_secs: default_scan_secs(),
        }
    }
}

impl NodeConfig {
    /// Reads `path`, applies `TONGBAN_NODE_*` overrides, and validates.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Invalid(format!("file {} does not exist", path.display())));
        }
        let config: NodeConfig = Figment::new()
            .merge(Toml::file(path))
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| ConfigError::Load {
                path: path.display().to_string(),
                source: Box::new(e),
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: the tree position and the storage choice.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.warnings
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("[warnings]: {e}")))?;
        if self.ratings.default_scan_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "[ratings] default_scan_interval_secs must be at least 1".into(),
            ));
        }
        if self.supervision.scan_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "[supervision] scan_interval_secs must be at least 1".into(),
            ));
        }
        match (self.node_id.tier(), &self.parent) {
            (Tier::County, Some(_)) => {
                return Err(ConfigError::Invalid(format!(
                    "node {} is a county and has no parent; remove `parent`",
                    self.node_id
                )));
            }
            (Tier::Township | Tier::Village, None) => {
                return Err(ConfigError::Invalid(format!(
                    "node {} is a {} and needs `parent` (the https:// address of {})",
                    self.node_id,
                    self.node_id.tier(),
                    self.node_id.parent().map(|p| p.to_string()).unwrap_or_default()
                )));
            }
            (_, Some(parent)) if !parent.starts_with("https://") => {
                return Err(ConfigError::Invalid(format!(
                    "parent {parent:?} must be an https:// address (every link is mTLS)"
                )));
            }
            _ => {}
        }
        match (&self.data_dir, &self.database_url) {
            (None, None) => Err(ConfigError::Invalid(
                "set `data_dir` (embedded SQLite) or `database_url` (PostgreSQL)".into(),
            )),
            (Some(_), Some(_)) => Err(ConfigError::Invalid(
                "set only one of `data_dir` and `database_url`".into(),
            )),
            (_, Some(url))
                if !(url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || url.starts_with("sqlite:")) =>
            {
                Err(ConfigError::Invalid(format!(
                    "database_url must start with postgres:// or sqlite:, got {url:?}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Where the store lives.
    pub fn store_location(&self) -> StoreLocation {
        match (&self.database_url, &self.data_dir) {
            (Some(url), _) => StoreLocation::Url(url.clone()),
            (None, Some(dir)) => StoreLocation::in_data_dir(dir, &self.node_id),
            (None, None) => StoreLocation::SqliteFile(PathBuf::from(format!("{}.db", self.node_id))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn write(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("node.toml");
        std::fs::write(&path, body).unwrap();
        path
    }

    const TLS: &str = "[tls]\nca = \"ca.pem\"\ncert = \"n.pem\"\nkey = \"n.key\"\n";

    #[test]
    fn a_township_without_parent_is_refused_with_a_clear_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("node_id = \"441424100\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n{TLS}"),
        );
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("needs `parent`"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_ids_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("node_id = \"4414\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\n{TLS}"),
        );
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("6, 9 or 12 digits"), "{err}");
        let path = write(
            dir.path(),
            &format!("node_id = \"441424\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"d\"\nlisen = 1\n{TLS}"),
        );
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn a_valid_county_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("node_id = \"441424\"\nlisten = \"127.0.0.1:7000\"\ndata_dir = \"d\"\n{TLS}"),
        );
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.node_id.as_str(), "441424");
        assert_eq!(config.sync.batch_events, 1000);
        assert!(matches!(config.store_location(), StoreLocation::SqliteFile(_)));
        assert_eq!(config.warnings, WarningThresholds::default());
        assert_eq!(config.supervision.scan_interval_secs, 300);
    }

    #[test]
    fn warning_thresholds_and_the_supervision_scan_are_configurable() {
        let dir = tempfile::tempdir().unwrap();
        let head = "node_id = \"441424\"\nlisten = \"127.0.0.1:7000\"\ndata_dir = \"d\"\n";
        let path = write(
            dir.path(),
            &format!("{head}{TLS}[warnings]\nyellow_fraction = 0.5\n[supervision]\nscan_interval_secs = 60\n"),
        );
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.warnings.yellow_fraction, 0.5);
        assert_eq!(
            config.warnings.acceptance_red_days, 5,
            "missing keys keep their default"
        );
        assert_eq!(config.supervision.scan_interval_secs, 60);
        let path = write(dir.path(), &format!("{head}{TLS}[warnings]\nyellow_fraction = 2.0\n"));
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("[warnings]") && err.contains("yellow_fraction"), "{err}");
    }
}
