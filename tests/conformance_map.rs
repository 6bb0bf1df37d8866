//! The normative-statement conformance map: for every numbered statement of MQTT 3.1.1 and
//! MQTT 5.0, whether it binds ringmq and which tests check it. The map is generated from
//! the test sources into `tests/CONFORMANCE.md`; `conformance_map_is_current` fails when
//! that file is stale, and `RINGMQ_BLESS=1 cargo test --test conformance_map` rewrites it.
//!
//! Inputs:
//!
//! - `tests/conformance/mqtt-3.1.1-statements.tsv` and `mqtt-5.0-statements.tsv`: every
//!   statement (id, section, applies to, text), in document order.
//! - `tests/conformance/applicability.tsv`: which statements bind a broker. By default a
//!   statement that applies to the Server or to Both is applicable and a Client one is not
//!   ("binds the client only"). A row `n/a` takes a Server or Both statement out (a broker
//!   cannot honour or check it, or it is really about the client); a row `validated` brings
//!   a Client statement in (the server checks it, for example by closing the connection).
//!   Every row gives its reason.
//! - The tests: `tests/**/*.rs` (except this file), the `#[test]` functions in `src/**/*.rs`
//!   and the `def test_*` functions in `tests/**/test_*.py`.
//!
//! # The citation convention
//!
//! 1. A test cites a statement by writing its id in square brackets, `[MQTT-3.3.1-12]`,
//!    in the comment block directly above the test (`//`, `///` or `/* */` lines with no
//!    blank line between them and the test; attributes such as `#[test]` or `#[ignore]` may
//!    sit between) or anywhere in the test's body (comments and string literals included).
//!    A Python test cites in the `#` lines directly above its `def test_...` (decorators may
//!    sit between), in its docstring or in its body.
//! 2. `[MQTT-3.1.2-14/15]` is shorthand for `[MQTT-3.1.2-14]` and `[MQTT-3.1.2-15]`.
//! 3. The versions a test runs come from its name, split on `_`: a `v311` token means
//!    MQTT 3.1.1, a `v5` token MQTT 5.0 (a name may hold both), `v31` means MQTT 3.1, which
//!    has no numbered statements and so counts for nothing.
//! 4. A citation is pinned to a version by a marker right after it (spaces allowed, or a
//!    line break and the next comment line's leader such as `//`): `(3.1.1)` or
//!    `(v3.1.1)`, `(5.0)` or `(v5)`; `[MQTT-3.6.1-1] (3.1.1) (5.0)` pins it to both. A pinned citation counts only for its versions, and for each only if the test
//!    runs it (or the test's name has no version token). An unpinned citation counts for
//!    every version the test's name gives. A marker also pins the citations right before it
//!    that have no marker of their own, when nothing but spaces, line breaks, `,`, `/`, `;`,
//!    `&`, `and` or `or` separates them: in `[MQTT-3.2.2-6] [MQTT-3.2.2-7] (5.0) /
//!    [MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1)` the first two are 5.0 and the last two 3.1.1.
//!    A citation meant for both versions next to pinned ones is pinned to both:
//!    `[MQTT-3.3.1-5] (3.1.1) (5.0), [MQTT-3.3.1-9] (5.0)`.
//! 5. A test whose name has no version token must pin every citation.
//! 6. `test_versions!(check => name_v311_..., name_v5_...);` (tests/common/mod.rs) makes two
//!    tests that run `fn check(v)`; each has the citations of `check` (its comment block and
//!    its body) and the version of its own name. The same holds inside a module, and for any
//!    `macro_rules!` macro of the sources that generates test functions and is called as
//!    `name!(check => entry, ...)` or `name!(check => entry; ...)`: the first identifier of
//!    each entry is a generated test (as in broker_durability.rs,
//!    `restart_tests!(check => name_v311_...: V311, Down::Stop; ...)`).
//! 7. Only tests count: a citation in a helper function or in the implementation does not.
//!    Text that mentions a statement without claiming a test checks it writes the id
//!    without brackets (MQTT-3.1.3-7).
//!
//! These are errors, listed by `conformance_citations_follow_the_convention` with where and
//! how to fix them: an unpinned citation in a test whose name has no version token; an id
//! that is not in the statements of the version it counts for (a pinned id is checked
//! against its pinned version); a malformed citation or pin marker; a citation of a
//! statement that is not applicable in that version; a bad row in `applicability.tsv`; a
//! test-generating macro call that cannot be read or whose check function cannot be found.
//!
//! The scanner is lexical, not a Rust parser: it skips string and character literals and
//! comments (nested block comments, raw strings) to match braces, finds `fn` items with a
//! test attribute (its path ends in `test`: `#[test]`, `#[tokio::test(...)]`, including
//! those written inside `proptest!` and other macro bodies) and reads the comment lines
//! right above them. This file's own sources are not scanned: its examples are not
//! citations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Where the generated map lives, relative to the repository root.
const MAP_FILE: &str = "tests/CONFORMANCE.md";

/// The reference data, relative to the repository root.
const DATA_DIR: &str = "tests/conformance";

/// This file: its own sources are examples, not citations.
const SELF_FILE: &str = "tests/conformance_map.rs";

/// How much of a statement's text a map row shows.
const SHORT_TEXT_CHARS: usize = 100;

// ---------------------------------------------------------------------------------------
// Statements and applicability
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Version {
    V311,
    V5,
}

impl Version {
    const ALL: [Version; 2] = [Version::V311, Version::V5];

    fn label(self) -> &'static str {
        match self {
            Version::V311 => "3.1.1",
            Version::V5 => "5.0",
        }
    }

    fn from_label(s: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.label() == s)
    }

    fn statements_file(self) -> String {
        format!("mqtt-{}-statements.tsv", self.label())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppliesTo {
    Server,
    Client,
    Both,
}

impl AppliesTo {
    fn parse(s: &str) -> Option<AppliesTo> {
        match s {
            "Server" => Some(AppliesTo::Server),
            "Client" => Some(AppliesTo::Client),
            "Both" => Some(AppliesTo::Both),
            _ => None,
        }
    }

    fn label(self) -> &'static str {
        match self {
            AppliesTo::Server => "Server",
            AppliesTo::Client => "Client",
            AppliesTo::Both => "Both",
        }
    }
}

#[derive(Debug)]
struct Statement {
    id: String,
    section: String,
    applies_to: AppliesTo,
    text: String,
}

/// Whether a statement binds the broker, and why when that is not the default.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Applicability {
    /// A Server or Both statement.
    Applicable,
    /// A Client statement the server checks (`validated` row).
    Validated(String),
    /// Not checked here: a Client statement, or an `n/a` row.
    NotApplicable(String),
}

impl Applicability {
    fn is_applicable(&self) -> bool {
        !matches!(self, Applicability::NotApplicable(_))
    }
}

const CLIENT_ONLY: &str = "binds the client only";

fn read_statements(dir: &Path, version: Version, errors: &mut Vec<String>) -> Vec<Statement> {
    let name = version.statements_file();
    let path = dir.join(&name);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut statements = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            [id, section, applies_to, text] => {
                AppliesTo::parse(applies_to).map(|applies_to| Statement {
                    id: (*id).to_owned(),
                    section: (*section).to_owned(),
                    applies_to,
                    text: (*text).to_owned(),
                })
            }
            _ => None,
        };
        match parsed {
            Some(s) if seen.insert(s.id.clone()) => statements.push(s),
            Some(s) => errors.push(format!(
                "{DATA_DIR}/{name}:{}: statement {} listed twice",
                n + 1,
                s.id
            )),
            None => errors.push(format!(
                "{DATA_DIR}/{name}:{}: expected 4 tab-separated fields \
                 (id, section, Server/Client/Both, text)",
                n + 1
            )),
        }
    }
    statements
}

