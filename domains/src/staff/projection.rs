//! The roster's projection and its commands and queries.
//!
//! This module owns:
//! - folding `RosterChange` events into `staff_windows`, `staff_members` and `staff_logins`
//!   (every node keeps its own roster and, since changes travel up, those of the nodes below);
//! - putting a member or a window at this node ([`Store::put_member`], [`Store::put_window`]),
//!   with the rule of who may change a roster;
//! - the gate every operator's case step passes ([`Store::staff_stamp`]): which member a
//!   certificate is here, and whether their posts allow the step.
//!
//! Roster rules that depend on the rest of the roster (a seat at an open window, a certificate
//! name held by one member) are checked in the fold, so a replica applies exactly what the
//! author could, and a change racing another is refused by the writer, not half-applied.

use tongban_proto::v1::{self as pb, EventKind, RouteClass, event_body::Body};

use crate::case::ActionKind;
use crate::event::{CheckedEvent, EventError, NewEvent};
use crate::ids::NodeId;
use crate::pki::Principal;
use crate::staff::wire::{member_from_wire, member_to_wire, window_from_wire, window_to_wire};
use crate::staff::{Member, Post, StaffRefusal, StaffStamp, Window, WindowKind, refusal_for};
use crate::store::{Backend, FoldContext, FoldOutcome, Projection, ProjectionFuture, Store, StoreError, WriteTx};
use crate::{with_pool, with_tx};

/// A refused roster change or case step, or the store failing under it.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    #[error(transparent)]
    Refused(#[from] StaffRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The roster's projection.
pub(crate) struct StaffProjection;

impl Projection for StaffProjection {
    fn name(&self) -> &'static str {
        "staff"
    }

    fn kinds(&self) -> &'static [EventKind] {
        &[EventKind::RosterChange]
    }

    // A centre's roster is its own: only that node writes it, and it travels up its path.
    fn check_authorship(&self, event: &CheckedEvent) -> Result<(), EventError> {
        let Body::RosterChange(body) = &event.body else {
            return Err(EventError::Rule("not a roster change".into()));
        };
        if body.node != event.origin.as_str() || event.route_key != event.origin {
            return Err(EventError::Rule(format!(
                "only node {} changes its own roster, not {}",
                body.node, event.origin
            )));
        }
        if event.route_class() != RouteClass::Path {
            return Err(EventError::Rule("a roster change travels up the tree".into()));
        }
        if event.event.subject != format!("roster:{}", body.node) {
            return Err(EventError::Rule(format!(
                "a roster change must have the subject roster:{}",
                body.node
            )));
        }
        Ok(())
    }

    fn migrations(&self, backend: Backend) -> Option<sqlx::migrate::Migrator> {
        Some(match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/staff/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/staff/postgres"),
        })
    }

    fn fold<'a>(&'a self, cx: &'a mut FoldContext<'_>, event: &'a CheckedEvent) -> ProjectionFuture<'a, FoldOutcome> {
        Box::pin(async move {
            let Body::RosterChange(body) = &event.body else {
                return Ok(FoldOutcome::refused("not a roster change"));
            };
            let node = &event.origin;
            let verdict = match &body.change {
                Some(pb::roster_change::Change::Member(m)) => match member_from_wire(m) {
                    Ok(member) => fold_member(cx.tx, node, &member).await?,
                    Err(refusal) => Err(refusal),
                },
                Some(pb::roster_change::Change::Window(w)) => match window_from_wire(w) {
                    Ok(window) => fold_window(cx.tx, node, &window).await?,
                    Err(refusal) => Err(refusal),
                },
                None => Err(StaffRefusal::Invalid {
                    field: "change",
                    message: "既无人员也无窗口".into(),
                }),
            };
            Ok(match verdict {
                Ok(()) => FoldOutcome::Applied,
                Err(refusal) => FoldOutcome::Refused(refusal.to_string()),
            })
        })
    }
}

