//! Authentication and authorization: the password file ([`passwd`]), checked off the
//! shards ([`verify`]) through the [`Authenticator`] trait; the ACL file ([`acl`]); the
//! snapshot of both that the shards check clients against, swapped on SIGHUP
//! ([`security`]); and enhanced authentication (MQTT 5.0 section 4.12) with the one method
//! ringmq offers, SCRAM-SHA-256 ([`scram`]), the users it checks ([`PasswordStore`]), and
//! the exchange as MQTT packets ([`ConnAuth`]). Pure but for the verification threads:
//! the connection (CONNECT phase) and the handlers read and write the packets.
//!
//! Enhanced authentication, decisions where MQTT leaves room:
//! - A failed exchange is answered with 0x87 Not authorized, in CONNACK and in DISCONNECT
//!   alike: section 4.12 names it for refusing authentication, DISCONNECT has no 0x86, and
//!   SCRAM does not use the CONNECT's User Name and Password fields that 0x86 speaks of.
//!   An unsupported method gets CONNACK 0x8C [MQTT-4.12.0-1].
//! - A CONNECT with an Authentication Method may also carry a User Name; it must then be
//!   the SCRAM user (`n=`), or the CONNECT is refused (0x87). Its Password is ignored.
//! - A re-authentication is for the user already authenticated: another name fails it.
//! - SCRAM is client-first: the client-first-message must come as the CONNECT's (or the
//!   AUTH 0x19's) Authentication Data; without it the exchange fails.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod acl;
pub mod passwd;
pub mod passwd_cli;
pub mod scram;
pub mod security;
mod store;
pub mod verify;

use bytes::Bytes;

use crate::protocol::{Auth, AuthProperties, MqttString, ReasonCode};
pub use scram::ScramError;
use scram::ServerFirst;
pub use security::{Authenticator, ClientAccess, Principal, Security, SecurityCell};
pub use store::{server_nonce, PasswordStore, SALT_BYTES};

/// Whether `method` is an Authentication Method ringmq supports.
pub fn is_supported(method: &str) -> bool {
    method == scram::METHOD
}

/// Why an exchange failed; [`AuthError::reason_code`] is what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// CONNACK 0x8C.
    #[error("authentication method {0:?} is not supported (only SCRAM-SHA-256)")]
    UnsupportedMethod(String),
    #[error("{0}")]
    Scram(#[from] ScramError),
    #[error("the SCRAM user name differs from the CONNECT's User Name")]
    UserNameMismatch,
    #[error("re-authentication must be for the user already authenticated")]
    UserChanged,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("no random numbers from the operating system: {0}")]
    Random(getrandom::Error),
}

impl AuthError {
    /// The CONNACK or DISCONNECT reason code (the one error -> reason map of this module).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            AuthError::UnsupportedMethod(_) => ReasonCode::BadAuthenticationMethod,
            AuthError::Scram(_) | AuthError::UserNameMismatch | AuthError::UserChanged => {
                ReasonCode::NotAuthorized
            }
            AuthError::Protocol(_) => ReasonCode::ProtocolError,
            AuthError::Random(_) => ReasonCode::UnspecifiedError,
        }
    }
}

impl From<getrandom::Error> for AuthError {
    fn from(e: getrandom::Error) -> Self {
        AuthError::Random(e)
    }
}

/// A connection's enhanced authentication: its method, whom it authenticated, and an
/// exchange under way (the CONNECT's, or a re-authentication).
///
/// # Invariants
///
/// `method` is supported; `username` is empty only until the CONNECT's exchange succeeds.
#[derive(Debug)]
pub struct ConnAuth {
    method: MqttString,
    username: Box<str>,
    /// Boxed: only while an exchange is under way.
    pending: Option<Box<ServerFirst>>,
}

impl ConnAuth {
    /// A CONNECT with an Authentication Method: checks the method, then answers the
    /// client-first-message (`data`) with AUTH 0x18 Continue authentication
    /// [MQTT-4.12.0-2]. `user_name` is the CONNECT's User Name, if any.
    pub fn start(
        store: &PasswordStore,
        method: &MqttString,
        data: Option<&Bytes>,
        user_name: Option<&str>,
    ) -> Result<(ConnAuth, Auth), AuthError> {
        if !is_supported(method.as_str()) {
            return Err(AuthError::UnsupportedMethod(method.as_str().to_owned()));
        }
        let (pending, reply) = begin(store, method, data)?;
        if user_name.is_some_and(|name| name != pending.username()) {
            return Err(AuthError::UserNameMismatch);
        }
        let auth = ConnAuth {
            method: method.clone(),
            username: Box::from(""),
            pending: Some(pending),
        };
        Ok((auth, reply))
    }