/// The statements of one version with their applicability.
struct Spec {
    version: Version,
    statements: Vec<Statement>,
    applicability: BTreeMap<String, Applicability>,
}

impl Spec {
    fn has(&self, id: &str) -> bool {
        self.applicability.contains_key(id)
    }
}

fn default_applicability(s: &Statement) -> Applicability {
    match s.applies_to {
        AppliesTo::Server | AppliesTo::Both => Applicability::Applicable,
        AppliesTo::Client => Applicability::NotApplicable(CLIENT_ONLY.to_owned()),
    }
}

/// Reads `applicability.tsv` (header `version id status reason`, `#` comments allowed) over
/// the defaults.
fn apply_overrides(dir: &Path, specs: &mut [Spec], errors: &mut Vec<String>) {
    let path = dir.join("applicability.tsv");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let file = format!("{DATA_DIR}/applicability.tsv");
    let mut seen = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("version\t") {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [version, id, status, reason] = fields.as_slice() else {
            errors.push(format!(
                "{at}: expected 4 tab-separated fields: version (3.1.1 or 5.0), id, status \
                 (n/a or validated), reason"
            ));
            continue;
        };
        let Some(version) = Version::from_label(version) else {
            errors.push(format!(
                "{at}: version {version:?} is neither 3.1.1 nor 5.0"
            ));
            continue;
        };
        let spec = specs
            .iter_mut()
            .find(|s| s.version == version)
            .expect("a spec per version");
        let Some(statement) = spec.statements.iter().find(|s| s.id == *id) else {
            errors.push(format!(
                "{at}: {id} is not a statement of MQTT {}",
                version.label()
            ));
            continue;
        };
        if !seen.insert((version, (*id).to_owned())) {
            errors.push(format!("{at}: {id} ({}) has two rows", version.label()));
            continue;
        }
        let reason = reason.trim();
        if reason.is_empty() {
            errors.push(format!("{at}: {id}: every row needs a reason"));
            continue;
        }
        let value = match (*status, statement.applies_to) {
            ("n/a", AppliesTo::Server | AppliesTo::Both) => {
                Applicability::NotApplicable(reason.to_owned())
            }
            ("validated", AppliesTo::Client) => Applicability::Validated(reason.to_owned()),
            ("n/a", AppliesTo::Client) => {
                errors.push(format!(
                    "{at}: {id} applies to the Client, so it is n/a already; remove the row"
                ));
                continue;
            }
            ("validated", _) => {
                errors.push(format!(
                    "{at}: {id} applies to the {}, so it is applicable already; `validated` \
                     is for Client statements the server checks",
                    statement.applies_to.label()
                ));
                continue;
            }
            (other, _) => {
                errors.push(format!(
                    "{at}: status {other:?}: expected `n/a` or `validated`"
                ));
                continue;
            }
        };
        spec.applicability.insert((*id).to_owned(), value);
    }
}

fn load_specs(root: &Path, errors: &mut Vec<String>) -> Vec<Spec> {
    let dir = root.join(DATA_DIR);
    let mut specs: Vec<Spec> = Version::ALL
        .into_iter()
        .map(|version| {
            let statements = read_statements(&dir, version, errors);
            let applicability = statements
                .iter()
                .map(|s| (s.id.clone(), default_applicability(s)))
                .collect();
            Spec {
                version,
                statements,
                applicability,
            }
        })
        .collect();
    apply_overrides(&dir, &mut specs, errors);
    specs
}

// ---------------------------------------------------------------------------------------
// Tests and the text they cite from
// ---------------------------------------------------------------------------------------

/// Text searched for citations, with the (1-based) line its first byte is on.
#[derive(Debug, Clone)]
struct Span {
    line: usize,
    text: String,
}

/// One test found in the sources.
#[derive(Debug, Clone)]
struct TestCase {
    /// Source file as shown in the map: relative to `tests/` for tests, `src/...` else.
    file: String,
    /// Enclosing modules (Rust) or classes (Python).
    scope: Vec<String>,
    name: String,
    line: usize,
    spans: Vec<Span>,
    /// `#[ignore]`d, or marked `skip` / `xfail` in Python: it does not run, so it covers
    /// nothing (the map lists it apart).
    ignored: bool,
}

impl TestCase {
    fn display(&self) -> String {
        let mut out = self.file.clone();
        for part in self.scope.iter().chain(std::iter::once(&self.name)) {
            out.push_str("::");
            out.push_str(part);
        }
        out
    }
}

/// Line number (1-based) of byte `pos`.
fn line_of(line_starts: &[usize], pos: usize) -> usize {
    line_starts.partition_point(|&s| s <= pos)
}

fn line_starts(src: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            src.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect()
}

