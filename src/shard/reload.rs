//! SIGHUP: what is reloaded, and how the shards take it up without dropping connections.
//!
//! The signal thread ([`super::runtime::reload_on_sighup`]) runs the steps in order. The
//! `auth` step reads the password and ACL files into a new immutable
//! [`Security`](crate::auth::Security) (a bad file keeps the old snapshot and logs the file,
//! line and reason), puts it in the shared [`SecurityCell`], and waits until every shard
//! has taken it. Each shard follows the cell ([`follow`]): it swaps its own copy (the data
//! path reads only that, no lock), then re-checks its sessions: a connected client whose
//! password-file line changed or went away, or an anonymous one when anonymous clients are
//! no longer allowed, is disconnected (v5: DISCONNECT 0x87 Not authorized; its will is not
//! published); every session gets its rules anew from the new ACL, with an empty cache,
//! so that subscriptions no longer permitted stop delivering at once.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;

use super::runtime::ReloadStep;
use super::Shard;
use crate::auth::{Security, SecurityCell};
use crate::config::Config;
use crate::protocol::ReasonCode;

/// How long the signal thread waits for every shard to take a new snapshot before it logs
/// the reload as incomplete (a shard that is that late takes it when it can).
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What SIGHUP reloads, in order.
pub fn steps(
    config: &Config,
    cell: &Arc<SecurityCell>,
    shards: usize,
    tls: Vec<Arc<crate::tls::TlsAcceptor>>,
) -> Vec<ReloadStep> {
    let auth = config.auth.clone();
    let cell = cell.clone();
    let mut steps = vec![ReloadStep {
        name: "auth",
        run: Box::new(move || {
            let security = Security::load(&auth).map_err(|e| e.to_string())?;
            let summary = summary(&security);
            let generation = cell.replace(security);
            if !cell.wait_applied(generation, shards, APPLY_TIMEOUT) {
                return Err(format!(
                    "not every shard took the new files within {APPLY_TIMEOUT:?} ({summary})"
                ));
            }
            Ok(summary)
        }),
    }];
    // Certificates: new handshakes use the new files, established connections go on.
    if !tls.is_empty() {
        steps.push(ReloadStep {
            name: "tls",
            run: Box::new(move || crate::tls::reload_all(&tls)),
        });
    }
    steps
}

fn summary(s: &Security) -> String {
    format!(
        "password file: {}, SCRAM users: {}, ACL rules: {}, anonymous clients: {}",
        if s.authenticator.is_some() {
            "yes"
        } else {
            "none"
        },
        s.scram.len(),
        s.acl.as_ref().map_or(0, |a| a.rule_count()),
        if s.allow_anonymous {
            "allowed"
        } else {
            "refused"
        }
    )
}

/// Follows the cell from generation `seen` until shutdown: each new snapshot is applied
/// on this shard.
pub async fn follow(shard: Rc<Shard>, cell: Arc<SecurityCell>, mut seen: u64) {
    loop {
        let shutdown = shard.shutdown.clone();
        let stopped = future::or(
            async {
                cell.changed(seen).await;
                false
            },
            async {
                shutdown.wait().await;
                true
            },
        )
        .await;
        if stopped {
            return;
        }
        let (security, generation) = cell.current();
        seen = generation;
        shard.apply_security(security);
        cell.applied(generation);
    }
}

impl Shard {
    /// Takes up a new snapshot: re-checks every session (see the module doc).
    fn apply_security(&self, security: Arc<Security>) {
        *self.security.borrow_mut() = security.clone();
        let sessions = self.sessions.borrow();
        let mut ended = 0usize;
        for (_, s) in sessions.iter() {
            let mut s = s.borrow_mut();
            let principal = s.principal();
            if let Some(out) = s.outbox() {
                if !security.still_valid(&principal) {
                    out.close(ReasonCode::NotAuthorized);
                    ended += 1;
                }
            }
            let client_id = s.client_id.clone();
            s.access = security.access_for(principal, &client_id);
        }
        tracing::info!(
            shard = %self.id,
            sessions = sessions.len(),
            disconnected = ended,
            "security files applied"
        );
    }
}
