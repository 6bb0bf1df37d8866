//! The CONNECT's User Name and Password against `[auth]`, on the shard that accepted the
//! socket (before any hand-off, so a client that fails costs no other shard anything).
//!
//! Reason codes (MQTT 5.0 / 3.1.1 CONNACK):
//! - wrong password, unknown user, or a User Name without a Password while a password
//!   file is set: 0x86 Bad User Name or Password / 0x04, after `failed_login_delay_ms`;
//! - no User Name while anonymous clients are refused: 0x87 Not authorized / 0x05 (there
//!   was no password to be wrong; Mosquitto answers the same);
//! - an address past `failed_logins_per_address_max`: 0x9F Connection rate exceeded /
//!   0x03 Server unavailable, at once and without a check;
//! - the check queue full: 0x89 Server busy / 0x03.
//!
//! A CONNECT with an Authentication Method (v5 enhanced authentication) is decided by
//! that exchange on the home shard instead; its Password is not used.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::auth::Principal;
use crate::protocol::{Connect, ReasonCode};
use crate::shard::Shard;

/// Why a CONNECT was refused here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    BadCredentials,
    AnonymousNotAllowed,
    RateLimited,
    Busy,
}

impl Refused {
    /// The CONNACK's reason (v3: translated by the encoder).
    pub(super) fn reason(self) -> ReasonCode {
        match self {
            Refused::BadCredentials => ReasonCode::BadUserNameOrPassword,
            Refused::AnonymousNotAllowed => ReasonCode::NotAuthorized,
            Refused::RateLimited => ReasonCode::ConnectionRateExceeded,
            Refused::Busy => ReasonCode::ServerBusy,
        }
    }
}

/// Who the client is, or why it may not connect. A failed password check returns only
/// after `auth.failed_login_delay_ms`.
pub(super) async fn login(
    shard: &Shard,
    connect: &Connect,
    ip: IpAddr,
    certified: bool,
) -> Result<Principal, Refused> {
    if connect.properties.authentication_method.is_some() {
        return Ok(Principal::anonymous());
    }
    if certified {
        // The TLS handshake verified the certificate whose identity is the User Name.
        return Ok(Principal {
            user: connect.username.as_ref().map(|u| Arc::from(u.as_str())),
            credential: None,
            certificate: true,
        });
    }
    let security = shard.security.borrow().clone();
    let Some(user) = &connect.username else {
        return if security.allow_anonymous {
            Ok(Principal::anonymous())
        } else {
            Err(Refused::AnonymousNotAllowed)
        };
    };
    let user: Arc<str> = Arc::from(user.as_str());
    let Some(authenticator) = security.authenticator.clone() else {
        // No password file: the name is taken as given.
        return Ok(Principal {
            user: Some(user),
            credential: None,
            certificate: false,
        });
    };
    if shard.verifier.is_blocked(ip, Instant::now()) {
        return Err(Refused::RateLimited);
    }
    let answer = shard
        .verifier
        .submit(authenticator, &user, connect.password.as_deref())
        .map_err(|_| Refused::Busy)?;
    match answer.recv_async().await {
        Ok(Some(credential)) => Ok(Principal {
            user: Some(user),
            credential: Some(credential),
            certificate: false,
        }),
        _ => {
            shard.verifier.failed(ip, Instant::now());
            glommio::timer::sleep(shard.config.auth.failed_login_delay()).await;
            Err(Refused::BadCredentials)
        }
    }
}
