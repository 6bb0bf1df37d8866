//! SCRAM-SHA-256 (RFC 5802, RFC 7677), the server's side: parse the client-first-message,
//! answer with the server-first-message, check the client's proof, sign the server-final.
//!
//! Pure: no I/O and no randomness (the caller gives the server nonce), so the RFC's test
//! vector runs as a unit test.
//!
//! ```text
//! client-first   n,,n=user,r=<c-nonce>                    (in CONNECT / AUTH 0x19)
//! server-first   r=<c-nonce><s-nonce>,s=<salt>,i=<count>  (AUTH 0x18)
//! client-final   c=biws,r=<c-nonce><s-nonce>,p=<proof>    (AUTH 0x18)
//! server-final   v=<server signature>                     (CONNACK / AUTH 0x00)
//! ```
//!
//! Choices where the RFC leaves room:
//! - No channel binding: the gs2 flag must be `n` or `y` (`y`: the client could bind but
//!   thinks we cannot; we offer no `-PLUS` method, so that is right). `p=` is refused.
//! - An authorization identity (`a=`) is accepted only when it names the user itself.
//! - User names and passwords are compared as UTF-8 bytes; SASLprep is not applied, so
//!   names and passwords outside ASCII must be written in the same normalization form.
//! - A mandatory extension (`m=`) is refused; optional extensions are ignored.
//! - An unknown user runs the same exchange as a known one (with a salt derived from the
//!   name, see [`super::PasswordStore`]) and fails at the proof with the same error.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The method's name in MQTT's Authentication Method (RFC 7677).
pub const METHOD: &str = "SCRAM-SHA-256";

/// Bytes of a SHA-256 hash, and so of every key and signature here.
pub const KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 of `message` under `key`.
pub fn hmac(key: &[u8], message: &[u8]) -> [u8; KEY_BYTES] {
    // HMAC takes keys of any length (long ones are hashed): `new_from_slice` cannot fail.
    let Ok(mut mac) = <HmacSha256 as Mac>::new_from_slice(key) else {
        return [0; KEY_BYTES];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; KEY_BYTES] {
    Sha256::digest(data).into()
}

/// RFC 5802's `Hi(password, salt, i)`: PBKDF2 with HMAC-SHA-256, one block.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_BYTES] {
    let mut out = [0; KEY_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// What the server keeps of a password (RFC 5802 section 3): enough to check a proof and
/// to prove itself, not enough to log in as the user.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub salt: Vec<u8>,
    /// PBKDF2 iterations the client must run; RFC 7677 asks for at least 4096.
    pub iterations: u32,
    /// `H(HMAC(SaltedPassword, "Client Key"))`.
    pub stored_key: [u8; KEY_BYTES],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; KEY_BYTES],
}

impl Credentials {
    /// Derives the credentials of `password` with `salt` and `iterations`.
    pub fn derive(password: &[u8], salt: Vec<u8>, iterations: u32) -> Self {
        let salted = salted_password(password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        Credentials {
            stored_key: sha256(&client_key),
            server_key: hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }
}

impl std::fmt::Debug for Credentials {
    /// Keys left out: they are as good as the password to anyone who can read them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("salt", &BASE64.encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed. [`ScramError::Failed`] is the same for a wrong password and an
/// unknown user, so that nobody learns which names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("SCRAM message not valid: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported: use the gs2 header \"n,,\"")]
    ChannelBinding,
    #[error("SCRAM mandatory extension not supported")]
    MandatoryExtension,
    #[error("SCRAM authorization identity must be empty or the user name")]
    AuthorizationIdentity,
    #[error("SCRAM nonce does not continue this exchange")]
    Nonce,
    #[error("SCRAM channel binding does not repeat the gs2 header")]
    ChannelBindingMismatch,
    #[error("authentication failed")]
    Failed,
}

/// A parsed client-first-message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    /// `n,,` or `y,,` (or with `a=<the user>`), repeated in the client-final's `c=`.
    gs2_header: &'a str,
    /// The user name, `=2C` and `=3D` decoded.
    pub username: String,
    /// The client's nonce.
    nonce: &'a str,
    /// client-first-message-bare: the first part of the AuthMessage.
    bare: &'a str,
}

/// Parses a client-first-message.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst<'_>, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (flag, rest) = text
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("gs2 channel binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no gs2 header"))?;
    let gs2_header = text
        .get(..text.len() - bare.len())
        .ok_or(ScramError::Malformed("gs2 header"))?;
    let mut attributes = bare.split(',');
    let first = attributes.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(ScramError::MandatoryExtension);
    }
    let username = first
        .strip_prefix("n=")
        .ok_or(ScramError::Malformed(
            "client-first-message must start with n=",
        ))
        .and_then(decode_saslname)?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no r= after n="))?;
    check_nonce(nonce)?;
    for extension in attributes {
        check_attribute(extension)?;
    }
    if !authzid.is_empty() {
        let named = authzid
            .strip_prefix("a=")
            .ok_or(ScramError::Malformed("gs2 authorization identity"))
            .and_then(decode_saslname)?;
        if named != username {
            return Err(ScramError::AuthorizationIdentity);
        }
    }
    Ok(ClientFirst {
        gs2_header,
        username,
        nonce,
        bare,
    })
}

