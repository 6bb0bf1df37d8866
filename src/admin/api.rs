//! The admin listener's routes: health, Prometheus metrics, the JSON API and the
//! dashboard page. Every answer is built from the shards' answers to one question each
//! ([`AdminHandle::ask`]); nothing here holds broker state.

use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine;
use serde_json::{json, Value};

use super::http::{Request, Response};
use super::query::{
    AdminHandle, Answer, ClientInfo, Page, Query, RetainedInfo, SubscriptionInfo, PAGE_LIMIT_MAX,
};
use crate::metrics::MetricsSnapshot;
use crate::protocol::ProtocolVersion;

/// How long a request waits for every shard to answer.
const SHARDS_TIMEOUT: Duration = Duration::from_secs(5);
/// `/healthz`: a broker whose shards do not all answer within this is unhealthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Items per page when `limit` is not given.
const PAGE_LIMIT_DEFAULT: usize = 100;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
const DASHBOARD: &str = include_str!("dashboard.html");

/// What the routes need.
pub struct Api {
    pub handle: AdminHandle,
    /// `admin.token`; empty: none.
    pub token: String,
    pub started: Instant,
}

impl Api {
    pub fn route(&self, req: &Request) -> Response {
        let path = req.path.as_str();
        let read = matches!(req.method.as_str(), "GET" | "HEAD");
        match path {
            "/" | "/dashboard" if read => Response::new(200, "text/html; charset=utf-8", DASHBOARD)
                .with_header(
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src 'self' data:",
                ),
            "/healthz" if read => self.health(),
            "/" | "/dashboard" | "/healthz" => not_allowed("GET, HEAD"),
            _ => {
                if let Some(refused) = self.refuse_unauthorised(req) {
                    return refused;
                }
                self.protected(req)
            }
        }
    }

    fn protected(&self, req: &Request) -> Response {
        let read = matches!(req.method.as_str(), "GET" | "HEAD");
        let path = req.path.as_str();
        if let Some(id) = path.strip_prefix("/api/v1/clients/") {
            return match req.method.as_str() {
                "GET" | "HEAD" => self.client(id),
                "DELETE" => self.kick(id),
                _ => not_allowed("GET, HEAD, DELETE"),
            };
        }
        let known = matches!(
            path,
            "/metrics"
                | "/api/v1/stats"
                | "/api/v1/clients"
                | "/api/v1/subscriptions"
                | "/api/v1/retained"
        );
        if !known {
            return error(404, format!("no such endpoint: {path}"));
        }
        if !read {
            return not_allowed("GET, HEAD");
        }
        let result = match path {
            "/metrics" => self.prometheus(),
            "/api/v1/stats" => self.stats(),
            "/api/v1/clients" => self.clients(req),
            "/api/v1/subscriptions" => self.subscriptions(req),
            _ => self.retained(req),
        };
        result.unwrap_or_else(|e| e)
    }

