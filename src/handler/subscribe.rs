//! SUBSCRIBE and UNSUBSCRIBE: the session's subscriptions, the shard's trie and interest
//! table, and retained messages for new subscriptions.

use std::rc::Rc;

use super::{Conn, Flow, HandlerError};
use crate::limit::Limit;
use crate::persist::state::StateRecord;
use crate::protocol::{
    AckProperties, Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck,
    Unsubscribe,
};
use crate::session::{Delivery, Subscribed};
use crate::shard::LocalSub;

pub async fn subscribe(conn: &mut Conn, s: Subscribe) -> Result<Flow, HandlerError> {
    let limits = &conn.shard.config.limits;
    let m = &conn.shard.config.mqtt;
    if s.properties.subscription_identifier.is_some() && !m.subscription_identifiers {
        return Err(HandlerError::SubscriptionIdsNotSupported);
    }
    if s.subscriptions
        .iter()
        .any(|sub| sub.filter.shared().is_some() && sub.options.no_local)
    {
        return Err(HandlerError::Protocol(
            "No Local on a shared subscription [MQTT-3.8.3-4]",
        ));
    }
    let mut problem = None;
    let mut reasons = Vec::with_capacity(s.subscriptions.len());
    let mut retained_for = Vec::new();
    for sub in &s.subscriptions {
        let filter = &sub.filter;
        let known = conn.session.borrow().subscriptions.contains_key(filter);
        let count = conn.session.borrow().subscriptions.len();
        let reason = if filter.shared().is_some() && !m.shared_subscriptions {
            problem = Some("shared subscriptions are off (mqtt.shared_subscriptions)");
            ReasonCode::SharedSubscriptionsNotSupported
        } else if filter.has_wildcards() && !m.wildcard_subscriptions {
            problem = Some("wildcard subscriptions are off (mqtt.wildcard_subscriptions)");
            ReasonCode::WildcardSubscriptionsNotSupported
        } else if filter.len() > usize::from(limits.topic_bytes_max)
            || filter.as_str().split('/').count() > usize::from(limits.topic_levels_max)
        {
            problem = Some("topic filter longer than limits.topic_bytes_max / topic_levels_max");
            conn.shard.limit_stats.hit(Limit::FilterTooLong);
            ReasonCode::TopicFilterInvalid
        } else if !conn
            .session
            .borrow()
            .may_subscribe(filter.matching_filter())
        {
            // MQTT 3.1.1 has 0x80 only (the encoder translates).
            problem = Some("not authorized to subscribe to this topic filter");
            ReasonCode::NotAuthorized
        } else if !known && count >= limits.subscriptions_per_client_max as usize {
            problem = Some("subscriptions per client at limits.subscriptions_per_client_max");
            conn.shard.limit_stats.hit(Limit::SubscriptionQuota);
            ReasonCode::QuotaExceeded
        } else {
            let mut options = sub.options;
            // Granted at most the maximum QoS; any QoS may be asked for [MQTT-3.2.2-10].
            options.qos = options.qos.min(m.maximum_qos());
            let id = s.properties.subscription_identifier;
            let local = LocalSub {
                options,
                id,
                client_id: conn.client_id.clone(),
            };
            let new = conn.shard.subscribe(conn.key, filter, local).await;
            {
                let mut s = conn.session.borrow_mut();
                s.subscriptions
                    .insert(filter.clone(), Subscribed { options, id });
                if let Some(no) = s.durable_no() {
                    s.journal(StateRecord::Subscribe {
                        no,
                        options,
                        id,
                        filter: filter.as_str().into(),
                    });
                }
            }
            conn.shard.sync_session(&conn.session);
            // Retained messages are not sent for a shared subscription (section 4.8.2).
            let send_retained = filter.shared().is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => new,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                retained_for.push((filter.clone(), options.qos, id));
            }
            match options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            }
        };
        reasons.push(reason);
    }
    let mut properties = AckProperties::default();
    if let Some(text) = problem {
        properties.reason_string = conn.reason_string_within(text, 8 + reasons.len());
    }
    conn.outbox.push(&Packet::SubAck(SubAck {
        packet_id: s.packet_id,
        properties,
        reasons,
    }));
    // Retained messages follow the SUBACK, with RETAIN set [MQTT-3.3.1-6, MQTT-3.3.1-8].
    for (filter, granted, id) in retained_for {
        for message in conn.shard.retained_matching(&filter).await {
            // A retained message past its Message Expiry Interval is not sent
            // [MQTT-3.3.2-5] (5.0).
            if message.is_expired() {
                continue;
            }
            let qos = message.qos.min(granted);
            let delivery = Delivery {
                message: Rc::clone(&message),
                qos,
                retain: true,
                subscription_ids: id.into_iter().collect(),
                share: None,
            };
            conn.shard.deliver_to(&conn.session, delivery);
        }
    }
    Ok(Flow::Continue)
}

pub async fn unsubscribe(conn: &mut Conn, u: Unsubscribe) -> Result<Flow, HandlerError> {
    let mut reasons = Vec::with_capacity(u.filters.len());
    for filter in &u.filters {
        // Compared character by character with the session's filters [MQTT-3.10.4-1].
        let existed = {
            let mut s = conn.session.borrow_mut();
            let existed = s.subscriptions.remove(filter).is_some();
            if let (true, Some(no)) = (existed, s.durable_no()) {
                s.journal(StateRecord::Unsubscribe {
                    no,
                    filter: filter.as_str().into(),
                });
            }
            existed
        };
        conn.shard.sync_session(&conn.session);
        if existed {
            conn.shard.unsubscribe(conn.key, filter).await;
        }
        reasons.push(if existed {
            ReasonCode::Success
        } else {
            ReasonCode::NoSubscriptionExisted
        });
    }
    // Always answered, even when nothing was removed [MQTT-3.10.4-4/5].
    conn.outbox.push(&Packet::UnsubAck(UnsubAck {
        packet_id: u.packet_id,
        properties: AckProperties::default(),
        reasons,
    }));
    Ok(Flow::Continue)
}
