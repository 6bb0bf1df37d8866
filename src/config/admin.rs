//! `[admin]`: the HTTP listener for operators (Prometheus metrics, health, the JSON API and
//! the live dashboard). Off by default; on, it listens on the loopback interface unless
//! told otherwise.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::{Deserialize, Deserializer, Serialize};

use super::Problem;

/// Default `admin.listen`: loopback only, port 8080.
pub const ADMIN_LISTEN_DEFAULT: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// The `[admin]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Whether the admin listener runs. Default false (`--admin-listen` turns it on).
    pub enabled: bool,
    /// Address and port of the admin listener (an IP literal). Default "127.0.0.1:8080".
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// When not empty, `/metrics` and `/api/...` need `Authorization: Bearer <token>`;
    /// `/healthz` and the dashboard page itself never do. Default "": no token.
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            listen: ADMIN_LISTEN_DEFAULT,
            token: String::new(),
        }
    }
}

/// Completes "expected ..." in errors about `admin.listen` or `--admin-listen`.
pub const ADMIN_LISTEN_EXPECTED: &str =
    "an IP address and port such as \"127.0.0.1:8080\", or a port alone for 127.0.0.1";

/// Parses `admin.listen` / `--admin-listen`: `IP:port`, or a bare port on the loopback
/// interface.
pub fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(port) = text.parse::<u16>() {
        return Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)));
    }
    text.parse().ok()
}

fn deserialize_listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    use serde::de::{Error, Unexpected};
    let text = String::deserialize(deserializer)?;
    parse_listen(&text)
        .ok_or_else(|| D::Error::invalid_value(Unexpected::Str(&text), &ADMIN_LISTEN_EXPECTED))
}

impl AdminConfig {
    pub(crate) fn validate(&self, problems: &mut Vec<Problem>) {
        // Sent in a header: printable ASCII without spaces.
        if !self.token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(Problem::new(
                "admin.token",
                "(not shown)",
                "must be printable ASCII without spaces (it travels in an HTTP header)",
            ));
        }
        if self.enabled && self.listen.port() == 0 {
            problems.push(Problem::new(
                "admin.listen",
                format!("\"{}\"", self.listen),
                "needs a port other than 0",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_port_means_loopback() {
        assert_eq!(
            parse_listen("9090"),
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        assert_eq!(
            parse_listen(" [::1]:80 "),
            Some("[::1]:80".parse().unwrap_or(ADMIN_LISTEN_DEFAULT))
        );
        assert_eq!(
            parse_listen("0.0.0.0:8080"),
            Some(SocketAddr::from(([0, 0, 0, 0], 8080)))
        );
        assert_eq!(parse_listen("localhost:8080"), None);
        assert_eq!(parse_listen(""), None);
    }

    #[test]
    fn a_token_with_spaces_is_refused() {
        let mut problems = Vec::new();
        AdminConfig {
            token: "two words".into(),
            ..AdminConfig::default()
        }
        .validate(&mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "admin.token");
        // The secret itself is never printed.
        assert!(!problems[0].to_string().contains("two words"));
    }
}
