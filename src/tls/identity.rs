//! The identity in a client certificate, used as the MQTT user name
//! (`use_identity_as_username`): the subject's Common Name, or, when the subject has none,
//! the first Subject Alternative Name that is a DNS name, an e-mail address or a URI.
//!
//! The certificate has been verified against the listener's CA before this reads it, but it
//! still came from the network: the DER reader below checks every length and returns `None`
//! on anything it does not understand (RFC 5280 section 4.1 for the layout).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[0]` (version) and `[3]` (extensions) of a TBSCertificate, constructed.
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// GeneralName choices (implicitly tagged IA5Strings): rfc822Name, dNSName, URI.
const SAN_EMAIL: u8 = 0x81;
const SAN_DNS: u8 = 0x82;
const SAN_URI: u8 = 0x86;
/// id-at-commonName (2.5.4.3) and id-ce-subjectAltName (2.5.29.17), content bytes.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// The identity of a DER certificate: its subject CN, else its first DNS / e-mail / URI
/// SAN. `None` when it has neither or cannot be read.
pub fn of(cert: &[u8]) -> Option<String> {
    let (tag, certificate, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut fields = Elements(tbs);
    // [0] version (absent for v1), serialNumber, signature, issuer, validity, subject.
    let (tag, _) = fields.next()?;
    if tag == VERSION {
        let _serial = fields.next()?;
    }
    let _signature = fields.next()?;
    let _issuer = fields.next()?;
    let _validity = fields.next()?;
    let (tag, subject) = fields.next()?;
    if tag != SEQUENCE {
        return None;
    }
    if let Some(cn) = common_name(subject) {
        return Some(cn);
    }
    let extensions = fields.find(|(tag, _)| *tag == EXTENSIONS)?.1;
    subject_alt_name(extensions)
}

/// The first CN of a Name (a SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(name: &[u8]) -> Option<String> {
    for (tag, rdn) in Elements(name) {
        if tag != SET {
            return None;
        }
        for (tag, attribute) in Elements(rdn) {
            if tag != SEQUENCE {
                return None;
            }
            let mut parts = Elements(attribute);
            let (tag, oid) = parts.next()?;
            if tag == OID && oid == OID_COMMON_NAME {
                let (tag, value) = parts.next()?;
                return directory_string(tag, value);
            }
        }
    }
    None
}

/// A DirectoryString's text: UTF8String, PrintableString, IA5String, TeletexString (read as
/// UTF-8, which covers its ASCII use) or BMPString (UTF-16).
fn directory_string(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x13 | 0x16 | 0x14 => std::str::from_utf8(value).ok().map(str::to_owned),
        0x1e => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// The first DNS / e-mail / URI name of the subjectAltName extension in `[3]` extensions.
fn subject_alt_name(extensions: &[u8]) -> Option<String> {
    let (tag, list, _) = element(extensions)?;
    if tag != SEQUENCE {
        return None;
    }
    for (tag, extension) in Elements(list) {
        if tag != SEQUENCE {
            return None;
        }
        let mut parts = Elements(extension);
        let (tag, oid) = parts.next()?;
        if tag != OID || oid != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let (mut tag, mut value) = parts.next()?;
        if tag == BOOLEAN {
            (tag, value) = parts.next()?;
        }
        if tag != OCTET_STRING {
            return None;
        }
        let (tag, names, _) = element(value)?;
        if tag != SEQUENCE {
            return None;
        }
        return Elements(names)
            .find(|(tag, _)| matches!(*tag, SAN_DNS | SAN_EMAIL | SAN_URI))
            .and_then(|(_, name)| std::str::from_utf8(name).ok().map(str::to_owned));
    }
    None
}

/// One DER element at the start of `der`: its tag, its contents and what follows it.
/// Only single-byte tags and definite lengths up to 4 bytes (DER has nothing else here).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

/// The elements of a constructed value, in order; ends at the first one that does not
/// parse.
struct Elements<'a>(&'a [u8]);

impl<'a> Iterator for Elements<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (tag, contents, after) = element(self.0)?;
        self.0 = after;
        Some((tag, contents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ringmq tests");
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn dns(name: &str) -> SanType {
        SanType::DnsName(name.try_into().unwrap())
    }

    #[test]
    fn the_common_name_is_the_identity() {
        let der = cert(Some("sensor-17"), vec![dns("sensor-17.example")]);
        assert_eq!(of(&der).as_deref(), Some("sensor-17"));
    }

    #[test]
    fn a_non_ascii_common_name_is_read_as_utf8() {
        let der = cert(Some("capteur-é"), vec![]);
        assert_eq!(of(&der).as_deref(), Some("capteur-é"));
    }

    #[test]
    fn without_a_common_name_the_first_dns_email_or_uri_san_is_the_identity() {
        let ip = SanType::IpAddress("127.0.0.1".parse().unwrap());
        let der = cert(None, vec![ip.clone(), dns("gw.example"), dns("other")]);
        assert_eq!(of(&der).as_deref(), Some("gw.example"));
        let email = SanType::Rfc822Name("ops@example.com".try_into().unwrap());
        let der = cert(None, vec![ip, email]);
        assert_eq!(of(&der).as_deref(), Some("ops@example.com"));
        let uri = SanType::URI("urn:device:42".try_into().unwrap());
        assert_eq!(of(&cert(None, vec![uri])).as_deref(), Some("urn:device:42"));
    }

    #[test]
    fn a_certificate_without_cn_or_usable_san_has_no_identity() {
        let ip = SanType::IpAddress("10.0.0.1".parse().unwrap());
        assert_eq!(of(&cert(None, vec![ip])), None);
        assert_eq!(of(&cert(None, vec![])), None);
    }

    #[test]
    fn a_bmp_string_common_name_is_decoded() {
        // Name: SET { SEQUENCE { OID 2.5.4.3, BMPString "ab" } }
        let name = [
            0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x1e, 0x04, 0x00, 0x61, 0x00,
            0x62,
        ];
        assert_eq!(common_name(&name).as_deref(), Some("ab"));
    }

    #[test]
    fn truncated_or_garbage_input_has_no_identity_and_does_not_panic() {
        let der = cert(Some("sensor"), vec![dns("x.example")]);
        for len in 0..der.len() {
            assert_eq!(of(&der[..len]), None);
        }
        assert_eq!(of(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(of(&[0x30, 0x80, 0x00, 0x00]), None);
        assert_eq!(of(b"not a certificate"), None);
    }
}
