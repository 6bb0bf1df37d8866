//! A shard's answers to the admin listener ([`crate::admin::query`]): its metrics, its
//! sessions and their subscriptions, the retained messages it owns, and kicking a client.

use std::cell::Ref;
use std::rc::Rc;

use super::Shard;
use crate::admin::query::{
    Answer, ClientInfo, ConnectionInfo, FirstAfter, Page, Query, Requests, RetainedInfo,
    SubscriptionInfo,
};
use crate::protocol::ReasonCode;
use crate::session::{Session, Subscribed};

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

    /// The page is chosen by client id first; only its sessions are described (a shard
    /// with many sessions allocates for `limit` of them, not for all).
    fn clients(&self, after: Option<String>, limit: usize, prefix: &str) -> Page<ClientInfo> {
        let sessions = self.sessions.borrow();
        let guards: Vec<Ref<'_, Session>> = sessions
            .iter()
            .filter_map(|(_, s)| s.try_borrow().ok())
            .filter(|s| s.client_id.starts_with(prefix))
            .collect();
        let mut page = FirstAfter::new(after.as_deref(), limit);
        for s in &guards {
            let id: &str = &s.client_id;
            page.offer(id, || (id, &**s));
        }
        let (total, remaining, chosen) = page.finish();
        let items = chosen.into_iter().map(|(_, s)| self.describe(s)).collect();
        Page {
            total,
            remaining,
            items,
        }
    }

    fn describe(&self, s: &Session) -> ClientInfo {
        let connection = s.outbox().map(|o| {
            let details = o.details();
            ConnectionInfo {
                protocol: o.version(),
                peer: details.map(|d| d.peer),
                keep_alive: details.map(|d| d.keep_alive),
                connected_at: details.map(|d| d.connected_at),
            }
        });
        ClientInfo {
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
        }
    }

    fn subscriptions(
        &self,
        after: Option<(String, String)>,
        limit: usize,
        client_id: Option<&str>,
    ) -> Page<SubscriptionInfo> {
        let sessions = self.sessions.borrow();
        let guards: Vec<Ref<'_, Session>> = match client_id {
            Some(id) => sessions
                .find(id)
                .and_then(|(key, _)| sessions.get(key))
                .and_then(|s| s.try_borrow().ok())
                .into_iter()
                .collect(),
            None => sessions
                .iter()
                .filter_map(|(_, s)| s.try_borrow().ok())
                .collect(),
        };
        let after = after.as_ref().map(|(c, f)| (c.as_str(), f.as_str()));
        let mut page = FirstAfter::<(&str, &str), &Subscribed>::new(after, limit);
        for s in &guards {
            for (filter, sub) in s.subscriptions.iter() {
                let key = (&*s.client_id, filter.as_str());
                page.offer(&key, || (key, sub));
            }
        }
        let (total, remaining, chosen) = page.finish();
        let items = chosen
            .into_iter()
            .map(|((client, filter), sub)| {
                let o = &sub.options;
                SubscriptionInfo {
                    client_id: client.to_owned(),
                    filter: filter.to_owned(),
                    shard: self.id.0,
                    qos: o.qos as u8,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    retain_handling: o.retain_handling as u8,
                    subscription_id: sub.id.map(|i| i.get()),
                }
            })
            .collect();
        Page {
            total,
            remaining,
            items,
        }
    }

    fn retained_page(
        &self,
        filter: &str,
        after: Option<String>,
        limit: usize,
    ) -> Page<RetainedInfo> {
        // The index's walk lends each topic only to the callback: a topic is copied when
        // it enters the page, and the messages are shared.
        let mut page = FirstAfter::new(after, limit);
        self.retained
            .borrow()
            .for_each_matching(filter, |topic, m| {
                page.offer(topic, || (topic.to_owned(), m.clone()))
            });
        let (total, remaining, chosen) = page.finish();
        let items = chosen
            .into_iter()
            .map(|(topic, m)| RetainedInfo {
                topic,
                qos: m.qos as u8,
                payload: m.payload.clone(),
            })
            .collect();
        Page {
            total,
            remaining,
            items,
        }
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