/// Puts `member` into `node`'s roster, if the rest of the roster allows it.
async fn fold_member(tx: &mut WriteTx, node: &NodeId, member: &Member) -> Result<Result<(), StaffRefusal>, StoreError> {
    if let Err(refusal) = member.check(node) {
        return Ok(Err(refusal));
    }
    if let Some(number) = member.window.filter(|_| member.active) {
        let open: Option<i64> = with_tx!(tx, conn => {
            sqlx::query_scalar("SELECT open FROM staff_windows WHERE node = $1 AND number = $2")
                .bind(node.as_str())
                .bind(i64::from(number))
                .fetch_optional(conn)
                .await
        })?;
        match open {
            Some(1) => {}
            Some(_) => {
                return Ok(Err(StaffRefusal::Conflict(format!(
                    "{number}号窗口已关闭，不能安排人员；下一步：先开放该窗口，或安排到其他窗口"
                ))));
            }
            None => {
                return Ok(Err(StaffRefusal::Conflict(format!(
                    "{node} 没有 {number}号窗口；下一步：先用 tongban staff window 设立该窗口"
                ))));
            }
        }
    }
    for login in &member.logins {
        let holder: Option<String> = with_tx!(tx, conn => {
            sqlx::query_scalar("SELECT staff_no FROM staff_logins WHERE node = $1 AND login = $2")
                .bind(node.as_str())
                .bind(login.as_str())
                .fetch_optional(conn)
                .await
        })?;
        if let Some(other) = holder.filter(|h| *h != member.staff_no) {
            return Ok(Err(StaffRefusal::Conflict(format!(
                "证书名 {login} 已属于工号 {other}；一个证书只能属于一名工作人员；下一步：先从工号 {other} 的证书名中去掉它"
            ))));
        }
    }
    let json = serde_json::to_string(member).map_err(|e| StoreError::Corrupt(format!("staff member: {e}")))?;
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO staff_members (node, staff_no, member, active) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node, staff_no) DO UPDATE SET member = excluded.member, active = excluded.active",
        )
        .bind(node.as_str())
        .bind(member.staff_no.as_str())
        .bind(json.as_str())
        .bind(i64::from(member.active))
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM staff_logins WHERE node = $1 AND staff_no = $2")
            .bind(node.as_str())
            .bind(member.staff_no.as_str())
            .execute(&mut *conn)
            .await?;
        for login in &member.logins {
            sqlx::query("INSERT INTO staff_logins (node, login, staff_no) VALUES ($1, $2, $3)")
                .bind(node.as_str())
                .bind(login.as_str())
                .bind(member.staff_no.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Ok::<(), sqlx::Error>(())
    })?;
    Ok(Ok(()))
}

/// Puts `window` into `node`'s roster. Closing a window someone still sits at is refused.
async fn fold_window(tx: &mut WriteTx, node: &NodeId, window: &Window) -> Result<Result<(), StaffRefusal>, StoreError> {
    if let Err(refusal) = window.check() {
        return Ok(Err(refusal));
    }
    if !window.open {
        let members: Vec<String> = with_tx!(tx, conn => {
            sqlx::query_scalar("SELECT member FROM staff_members WHERE node = $1 AND active = 1")
                .bind(node.as_str())
                .fetch_all(conn)
                .await
        })?;
        let seated: Vec<String> = members
            .iter()
            .filter_map(|json| serde_json::from_str::<Member>(json).ok())
            .filter(|m| m.window == Some(window.number))
            .map(|m| m.name)
            .collect();
        if !seated.is_empty() {
            return Ok(Err(StaffRefusal::Conflict(format!(
                "{}号窗口还有人员（{}）；下一步：先把他们安排到其他窗口再关闭",
                window.number,
                seated.join("、")
            ))));
        }
    }
    with_tx!(tx, conn => {
        sqlx::query(
            "INSERT INTO staff_windows (node, number, kind, label, open) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (node, number) DO UPDATE SET kind = excluded.kind, label = excluded.label, open = excluded.open",
        )
        .bind(node.as_str())
        .bind(i64::from(window.number))
        .bind(window.kind.as_str())
        .bind(window.label.as_str())
        .bind(i64::from(window.open))
        .execute(conn)
        .await
        .map(|_| ())
    })?;
    Ok(Ok(()))
}

/// Where a page of members or windows starts: the last key of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterCursor(pub String);

