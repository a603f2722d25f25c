//! Time limits on the command line: `tongban calendar publish|show` (the working-day calendar),
//! `tongban case warnings` (red and yellow warnings at a node) and `tongban supervision
//! list|close` (the county's supervision records, 督办).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use tongban_proto::v1::{
    self as pb, calendar_client::CalendarClient, calendar_publishing_client::CalendarPublishingClient,
    cases_client::CasesClient,
};

use tongban_domains::case::warnings::standing_zh;

use crate::client::Connection;
use crate::display::{cell, china_time, place};

#[derive(Subcommand, Debug)]
pub enum CalendarAction {
    /// County: check a calendar file (TOML, or JSON by its extension) and publish it down the tree.
    Publish { file: PathBuf },
    /// The calendar this node counts on now.
    Show,
}

#[derive(Subcommand, Debug)]
pub enum SupervisionAction {
    /// Supervision records at the county (open ones unless --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Close a supervision record; the reason is required.
    Close {
        id: u64,
        #[arg(long)]
        reason: String,
    },
}

/// The level a warning list starts from.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum WarnLevel {
    /// 黄牌
    #[value(alias = "黄", alias = "黄牌")]
    Yellow,
    /// 红牌
    #[value(alias = "红", alias = "红牌")]
    Red,
}

fn rule_name(rule: i32) -> &'static str {
    match pb::WarningRule::try_from(rule) {
        Ok(pb::WarningRule::Acceptance) => "acceptance 受理",
        Ok(pb::WarningRule::Processing) => "processing 办理",
        Ok(pb::WarningRule::Issuing) => "issuing 出件",
        _ => "?",
    }
}

fn level_name(level: i32) -> &'static str {
    match pb::WarningLevel::try_from(level) {
        Ok(pb::WarningLevel::Red) => "RED 红",
        Ok(pb::WarningLevel::Yellow) => "yellow 黄",
        _ => "-",
    }
}

pub async fn calendar(conn: Connection, action: CalendarAction) -> Result<()> {
    let mut client = CalendarClient::new(conn.channel().await?);
    let info = match action {
        CalendarAction::Publish { file } => {
            let content = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let json = file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let format = if json {
                pb::CalendarFormat::Json
            } else {
                pb::CalendarFormat::Toml
            };
            let request = pb::PublishCalendarRequest {
                content,
                format: format as i32,
            };
            let mut publishing = CalendarPublishingClient::new(conn.channel().await?);
            let info = publishing
                .publish(request)
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            println!("published; it reaches every township and village as they sync");
            info
        }
        CalendarAction::Show => client
            .show(pb::ShowCalendarRequest {})
            .await
            .map_err(|s| conn.explain(s))?
            .into_inner(),
    };
    let Some(c) = info.calendar else {
        bail!("the node returned no calendar");
    };
    let origin = if info.published {
        format!("latest published by the county (event {})", info.published_seq)
    } else {
        "built in (the national 2026 schedule); the county has published none".to_owned()
    };
    println!("{} — version {} — {origin}", c.name, c.version);
    println!("  年份 years held {}:", info.years.len());
    for y in &info.years {
        let from = if y.published_seq == 0 {
            "内置 built in".to_owned()
        } else {
            format!("县发布 event {}", y.published_seq)
        };
        println!("    {} 年  {} — version {} — {from}", y.year, y.name, y.version);
    }
    println!("  holidays     {} (放假): {}", c.holidays.len(), c.holidays.join(" "));
    println!(
        "  working days {} (调休上班): {}",
        c.adjusted_working_days.len(),
        c.adjusted_working_days.join(" ")
    );
    Ok(())
}

/// Prints the warning list, worst first: `limit` of them, or every page when `None`.
pub async fn warnings(
    conn: Connection,
    level: Option<WarnLevel>,
    township: Option<String>,
    limit: Option<u32>,
) -> Result<()> {
    let mut client = CasesClient::new(conn.channel().await?);
    let mut request = pb::ListWarningsRequest {
        level: match level {
            Some(WarnLevel::Red) => pb::WarningLevel::Red,
            _ => pb::WarningLevel::Yellow,
        } as i32,
        rule: pb::WarningRule::Unspecified as i32,
        township: township.unwrap_or_default(),
        page_size: limit.unwrap_or(1_000).clamp(1, 5_000),
        page_token: String::new(),
    };
    let mut shown = 0usize;
    loop {
        let r = client
            .list_warnings(request.clone())
            .await
            .map_err(|s| conn.explain(s))?
            .into_inner();
        if request.page_token.is_empty() {
            println!(
                "warnings on {} (calendar {}): {} red (红牌), {} yellow (黄牌)",
                r.evaluated_on, r.calendar_version, r.red_total, r.yellow_total
            );
        }
        for w in &r.warnings {
            println!(
                "  {} {} {}  期限 {}  {}  {}（{}）  held by {}",
                cell(level_name(w.level), 10),
                cell(rule_name(w.rule), 16),
                cell(&standing(w, &r.evaluated_on), 26),
                w.deadline,
                w.case_number,
                w.item_name,
                w.item_code,
                place(&w.holder)
            );
        }
        shown += r.warnings.len();
        let total = (r.red_total + r.yellow_total) as usize;
        if r.next_page_token.is_empty() || limit.is_some() {
            if shown < total {
                println!("  ... and {} more (--all to list every one)", total - shown);
            }
            return Ok(());
        }
        request.page_token = r.next_page_token;
    }
}

/// `超期 8 个工作日`, `剩余 3 个工作日`: a warning's standing on the day it was evaluated.
/// Both dates are `YYYY-MM-DD`, so they compare as text.
fn standing(w: &pb::CaseWarning, evaluated_on: &str) -> String {
    standing_zh(w.working_days_left, evaluated_on > w.deadline.as_str())
}

pub async fn supervision(conn: Connection, action: SupervisionAction) -> Result<()> {
    let mut client = CasesClient::new(conn.channel().await?);
    match action {
        SupervisionAction::List { all } => {
            let r = client
                .list_supervision(pb::ListSupervisionRequest { include_closed: all })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            println!("supervision records (督办): {}", r.records.len());
            for s in &r.records {
                print_record(s);
            }
        }
        SupervisionAction::Close { id, reason } => {
            let s = client
                .close_supervision(pb::CloseSupervisionRequest { id, reason })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            print_record(&s);
        }
    }
    Ok(())
}

fn print_record(s: &pb::SupervisionRecord) {
    let state = if s.closed {
        format!(
            "closed {} by {}: {}",
            china_time::minute(s.closed_unix_ms),
            s.closed_by,
            s.close_reason
        )
    } else {
        "open".to_owned()
    };
    println!(
        "  #{:<5} {}  {}  超期（期限 {}）  item {}  held by {}  opened {}  {state}",
        s.id,
        s.case_number,
        rule_name(s.rule),
        s.deadline,
        s.item_code,
        place(&s.holder),
        china_time::minute(s.opened_unix_ms)
    );
}
