//! Oversight on the command line: `tongban seals list` (the seal register, 用印登记, optionally
//! written as CSV), `tongban rating respond|rectifications` (rectification items of bad ratings,
//! 差评整改) and `tongban oversight` (case counts, times and rating metrics per township or
//! county-wide).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Subcommand;
use tongban_domains::catalogue::{Category, SealType};
use tongban_proto::v1::{
    self as pb, oversight_client::OversightClient, ratings_client::RatingsClient, seals_client::SealsClient,
};

use crate::client::Connection;
use crate::display::{china_time, place};

#[derive(Subcommand, Debug)]
pub enum SealsAction {
    /// Register entries for one seal and date range, oldest first; with --csv, write them as CSV.
    List {
        /// The seal: township_approval, entrusted_approval, business, county (or the Chinese name);
        /// every seal when omitted.
        #[arg(long)]
        seal: Option<String>,
        /// First date, YYYY-MM-DD (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// Last date, YYYY-MM-DD (inclusive).
        #[arg(long)]
        to: Option<String>,
        /// Only this township's cases: its name (水寨镇) or code.
        #[arg(long, value_parser = crate::words::township)]
        township: Option<String>,
        /// Write the entries to this CSV file instead of printing them.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// County: issue, replace or revoke a township's letter of entrustment (授权委托书) for one
    /// class of items, which lets it keep that class's entrusted seal and stamp results with it.
    Letter {
        /// The township: its name (水寨镇) or code.
        #[arg(long, value_parser = crate::words::township)]
        township: String,
        /// The letter's number, e.g. 五政服委〔2026〕3号.
        #[arg(long)]
        number: String,
        /// The letter's date, YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// 政务服务 (government_service: 行政审批委托专用章) or 公共服务 (public_service: 业务专用章).
        #[arg(long)]
        class: String,
        /// Only this basic item code (repeat for several); the whole class when omitted.
        #[arg(long = "item")]
        items: Vec<String>,
        /// Withdraw the entrustment: the township may no longer use the seal.
        #[arg(long)]
        revoke: bool,
    },
    /// The letters of entrustment this node knows (of one township, or every one).
    Letters {
        #[arg(long, value_parser = crate::words::township)]
        township: Option<String>,
    },
}

/// Issues one letter of entrustment at the county and prints it.
async fn letter(
    conn: Connection,
    township: String,
    number: String,
    date: String,
    class: &str,
    items: Vec<String>,
    revoke: bool,
) -> Result<()> {
    let class = Category::parse_term(class)
        .ok_or_else(|| anyhow!("--class {class:?}: give 政务服务 (government_service) or 公共服务 (public_service)"))?;
    let mut client = pb::entrustment_client::EntrustmentClient::new(conn.channel().await?);
    let issued = client
        .issue_letter(pb::EntrustmentLetter {
            township,
            letter_number: number,
            letter_date: date,
            item_class: class.to_wire(),
            item_codes: items,
            revoked: revoke,
            seal: 0,
        })
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    println!("{}", letter_line(&issued));
    println!("（委托书随同步下发到该乡镇）");
    Ok(())
}

async fn letters(conn: Connection, township: Option<String>) -> Result<()> {
    let mut client = pb::entrustment_client::EntrustmentClient::new(conn.channel().await?);
    let listed = client
        .list_letters(pb::ListLettersRequest {
            township: township.unwrap_or_default(),
        })
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    if listed.letters.is_empty() {
        println!("no letters of entrustment yet; the county issues them with tongban seals letter");
    }
    for l in &listed.letters {
        println!("{}", letter_line(l));
    }
    Ok(())
}

/// `水寨镇 441424100  五政服委〔2026〕3号 2026-01-15  政务服务事项 → 行政审批委托专用章  全部事项`.
fn letter_line(l: &pb::EntrustmentLetter) -> String {
    let class = Category::from_wire(l.item_class, "item_class")
        .map(|c| c.label_zh().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let seal = SealType::from_wire(l.seal, "seal")
        .map(|s| s.label_zh().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let scope = if l.item_codes.is_empty() {
        "全部事项".to_owned()
    } else {
        format!("仅 {}", l.item_codes.join("、"))
    };
    format!(
        "{}  {} {}  {class} → {seal}  {scope}{}",
        place(&l.township),
        l.letter_number,
        l.letter_date,
        if l.revoked { "  （已撤回）" } else { "" }
    )
}

#[derive(Subcommand, Debug)]
pub enum RatingAction {
    /// Close a rectification item (its id is the case id) with a response; the response is
    /// required. Only an operator of the node that handled the case may respond.
    Respond {
        id: String,
        #[arg(long)]
        response: String,
    },
    /// Rectification items (open ones unless --all), of one township or all.
    Rectifications {
        /// Only this township's: its name (水寨镇) or code.
        #[arg(long, value_parser = crate::words::township)]
        township: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

pub async fn seals(conn: Connection, action: SealsAction) -> Result<()> {
    let (seal, from, to, township, csv) = match action {
        SealsAction::List {
            seal,
            from,
            to,
            township,
            csv,
        } => (seal, from, to, township, csv),
        SealsAction::Letter {
            township,
            number,
            date,
            class,
            items,
            revoke,
        } => return letter(conn, township, number, date, &class, items, revoke).await,
        SealsAction::Letters { township } => return letters(conn, township).await,
    };
    let seal = match seal {
        None => 0,
        Some(name) => SealType::parse_term(&name)
            .ok_or_else(|| anyhow!("--seal {name:?}: give township_approval, entrusted_approval, business or county"))?
            .to_wire(),
    };
    let request = pb::ListSealEntriesRequest {
        seal,
        from_date: from.unwrap_or_default(),
        to_date: to.unwrap_or_default(),
        township: township.unwrap_or_default(),
    };
    let mut client = SealsClient::new(conn.channel().await?);
    if let Some(path) = csv {
        let export = client
            .export_csv(request)
            .await
            .map_err(|s| conn.explain(s))?
            .into_inner();
        std::fs::write(&path, export.csv).with_context(|| format!("writing {}", path.display()))?;
        println!("{} entries written to {}", export.rows, path.display());
        return Ok(());
    }
    let entries = client
        .list_entries(request)
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner()
        .entries;
    println!("seal register (用印登记): {} entries", entries.len());
    for e in &entries {
        let seal = SealType::from_wire(e.seal, "seal")
            .map(SealType::label_zh)
            .unwrap_or("?");
        println!(
            "  {}  {seal}  {:<7} {}  {} {}  ×{}  approver {}  stamped by {} at {}",
            e.date,
            e.action,
            e.case_number,
            e.item_code,
            e.item_name,
            e.impressions,
            e.approver,
            e.stamped_by,
            place(&e.at_node)
        );
    }
    Ok(())
}

fn print_rectification(r: &pb::Rectification) {
    let level = pb::RatingLevel::try_from(r.level)
        .map(|l| l.as_str_name().trim_start_matches("RATING_LEVEL_").to_lowercase())
        .unwrap_or_else(|_| "?".to_owned());
    let state = if r.responded_ms == 0 {
        "open".to_owned()
    } else {
        let at = i64::try_from(r.responded_ms).map_or_else(|_| "-".to_owned(), china_time::minute);
        format!("answered {at} by {}: {}", r.responder, r.response)
    };
    println!(
        "  {}  {}  {level}  item {}  {}  handler {}  due {}  {state}",
        r.id,
        r.case_number,
        r.item_code,
        place(&r.township),
        place(&r.handler),
        r.deadline
    );
}

pub async fn rating(conn: Connection, action: RatingAction) -> Result<()> {
    let mut client = RatingsClient::new(conn.channel().await?);
    match action {
        RatingAction::Respond { id, response } => {
            let r = client
                .respond(pb::RespondRequest {
                    rectification_id: id,
                    response,
                })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner();
            print_rectification(&r);
        }
        RatingAction::Rectifications { township, all } => {
            let list = client
                .list_rectifications(pb::ListRectificationsRequest {
                    township: township.unwrap_or_default(),
                    open_only: !all,
                })
                .await
                .map_err(|s| conn.explain(s))?
                .into_inner()
                .rectifications;
            println!("rectification items (差评整改): {}", list.len());
            for r in &list {
                print_rectification(r);
            }
        }
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn print_metrics(indent: &str, m: &pb::RatingMetrics) {
    println!(
        "{indent}concluded {}  rated {} (active {}, default {})  good {}  bad {}  rectifications {} (answered {}, on time {})",
        m.concluded, m.rated, m.active, m.defaulted, m.good, m.bad, m.rectifications, m.rectified, m.rectified_on_time
    );
    println!(
        "{indent}coverage {}  active rating rate {}  good rate {}  bad rate {}  rectification rate {}  on-time rectification rate {}",
        pct(m.coverage),
        pct(m.active_rate),
        pct(m.good_rate),
        pct(m.bad_rate),
        pct(m.rectification_rate),
        pct(m.on_time_rate)
    );
}

pub async fn oversight(conn: Connection, township: Option<String>) -> Result<()> {
    let s = OversightClient::new(conn.channel().await?)
        .summary(pb::SummaryRequest {
            township: township.unwrap_or_default(),
        })
        .await
        .map_err(|s| conn.explain(s))?
        .into_inner();
    println!("oversight of {}", place(&s.scope));
    println!(
        "  received {}  accepted {}  concluded {}  overdue (red) {}  yellow {}  average {:.1} working days to conclusion",
        s.received, s.accepted, s.concluded, s.overdue, s.yellow, s.avg_working_days_to_conclusion
    );
    println!("  (overdue: {})", s.overdue_note);
    if let Some(m) = &s.ratings {
        println!("  ratings (好差评):");
        print_metrics("    ", m);
    }
    for row in &s.rows {
        println!(
            "  {} / window {} / item {} / {}",
            place(&row.township),
            row.window,
            row.item_code,
            row.month
        );
        if let Some(m) = &row.metrics {
            print_metrics("      ", m);
        }
    }
    if !s.windows.is_empty() {
        println!("  per window (窗口):");
        for w in &s.windows {
            println!(
                "    {} {}号窗口  受理 {}  出件 {}",
                place(&w.township),
                w.window,
                w.accepted,
                w.issued
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::{RatingAction, SealsAction};
    use crate::ops::{OperatorCommand as Command, parse};

    #[test]
    fn the_oversight_commands_parse_and_a_response_is_required() {
        let seals = parse(&[
            "seals",
            "list",
            "--seal",
            "township_approval",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--csv",
            "out.csv",
        ])
        .unwrap();
        assert!(matches!(
            seals,
            Command::Seals {
                action: SealsAction::List {
                    csv: Some(_),
                    seal: Some(_),
                    ..
                },
                ..
            }
        ));
        let respond = parse(&["rating", "respond", "X", "--response", "已回访"]).unwrap();
        assert!(matches!(
            respond,
            Command::Rating {
                action: RatingAction::Respond { .. },
                ..
            }
        ));
        assert!(parse(&["rating", "respond", "X"]).is_err(), "--response is required");
        let list = parse(&["rating", "rectifications", "--all"]).unwrap();
        assert!(matches!(
            list,
            Command::Rating {
                action: RatingAction::Rectifications { all: true, .. },
                ..
            }
        ));
        let summary = parse(&["oversight", "--township", "441424100"]).unwrap();
        assert!(matches!(summary, Command::Oversight { township: Some(_), .. }));
    }
}