impl Store {
    /// The member of this node's roster that operator certificate `login` is, if any.
    pub async fn member_by_login(&self, login: &str) -> Result<Option<Member>, StoreError> {
        let json: Option<String> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar(
                "SELECT m.member FROM staff_logins l JOIN staff_members m \
                 ON m.node = l.node AND m.staff_no = l.staff_no WHERE l.node = $1 AND l.login = $2",
            )
            .bind(self.node().as_str())
            .bind(login)
            .fetch_optional(conn)
            .await
        })?;
        json.map(|j| parse_member(&j)).transpose()
    }

    /// Whether `node` has a roster yet (any member, active or not).
    pub async fn has_roster(&self, node: &NodeId) -> Result<bool, StoreError> {
        let any: Option<i64> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar("SELECT 1 FROM staff_members WHERE node = $1 LIMIT 1")
                .bind(node.as_str())
                .fetch_optional(conn)
                .await
        })?;
        Ok(any.is_some())
    }

    /// The gate of a case step (or a supervision close) by `principal` at this node:
    /// - a node acting itself, or an operator at a node with no roster yet: allowed, nobody named;
    /// - an operator on this node's active roster whose posts allow `action`: allowed, and the
    ///   returned stamp names them, the post that allowed it and their window;
    /// - anyone else: refused with a sentence saying who may do it.
    pub async fn staff_stamp(
        &self,
        principal: &Principal,
        action: ActionKind,
    ) -> Result<Option<StaffStamp>, StaffError> {
        self.roster_gate(principal, |member| {
            member.post_for(action).ok_or_else(|| refusal_for(member, action))
        })
        .await
    }

    /// The gate of closing a supervision record (督办): a supervisor's, or the director's.
    pub async fn supervisor_stamp(&self, principal: &Principal) -> Result<Option<StaffStamp>, StaffError> {
        self.roster_gate(principal, |member| {
            [Post::Supervisor, Post::Director]
                .into_iter()
                .find(|p| member.posts.contains(p))
                .ok_or_else(|| {
                    StaffRefusal::NotAllowed(format!(
                        "{} 的岗位不能办结督办；下一步：请督办人员或中心主任办理",
                        member.name
                    ))
                })
        })
        .await
    }

    /// Who `principal` is on this node's roster and the post `pick` allows them to act under.
    async fn roster_gate(
        &self,
        principal: &Principal,
        pick: impl Fn(&Member) -> Result<Post, StaffRefusal>,
    ) -> Result<Option<StaffStamp>, StaffError> {
        let Principal::Operator { place, name } = principal else {
            return Ok(None);
        };
        if place != self.node() || !self.has_roster(place).await? {
            return Ok(None);
        }
        let Some(member) = self.member_by_login(name).await?.filter(|m| m.active) else {
            return Err(StaffRefusal::NotAllowed(format!(
                "证书 {name} 不是 {} 在岗工作人员的证书；下一步：请中心主任用 tongban staff put 登记该人员并写入此证书名",
                crate::places::label(place.as_str())
            ))
            .into());
        };
        let post = pick(&member)?;
        Ok(Some(StaffStamp {
            staff_no: member.staff_no.clone(),
            name: member.name.clone(),
            post,
            window: member.window,
        }))
    }

    /// Whether `principal` may change this node's roster: an operator of a node above it; this
    /// node's director; or, while the node has no roster, any operator of it (the first entry).
    async fn may_change_roster(&self, principal: &Principal) -> Result<(), StaffError> {
        let Principal::Operator { place, name } = principal else {
            return Err(StaffRefusal::NotAllowed("只有操作员可以调整人员名册".into()).into());
        };
        let here = self.node();
        if place != here {
            // The access table let only this node's operators and those above it through.
            return Ok(());
        }
        if !self.has_roster(here).await? {
            return Ok(());
        }
        match self.member_by_login(name).await? {
            Some(m) if m.active && m.posts.contains(&Post::Director) => Ok(()),
            _ => Err(StaffRefusal::NotAllowed(format!(
                "只有{}或上级中心的操作员可以调整 {} 的人员名册；下一步：请中心主任办理",
                Post::Director.label_zh(),
                crate::places::label(here.as_str())
            ))
            .into()),
        }
    }

    async fn author_roster_change(
        &self,
        change: pb::roster_change::Change,
        principal: &Principal,
    ) -> Result<(), StaffError> {
        let here = self.node().clone();
        let new = NewEvent {
            principal: principal.to_string(),
            subject: format!("roster:{here}"),
            route_key: here.clone(),
            route_class: RouteClass::Path,
            body: Body::RosterChange(pb::RosterChange {
                node: here.to_string(),
                change: Some(change),
            }),
        };
        match self.author(vec![new]).await {
            Ok(_) => Ok(()),
            // The fold's refusal is the roster's own sentence.
            Err(StoreError::Refused(reason)) => Err(StaffRefusal::Conflict(reason).into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds or changes one member of this node's staff, as `principal`.
    pub async fn put_member(&self, member: &Member, principal: &Principal) -> Result<Member, StaffError> {
        member.check(self.node())?;
        self.may_change_roster(principal).await?;
        self.author_roster_change(pb::roster_change::Change::Member(member_to_wire(member)), principal)
            .await?;
        Ok(member.clone())
    }

    /// Opens, changes or closes one window of this node, as `principal`.
    pub async fn put_window(&self, window: &Window, principal: &Principal) -> Result<Window, StaffError> {
        window.check()?;
        self.may_change_roster(principal).await?;
        self.author_roster_change(pb::roster_change::Change::Window(window_to_wire(window)), principal)
            .await?;
        Ok(window.clone())
    }

    /// Members of `node`'s roster by staff number, at most `limit` after `after`; with the
    /// cursor of the next page when there is one.
    pub async fn roster(
        &self,
        node: &NodeId,
        include_inactive: bool,
        after: Option<&RosterCursor>,
        limit: usize,
    ) -> Result<(Vec<Member>, Option<RosterCursor>), StoreError> {
        let after = after.map(|c| c.0.as_str()).unwrap_or("");
        let rows: Vec<String> = with_pool!(self.pool(), conn => {
            sqlx::query_scalar(
                "SELECT member FROM staff_members WHERE node = $1 AND staff_no > $2 AND (active = 1 OR $3 = 1) \
                 ORDER BY staff_no LIMIT $4",
            )
            .bind(node.as_str())
            .bind(after)
            .bind(i64::from(include_inactive))
            .bind(limit as i64 + 1)
            .fetch_all(conn)
            .await
        })?;
        let mut members = rows.iter().map(|j| parse_member(j)).collect::<Result<Vec<_>, _>>()?;
        let next = page_end(&mut members, limit, |m| m.staff_no.clone());
        Ok((members, next))
    }

    /// Windows of `node` by number, at most `limit` after `after`.
    pub async fn windows(
        &self,
        node: &NodeId,
        after: Option<&RosterCursor>,
        limit: usize,
    ) -> Result<(Vec<Window>, Option<RosterCursor>), StoreError> {
        let after: i64 = match after {
            Some(c) => c.0.parse().map_err(|_| StoreError::Corrupt("window cursor".into()))?,
            None => 0,
        };
        let rows: Vec<(i64, String, String, i64)> = with_pool!(self.pool(), conn => {
            sqlx::query_as(
                "SELECT number, kind, label, open FROM staff_windows WHERE node = $1 AND number > $2 \
                 ORDER BY number LIMIT $3",
            )
            .bind(node.as_str())
            .bind(after)
            .bind(limit as i64 + 1)
            .fetch_all(conn)
            .await
        })?;
        let mut windows = rows
            .into_iter()
            .map(|(number, kind, label, open)| {
                Ok(Window {
                    number: u32::try_from(number).map_err(|_| StoreError::Corrupt(format!("window {number}")))?,
                    kind: WindowKind::ALL
                        .iter()
                        .copied()
                        .find(|k| k.as_str() == kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("window kind {kind}")))?,
                    label,
                    open: open == 1,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = page_end(&mut windows, limit, |w| w.number.to_string());
        Ok((windows, next))
    }
}

/// Cuts a page fetched with one row more than `limit` and returns the cursor of the next one.
fn page_end<T>(rows: &mut Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> Option<RosterCursor> {
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| RosterCursor(key(r)))
    } else {
        None
    }
}

fn parse_member(json: &str) -> Result<Member, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("staff member: {e}")))
}