    /// `None` when the request may go on: no token configured, or the right one given.
    fn refuse_unauthorised(&self, req: &Request) -> Option<Response> {
        if self.token.is_empty() {
            return None;
        }
        let given = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), self.token.as_bytes()).into();
        if same {
            return None;
        }
        Some(
            error(
                401,
                "missing or wrong bearer token (admin.token)".to_owned(),
            )
            .with_header("WWW-Authenticate", "Bearer realm=\"ringmq\""),
        )
    }

    fn health(&self) -> Response {
        if self.handle.shard_count() == 0 {
            // The listener opens before the shards start (so a taken port fails fast).
            return Response::new(503, TEXT, "starting: the shards are not running yet\n");
        }
        match self.handle.shard_metrics(HEALTH_TIMEOUT) {
            Some(shards) if !shards.is_empty() => Response::new(200, TEXT, "ok\n"),
            _ => Response::new(503, TEXT, "unavailable: the shards do not answer\n"),
        }
    }

    fn ask(&self, query: Query) -> Result<Vec<Answer>, Response> {
        self.handle
            .ask(&query, SHARDS_TIMEOUT)
            .ok_or_else(|| error(503, "the broker's shards did not answer in time".to_owned()))
    }

    fn metrics(&self) -> Result<(MetricsSnapshot, Vec<MetricsSnapshot>), Response> {
        let shards = self
            .handle
            .shard_metrics(SHARDS_TIMEOUT)
            .ok_or_else(|| error(503, "the broker's shards did not answer in time".to_owned()))?;
        let mut all = MetricsSnapshot::default();
        for s in &shards {
            all.merge(s);
        }
        Ok((all, shards))
    }

    fn prometheus(&self) -> Result<Response, Response> {
        let (all, shards) = self.metrics()?;
        let text = super::prometheus::render(&all, &shards, self.started.elapsed());
        Ok(Response::new(200, super::prometheus::CONTENT_TYPE, text))
    }

    fn stats(&self) -> Result<Response, Response> {
        let (s, shards) = self.metrics()?;
        let qos = |v: &[u64; 3]| json!({"qos0": v[0], "qos1": v[1], "qos2": v[2], "total": v.iter().sum::<u64>()});
        let quantiles = |h: &hdrhistogram::Histogram<u64>| {
            let q = |p: f64| {
                if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(p)
                }
            };
            json!({"count": h.len(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
                   "max": if h.is_empty() { 0 } else { h.max() }})
        };
        let d = &s.drops;
        let per_shard: Vec<Value> = shards
            .iter()
            .filter_map(|m| {
                let (id, busy) = *m.busy.first()?;
                Some(json!({
                    "shard": id, "busy": busy, "connections": m.connections,
                    "sessions": m.sessions, "publish_received": m.publish_received_total(),
                    "publish_sent": m.publish_sent_total(),
                }))
            })
            .collect();
        let limits: serde_json::Map<String, Value> = crate::limit::Limit::ALL
            .iter()
            .map(|l| (l.name().to_owned(), json!(s.limit(*l))))
            .collect();
        let body = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_secs": self.started.elapsed().as_secs(),
            "shards": s.shards,
            "connections": {
                "current": s.connections, "total": s.connects(), "sessions": s.sessions,
                "by_version": {"3.1": s.connects_by_version[0], "3.1.1": s.connects_by_version[1],
                               "5.0": s.connects_by_version[2]},
            },
            "publish": {
                "received": qos(&s.publish_received), "sent": qos(&s.publish_sent),
                "received_bytes": qos(&s.publish_received_bytes),
                "sent_bytes": qos(&s.publish_sent_bytes),
            },
            "packets": {"received": s.packets_received, "sent": s.packets_sent},
            "bytes": {"received": s.bytes_received, "sent": s.bytes_sent},
            "drops": {
                "queue_full": d.queue_full, "expired": d.expired, "too_large": d.too_large,
                "acl_denied": d.acl_denied, "rate_limit": d.rate_limit,
                "qos0_slow_client": d.qos0_slow_client, "qos0_shed": d.qos0_shed,
                "total": d.total(),
            },
            "limits": limits,
            "inflight": s.inflight, "queued": s.queued, "queued_bytes": s.queued_bytes,
            "retained": s.retained, "subscriptions": s.subscriptions,
            "mesh": {"forwarded": s.mesh_forwarded, "taken": s.mesh_taken,
                     "queued": s.mesh_queued(), "batch": quantiles(&s.mesh_batch)},
            "storage": {
                "records": s.storage_records, "flushes": s.storage_flushes,
                "stalls": s.storage_stalls,
                "flush_latency_us": quantiles(&s.flush_micros),
                "flush_batch": quantiles(&s.flush_records),
            },
            "per_shard": per_shard,
        });
        Ok(json_response(200, &body))
    }

    fn clients(&self, req: &Request) -> Result<Response, Response> {
        let limit = page_limit(req)?;
        let after = req.param("after").map(str::to_owned);
        let prefix = req.param("prefix").unwrap_or_default().to_owned();
        let pages = self.ask(Query::Clients {
            after,
            limit,
            prefix,
        })?;
        let pages = pages
            .into_iter()
            .filter_map(|a| match a {
                Answer::Clients(p) => Some(p),
                _ => None,
            })
            .collect();
        let (page, more) = Page::merge(pages, |c: &ClientInfo| c.client_id.clone(), limit);
        let next = more
            .then(|| page.items.last().map(|c| c.client_id.clone()))
            .flatten();
        let items: Vec<Value> = page.items.iter().map(client_json).collect();
        Ok(json_response(
            200,
            &json!({"total": page.total, "clients": items, "next": next}),
        ))
    }

    fn client(&self, id: &str) -> Response {
        let pages = match self.ask(Query::Clients {
            after: None,
            limit: PAGE_LIMIT_MAX,
            prefix: id.to_owned(),
        }) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let found = pages.into_iter().find_map(|a| match a {
            Answer::Clients(p) => p.items.into_iter().find(|c| c.client_id == id),
            _ => None,
        });
        match found {
            Some(c) => json_response(200, &client_json(&c)),
            None => error(404, format!("no session for client id {id:?}")),
        }
    }

    fn kick(&self, id: &str) -> Response {
        let answers = match self.ask(Query::Kick {
            client_id: id.to_owned(),
        }) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let kicked = answers.iter().any(|a| matches!(a, Answer::Kicked(true)));
        if kicked {
            json_response(200, &json!({"client_id": id, "kicked": true}))
        } else {
            error(404, format!("no connected client with client id {id:?}"))
        }
    }

    fn subscriptions(&self, req: &Request) -> Result<Response, Response> {
        let limit = page_limit(req)?;
        let after = match req.param("after") {
            None => None,
            Some(cursor) => Some(
                cursor
                    .split_once('\0')
                    .map(|(c, f)| (c.to_owned(), f.to_owned()))
                    .ok_or_else(|| {
                        error(400, "after: not a cursor this endpoint gave".to_owned())
                    })?,
            ),
        };
        let client_id = req.param("client_id").map(str::to_owned);
        let pages = self
            .ask(Query::Subscriptions {
                after,
                limit,
                client_id,
            })?
            .into_iter()
            .filter_map(|a| match a {
                Answer::Subscriptions(p) => Some(p),
                _ => None,
            })
            .collect();
        let key = |s: &SubscriptionInfo| (s.client_id.clone(), s.filter.clone());
        let (page, more) = Page::merge(pages, key, limit);
        let next = more
            .then(|| {
                page.items
                    .last()
                    .map(|s| format!("{}\0{}", s.client_id, s.filter))
            })
            .flatten();
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|s| {
                json!({
                    "client_id": s.client_id, "filter": s.filter, "shard": s.shard,
                    "qos": s.qos, "no_local": s.no_local,
                    "retain_as_published": s.retain_as_published,
                    "retain_handling": s.retain_handling, "subscription_id": s.subscription_id,
                })
            })
            .collect();
        Ok(json_response(
            200,
            &json!({"total": page.total, "subscriptions": items, "next": next}),
        ))
    }

    fn retained(&self, req: &Request) -> Result<Response, Response> {
        let limit = page_limit(req)?;
        let filter = req.param("filter").unwrap_or("#").to_owned();
        if crate::protocol::TopicFilter::try_from(filter.as_str()).is_err() {
            return Err(error(
                400,
                format!("filter: not a valid MQTT topic filter: {filter:?}"),
            ));
        }
        let after = req.param("after").map(str::to_owned);
        let pages = self
            .ask(Query::Retained {
                filter,
                after,
                limit,
            })?
            .into_iter()
            .filter_map(|a| match a {
                Answer::Retained(p) => Some(p),
                _ => None,
            })
            .collect();
        let (page, more) = Page::merge(pages, |r: &RetainedInfo| r.topic.clone(), limit);
        let next = more
            .then(|| page.items.last().map(|r| r.topic.clone()))
            .flatten();
        let b64 = base64::engine::general_purpose::STANDARD;
        let items: Vec<Value> = page
            .items
            .iter()
            .map(|r| {
                json!({
                    "topic": r.topic, "qos": r.qos, "payload_bytes": r.payload.len(),
                    "payload": std::str::from_utf8(&r.payload).ok(),
                    "payload_base64": b64.encode(&r.payload),
                })
            })
            .collect();
        Ok(json_response(
            200,
            &json!({"total": page.total, "retained": items, "next": next}),
        ))
    }
}