    /// The method the client authenticated with.
    pub fn method(&self) -> &MqttString {
        &self.method
    }

    /// The user the client proved to be (empty before the CONNECT's exchange succeeded).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The client's answer during CONNECT, which must be AUTH 0x18 with the same method
    /// [MQTT-4.12.0-3], [MQTT-4.12.0-5]. Returns the server-final-message, for the
    /// CONNACK's Authentication Data.
    pub fn connect_step(&mut self, auth: &Auth) -> Result<Bytes, AuthError> {
        if auth.reason != ReasonCode::ContinueAuthentication {
            return Err(AuthError::Protocol(
                "during CONNECT the client answers with AUTH 0x18 (Continue authentication)",
            ));
        }
        self.check_method(auth)?;
        let pending = self.pending.take().ok_or(AuthError::Protocol(
            "AUTH 0x18 without an exchange under way",
        ))?;
        self.finish(*pending, auth)
    }

    /// AUTH after the CONNACK: a re-authentication [MQTT-4.12.1-1]. 0x19 starts one (the
    /// answer is AUTH 0x18 with the server-first-message), 0x18 ends it (the answer is AUTH
    /// 0x00 Success with the server-final-message). Returns the AUTH to send.
    pub fn reauth_step(&mut self, store: &PasswordStore, auth: &Auth) -> Result<Auth, AuthError> {
        self.check_method(auth)?;
        match auth.reason {
            ReasonCode::ReAuthenticate => {
                if self.pending.is_some() {
                    return Err(AuthError::Protocol(
                        "AUTH 0x19 while a re-authentication is under way",
                    ));
                }
                let (pending, reply) = begin(
                    store,
                    &self.method,
                    auth.properties.authentication_data.as_ref(),
                )?;
                if pending.username() != &*self.username {
                    return Err(AuthError::UserChanged);
                }
                self.pending = Some(pending);
                Ok(reply)
            }
            ReasonCode::ContinueAuthentication => {
                let pending = self.pending.take().ok_or(AuthError::Protocol(
                    "AUTH 0x18 without a re-authentication under way (start one with 0x19)",
                ))?;
                let server_final = self.finish(*pending, auth)?;
                Ok(auth_packet(ReasonCode::Success, &self.method, server_final))
            }
            _ => Err(AuthError::Protocol("AUTH 0x00 (Success) from a client")),
        }
    }

    /// The method must be the CONNECT's [MQTT-4.12.0-5], [MQTT-4.12.1-1].
    fn check_method(&self, auth: &Auth) -> Result<(), AuthError> {
        if auth.properties.authentication_method.as_ref() != Some(&self.method) {
            return Err(AuthError::Protocol(
                "AUTH with another authentication method than the CONNECT's",
            ));
        }
        Ok(())
    }

    /// Checks the client-final-message; on success the client is `username`.
    fn finish(&mut self, pending: ServerFirst, auth: &Auth) -> Result<Bytes, AuthError> {
        let client_final = auth
            .properties
            .authentication_data
            .as_ref()
            .ok_or(ScramError::Malformed("no client-final-message in the AUTH"))?;
        let verified = pending.verify(client_final)?;
        self.username = verified.username.into_boxed_str();
        Ok(Bytes::from(verified.server_final))
    }
}

/// Parses the client-first-message and answers it: the state waiting for the client-final
/// and the AUTH 0x18 carrying the server-first-message.
fn begin(
    store: &PasswordStore,
    method: &MqttString,
    data: Option<&Bytes>,
) -> Result<(Box<ServerFirst>, Auth), AuthError> {
    let data = data.ok_or(ScramError::Malformed(
        "no client-first-message in the Authentication Data",
    ))?;
    let client = scram::parse_client_first(data)?;
    let (credentials, known) = store.lookup(&client.username);
    let (pending, message) = ServerFirst::new(&client, credentials, known, &server_nonce()?)?;
    let reply = auth_packet(
        ReasonCode::ContinueAuthentication,
        method,
        Bytes::from(message),
    );
    Ok((Box::new(pending), reply))
}

/// An AUTH from the server: always with the method [MQTT-4.12.0-5].
fn auth_packet(reason: ReasonCode, method: &MqttString, data: Bytes) -> Auth {
    Auth {
        reason,
        properties: AuthProperties {
            authentication_method: Some(method.clone()),
            authentication_data: Some(data),
            ..AuthProperties::default()
        },
    }
}

#[cfg(test)]
mod tests;
