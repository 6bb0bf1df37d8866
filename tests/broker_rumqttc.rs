//! A real, independent client against a running broker: rumqttc (async, on a tokio
//! current-thread runtime), MQTT 3.1.1 in `v311` and MQTT 5 in `v5`. Nothing here uses
//! ringmq's codec: what goes over the wire is rumqttc's.
//!
//! rumqttc's event loop does the network work only while it is polled, so each test polls
//! the loop it waits on until the expected event, with a timeout; queued requests of other
//! clients are flushed when their loops are polled next (the broker buffers meanwhile).

pub mod common;

use std::time::Duration;

use common::Broker;

/// How long a test waits for any one event.
const WAIT: Duration = Duration::from_secs(5);

/// How long a subscriber must stay quiet to show a message was not delivered.
const QUIET: Duration = Duration::from_millis(300);

mod v311 {
    use std::time::Duration;

    use rumqttc::{
        AsyncClient, ConnAck, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, Publish,
        QoS,
    };
    use tokio::time::timeout;

    use super::{Broker, QUIET, WAIT};

    fn options(broker: &Broker, id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", broker.addr().port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_request_channel_capacity(1024);
        o
    }

    /// Polls `ev` until `pick` accepts an event, failing after [`WAIT`].
    async fn until<T>(
        ev: &mut EventLoop,
        what: &str,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                match ev.poll().await {
                    Ok(e) => {
                        if let Some(t) = pick(e) {
                            return t;
                        }
                    }
                    Err(e) => panic!("waiting for {what}: connection error {e:?}"),
                }
            }
        };
        timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    async fn connect(o: MqttOptions) -> (AsyncClient, EventLoop, ConnAck) {
        let (client, mut ev) = AsyncClient::new(o, 1024);
        let ack = until(&mut ev, "CONNACK", |e| match e {
            Event::Incoming(Packet::ConnAck(a)) => Some(a),
            _ => None,
        })
        .await;
        (client, ev, ack)
    }

    async fn subscribe(client: &AsyncClient, ev: &mut EventLoop, filter: &str, qos: QoS) {
        client
            .subscribe(filter, qos)
            .await
            .expect("queue SUBSCRIBE");
        until(ev, "SUBACK", |e| match e {
            Event::Incoming(Packet::SubAck(_)) => Some(()),
            _ => None,
        })
        .await;
    }

    /// Publishes and polls until the QoS flow is complete (sent; PUBACK; PUBCOMP).
    async fn publish(
        client: &AsyncClient,
        ev: &mut EventLoop,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) {
        client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("queue PUBLISH");
        until(ev, "end of the publish flow", |e| match (qos, e) {
            (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_))) => Some(()),
            (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(_))) => Some(()),
            (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(_))) => Some(()),
            _ => None,
        })
        .await;
    }

    async fn next_publish(ev: &mut EventLoop) -> Publish {
        until(ev, "PUBLISH", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p),
            _ => None,
        })
        .await
    }

    /// No PUBLISH arrives for [`QUIET`].
    async fn no_publish(ev: &mut EventLoop) {
        let got = timeout(QUIET, async {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                    return p;
                }
            }
        })
        .await;
        assert!(got.is_err(), "unexpected PUBLISH {got:?}");
    }

    fn text(p: &Publish) -> (String, String) {
        (
            p.topic.clone(),
            String::from_utf8_lossy(&p.payload).into_owned(),
        )
    }

    /// The QoS 0, 1 and 2 flows (MQTT-4.3.1-1 to MQTT-4.3.3-2): a message at `qos` to a
    /// QoS 2 subscription arrives once, at `qos`, with its topic and payload.
    async fn end_to_end(qos: QoS) {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "e2e/t", QoS::ExactlyOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(&publisher, &mut pub_ev, "e2e/t", b"payload", qos, false).await;
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("e2e/t".into(), "payload".into()));
        assert_eq!(p.qos, qos);
        assert!(!p.retain && !p.dup);
        no_publish(&mut sub_ev).await;
    }

    // [MQTT-4.3.1-1]: see `end_to_end`.
    #[tokio::test]
    async fn qos0_end_to_end_v311_mqtt_4_3_1_1() {
        end_to_end(QoS::AtMostOnce).await;
    }

    // [MQTT-4.3.2-2]: see `end_to_end` (PUBACK to the publisher). rumqttc, an independent
    // implementation that uses no extension of the spec, interoperates with the server over
    // TCP, an ordered, lossless byte stream [MQTT-7.0.0-2] [MQTT-7.1.1-1].
    #[tokio::test]
    async fn qos1_end_to_end_v311_mqtt_4_3_2_2() {
        end_to_end(QoS::AtLeastOnce).await;
    }

    // [MQTT-4.3.3-2]: see `end_to_end` (PUBREC, then PUBCOMP for PUBREL, to the publisher).
    #[tokio::test]
    async fn qos2_end_to_end_v311_mqtt_4_3_3_2() {
        end_to_end(QoS::ExactlyOnce).await;
    }

    // [MQTT-3.8.4-6] The delivered QoS is the minimum of published and granted.
    #[tokio::test]
    async fn delivered_qos_is_min_of_published_and_granted_v311_mqtt_3_8_4_6() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "min/t", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(
            &publisher,
            &mut pub_ev,
            "min/t",
            b"2",
            QoS::ExactlyOnce,
            false,
        )
        .await;
        assert_eq!(next_publish(&mut sub_ev).await.qos, QoS::AtLeastOnce);
    }

    // Sections 4.7.1.2 and 4.7.1.3: `+` and `#`, each on its own subscriber, get every
    // matching message [MQTT-4.5.0-1] and no other [MQTT-3.3.2-3].
    #[tokio::test]
    async fn wildcards_match_levels_v311_mqtt_4_7_1_2() {
        let broker = Broker::start_default();
        let (plus, mut plus_ev, _) = connect(options(&broker, "plus")).await;
        subscribe(&plus, &mut plus_ev, "w/+/x", QoS::AtLeastOnce).await;
        let (hash, mut hash_ev, _) = connect(options(&broker, "hash")).await;
        subscribe(&hash, &mut hash_ev, "w/#", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for t in ["w/a/x", "w/b/y", "v/a/x", "w/a/b/x", "w/fence/x"] {
            publish(
                &publisher,
                &mut pub_ev,
                t,
                t.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        for want in ["w/a/x", "w/fence/x"] {
            assert_eq!(next_publish(&mut plus_ev).await.topic, want);
        }
        for want in ["w/a/x", "w/b/y", "w/a/b/x", "w/fence/x"] {
            assert_eq!(next_publish(&mut hash_ev).await.topic, want);
        }
        no_publish(&mut plus_ev).await;
        no_publish(&mut hash_ev).await;
    }

    // [MQTT-3.3.1-5] / [MQTT-3.3.1-6] / [MQTT-3.3.1-8] A retained message reaches a later
    // subscriber with RETAIN 1; [MQTT-3.3.1-10] an empty retained message removes it.
    #[tokio::test]
    async fn retained_message_delivered_to_new_subscriber_v311_mqtt_3_3_1_6() {
        let broker = Broker::start_default();
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(
            &publisher,
            &mut pub_ev,
            "ret/t",
            b"kept",
            QoS::AtLeastOnce,
            true,
        )
        .await;
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "ret/#", QoS::AtLeastOnce).await;
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("ret/t".into(), "kept".into()));
        assert!(p.retain, "RETAIN 1 for a new subscription");

        publish(
            &publisher,
            &mut pub_ev,
            "ret/t",
            b"",
            QoS::AtLeastOnce,
            true,
        )
        .await;
        let (late, mut late_ev, _) = connect(options(&broker, "late")).await;
        subscribe(&late, &mut late_ev, "ret/#", QoS::AtLeastOnce).await;
        no_publish(&mut late_ev).await;
    }

    // [MQTT-3.1.2-8] The will is published when the client goes away without DISCONNECT.
    #[tokio::test]
    async fn will_published_when_client_drops_v311_mqtt_3_1_2_8() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "will/#", QoS::AtLeastOnce).await;
        let mut o = options(&broker, "mortal");
        o.set_last_will(LastWill::new(
            "will/mortal",
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
        let (client, ev, _) = connect(o).await;
        drop(ev);
        drop(client);
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("will/mortal".into(), "gone".into()));
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }

    // [MQTT-3.1.2-5] / [MQTT-3.2.2-2] A CleanSession 0 client that reconnects gets Session
    // Present 1 and the QoS 1 messages published while it was away, in order.
    #[tokio::test]
    async fn persistent_session_resumes_with_queued_messages_v311_mqtt_3_1_2_5() {
        let broker = Broker::start_default();
        let mut o = options(&broker, "durable");
        o.set_clean_session(false);
        let (sub, mut sub_ev, ack) = connect(o.clone()).await;
        assert!(!ack.session_present);
        subscribe(&sub, &mut sub_ev, "dur/t", QoS::AtLeastOnce).await;
        sub.disconnect().await.expect("queue DISCONNECT");
        until(&mut sub_ev, "DISCONNECT sent", |e| {
            matches!(e, Event::Outgoing(Outgoing::Disconnect)).then_some(())
        })
        .await;
        drop(sub_ev);

        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for i in 0..10 {
            publish(
                &publisher,
                &mut pub_ev,
                "dur/t",
                i.to_string().as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        let (_sub, mut sub_ev, ack) = connect(o).await;
        assert!(ack.session_present, "Session Present 1 on resume");
        for i in 0..10 {
            let p = next_publish(&mut sub_ev).await;
            assert_eq!(text(&p), ("dur/t".into(), i.to_string()));
        }
    }

    // [MQTT-3.1.4-2] A second client with the same id disconnects the first.
    #[tokio::test]
    async fn takeover_disconnects_first_client_v311_mqtt_3_1_4_2() {
        let broker = Broker::start_default();
        let (_first, mut first_ev, _) = connect(options(&broker, "same")).await;
        let (second, mut second_ev, _) = connect(options(&broker, "same")).await;
        let closed = timeout(WAIT, async {
            loop {
                if let Err(e) = first_ev.poll().await {
                    return e;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the first connection was not closed");
        subscribe(&second, &mut second_ev, "still/here", QoS::AtMostOnce).await;
    }

    // [MQTT-4.6.0-5] 200 QoS 1 messages sent without waiting arrive in order.
    #[tokio::test]
    async fn messages_arrive_in_publish_order_v311_mqtt_4_6_0_5() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "ord/t", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for i in 0..200 {
            publisher
                .publish("ord/t", QoS::AtLeastOnce, false, i.to_string())
                .await
                .expect("queue PUBLISH");
        }
        let mut acks = 0;
        until(&mut pub_ev, "200 PUBACKs", |e| {
            acks += usize::from(matches!(e, Event::Incoming(Packet::PubAck(_))));
            (acks == 200).then_some(())
        })
        .await;
        for i in 0..200 {
            assert_eq!(text(&next_publish(&mut sub_ev).await).1, i.to_string());
        }
    }
}

mod v5 {
    use std::time::Duration;

    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::v5::{
        ConnAck, ConnectProperties, DisconnectReasonCode, LastWill, Packet, Publish,
        PublishProperties,
    };
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
    use rumqttc::Outgoing;
    use tokio::time::timeout;

    use super::{Broker, QUIET, WAIT};

    fn options(broker: &Broker, id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(id, "127.0.0.1", broker.addr().port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_request_channel_capacity(1024);
        o
    }

    async fn until<T>(
        ev: &mut EventLoop,
        what: &str,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> T {
        let wait = async {
            loop {
                match ev.poll().await {
                    Ok(e) => {
                        if let Some(t) = pick(e) {
                            return t;
                        }
                    }
                    Err(e) => panic!("waiting for {what}: connection error {e:?}"),
                }
            }
        };
        timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    async fn connect(o: MqttOptions) -> (AsyncClient, EventLoop, ConnAck) {
        let (client, mut ev) = AsyncClient::new(o, 1024);
        let ack = until(&mut ev, "CONNACK", |e| match e {
            Event::Incoming(Packet::ConnAck(a)) => Some(a),
            _ => None,
        })
        .await;
        (client, ev, ack)
    }

    async fn subscribe(client: &AsyncClient, ev: &mut EventLoop, filter: &str, qos: QoS) {
        client
            .subscribe(filter, qos)
            .await
            .expect("queue SUBSCRIBE");
        until(ev, "SUBACK", |e| match e {
            Event::Incoming(Packet::SubAck(_)) => Some(()),
            _ => None,
        })
        .await;
    }

    /// Waits for the end of the QoS flow of a publish already queued.
    async fn flow_done(ev: &mut EventLoop, qos: QoS) {
        until(ev, "end of the publish flow", |e| match (qos, e) {
            (QoS::AtMostOnce, Event::Outgoing(Outgoing::Publish(_))) => Some(()),
            (QoS::AtLeastOnce, Event::Incoming(Packet::PubAck(_))) => Some(()),
            (QoS::ExactlyOnce, Event::Incoming(Packet::PubComp(_))) => Some(()),
            _ => None,
        })
        .await;
    }

    async fn publish(
        client: &AsyncClient,
        ev: &mut EventLoop,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) {
        client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("queue PUBLISH");
        flow_done(ev, qos).await;
    }

    async fn next_publish(ev: &mut EventLoop) -> Publish {
        until(ev, "PUBLISH", |e| match e {
            Event::Incoming(Packet::Publish(p)) => Some(p),
            _ => None,
        })
        .await
    }

    async fn no_publish(ev: &mut EventLoop) {
        let got = timeout(QUIET, async {
            loop {
                if let Ok(Event::Incoming(Packet::Publish(p))) = ev.poll().await {
                    return p;
                }
            }
        })
        .await;
        assert!(got.is_err(), "unexpected PUBLISH {got:?}");
    }

    fn text(p: &Publish) -> (String, String) {
        (
            String::from_utf8_lossy(&p.topic).into_owned(),
            String::from_utf8_lossy(&p.payload).into_owned(),
        )
    }

    fn persistent(o: &mut MqttOptions) {
        o.set_clean_start(false);
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(300);
        o.set_connect_properties(props);
    }

    async fn end_to_end(qos: QoS) {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "e2e/t", QoS::ExactlyOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(&publisher, &mut pub_ev, "e2e/t", b"payload", qos, false).await;
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("e2e/t".into(), "payload".into()));
        assert_eq!(p.qos, qos);
        assert!(!p.retain && !p.dup);
        no_publish(&mut sub_ev).await;
    }

    // [MQTT-4.3.1-1]: see `end_to_end`.
    #[tokio::test]
    async fn qos0_end_to_end_v5_mqtt_4_3_1_1() {
        end_to_end(QoS::AtMostOnce).await;
    }

    // [MQTT-4.3.2-4]: see `end_to_end` (PUBACK to the publisher).
    // rumqttc (MQTT 5 mode) interoperates over TCP, an ordered, lossless byte stream
    // [MQTT-4.2.0-1].
    #[tokio::test]
    async fn qos1_end_to_end_v5_mqtt_4_3_2_4() {
        end_to_end(QoS::AtLeastOnce).await;
    }

    // [MQTT-4.3.3-8]: see `end_to_end` (PUBREC to the publisher).
    #[tokio::test]
    async fn qos2_end_to_end_v5_mqtt_4_3_3_8() {
        end_to_end(QoS::ExactlyOnce).await;
    }

    // [MQTT-3.8.4-8] The delivered QoS is the minimum of published and granted.
    #[tokio::test]
    async fn delivered_qos_is_min_of_published_and_granted_v5_mqtt_3_8_4_8() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "min/t", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(
            &publisher,
            &mut pub_ev,
            "min/t",
            b"2",
            QoS::ExactlyOnce,
            false,
        )
        .await;
        assert_eq!(next_publish(&mut sub_ev).await.qos, QoS::AtLeastOnce);
    }

    // Sections 4.7.1.2 and 4.7.1.3: `#` and `+`, each on its own subscriber, get every
    // matching message [MQTT-4.5.0-1] and no other [MQTT-3.3.2-3].
    #[tokio::test]
    async fn wildcards_match_levels_v5_mqtt_4_7_1_1() {
        let broker = Broker::start_default();
        let (plus, mut plus_ev, _) = connect(options(&broker, "plus")).await;
        subscribe(&plus, &mut plus_ev, "w/+/x", QoS::AtLeastOnce).await;
        let (hash, mut hash_ev, _) = connect(options(&broker, "hash")).await;
        subscribe(&hash, &mut hash_ev, "w/#", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for t in ["w/a/x", "w/b/y", "v/a/x", "w/a/b/x", "w/fence/x"] {
            publish(
                &publisher,
                &mut pub_ev,
                t,
                t.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        for want in ["w/a/x", "w/fence/x"] {
            assert_eq!(text(&next_publish(&mut plus_ev).await).0, want);
        }
        for want in ["w/a/x", "w/b/y", "w/a/b/x", "w/fence/x"] {
            assert_eq!(text(&next_publish(&mut hash_ev).await).0, want);
        }
        no_publish(&mut plus_ev).await;
        no_publish(&mut hash_ev).await;
    }

    // [MQTT-3.3.1-5] / [MQTT-3.3.1-9] A retained message reaches a later subscriber with
    // RETAIN 1; [MQTT-3.3.1-6] an empty retained message removes it.
    #[tokio::test]
    async fn retained_message_delivered_to_new_subscriber_v5_mqtt_3_3_1_9() {
        let broker = Broker::start_default();
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        publish(
            &publisher,
            &mut pub_ev,
            "ret/t",
            b"kept",
            QoS::AtLeastOnce,
            true,
        )
        .await;
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "ret/#", QoS::AtLeastOnce).await;
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("ret/t".into(), "kept".into()));
        assert!(p.retain, "RETAIN 1 for a new subscription");

        publish(
            &publisher,
            &mut pub_ev,
            "ret/t",
            b"",
            QoS::AtLeastOnce,
            true,
        )
        .await;
        let (late, mut late_ev, _) = connect(options(&broker, "late")).await;
        subscribe(&late, &mut late_ev, "ret/#", QoS::AtLeastOnce).await;
        no_publish(&mut late_ev).await;
    }

    // [MQTT-3.1.2-8] The will is published when the client goes away without DISCONNECT.
    #[tokio::test]
    async fn will_published_when_client_drops_v5_mqtt_3_1_2_8() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "will/#", QoS::AtLeastOnce).await;
        let mut o = options(&broker, "mortal");
        o.set_last_will(LastWill::new(
            "will/mortal",
            "gone",
            QoS::AtLeastOnce,
            false,
            None,
        ));
        let (client, ev, _) = connect(o).await;
        drop(ev);
        drop(client);
        let p = next_publish(&mut sub_ev).await;
        assert_eq!(text(&p), ("will/mortal".into(), "gone".into()));
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }

    // [MQTT-3.1.2-23] / [MQTT-3.2.2-3] With a Session Expiry Interval, a Clean Start 0 client
    // that reconnects gets Session Present 1 and the messages published while it was away.
    #[tokio::test]
    async fn persistent_session_resumes_with_queued_messages_v5_mqtt_3_1_2_23() {
        let broker = Broker::start_default();
        let mut o = options(&broker, "durable");
        persistent(&mut o);
        let (sub, mut sub_ev, ack) = connect(o.clone()).await;
        assert!(!ack.session_present);
        subscribe(&sub, &mut sub_ev, "dur/t", QoS::AtLeastOnce).await;
        sub.disconnect().await.expect("queue DISCONNECT");
        until(&mut sub_ev, "DISCONNECT sent", |e| {
            matches!(e, Event::Outgoing(Outgoing::Disconnect)).then_some(())
        })
        .await;
        drop(sub_ev);

        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for i in 0..10 {
            publish(
                &publisher,
                &mut pub_ev,
                "dur/t",
                i.to_string().as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        let (_sub, mut sub_ev, ack) = connect(o).await;
        assert!(ack.session_present, "Session Present 1 on resume");
        for i in 0..10 {
            let p = next_publish(&mut sub_ev).await;
            assert_eq!(text(&p), ("dur/t".into(), i.to_string()));
        }
    }

    // [MQTT-3.1.4-3] A second client with the same id closes the first; if the server sends
    // a DISCONNECT first, its reason is 0x8E (Session taken over).
    #[tokio::test]
    async fn takeover_disconnects_first_client_v5_mqtt_3_1_4_3() {
        let broker = Broker::start_default();
        let (_first, mut first_ev, _) = connect(options(&broker, "same")).await;
        let (second, mut second_ev, _) = connect(options(&broker, "same")).await;
        let closed = timeout(WAIT, async {
            loop {
                if let Err(e) = first_ev.poll().await {
                    return e;
                }
            }
        })
        .await
        .expect("the first connection was not closed");
        if let ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) =
            &closed
        {
            assert_eq!(*reason_code, DisconnectReasonCode::SessionTakenOver);
        }
        subscribe(&second, &mut second_ev, "still/here", QoS::AtMostOnce).await;
    }

    // Properties of the message reach the subscriber unaltered: user properties in order
    // [MQTT-3.3.2-17] [MQTT-3.3.2-18], content type [MQTT-3.3.2-20], response topic
    // [MQTT-3.3.2-15], correlation data [MQTT-3.3.2-16].
    #[tokio::test]
    async fn publish_properties_forwarded_v5_mqtt_3_3_2_18() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "props/t", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        let props = PublishProperties {
            content_type: Some("application/json".into()),
            response_topic: Some("props/reply".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
            user_properties: vec![
                ("b".into(), "2".into()),
                ("a".into(), "1".into()),
                ("b".into(), "3".into()),
            ],
            ..Default::default()
        };
        publisher
            .publish_with_properties("props/t", QoS::AtLeastOnce, false, "{}", props.clone())
            .await
            .expect("queue PUBLISH");
        flow_done(&mut pub_ev, QoS::AtLeastOnce).await;
        let got = next_publish(&mut sub_ev)
            .await
            .properties
            .expect("properties");
        assert_eq!(got.content_type, props.content_type);
        assert_eq!(got.response_topic, props.response_topic);
        assert_eq!(got.correlation_data, props.correlation_data);
        assert_eq!(got.user_properties, props.user_properties);
    }

    // [MQTT-4.6.0-5] 200 QoS 1 messages sent without waiting (within the server's Receive
    // Maximum, which rumqttc honours) arrive in order.
    #[tokio::test]
    async fn messages_arrive_in_publish_order_v5_mqtt_4_6_0_5() {
        let broker = Broker::start_default();
        let (sub, mut sub_ev, _) = connect(options(&broker, "sub")).await;
        subscribe(&sub, &mut sub_ev, "ord/t", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "pub")).await;
        for i in 0..200 {
            publisher
                .publish("ord/t", QoS::AtLeastOnce, false, i.to_string())
                .await
                .expect("queue PUBLISH");
        }
        let mut acks = 0;
        until(&mut pub_ev, "200 PUBACKs", |e| {
            acks += usize::from(matches!(e, Event::Incoming(Packet::PubAck(_))));
            (acks == 200).then_some(())
        })
        .await;
        for i in 0..200 {
            assert_eq!(text(&next_publish(&mut sub_ev).await).1, i.to_string());
        }
    }

    // Server-to-client topic aliases with a client that accepts them (rumqttc's Topic
    // Alias Maximum): rumqttc resolves every alias the broker sets back to its topic
    // [MQTT-3.3.2-11] (5.0).
    #[tokio::test]
    async fn rumqttc_resolves_the_aliases_the_server_assigns_ringmq_only_v5_mqtt_3_3_2_11() {
        if crate::common::skip_unless_ringmq("server-to-client topic aliases") {
            return;
        }
        let broker = Broker::start_default();
        let mut o = options(&broker, "alias-sub");
        let mut props = ConnectProperties::new();
        props.topic_alias_max = Some(2);
        o.set_connect_properties(props);
        let (sub, mut sub_ev, _) = connect(o).await;
        subscribe(&sub, &mut sub_ev, "alias/#", QoS::AtLeastOnce).await;
        let (publisher, mut pub_ev, _) = connect(options(&broker, "alias-pub")).await;
        let topics = [
            "alias/a", "alias/a", "alias/b", "alias/c", "alias/a", "alias/c",
        ];
        for (i, t) in topics.iter().enumerate() {
            publish(
                &publisher,
                &mut pub_ev,
                t,
                format!("{i}").as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        let mut aliased = 0;
        for (i, t) in topics.iter().enumerate() {
            let p = next_publish(&mut sub_ev).await;
            let alias = p.properties.as_ref().and_then(|pr| pr.topic_alias);
            aliased += usize::from(alias.is_some());
            assert!(
                alias.map_or(true, |a| (1..=2).contains(&a)),
                "alias {alias:?}"
            );
            assert_eq!(text(&p), ((*t).to_owned(), format!("{i}")));
        }
        // a and b take the two aliases; c goes by name both times.
        assert_eq!(
            aliased, 4,
            "every PUBLISH of an aliased topic used its alias"
        );
    }

    // Shared subscription with rumqttc members on a four-shard broker: each message goes to
    // exactly one of them.
    #[tokio::test]
    async fn rumqttc_members_of_a_share_group_split_the_messages_v5() {
        let broker = Broker::with_shards(4);
        let mut members = Vec::new();
        for i in 0..3 {
            let (c, mut ev, _) = connect(options(&broker, &format!("worker-{i}"))).await;
            subscribe(&c, &mut ev, "$share/pool/work/+", QoS::AtLeastOnce).await;
            members.push((c, ev));
        }
        let (publisher, mut pub_ev, _) = connect(options(&broker, "boss")).await;
        let sent: Vec<String> = (0..24).map(|i| format!("task-{i:02}")).collect();
        for s in &sent {
            publish(
                &publisher,
                &mut pub_ev,
                "work/x",
                s.as_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await;
        }
        let mut got = Vec::new();
        for (_, ev) in &mut members {
            while let Ok(Ok(Event::Incoming(Packet::Publish(p)))) = timeout(QUIET, async {
                loop {
                    match ev.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            return Ok(Event::Incoming(Packet::Publish(p)))
                        }
                        Ok(_) => {}
                        Err(e) => return Err(e),
                    }
                }
            })
            .await
            {
                got.push(text(&p).1);
            }
        }
        got.sort();
        assert_eq!(got, sent, "each task once across the pool");
    }
}