fn client_json(c: &ClientInfo) -> Value {
    let conn = c.connection.as_ref();
    let protocol = conn.map(|c| match c.protocol {
        ProtocolVersion::V3_1 => "3.1",
        ProtocolVersion::V3_1_1 => "3.1.1",
        ProtocolVersion::V5 => "5.0",
    });
    let since = conn
        .and_then(|c| c.connected_at)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    json!({
        "client_id": c.client_id,
        "connected": conn.is_some(),
        "protocol": protocol,
        "peer": conn.and_then(|c| c.peer).map(|p| p.to_string()),
        "username": c.username,
        "keep_alive": conn.and_then(|c| c.keep_alive),
        "connected_at_unix": since,
        "session_expiry_secs": c.session_expiry_secs,
        "subscriptions": c.subscriptions,
        "inflight": c.inflight,
        "queued": c.queued,
        "shard": c.shard,
    })
}

fn page_limit(req: &Request) -> Result<usize, Response> {
    match req.param("limit") {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(n),
            _ => Err(error(
                400,
                format!("limit: expected a number from 1 to {PAGE_LIMIT_MAX}, got {text:?}"),
            )),
        },
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    Response::new(status, JSON, text)
}

fn error(status: u16, message: String) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn not_allowed(allow: &str) -> Response {
    error(405, "method not allowed".to_owned()).with_header("Allow", allow.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, auth: Option<&str>) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            headers: auth
                .map(|a| vec![("authorization".to_owned(), a.to_owned())])
                .unwrap_or_default(),
        }
    }

    #[test]
    fn without_answering_shards_health_and_the_api_are_503_and_the_page_is_served() {
        let api = Api {
            handle: AdminHandle::new(),
            token: String::new(),
            started: Instant::now(),
        };
        // Before the shards start, /healthz says so at once.
        let starting = api.route(&request("GET", "/healthz", None));
        assert_eq!(starting.status, 503);
        assert!(String::from_utf8_lossy(&starting.body).starts_with("starting"));
        // Connected but nobody serving: the waits are bounded (2 s, 5 s).
        let _shards = api.handle.connect(1);
        let silent = api.route(&request("GET", "/healthz", None));
        assert_eq!(silent.status, 503);
        assert!(String::from_utf8_lossy(&silent.body).starts_with("unavailable"));
        assert_eq!(
            api.route(&request("GET", "/api/v1/stats", None)).status,
            503
        );
        assert_eq!(api.route(&request("GET", "/", None)).status, 200);
    }

    #[test]
    fn the_token_is_compared_whole_and_only_as_a_bearer_token() {
        let api = Api {
            handle: AdminHandle::new(),
            token: "abc123".into(),
            started: Instant::now(),
        };
        for auth in [
            None,
            Some("Bearer abc12"),
            Some("Bearer abc1234"),
            Some("Basic abc123"),
        ] {
            let r = api.route(&request("GET", "/api/v1/nothing", auth));
            assert_eq!(r.status, 401, "{auth:?}");
        }
        // The right token gets past the check (to a 404 here).
        let r = api.route(&request("GET", "/api/v1/nothing", Some("Bearer abc123")));
        assert_eq!(r.status, 404);
    }
}