// ------------------------------- Rust ------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Code,
    Comment,
    Literal,
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// The end (exclusive) of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`) starting
/// at `i`, if one starts there.
fn raw_string_end(src: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident(src[i - 1]) {
        return None;
    }
    let mut j = i;
    if matches!(src[j], b'b' | b'c') {
        j += 1;
    }
    if src.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while src.get(j) == Some(&b'#') {
        hashes += 1;
        j += 1;
    }
    if src.get(j) != Some(&b'"') {
        return None;
    }
    j += 1;
    while j < src.len() {
        if src[j] == b'"'
            && src.len() >= j + 1 + hashes
            && src[j + 1..j + 1 + hashes].iter().all(|&b| b == b'#')
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(src.len())
}

/// The end (exclusive) of the `"`-quoted literal starting at `i`.
fn quoted_end(src: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < src.len() {
        match src[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    src.len()
}

/// The end (exclusive) of the character literal starting at the `'` at `i`; `None` for a
/// lifetime or label.
fn char_literal_end(src: &[u8], i: usize) -> Option<usize> {
    let next = *src.get(i + 1)?;
    if next == b'\\' {
        let close = src.get(i + 3..)?.iter().position(|&b| b == b'\'')?;
        return Some(i + 3 + close + 1);
    }
    let width = match next {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    (src.get(i + 1 + width) == Some(&b'\'')).then_some(i + 2 + width)
}

/// Classifies each byte of a Rust source as code, comment or literal.
fn classify(src: &[u8]) -> Vec<Class> {
    let mut class = vec![Class::Code; src.len()];
    let mut i = 0;
    while i < src.len() {
        let start = i;
        let kind;
        if src[i..].starts_with(b"//") {
            while i < src.len() && src[i] != b'\n' {
                i += 1;
            }
            kind = Class::Comment;
        } else if src[i..].starts_with(b"/*") {
            let mut depth = 0usize;
            while i < src.len() {
                if src[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if src[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            kind = Class::Comment;
        } else if let Some(end) = raw_string_end(src, i) {
            i = end;
            kind = Class::Literal;
        } else if src[i] == b'"' {
            i = quoted_end(src, i);
            kind = Class::Literal;
        } else if src[i] == b'\'' {
            match char_literal_end(src, i) {
                Some(end) => i = end,
                None => {
                    i += 1;
                    continue;
                }
            }
            kind = Class::Literal;
        } else {
            i += 1;
            continue;
        }
        let end = i.min(src.len());
        class[start..end].fill(kind);
        i = end;
    }
    class
}

/// A Rust source with each byte classified.
struct RustSource<'a> {
    src: &'a [u8],
    class: Vec<Class>,
    lines: Vec<usize>,
}

impl<'a> RustSource<'a> {
    fn new(text: &'a str) -> Self {
        let src = text.as_bytes();
        RustSource {
            src,
            class: classify(src),
            lines: line_starts(src),
        }
    }

    fn is_code(&self, i: usize) -> bool {
        self.class[i] == Class::Code
    }

    /// Whether the identifier `word` starts at `i` (as a whole token, in code).
    fn word_at(&self, i: usize, word: &str) -> bool {
        let w = word.as_bytes();
        self.src[i..].starts_with(w)
            && self.is_code(i)
            && (i == 0 || !is_ident(self.src[i - 1]))
            && self.src.get(i + w.len()).map_or(true, |&b| !is_ident(b))
    }

    /// The first code byte at or after `i` that is not whitespace.
    fn next_code(&self, mut i: usize) -> Option<usize> {
        while i < self.src.len() {
            if self.is_code(i) && !self.src[i].is_ascii_whitespace() {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// The last code byte before `i` that is not whitespace.
    fn prev_code(&self, i: usize) -> Option<usize> {
        (0..i)
            .rev()
            .find(|&j| self.is_code(j) && !self.src[j].is_ascii_whitespace())
    }

    /// The identifier starting at `i`, if any (`r#` prefix dropped).
    fn ident_at(&self, i: usize) -> Option<String> {
        let mut i = i;
        if self.src[i..].starts_with(b"r#") {
            i += 2;
        }
        let end = (i..self.src.len())
            .find(|&j| !is_ident(self.src[j]))
            .unwrap_or(self.src.len());
        (end > i && !self.src[i].is_ascii_digit())
            .then(|| String::from_utf8_lossy(&self.src[i..end]).into_owned())
    }

    /// The code byte that closes the `open` delimiter at `i`.
    fn matching_close(&self, i: usize) -> Option<usize> {
        let (open, close) = (self.src[i], closer(self.src[i])?);
        let mut depth = 0usize;
        for j in i..self.src.len() {
            if !self.is_code(j) {
                continue;
            }
            if self.src[j] == open {
                depth += 1;
            } else if self.src[j] == close {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
        }
        None
    }

    /// The code byte that opens the closing delimiter at `i`.
    fn matching_open(&self, i: usize) -> Option<usize> {
        let close = self.src[i];
        let open = match close {
            b']' => b'[',
            b')' => b'(',
            b'}' => b'{',
            _ => return None,
        };
        let mut depth = 0usize;
        for j in (0..=i).rev() {
            if !self.is_code(j) {
                continue;
            }
            if self.src[j] == close {
                depth += 1;
            } else if self.src[j] == open {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
        }
        None
    }

    fn line(&self, pos: usize) -> usize {
        line_of(&self.lines, pos)
    }

    /// Bytes `[start, end)` of line `line` (1-based), without the newline.
    fn line_range(&self, line: usize) -> (usize, usize) {
        let start = self.lines[line - 1];
        let end = self
            .lines
            .get(line)
            .map_or(self.src.len(), |&next| next - 1);
        (start, end)
    }

    fn text(&self, start: usize, end: usize) -> String {
        String::from_utf8_lossy(&self.src[start..end]).into_owned()
    }

    /// The comment bytes of `[start, end)`, everything else blanked (newlines kept).
    fn comments_in(&self, start: usize, end: usize) -> String {
        let bytes: Vec<u8> = (start..end)
            .map(|i| {
                if self.class[i] == Class::Comment || self.src[i] == b'\n' {
                    self.src[i]
                } else {
                    b' '
                }
            })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The code bytes of `[start, end)`, everything else blanked.
    fn code_in(&self, start: usize, end: usize) -> String {
        let bytes: Vec<u8> = (start..end)
            .map(|i| if self.is_code(i) { self.src[i] } else { b' ' })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn closer(open: u8) -> Option<u8> {
    match open {
        b'(' => Some(b')'),
        b'[' => Some(b']'),
        b'{' => Some(b'}'),
        _ => None,
    }
}

/// A function item found in a Rust source.
#[derive(Debug)]
struct RustFn {
    name: String,
    /// Position of its name.
    name_pos: usize,
    /// Whether an attribute marks it as a test (`#[test]`, `#[tokio::test]`, ...).
    is_test: bool,
    /// Whether it has an `#[ignore]` attribute.
    ignored: bool,
    /// Its comment block and body.
    spans: Vec<Span>,
}

/// Whether an attribute's text (between `#[` and `]`) is a test attribute: its path ends
/// in `test`.
fn is_test_attribute(attr: &str) -> bool {
    attribute_path(attr).rsplit("::").next() == Some("test")
}

/// The path of an attribute, from its text between `#[` and `]`.
fn attribute_path(attr: &str) -> &str {
    attr.split(|c: char| c == '(' || c == '=' || c.is_whitespace())
        .next()
        .unwrap_or("")
}

impl RustSource<'_> {
    /// Walks back from the `fn` keyword at `fn_pos` over qualifiers and attributes to where
    /// the item starts; returns that position and the attributes' texts.
    fn item_start(&self, fn_pos: usize) -> (usize, Vec<String>) {
        let mut start = fn_pos;
        let mut attrs = Vec::new();
        while let Some(p) = self.prev_code(start) {
            match self.src[p] {
                b']' => {
                    let Some(open) = self.matching_open(p) else {
                        break;
                    };
                    match self.prev_code(open) {
                        Some(h) if self.src[h] == b'#' => {
                            attrs.push(self.code_in(open + 1, p).trim().to_owned());
                            start = h;
                        }
                        _ => break,
                    }
                }
                b')' => {
                    // `pub(crate)`, `pub(super)`, `pub(in path)`.
                    let Some(open) = self.matching_open(p) else {
                        break;
                    };
                    match self.prev_code(open) {
                        Some(w) if w >= 2 && self.word_at(w - 2, "pub") => start = w - 2,
                        _ => break,
                    }
                }
                b if is_ident(b) => {
                    let word_start = (0..=p)
                        .rev()
                        .take_while(|&j| is_ident(self.src[j]))
                        .last()
                        .unwrap_or(p);
                    let word = &self.src[word_start..=p];
                    if matches!(
                        word,
                        b"pub" | b"async" | b"unsafe" | b"const" | b"extern" | b"default"
                    ) {
                        start = word_start;
                    } else {
                        break;
                    }
                }
                _ => break,
            }
        }
        (start, attrs)
    }

    /// The comment block directly above line `line`: the comment-only lines right above
    /// it, up to a blank line or code. Inner doc comments (`//!`, `/*!`) end it.
    fn comment_block_above(&self, line: usize) -> Option<Span> {
        let mut first = line;
        while first > 1 {
            let (start, end) = self.line_range(first - 1);
            let mut has_comment = false;
            let mut only_comment = true;
            for i in start..end {
                match self.class[i] {
                    Class::Comment => has_comment = true,
                    Class::Code if self.src[i].is_ascii_whitespace() => {}
                    _ => only_comment = false,
                }
            }
            let trimmed = self.text(start, end);
            let trimmed = trimmed.trim_start();
            if !has_comment
                || !only_comment
                || trimmed.starts_with("//!")
                || trimmed.starts_with("/*!")
            {
                break;
            }
            first -= 1;
        }
        (first < line).then(|| Span {
            line: first,
            text: self.text(self.lines[first - 1], self.lines[line - 1]),
        })
    }

    /// Every function item of the source.
    fn functions(&self) -> Vec<RustFn> {
        let mut fns = Vec::new();
        for i in 0..self.src.len() {
            if !self.word_at(i, "fn") {
                continue;
            }
            let Some(name_pos) = self.next_code(i + 2) else {
                continue;
            };
            // `fn $name()` in a macro_rules template is not an item.
            let Some(name) = self.ident_at(name_pos) else {
                continue;
            };
            let (start, attrs) = self.item_start(i);
            let is_test = attrs.iter().any(|a| is_test_attribute(a));
            let ignored = attrs.iter().any(|a| attribute_path(a) == "ignore");
            let mut spans = Vec::new();
            if let Some(block) = self.comment_block_above(self.line(start)) {
                spans.push(block);
            }
            spans.push(Span {
                line: self.line(start),
                text: self.comments_in(start, i),
            });
            if let Some((open, close)) = self.body(name_pos) {
                spans.push(Span {
                    line: self.line(open),
                    text: self.text(open, close + 1),
                });
            }
            fns.push(RustFn {
                name,
                name_pos,
                is_test,
                ignored,
                spans,
            });
        }
        fns
    }

    /// The braces of the body of the function whose name is at `name_pos`, if it has one.
    fn body(&self, name_pos: usize) -> Option<(usize, usize)> {
        let mut depth = 0i32;
        for j in name_pos..self.src.len() {
            if !self.is_code(j) {
                continue;
            }
            match self.src[j] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' if depth == 0 => return self.matching_close(j).map(|close| (j, close)),
                b';' if depth == 0 => return None,
                _ => {}
            }
        }
        None
    }

    /// Inline modules: name and the span of their braces.
    fn modules(&self) -> Vec<(String, usize, usize)> {
        let mut mods = Vec::new();
        for i in 0..self.src.len() {
            if !self.word_at(i, "mod") {
                continue;
            }
            let Some(name_pos) = self.next_code(i + 3) else {
                continue;
            };
            let Some(name) = self.ident_at(name_pos) else {
                continue;
            };
            let after = name_pos + name.len();
            if let Some(open) = self.next_code(after).filter(|&j| self.src[j] == b'{') {
                if let Some(close) = self.matching_close(open) {
                    mods.push((name, open, close));
                }
            }
        }
        mods
    }

    /// The names of the `macro_rules!` macros defined here whose expansion holds a test
    /// function (`#[test]` or another test attribute).
    fn test_macros(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for i in 0..self.src.len() {
            if !self.word_at(i, "macro_rules") {
                continue;
            }
            let Some(bang) = self.next_code(i + "macro_rules".len()) else {
                continue;
            };
            let Some(name_pos) = self.next_code(bang + 1) else {
                continue;
            };
            let Some(name) = self.ident_at(name_pos) else {
                continue;
            };
            let Some(open) = self.next_code(name_pos + name.len()) else {
                continue;
            };
            let Some(close) = self.matching_close(open) else {
                continue;
            };
            let has_test = (open..close).any(|j| {
                self.src[j] == b'#'
                    && self.is_code(j)
                    && self.next_code(j + 1).is_some_and(|k| {
                        self.src[k] == b'['
                            && self.matching_close(k).is_some_and(|end| {
                                is_test_attribute(self.code_in(k + 1, end).trim())
                            })
                    })
            });
            if self.src[bang] == b'!' && has_test {
                names.insert(name);
            }
        }
        names
    }

    /// Invocations of the test-generating macros `macros`: `name!(check => entry, ...)` or
    /// `name!(check => entry; ...)`, each entry's first identifier being a generated test.
    /// `Err(position)` for an invocation not of that form.
    fn macro_calls(&self, macros: &BTreeSet<String>) -> Vec<Result<MacroCall, usize>> {
        let mut calls = Vec::new();
        for i in 0..self.src.len() {
            if !self.is_code(i) || (i > 0 && is_ident(self.src[i - 1])) {
                continue;
            }
            let Some(name) = self.ident_at(i).filter(|n| macros.contains(n)) else {
                continue;
            };
            if !self.word_at(i, &name) {
                continue;
            }
            let Some(bang) = self
                .next_code(i + name.len())
                .filter(|&b| self.src[b] == b'!')
            else {
                continue;
            };
            let Some(open) = self.next_code(bang + 1) else {
                continue;
            };
            let Some(close) = closer(self.src[open]).and_then(|_| self.matching_close(open)) else {
                calls.push(Err(i));
                continue;
            };
            match self.parse_macro_call(i, open, close) {
                Some(call) => calls.push(Ok(call)),
                None => calls.push(Err(i)),
            }
        }
        calls
    }

    fn parse_macro_call(&self, pos: usize, open: usize, close: usize) -> Option<MacroCall> {
        let inner = self.code_in(open + 1, close);
        let arrow = inner.find("=>")?;
        let check = inner[..arrow].trim().rsplit("::").next()?.to_owned();
        let valid = |s: &str| !s.is_empty() && s.bytes().all(is_ident);
        if !valid(&check) {
            return None;
        }
        let entries_start = arrow + 2;
        let separator = if inner[entries_start..].contains(';') {
            ';'
        } else {
            ','
        };
        let mut tests = Vec::new();
        let mut offset = open + 1 + entries_start;
        for entry in inner[entries_start..].split(separator) {
            let lead = entry.len() - entry.trim_start().len();
            let name: String = entry
                .trim_start()
                .chars()
                .take_while(|&c| c.is_alphanumeric() || c == '_')
                .collect();
            if !name.is_empty() {
                tests.push((name, offset + lead));
            } else if !entry.trim().is_empty() {
                return None;
            }
            offset += entry.len() + 1;
        }
        (!tests.is_empty()).then_some(MacroCall { pos, check, tests })
    }
}

#[derive(Debug)]
struct MacroCall {
    pos: usize,
    check: String,
    tests: Vec<(String, usize)>,
}

/// The tests of one Rust source. `file` is the name shown in the map; `macros` are the
/// test-generating macros of all the sources.
fn rust_tests(
    file: &str,
    text: &str,
    macros: &BTreeSet<String>,
    errors: &mut Vec<String>,
) -> Vec<TestCase> {
    let source = RustSource::new(text);
    let mods = source.modules();
    let scope_of = |pos: usize| -> Vec<String> {
        mods.iter()
            .filter(|(_, open, close)| *open < pos && pos < *close)
            .map(|(name, _, _)| name.clone())
            .collect()
    };
    let fns = source.functions();
    let mut tests = Vec::new();
    for f in fns.iter().filter(|f| f.is_test) {
        tests.push(TestCase {
            file: file.to_owned(),
            scope: scope_of(f.name_pos),
            name: f.name.clone(),
            line: source.line(f.name_pos),
            spans: f.spans.clone(),
            ignored: f.ignored,
        });
    }
    for call in source.macro_calls(macros) {
        let call = match call {
            Ok(call) => call,
            Err(pos) => {
                errors.push(format!(
                    "{file}:{}: cannot read this invocation of a test-generating macro; write \
                     it as `name!(check_fn => test_v311_..., test_v5_...)` or \
                     `name!(check_fn => test_v311_...: args; test_v5_...: args;)`",
                    source.line(pos)
                ));
                continue;
            }
        };
        let scope = scope_of(call.pos);
        let candidates: Vec<&RustFn> = fns.iter().filter(|f| f.name == call.check).collect();
        let in_scope: Vec<&RustFn> = candidates
            .iter()
            .copied()
            .filter(|f| scope_of(f.name_pos) == scope)
            .collect();
        let check = match (in_scope.as_slice(), candidates.as_slice()) {
            ([one], _) | ([], [one]) => one,
            _ => {
                errors.push(format!(
                    "{file}:{}: cannot tell which `fn {}` this macro's tests run ({} in this \
                     file); give the check function a name of its own in this module",
                    source.line(call.pos),
                    call.check,
                    candidates.len()
                ));
                continue;
            }
        };
        for (name, pos) in call.tests {
            tests.push(TestCase {
                file: file.to_owned(),
                scope: scope.clone(),
                name,
                line: source.line(pos),
                spans: check.spans.clone(),
                ignored: false,
            });
        }
    }
    tests
}

// ------------------------------- Python ----------------------------------------------

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Net bracket depth change of a Python line, ignoring what is in strings and comments
/// (roughly: enough for decorators and signatures).
fn bracket_balance(line: &str) -> i32 {
    let mut balance = 0;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '#' => break,
                '"' | '\'' => quote = Some(c),
                '(' | '[' | '{' => balance += 1,
                ')' | ']' | '}' => balance -= 1,
                _ => {}
            },
        }
    }
    balance
}

/// The name of the function a line defines, if it is a `def` or `async def` line.
fn python_def(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = rest.strip_prefix("async ").map_or(rest, str::trim_start);
    let rest = rest.strip_prefix("def ")?.trim_start();
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

fn python_tests(file: &str, text: &str) -> Vec<TestCase> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tests = Vec::new();
    // Open classes: (indent, name).
    let mut classes: Vec<(usize, String)> = Vec::new();
    for (n, &line) in lines.iter().enumerate() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        classes.retain(|(i, _)| *i < indent);
        if let Some(rest) = line.trim_start().strip_prefix("class ") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            classes.push((indent, name));
            continue;
        }
        let Some(name) = python_def(line) else {
            continue;
        };
        if !name.starts_with("test") {
            continue;
        }
        let mut spans = Vec::new();
        // Comments directly above, decorators (which may span lines) between.
        let mut first = n;
        let mut depth = 0;
        while first > 0 {
            let above = lines[first - 1];
            let trimmed = above.trim_start();
            depth -= bracket_balance(above);
            if depth > 0 || trimmed.starts_with('@') || trimmed.starts_with('#') {
                first -= 1;
            } else {
                break;
            }
            if depth < 0 {
                depth = 0;
            }
        }
        let ignored = lines[first..n].iter().any(|l| {
            let l = l.trim_start();
            l.starts_with("@pytest.mark.skip(")
                || l == "@pytest.mark.skip"
                || l.starts_with("@pytest.mark.xfail")
        });
        let comment: Vec<&str> = lines[first..n]
            .iter()
            .map(|l| {
                if l.trim_start().starts_with('#') {
                    *l
                } else {
                    ""
                }
            })
            .collect();
        spans.push(Span {
            line: first + 1,
            text: comment.join("\n"),
        });
        // The signature may span lines; the body is what is indented deeper after it.
        let mut sig_end = n;
        let mut balance = bracket_balance(line);
        while balance > 0 && sig_end + 1 < lines.len() {
            sig_end += 1;
            balance += bracket_balance(lines[sig_end]);
        }
        let mut end = sig_end + 1;
        while end < lines.len() && (lines[end].trim().is_empty() || indent_of(lines[end]) > indent)
        {
            end += 1;
        }
        spans.push(Span {
            line: n + 1,
            text: lines[n..end].join("\n"),
        });
        tests.push(TestCase {
            file: file.to_owned(),
            scope: classes.iter().map(|(_, c)| c.clone()).collect(),
            name: name.to_owned(),
            line: n + 1,
            spans,
            ignored,
        });
    }
    tests
}

// ------------------------------- Files -----------------------------------------------

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every test of the repository at `root`, in a fixed order.
fn scan_tests(root: &Path, errors: &mut Vec<String>) -> Vec<TestCase> {
    let mut files = Vec::new();
    walk(&root.join("tests"), &mut files);
    walk(&root.join("src"), &mut files);
    let mut files: Vec<(String, PathBuf)> = files
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(root)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            Some((rel, p))
        })
        .collect();
    files.sort();
    let mut rust = Vec::new();
    let mut python = Vec::new();
    for (rel, path) in files {
        let file_name = rel.rsplit('/').next().unwrap_or("");
        let is_rust = rel.ends_with(".rs") && rel != SELF_FILE;
        let is_python = rel.starts_with("tests/")
            && file_name.starts_with("test_")
            && file_name.ends_with(".py");
        if !is_rust && !is_python {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            errors.push(format!("{rel}: not UTF-8"));
            continue;
        };
        let shown = rel.strip_prefix("tests/").unwrap_or(&rel).to_owned();
        if is_rust {
            rust.push((shown, text));
        } else {
            python.push((shown, text));
        }
    }
    // Test-generating macros may be defined in one file (tests/common) and used in others.
    let mut macros: BTreeSet<String> = BTreeSet::from(["test_versions".to_owned()]);
    for (_, text) in &rust {
        macros.extend(RustSource::new(text).test_macros());
    }
    let mut tests = Vec::new();
    for (shown, text) in &rust {
        tests.extend(rust_tests(shown, text, &macros, errors));
    }
    for (shown, text) in &python {
        tests.extend(python_tests(shown, text));
    }
    tests
}

// ---------------------------------------------------------------------------------------
// Citations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Citation {
    line: usize,
    ids: Vec<String>,
    /// The versions it is pinned to; empty when unpinned.
    pins: BTreeSet<Version>,
}

const PIN_MARKERS: [(&str, Version); 4] = [
    ("3.1.1", Version::V311),
    ("v3.1.1", Version::V311),
    ("5.0", Version::V5),
    ("v5", Version::V5),
];

/// Parses `x.y.z-n` or `x.y.z-n/m/...` (what follows `[MQTT-` up to `]`).
fn parse_id_body(body: &str) -> Option<Vec<String>> {
    let (section, numbers) = body.split_once('-')?;
    let section_ok = !section.is_empty()
        && section
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let numbers: Vec<&str> = numbers.split('/').collect();
    let numbers_ok = numbers
        .iter()
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    (section_ok && numbers_ok).then(|| {
        numbers
            .iter()
            .map(|n| format!("MQTT-{section}-{n}"))
            .collect()
    })
}

/// `text` without its leading spaces, and if a line break comes first, without it and the
/// next line's comment leader: a pin marker may start the next comment line.
fn past_line_break(text: &str) -> &str {
    let text = text.trim_start_matches([' ', '\t']);
    let Some(next) = text
        .strip_prefix("\r\n")
        .or_else(|| text.strip_prefix('\n'))
    else {
        return text;
    };
    let next = next.trim_start();
    let next = ["///", "//!", "//", "#", "*"]
        .iter()
        .find_map(|leader| next.strip_prefix(leader))
        .unwrap_or(next);
    next.trim_start_matches([' ', '\t'])
}

/// The citations in `span`, and the malformed ones as (line, message).
fn citations(span: &Span) -> (Vec<Citation>, Vec<(usize, String)>) {
    const OPEN: &str = "[MQTT-";
    let text = &span.text;
    let mut found = Vec::new();
    let mut bad = Vec::new();
    // Where each citation found starts and where its brackets end, and whether it had
    // markers of its own.
    let mut places: Vec<(usize, usize, bool)> = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find(OPEN) {
        let start = from + at;
        from = start + OPEN.len();
        let line = span.line + text[..start].matches('\n').count();
        let rest = &text[from..];
        let close = rest.find(']').filter(|&c| !rest[..c].contains('\n'));
        let ids = close.and_then(|c| parse_id_body(&rest[..c]));
        let (Some(close), Some(ids)) = (close, ids) else {
            let shown: String = text[start..]
                .chars()
                .take(30)
                .take_while(|&c| c != '\n')
                .collect();
            bad.push((
                line,
                format!(
                    "malformed citation `{shown}`: write `[MQTT-<section>-<n>]` (or \
                     `[MQTT-<section>-<n>/<m>]`), with any other text outside the brackets"
                ),
            ));
            continue;
        };
        // Pin markers, possibly several: `[MQTT-3.6.1-1] (3.1.1) (5.0)`.
        let mut after = &rest[close + 1..];
        let mut pins = BTreeSet::new();
        let mut malformed = false;
        loop {
            let trimmed = past_line_break(after);
            let Some(inner) = trimmed.strip_prefix('(') else {
                break;
            };
            let content = inner.split(')').next().unwrap_or("");
            if let Some((_, v)) = PIN_MARKERS.iter().find(|(m, _)| *m == content) {
                pins.insert(*v);
                after = &inner[content.len()..];
                after = after.strip_prefix(')').unwrap_or(after);
                continue;
            }
            if PIN_MARKERS.iter().any(|(m, _)| {
                content.strip_prefix(m).is_some_and(|tail| {
                    !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.')
                })
            }) {
                let shown: String = content.chars().take(40).collect();
                bad.push((
                    line,
                    format!(
                        "pin marker `({shown}...` after [MQTT-{}]: a pin is exactly `(3.1.1)` \
                         or `(5.0)` (also `(v3.1.1)`, `(v5)`); put other words after it",
                        &rest[..close]
                    ),
                ));
                malformed = true;
            }
            break;
        }
        if malformed {
            continue;
        }
        // A marker also pins the citations right before it that have none of their own:
        // `[MQTT-3.2.2-6] [MQTT-3.2.2-7] (5.0)`, `[MQTT-3.3.1-5], [MQTT-3.3.1-9] (5.0)`.
        if !pins.is_empty() {
            let mut next_start = start;
            for (earlier, &(earlier_start, earlier_end, own)) in found.iter_mut().zip(&places).rev()
            {
                let earlier: &mut Citation = earlier;
                if own || !only_separators(&text[earlier_end..next_start]) {
                    break;
                }
                earlier.pins.clone_from(&pins);
                next_start = earlier_start;
            }
        }
        places.push((start, from + close + 1, !pins.is_empty()));
        found.push(Citation { line, ids, pins });
    }
    (found, bad)
}

/// Whether `text`, between two citations, only separates them: spaces, line breaks with
/// their comment leaders, `,`, `/`, `;`, `&` and the words `and` and `or`.
fn only_separators(text: &str) -> bool {
    text.split_whitespace().all(|word| {
        let word = word.trim_matches(|c| matches!(c, ',' | '/' | ';' | '&'));
        matches!(word, "" | "and" | "or" | "//" | "///" | "//!" | "#" | "*")
    })
}

/// The versions a test's name says it runs, and whether it has any version token at all.
fn name_versions(name: &str) -> (BTreeSet<Version>, bool) {
    let mut versions = BTreeSet::new();
    let mut any = false;
    for token in name.split('_') {
        match token {
            "v311" => {
                versions.insert(Version::V311);
                any = true;
            }
            "v5" => {
                versions.insert(Version::V5);
                any = true;
            }
            "v31" => any = true,
            _ => {}
        }
    }
    (versions, any)
}

// ---------------------------------------------------------------------------------------
// The map
// ---------------------------------------------------------------------------------------

struct Map {
    specs: Vec<Spec>,
    /// (version, id) -> tests citing it.
    coverage: Coverage,
    /// (version, id) -> ignored tests citing it.
    ignored: Coverage,
    tests: usize,
    errors: Vec<String>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build_map(root: &Path) -> Map {
    let mut errors = Vec::new();
    let specs = load_specs(root, &mut errors);
    let tests = scan_tests(root, &mut errors);
    let (coverage, ignored) = cover(&specs, &tests, &mut errors);
    // By file, then by line number, then by text; without duplicates.
    let errors: BTreeSet<(String, usize, String)> = errors
        .into_iter()
        .map(|e| {
            let mut parts = e.splitn(3, ':');
            let file = parts.next().unwrap_or("").to_owned();
            let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
            (file, line, e)
        })
        .collect();
    Map {
        specs,
        coverage,
        ignored,
        tests: tests.len(),
        errors: errors.into_iter().map(|(_, _, e)| e).collect(),
    }
}

/// Tests citing each (version, id): those that run, and the ignored ones.
type Coverage = BTreeMap<(Version, String), BTreeSet<String>>;

fn cover(specs: &[Spec], tests: &[TestCase], errors: &mut Vec<String>) -> (Coverage, Coverage) {
    let spec = |v: Version| {
        specs
            .iter()
            .find(|s| s.version == v)
            .expect("every version")
    };
    let mut coverage = Coverage::new();
    let mut ignored = Coverage::new();
    for test in tests {
        let target = if test.ignored {
            &mut ignored
        } else {
            &mut coverage
        };
        let (runs, has_token) = name_versions(&test.name);
        let shown = test.display();
        let at = |line: usize| format!("{}:{line}: test `{}`", test.file, test.name);
        for span in &test.spans {
            let (found, bad) = citations(span);
            for (line, why) in bad {
                errors.push(format!("{}: {why}", at(line)));
            }
            for citation in found {
                let counted: Vec<Version> = if !citation.pins.is_empty() {
                    for &v in &citation.pins {
                        for id in citation.ids.iter().filter(|id| !spec(v).has(id)) {
                            errors.push(format!(
                                "{}: [{id}] ({}) is not a statement of MQTT {}; check the id in \
                                 tests/conformance/{}",
                                at(citation.line),
                                v.label(),
                                v.label(),
                                v.statements_file()
                            ));
                        }
                    }
                    citation
                        .pins
                        .iter()
                        .copied()
                        .filter(|v| !has_token || runs.contains(v))
                        .collect()
                } else if !has_token {
                    errors.push(format!(
                        "{}: [{}] is not pinned to a version and the test's name has no version \
                         token; pin it (`[{}] (3.1.1)` or `(5.0)`, or both) or put `v311` / `v5` \
                         in the name",
                        at(citation.line),
                        citation.ids.join("/"),
                        citation.ids[0]
                    ));
                    Vec::new()
                } else {
                    runs.iter().copied().collect()
                };
                for v in counted {
                    for id in &citation.ids {
                        let Some(status) = spec(v).applicability.get(id) else {
                            if citation.pins.is_empty() {
                                errors.push(format!(
                                    "{}: [{id}] is not a statement of MQTT {} (the test's name \
                                     says it runs {}); fix the id, or pin it to the version it \
                                     belongs to (`[{id}] (3.1.1)` / `(5.0)`)",
                                    at(citation.line),
                                    v.label(),
                                    v.label()
                                ));
                            }
                            continue;
                        };
                        if let Applicability::NotApplicable(reason) = status {
                            errors.push(format!(
                                "{}: [{id}] ({}) is cited but not applicable ({reason}); if the \
                                 test checks it, make it applicable in \
                                 tests/conformance/applicability.tsv, else drop the brackets",
                                at(citation.line),
                                v.label()
                            ));
                            continue;
                        }
                        target
                            .entry((v, id.clone()))
                            .or_default()
                            .insert(shown.clone());
                    }
                }
            }
        }
    }
    (coverage, ignored)
}

// ------------------------------- Rendering -------------------------------------------

const HEADER: &str = "\
# MQTT conformance map

Generated by `tests/conformance_map.rs` from the test sources: do not edit by hand. After
changing a test's citations, its name, `tests/conformance/applicability.tsv` or the
statement lists, regenerate it with

    RINGMQ_BLESS=1 cargo test --test conformance_map

(`cargo test --test conformance_map` fails while this file is stale, and while any citation
breaks the convention below.)

For every numbered normative statement of MQTT 3.1.1 and MQTT 5.0
(`tests/conformance/mqtt-*-statements.tsv`, copied from the OASIS specifications), the map
says whether it binds ringmq and which tests check it. A statement that applies to the
Server or to Both is applicable and a Client one is not, unless
`tests/conformance/applicability.tsv` says otherwise, with a reason: `n/a` for a Server or
Both statement a broker cannot honour or check (or one that is really about the client),
`validated` for a Client statement the server checks.

## Citation convention

1. A test cites a statement by writing its id in square brackets, `[MQTT-3.3.1-12]`, in
   the comment block directly above the test (comment lines with no blank line between them
   and the test; attributes such as `#[test]` or `#[ignore]` may sit between) or anywhere
   in the test's body. A Python test cites in the `#` lines directly above its
   `def test_...` (decorators may sit between), its docstring or its body.
2. `[MQTT-3.1.2-14/15]` is shorthand for `[MQTT-3.1.2-14]` and `[MQTT-3.1.2-15]`.
3. The versions a test runs come from its name, split on `_`: `v311` is MQTT 3.1.1, `v5` is
   MQTT 5.0 (a name may hold both); `v31` is MQTT 3.1, which has no numbered statements.
4. A marker right after a citation (or at the start of the next comment line) pins it to a
   version: `(3.1.1)` or `(v3.1.1)`, `(5.0)` or `(v5)`; `[MQTT-3.6.1-1] (3.1.1) (5.0)` pins
   it to both. A pinned citation counts only for its versions, and for each only if the
   test runs it (or its name has no version token); an unpinned one counts for every
   version in the name. A marker also pins the unpinned citations right before it, when
   nothing but spaces, line breaks, `,`, `/`, `;`, `&`, `and` or `or` separates them:
   `[MQTT-3.2.2-6] [MQTT-3.2.2-7] (5.0) / [MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1)`.
5. A test whose name has no version token must pin every citation.
6. `test_versions!(check => name_v311_..., name_v5_...);` makes two tests that run
   `fn check(v)`; each has the citations of `check` (comment block and body) and the version
   of its own name. The same holds for any `macro_rules!` macro of the tests that generates
   test functions and is called as `name!(check => entry, ...)` or `name!(check => entry;
   ...)`: the first identifier of each entry is a generated test.
7. Only tests count (`tests/**/*.rs`, `#[test]` functions in `src/`,
   `tests/**/test_*.py`): citations in helpers or in the implementation do not. Text that
   mentions a statement without claiming that the test checks it leaves out the brackets.
8. Errors (an unpinned citation in a test with no version token, an id that is not a
   statement of the version it counts for, a malformed citation or marker, a citation of a
   statement that is not applicable) fail `conformance_citations_follow_the_convention`.

Tests are named `file::test` (files relative to `tests/`, or `src/...`; modules and classes
included). An ignored test (`#[ignore]`, `@pytest.mark.skip` or `xfail`) covers nothing: it
is listed with `(ignored)`.
";

/// The first `SHORT_TEXT_CHARS` characters of `text`, cut at a word, `|` escaped.
fn short_text(text: &str) -> String {
    let mut out: String = text.chars().take(SHORT_TEXT_CHARS).collect();
    if out.len() < text.len() {
        if let Some(space) = out.rfind(' ') {
            out.truncate(space);
        }
        out = out.trim_end_matches([',', ';', ':', '.']).to_owned();
        out.push('…');
    }
    escape_cell(&out)
}

fn escape_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

struct Counts {
    statements: usize,
    applicable: usize,
    covered: usize,
}

impl Map {
    fn counts(&self, spec: &Spec) -> Counts {
        let applicable: Vec<&Statement> = spec
            .statements
            .iter()
            .filter(|s| spec.applicability[&s.id].is_applicable())
            .collect();
        let covered = applicable
            .iter()
            .filter(|s| self.coverage.contains_key(&(spec.version, s.id.clone())))
            .count();
        Counts {
            statements: spec.statements.len(),
            applicable: applicable.len(),
            covered,
        }
    }

    fn render(&self) -> String {
        let mut out = String::from(HEADER);
        out.push_str("\n## Summary\n\n");
        out.push_str("| version | statements | applicable | covered | not covered | n/a |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: |\n");
        for spec in &self.specs {
            let c = self.counts(spec);
            let _ = writeln!(
                out,
                "| MQTT {} | {} | {} | {} | {} | {} |",
                spec.version.label(),
                c.statements,
                c.applicable,
                c.covered,
                c.applicable - c.covered,
                c.statements - c.applicable
            );
        }
        let _ = writeln!(
            out,
            "\n{} tests scanned. Applicable = Server and Both statements without an `n/a` row, \
             plus Client statements with a `validated` row.",
            self.tests
        );
        for spec in &self.specs {
            let _ = write!(
                out,
                "\n## MQTT {}\n\n| id | section | applies to | statement | covered by |\n\
                 | --- | --- | --- | --- | --- |\n",
                spec.version.label()
            );
            for s in &spec.statements {
                let status = &spec.applicability[&s.id];
                let key = (spec.version, s.id.clone());
                let running = self.coverage.get(&key).into_iter().flatten();
                let ignored = self.ignored.get(&key).into_iter().flatten();
                let mut tests: Vec<String> = running.map(|t| format!("`{t}`")).collect();
                let covered = !tests.is_empty();
                tests.extend(ignored.map(|t| format!("`{t}` (ignored)")));
                let cell = match status {
                    Applicability::NotApplicable(reason) => {
                        format!("n/a: {}", escape_cell(reason))
                    }
                    _ if covered => tests.join("<br>"),
                    _ if tests.is_empty() => "**not covered**".to_owned(),
                    _ => format!("**not covered**<br>{}", tests.join("<br>")),
                };
                let applies = match status {
                    Applicability::Validated(reason) => {
                        format!("Client (validated: {})", escape_cell(reason))
                    }
                    _ => s.applies_to.label().to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    s.id,
                    escape_cell(&s.section),
                    applies,
                    short_text(&s.text),
                    cell
                );
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[test]
fn conformance_map_is_current() {
    let root = repo_root();
    let map = build_map(&root);
    let want = map.render();
    let path = root.join(MAP_FILE);
    if std::env::var_os("RINGMQ_BLESS").is_some_and(|v| !v.is_empty() && v != "0") {
        fs::write(&path, &want).unwrap_or_else(|e| panic!("cannot write {MAP_FILE}: {e}"));
        eprintln!("wrote {MAP_FILE}");
        return;
    }
    let have = fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let first_diff = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{MAP_FILE} is stale (first difference at line {}: have {:?}, want {:?}).\n\
             Regenerate it with `RINGMQ_BLESS=1 cargo test --test conformance_map` and commit \
             the result.",
            first_diff + 1,
            have.lines().nth(first_diff).unwrap_or("<end of file>"),
            want.lines().nth(first_diff).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn conformance_citations_follow_the_convention() {
    let map = build_map(&repo_root());
    assert!(
        map.errors.is_empty(),
        "{} problem(s) with the conformance citations (the convention is described at the \
         top of tests/conformance_map.rs and of {MAP_FILE}):\n  {}",
        map.errors.len(),
        map.errors.join("\n  ")
    );
}

#[test]
fn statement_lists_are_complete() {
    let mut errors = Vec::new();
    let specs = load_specs(&repo_root(), &mut errors);
    let sizes: Vec<usize> = specs.iter().map(|s| s.statements.len()).collect();
    assert_eq!(sizes, [141, 251], "statements per version (3.1.1, 5.0)");
    assert!(errors.is_empty(), "{errors:#?}");
}

// ------------------------------- The scanner's own tests -----------------------------

fn span(text: &str) -> Span {
    Span {
        line: 1,
        text: text.to_owned(),
    }
}

#[test]
fn citations_pins_shorthand_and_malformed() {
    let (found, bad) = citations(&span(
        "// [MQTT-1.5.3-1] (3.1.1) / [MQTT-1.5.4-1](v5): text\n\
         // [MQTT-3.1.2-14/15] (5.0) and [MQTT-4.7.1-2] (see 4.7)\n\
         // [MQTT-3.2.0-1: first] [MQTT-4.6.0-6] (3.1.1: acks in order)\n\
         // [MQTT-3.6.1-1] (v3.1.1) (5.0) both [MQTT-4.4.0-1]\n\
         //   (5.0) on the next line\n\
         // [MQTT-3.2.2-6], [MQTT-3.2.2-7] and\n\
         // [MQTT-3.2.2-16] (5.0) / [MQTT-3.2.2-4] [MQTT-3.2.2-5] (3.1.1) but [MQTT-4.8.0-1]\n\
         // then [MQTT-3.1.0-1] (5.0)",
    ));
    let got: Vec<(usize, String, Vec<&str>)> = found
        .iter()
        .map(|c| {
            let pins = c.pins.iter().map(|v| v.label()).collect();
            (c.line, c.ids.join(","), pins)
        })
        .collect();
    let row = |line: usize, ids: &str, pins: &[&'static str]| (line, ids.to_owned(), pins.to_vec());
    assert_eq!(
        got,
        [
            row(1, "MQTT-1.5.3-1", &["3.1.1"]),
            row(1, "MQTT-1.5.4-1", &["5.0"]),
            row(2, "MQTT-3.1.2-14,MQTT-3.1.2-15", &["5.0"]),
            row(2, "MQTT-4.7.1-2", &[]),
            row(4, "MQTT-3.6.1-1", &["3.1.1", "5.0"]),
            row(4, "MQTT-4.4.0-1", &["5.0"]),
            row(6, "MQTT-3.2.2-6", &["5.0"]),
            row(6, "MQTT-3.2.2-7", &["5.0"]),
            row(7, "MQTT-3.2.2-16", &["5.0"]),
            row(7, "MQTT-3.2.2-4", &["3.1.1"]),
            row(7, "MQTT-3.2.2-5", &["3.1.1"]),
            row(7, "MQTT-4.8.0-1", &[]),
            row(8, "MQTT-3.1.0-1", &["5.0"]),
        ]
    );
    let bad_lines: Vec<usize> = bad.iter().map(|(l, _)| *l).collect();
    assert_eq!(bad_lines, [3, 3], "{bad:#?}");
}

#[test]
fn name_tokens_give_versions() {
    let v = |name: &str| {
        let (set, any) = name_versions(name);
        (set.into_iter().collect::<Vec<_>>(), any)
    };
    assert_eq!(
        v("qos1_flow_v311_mqtt_4_3_2_1"),
        (vec![Version::V311], true)
    );
    assert_eq!(v("x_v5"), (vec![Version::V5], true));
    assert_eq!(v("x_v311_v5"), (vec![Version::V311, Version::V5], true));
    assert_eq!(v("fixture_v31_connect"), (vec![], true));
    assert_eq!(v("mqtt_3_1_2_5_v55"), (vec![], false));
}

#[test]
fn rust_scanner_finds_tests_comments_bodies_and_macros() {
    let src = r####"
//! [MQTT-9.9.9-1] inner doc: not a test's
use x::test_versions;

/// [MQTT-1.1.1-1] above, attributes between
#[test]
#[ignore = "slow } {"]
fn plain_v311() {
    let s = "}"; let c = '}'; let r = r#"}"#; let l: &'static str = "{";
    let b = b'{';
    /* nested /* } */ [MQTT-1.1.1-2] */
    assert_eq!(s, "[MQTT-1.1.1-3]");
}
fn after_plain() { "[MQTT-1.1.1-4]"; }

// [MQTT-2.2.2-1] blank line below: not attached

#[tokio::test(flavor = "current_thread")]
async fn tokio_one_v5() {}

// [MQTT-3.3.3-1] check's comment
fn check(v: V) {
    // [MQTT-3.3.3-2]
}
test_versions!(check => made_v311_x, made_v5_x);

mod inner {
    // [MQTT-4.4.4-1]
    fn check(v: V) {}
    test_versions!(check => inner_v311, inner_v5);
    macro_rules! gen { () => { #[test] fn $name() {} } }
    proptest! {
        #[test]
        fn prop_v5(x in 0..3u8) { let _ = "[MQTT-5.5.5-1]"; }
    }
}

macro_rules! restart {
    ($check:ident => $($name:ident: $v:expr, $n:expr;)+) => {
        $( #[test] fn $name() { $check($v, $n) } )+
    };
}
/// [MQTT-6.6.6-1]
fn check_restart(v: V, n: u8) {}
restart!(check_restart => restart_v311: V311, 1; restart_v5: V5, 2;);
"####;
    let mut errors = Vec::new();
    let mut macros = RustSource::new(src).test_macros();
    assert_eq!(
        macros.iter().map(String::as_str).collect::<Vec<_>>(),
        ["gen", "restart"]
    );
    macros.insert("test_versions".to_owned());
    let tests = rust_tests("t.rs", src, &macros, &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    let summary: Vec<(String, Vec<String>)> = tests
        .iter()
        .map(|t| {
            let mut ids: Vec<String> = t
                .spans
                .iter()
                .flat_map(|s| citations(s).0)
                .flat_map(|c| c.ids)
                .collect();
            ids.sort();
            (t.display(), ids)
        })
        .collect();
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        [
            (
                "t.rs::plain_v311".to_owned(),
                strs(&["MQTT-1.1.1-1", "MQTT-1.1.1-2", "MQTT-1.1.1-3"])
            ),
            ("t.rs::tokio_one_v5".to_owned(), vec![]),
            ("t.rs::inner::prop_v5".to_owned(), strs(&["MQTT-5.5.5-1"])),
            (
                "t.rs::made_v311_x".to_owned(),
                strs(&["MQTT-3.3.3-1", "MQTT-3.3.3-2"])
            ),
            (
                "t.rs::made_v5_x".to_owned(),
                strs(&["MQTT-3.3.3-1", "MQTT-3.3.3-2"])
            ),
            (
                "t.rs::inner::inner_v311".to_owned(),
                strs(&["MQTT-4.4.4-1"])
            ),
            ("t.rs::inner::inner_v5".to_owned(), strs(&["MQTT-4.4.4-1"])),
            ("t.rs::restart_v311".to_owned(), strs(&["MQTT-6.6.6-1"])),
            ("t.rs::restart_v5".to_owned(), strs(&["MQTT-6.6.6-1"])),
        ]
    );
    let ignored: Vec<&str> = tests
        .iter()
        .filter(|t| t.ignored)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(ignored, ["plain_v311"]);
    let line = |name: &str| tests.iter().find(|t| t.name == name).map(|t| t.line);
    assert_eq!(line("plain_v311"), Some(8));
    assert_eq!(line("made_v5_x"), Some(25));
}

#[test]
fn python_scanner_finds_comments_docstrings_and_bodies() {
    let src = "\
import pytest

# [MQTT-1.1.1-1] above
@pytest.mark.parametrize(
    \"protocol\",
    [1, 2],
)
def test_one_v311_v5(broker, protocol):
    \"\"\"[MQTT-1.1.1-2] docstring\"\"\"
    x = 1  # [MQTT-1.1.1-3]

# [MQTT-2.2.2-1] not attached: code between
x = 2
def helper():
    pass  # [MQTT-9.9.9-9]


class TestGroup:
    async def test_two_v5(
        self,
    ):
        pass  # [MQTT-3.3.3-1]
";
    let tests = python_tests("python/test_x.py", src);
    let summary: Vec<(String, usize, Vec<String>)> = tests
        .iter()
        .map(|t| {
            let ids = t
                .spans
                .iter()
                .flat_map(|s| citations(s).0)
                .flat_map(|c| c.ids)
                .collect();
            (t.display(), t.line, ids)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "python/test_x.py::test_one_v311_v5".to_owned(),
                8,
                vec![
                    "MQTT-1.1.1-1".to_owned(),
                    "MQTT-1.1.1-2".to_owned(),
                    "MQTT-1.1.1-3".to_owned()
                ]
            ),
            (
                "python/test_x.py::TestGroup::test_two_v5".to_owned(),
                19,
                vec!["MQTT-3.3.3-1".to_owned()]
            ),
        ]
    );
}
