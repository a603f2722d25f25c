//! The calendar services: `tongban.v1.Calendar`, which every node serves (the calendar a node
//! counts on now), and `tongban.v1.CalendarPublishing`, which only the county mounts (publish a
//! working-day calendar file; it travels down the whole tree as a `CalendarPublished` event).
//!
//! Who may call them is the access table's ([`crate::access`]). Handlers contain no SQL: they
//! parse the file with [`WorkingCalendar`]'s own parsers (every problem named, with its line)
//! and call the store.

use std::sync::Arc;

use tongban_proto::v1::{self as pb, calendar_publishing_server, calendar_server};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::access::{caller, status};
use crate::calendar::WorkingCalendar;
use crate::store::{CalendarInForce, Store, calendar_to_wire};

/// The largest calendar file accepted (a year's schedule is about 2 KB).
const MAX_CALENDAR_BYTES: usize = 256 * 1024;

/// The calendar services of one node.
#[derive(Clone)]
pub struct CalendarApi {
    pub store: Arc<Store>,
}

/// The service as a node serves it (gzip both ways, like the other operator services).
pub fn server(store: Arc<Store>) -> calendar_server::CalendarServer<CalendarApi> {
    calendar_server::CalendarServer::new(CalendarApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

/// The publishing service, as the county mounts it.
pub fn publishing_server(store: Arc<Store>) -> calendar_publishing_server::CalendarPublishingServer<CalendarApi> {
    calendar_publishing_server::CalendarPublishingServer::new(CalendarApi { store })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
}

fn info(c: &CalendarInForce) -> pb::CalendarInfo {
    pb::CalendarInfo {
        calendar: Some(calendar_to_wire(&c.calendar)),
        published: c.published_seq.is_some(),
        published_seq: c.published_seq.unwrap_or_default(),
        years: c
            .years
            .iter()
            .map(|y| pb::CalendarYear {
                year: y.year,
                name: y.name.clone(),
                version: y.version.clone(),
                published_seq: y.published_seq.unwrap_or_default(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl calendar_publishing_server::CalendarPublishing for CalendarApi {
    async fn publish(
        &self,
        request: Request<pb::PublishCalendarRequest>,
    ) -> Result<Response<pb::CalendarInfo>, Status> {
        let principal = caller(&request)?;
        let req = request.into_inner();
        if req.content.len() > MAX_CALENDAR_BYTES {
            return Err(Status::invalid_argument(format!(
                "calendar file is {} bytes, over the {MAX_CALENDAR_BYTES}-byte limit",
                req.content.len()
            )));
        }
        let parsed = match pb::CalendarFormat::try_from(req.format) {
            Ok(pb::CalendarFormat::Toml) => WorkingCalendar::parse_toml(&req.content),
            Ok(pb::CalendarFormat::Json) => WorkingCalendar::parse_json(&req.content),
            _ => return Err(Status::invalid_argument("format must be TOML or JSON")),
        };
        let calendar =
            parsed.map_err(|e| Status::invalid_argument(format!("calendar rejected, nothing published: {e}")))?;
        let published = self
            .store
            .publish_calendar(&calendar, &principal)
            .await
            .map_err(status)?;
        tracing::info!(
            name = calendar.name(),
            version = calendar.version(),
            "calendar published"
        );
        Ok(Response::new(info(&published)))
    }
}

#[tonic::async_trait]
impl calendar_server::Calendar for CalendarApi {
    async fn show(&self, _request: Request<pb::ShowCalendarRequest>) -> Result<Response<pb::CalendarInfo>, Status> {
        let current = self.store.calendar().await.map_err(status)?;
        Ok(Response::new(info(&current)))
    }
}
