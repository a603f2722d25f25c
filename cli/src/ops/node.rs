//! `tongban status` and `tongban alarms`: a node's identity, catalogue version and per-link lag,
//! and the integrity alarms it raised.

use anyhow::Result;
use tongban_proto::v1::{self as pb, node_client::NodeClient};

use crate::client::Connection;
use crate::display::{cell, place, short_hash};

fn ago(now_ms: i64, then_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".into();
    }
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86399 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

pub async fn status(conn: Connection, json: bool) -> Result<()> {
    let mut client = NodeClient::new(conn.channel().await?);
    let s = client
        .status(pb::StatusRequest {})
        .await
        .map_err(|e| conn.explain(e))?
        .into_inner();
    if json {
        let links: Vec<serde_json::Value> = s
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "peer": l.peer_id, "role": if l.role == pb::LinkRole::Parent as i32 { "parent" } else { "child" },
                    "connected": l.connected, "events_behind": l.events_behind,
                    "oldest_unacked_age_ms": l.oldest_unacked_age_ms, "last_sync_unix_ms": l.last_sync_unix_ms,
                    "applied_from_peer": l.applied_from_peer, "acked_by_peer": l.acked_by_peer,
                    "last_checksum_ok": l.last_checksum_ok, "repairs": l.repairs,
                })
            })
            .collect();
        let value = serde_json::json!({
            "node_id": s.node_id, "tier": s.tier, "parent_id": s.parent_id, "storage": s.storage,
            "catalogue_version": s.catalogue_version, "catalogue_hash": s.catalogue_hash,
            "events_stored": s.events_stored, "open_alarms": s.open_alarms, "links": links,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let tier = match pb::Tier::try_from(s.tier) {
        Ok(pb::Tier::County) => "county",
        Ok(pb::Tier::Township) => "township",
        Ok(pb::Tier::Village) => "village",
        _ => "?",
    };
    let now = tongban_domains::hlc::wall_ms() as i64;
    println!(
        "node {} ({tier}), tongban {}, storage {}",
        place(&s.node_id),
        s.software_version,
        s.storage
    );
    if !s.parent_id.is_empty() {
        println!("parent {}", place(&s.parent_id));
    }
    println!(
        "catalogue version {} (hash {}), {} events stored, {} alarms",
        s.catalogue_version,
        short_hash(&s.catalogue_hash),
        s.events_stored,
        s.open_alarms
    );
    if s.links.is_empty() {
        println!("no links yet");
        return Ok(());
    }
    println!(
        "{} {:<7} {:<5} {:>8} {:>10} {:>12} {:>10}",
        cell("peer", 26),
        "role",
        "up",
        "behind",
        "oldest",
        "last sync",
        "checksum"
    );
    for l in &s.links {
        println!(
            "{} {:<7} {:<5} {:>8} {:>10} {:>12} {:>10}",
            cell(&place(&l.peer_id), 26),
            if l.role == pb::LinkRole::Parent as i32 {
                "parent"
            } else {
                "child"
            },
            if l.connected { "yes" } else { "no" },
            l.events_behind,
            if l.oldest_unacked_age_ms == 0 {
                "-".into()
            } else {
                format!("{}s", l.oldest_unacked_age_ms / 1000)
            },
            ago(now, l.last_sync_unix_ms),
            if l.last_checksum_unix_ms == 0 {
                "-".to_string()
            } else if l.last_checksum_ok {
                "ok".to_string()
            } else {
                format!("repaired×{}", l.repairs)
            }
        );
    }
    Ok(())
}

pub async fn alarms(conn: Connection, limit: u32) -> Result<()> {
    let mut client = NodeClient::new(conn.channel().await?);
    let response = client
        .list_alarms(pb::ListAlarmsRequest { limit })
        .await
        .map_err(|e| conn.explain(e))?
        .into_inner();
    if response.alarms.is_empty() {
        println!("no alarms");
    }
    let now = tongban_domains::hlc::wall_ms() as i64;
    for a in response.alarms {
        let kind = match pb::AlarmKind::try_from(a.kind) {
            Ok(pb::AlarmKind::ConflictingDuplicate) => "CONFLICTING DUPLICATE",
            Ok(pb::AlarmKind::Quarantined) => "QUARANTINED",
            _ => "ALARM",
        };
        println!(
            "#{} {kind} {}/{} from {} ({}): {}",
            a.id,
            place(&a.origin),
            a.seq,
            place(&a.received_from),
            ago(now, a.raised_unix_ms),
            a.reason
        );
    }
    Ok(())
}