/// `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed. Not empty.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    if name.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => {
                return Err(ScramError::Malformed(
                    "user name: '=' not followed by 2C or 3D",
                ))
            }
        }
        rest = rest.get(at + 3..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce is printable ASCII without `,`, and not empty.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    let printable = nonce
        .bytes()
        .all(|b| (0x21..=0x7E).contains(&b) && b != b',');
    if nonce.is_empty() || !printable {
        return Err(ScramError::Malformed(
            "nonce must be printable ASCII without ','",
        ));
    }
    Ok(())
}

/// An extension attribute: one ASCII letter, `=`, a value.
fn check_attribute(attribute: &str) -> Result<(), ScramError> {
    let bytes = attribute.as_bytes();
    match bytes {
        [name, b'=', ..] if name.is_ascii_alphabetic() => Ok(()),
        _ => Err(ScramError::Malformed(
            "attribute must be a letter, '=' and a value",
        )),
    }
}

/// The server's state after its server-first-message: waits for the client-final-message.
pub struct ServerFirst {
    username: String,
    gs2_header: String,
    /// The client's nonce followed by ours.
    nonce: String,
    /// client-first-message-bare "," server-first-message ",": the AuthMessage up to the
    /// client-final-message-without-proof.
    auth_message: String,
    credentials: Credentials,
    /// False for an unknown user: the proof is checked all the same, then refused.
    known: bool,
}

impl std::fmt::Debug for ServerFirst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerFirst")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A successful exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who the client proved to be.
    pub username: String,
    /// `v=<ServerSignature>`, which lets the client check the server.
    pub server_final: String,
}

