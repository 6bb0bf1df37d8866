//! A shard's answers to the admin listener ([`crate::admin::query`]): its metrics, its
//! sessions and their subscriptions, the retained messages it owns, and kicking a client.

use std::rc::Rc;

use super::Shard;
use crate::admin::query::{
    Answer, ClientInfo, ConnectionInfo, Page, Query, Requests, RetainedInfo, SubscriptionInfo,
};
use crate::protocol::ReasonCode;

/// Serves the admin requests sent to this shard until the broker stops (or every handle
/// is gone). Each is answered at once from the shard's state; the walk over sessions
/// runs between the shard's other tasks, not on the hot path of any one of them.
pub async fn serve(shard: Rc<Shard>, requests: Requests) {
    while let Ok(request) = requests.recv_async().await {
        if shard.shutdown.is_triggered() {
            return;
        }
        let answer = shard.answer(request.query);
        // The asker may have given up waiting: nothing to do then.
        let _ = request.reply.try_send(answer);
    }
}

impl Shard {
    fn answer(&self, query: Query) -> Answer {
        match query {
            Query::Metrics => Answer::Metrics(Box::new(self.local_metrics())),
            Query::Clients {
                after,
                limit,
                prefix,
            } => Answer::Clients(self.clients(after, limit, &prefix)),
            Query::Subscriptions {
                after,
                limit,
                client_id,
            } => Answer::Subscriptions(self.subscriptions(after, limit, client_id.as_deref())),
            Query::Retained {
                filter,
                after,
                limit,
            } => Answer::Retained(self.retained_page(&filter, after, limit)),
            Query::Kick { client_id } => Answer::Kicked(self.kick(&client_id)),
        }
    }

    fn clients(&self, after: Option<String>, limit: usize, prefix: &str) -> Page<ClientInfo> {
        let mut matching = Vec::new();
        for (_, s) in self.sessions.borrow().iter() {
            let Ok(s) = s.try_borrow() else { continue };
            if !s.client_id.starts_with(prefix) {
                continue;
            }
            let connection = s.outbox().map(|o| {
                let details = o.details();
                ConnectionInfo {
                    protocol: o.version(),
                    peer: details.map(|d| d.peer),
                    keep_alive: details.map(|d| d.keep_alive),
                    connected_at: details.map(|d| d.connected_at),
                }
            });
            matching.push(ClientInfo {
                client_id: s.client_id.to_string(),
                shard: self.id.0,
                connection,
                username: s
                    .access
                    .as_ref()
                    .and_then(|a| a.principal.user.as_deref().map(str::to_owned)),
                session_expiry_secs: s.expiry_secs,
                subscriptions: s.subscriptions.len(),
                inflight: s.inflight_len(),
                queued: s.queued_len(),
            });
        }
        Page::of(matching, |c| c.client_id.clone(), after.as_ref(), limit)
    }

    fn subscriptions(
        &self,
        after: Option<(String, String)>,
        limit: usize,
        client_id: Option<&str>,
    ) -> Page<SubscriptionInfo> {
        let mut matching = Vec::new();
        let sessions = self.sessions.borrow();
        let mut add = |s: &crate::session::Session| {
            for (filter, sub) in &s.subscriptions {
                let o = &sub.options;
                matching.push(SubscriptionInfo {
                    client_id: s.client_id.to_string(),
                    filter: filter.as_str().to_owned(),
                    shard: self.id.0,
                    qos: o.qos as u8,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    retain_handling: o.retain_handling as u8,
                    subscription_id: sub.id.map(|i| i.get()),
                });
            }
        };
        match client_id {
            Some(id) => {
                if let Some((_, s)) = sessions.find(id) {
                    if let Ok(s) = s.try_borrow() {
                        add(&s);
                    }
                }
            }
            None => {
                for (_, s) in sessions.iter() {
                    if let Ok(s) = s.try_borrow() {
                        add(&s);
                    }
                }
            }
        }
        Page::of(
            matching,
            |s| (s.client_id.clone(), s.filter.clone()),
            after.as_ref(),
            limit,
        )
    }

    fn retained_page(
        &self,
        filter: &str,
        after: Option<String>,
        limit: usize,
    ) -> Page<RetainedInfo> {
        let mut matching = Vec::new();
        self.retained
            .borrow()
            .for_each_matching(filter, |topic, m| {
                matching.push(RetainedInfo {
                    topic: topic.to_owned(),
                    qos: m.qos as u8,
                    payload: m.payload.clone(),
                })
            });
        Page::of(matching, |r| r.topic.clone(), after.as_ref(), limit)
    }

    /// Ends the connection of `client_id` if this shard has it connected.
    fn kick(&self, client_id: &str) -> bool {
        let Some((_, s)) = self.sessions.borrow().find(client_id) else {
            return false;
        };
        let Ok(s) = s.try_borrow() else { return false };
        match s.outbox() {
            Some(out) => {
                tracing::info!(shard = %self.id, client_id, "disconnected by the admin API");
                out.close(ReasonCode::AdministrativeAction);
                true
            }
            None => false,
        }
    }
}
