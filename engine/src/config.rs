//! The engine's settings: how logs are written and how links sync. A node's configuration file
//! embeds them as its `[log]` and `[sync]` sections.

use std::time::Duration;

use serde::Deserialize;

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tongban_engine::sync=debug,info`.
    #[serde(default = "default_filter")]
    pub filter: String,
}

fn default_filter() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            filter: default_filter(),
        }
    }
}

/// Sync tuning. The defaults suit a township on a poor link.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Most events in one frame.
    #[serde(default = "default_batch")]
    pub batch_events: usize,
    /// Frames sent but not yet acknowledged; bounds memory on both ends.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Seconds between link checksums (0 disables them).
    #[serde(default = "default_checksum")]
    pub checksum_interval_secs: u64,
    /// Longest wait between reconnect attempts, in seconds.
    #[serde(default = "default_backoff")]
    pub max_backoff_secs: u64,
}

fn default_batch() -> usize {
    1000
}
fn default_in_flight() -> usize {
    4
}
fn default_checksum() -> u64 {
    300
}
fn default_backoff() -> u64 {
    30
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            batch_events: default_batch(),
            max_in_flight: default_in_flight(),
            checksum_interval_secs: default_checksum(),
            max_backoff_secs: default_backoff(),
        }
    }
}

impl SyncConfig {
    pub fn checksum_interval(&self) -> Option<Duration> {
        (self.checksum_interval_secs > 0).then(|| Duration::from_secs(self.checksum_interval_secs))
    }
}