impl ServerFirst {
    /// Answers `client`: the server-first-message (returned) with `server_nonce` appended to
    /// the client's nonce and the user's salt and iterations. `known` is false when
    /// `credentials` are the stand-ins of an unknown user.
    pub fn new(
        client: &ClientFirst<'_>,
        credentials: Credentials,
        known: bool,
        server_nonce: &str,
    ) -> Result<(ServerFirst, String), ScramError> {
        check_nonce(server_nonce)?;
        let nonce = format!("{}{server_nonce}", client.nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credentials.salt),
            credentials.iterations
        );
        let state = ServerFirst {
            username: client.username.clone(),
            gs2_header: client.gs2_header.to_owned(),
            auth_message: format!("{},{message},", client.bare),
            nonce,
            credentials,
            known,
        };
        Ok((state, message))
    }

    /// The user this exchange is for (not yet proven).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// Checks the client-final-message: the nonce, the channel binding and, in constant
    /// time, the proof. On success returns the server-final-message.
    pub fn verify(self, client_final: &[u8]) -> Result<Verified, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed(
            "client-final-message must end with p=",
        ))?;
        let mut attributes = without_proof.split(',');
        let binding =
            attributes
                .next()
                .and_then(|a| a.strip_prefix("c="))
                .ok_or(ScramError::Malformed(
                    "client-final-message must start with c=",
                ))?;
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no r= after c="))?;
        for extension in attributes {
            check_attribute(extension)?;
        }
        let binding = BASE64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("c= is not base64"))?;
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("p= is not base64"))?;
        let proof: [u8; KEY_BYTES] = proof
            .try_into()
            .map_err(|_| ScramError::Malformed("p= must be 32 bytes"))?;
        if nonce != self.nonce {
            return Err(ScramError::Nonce);
        }
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let mut auth_message = self.auth_message;
        auth_message.push_str(without_proof);
        let client_signature = hmac(&self.credentials.stored_key, auth_message.as_bytes());
        let mut client_key = proof;
        for (k, s) in client_key.iter_mut().zip(client_signature) {
            *k ^= s;
        }
        let matches = sha256(&client_key).ct_eq(&self.credentials.stored_key);
        if !bool::from(matches & subtle::Choice::from(u8::from(self.known))) {
            return Err(ScramError::Failed);
        }
        let server_signature = hmac(&self.credentials.server_key, auth_message.as_bytes());
        Ok(Verified {
            username: self.username,
            server_final: format!("v={}", BASE64.encode(server_signature)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn pencil() -> Credentials {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        Credentials::derive(b"pencil", salt, 4096)
    }

    fn started(known: bool) -> ServerFirst {
        let client = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
        let (state, message) = ServerFirst::new(&client, pencil(), known, SERVER_NONCE).unwrap();
        assert_eq!(message, SERVER_FIRST);
        state
    }

    #[test]
    fn rfc_7677_test_vector() {
        let client = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
        assert_eq!(client.username, "user");
        assert_eq!(client.gs2_header, "n,,");
        assert_eq!(client.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
        let verified = started(true).verify(CLIENT_FINAL.as_bytes()).unwrap();
        assert_eq!(verified.username, "user");
        assert_eq!(verified.server_final, SERVER_FINAL);
    }

    #[test]
    fn unknown_user_fails_even_with_the_right_proof() {
        assert_eq!(
            started(false).verify(CLIENT_FINAL.as_bytes()),
            Err(ScramError::Failed)
        );
    }

    #[test]
    fn tampered_proof_fails() {
        // The first proof byte changed.
        let tampered = CLIENT_FINAL.replace("p=dHzb", "p=eHzb");
        assert_eq!(
            started(true).verify(tampered.as_bytes()),
            Err(ScramError::Failed)
        );
        let other = BASE64.encode([0u8; KEY_BYTES]);
        let zero = CLIENT_FINAL.replace("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &other);
        assert_eq!(
            started(true).verify(zero.as_bytes()),
            Err(ScramError::Failed)
        );
    }

    #[test]
    fn wrong_password_fails() {
        let client = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let other = Credentials::derive(b"pencils", salt, 4096);
        let (state, _) = ServerFirst::new(&client, other, true, SERVER_NONCE).unwrap();
        assert_eq!(
            state.verify(CLIENT_FINAL.as_bytes()),
            Err(ScramError::Failed)
        );
    }

    #[test]
    fn changed_auth_message_fails() {
        // The proof signs the whole AuthMessage: an extension slipped in breaks it.
        let changed = CLIENT_FINAL.replace(",p=", ",x=1,p=");
        assert_eq!(
            started(true).verify(changed.as_bytes()),
            Err(ScramError::Failed)
        );
    }

    #[test]
    fn wrong_nonce_fails() {
        let only_client_nonce = CLIENT_FINAL.replace(SERVER_NONCE, "");
        assert_eq!(
            started(true).verify(only_client_nonce.as_bytes()),
            Err(ScramError::Nonce)
        );
        let other = CLIENT_FINAL.replace("k0,", "k1,");
        assert_eq!(
            started(true).verify(other.as_bytes()),
            Err(ScramError::Nonce)
        );
    }

    #[test]
    fn channel_binding_must_repeat_the_gs2_header() {
        // "eSws" is base64 of "y,,": the client-first said "n,,".
        let changed = CLIENT_FINAL.replace("c=biws", "c=eSws");
        assert_eq!(
            started(true).verify(changed.as_bytes()),
            Err(ScramError::ChannelBindingMismatch)
        );
    }

    #[test]
    fn malformed_client_final_is_refused() {
        for bad in [
            "",
            "c=biws",
            "c=biws,p=AAAA",
            "r=x,c=biws,p=AAAA",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=not base64!",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            "c=***,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,==,p=AAAA",
        ] {
            assert!(
                matches!(
                    started(true).verify(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            started(true).verify(&[0xff, 0xfe]),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn malformed_client_first_is_refused() {
        for bad in [
            "",
            "n",
            "n,",
            "x,,n=user,r=abc",
            "n,,r=abc",
            "n,,n=,r=abc",
            "n,,n=user",
            "n,,n=user,r=",
            "n,,n=user,r=a b",
            "n,,n=us=er,r=abc",
            "n,,n=user,r=abc,1",
            "n,b,n=user,r=abc",
        ] {
            assert!(
                matches!(
                    parse_client_first(bad.as_bytes()),
                    Err(ScramError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_client_first(b"p=tls-unique,,n=user,r=abc"),
            Err(ScramError::ChannelBinding)
        );
        assert_eq!(
            parse_client_first(b"n,,m=ext,n=user,r=abc"),
            Err(ScramError::MandatoryExtension)
        );
        assert_eq!(
            parse_client_first(b"n,a=admin,n=user,r=abc"),
            Err(ScramError::AuthorizationIdentity)
        );
    }

    #[test]
    fn client_first_variants_that_are_accepted() {
        let c = parse_client_first(b"y,a=us=2Cer,n=us=2Cer,r=abc,x=ext").unwrap();
        assert_eq!(c.username, "us,er");
        assert_eq!(c.gs2_header, "y,a=us=2Cer,");
        assert_eq!(c.bare, "n=us=2Cer,r=abc,x=ext");
        let c = parse_client_first("n,,n==3D\u{e9}t\u{e9},r=abc".as_bytes()).unwrap();
        assert_eq!(c.username, "=\u{e9}t\u{e9}");
    }

    #[test]
    fn server_nonce_must_be_printable_without_comma() {
        let client = parse_client_first(CLIENT_FIRST.as_bytes()).unwrap();
        assert!(ServerFirst::new(&client, pencil(), true, "a,b").is_err());
        assert!(ServerFirst::new(&client, pencil(), true, "").is_err());
    }

    #[test]
    fn credentials_debug_hides_the_keys() {
        let text = format!("{:?}", pencil());
        assert!(text.contains("W22ZaJ0SNY7soEsUEjb6gQ=="), "{text}");
        assert!(!text.contains("stored_key"), "{text}");
    }
}
