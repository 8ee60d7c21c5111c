//! Amazon SNS subscription filter policies: parsing and validating a policy's JSON
//! ([`FilterPolicy::parse`]) and deciding whether a published message passes it
//! ([`FilterPolicy::matches_attributes`], [`FilterPolicy::matches_body`]).
//!
//! A subscription carries a policy and a [`PolicyScope`], as SNS's `FilterPolicy` and
//! `FilterPolicyScope` subscription attributes do. The engine's topic fan-out asks the
//! policy about each message before delivering it; this module does no I/O.
//!
//! # Semantics (SNS's)
//!
//! - Keys are ANDed; the values in a key's array are ORed; `{"$or": [{…}, {…}]}` ORs
//!   whole sub-policies (at the top or inside a nested object) and is ANDed with the
//!   keys beside it.
//! - Values: exact strings (case-sensitive), numbers (compared numerically, to five
//!   decimal places), `true`, `false`, `null`; operators `{"prefix": s}`,
//!   `{"suffix": s}`, `{"equals-ignore-case": s}`, `{"anything-but": v | [v…] |
//!   {"prefix": s} | {"suffix": s}}`, `{"numeric": ["=", n]}` or
//!   `{"numeric": [">", 0, "<=", 100]}`, `{"exists": true | false}`.
//! - Strings only match strings and numbers only match numbers: `"100"` never matches
//!   the number 100, and numeric operators only see `Number` attributes and JSON
//!   numbers.
//! - An array in the message (a `String.Array` attribute or a JSON array in the body)
//!   matches when any of its elements does; so `anything-but` passes an array holding
//!   at least one value outside its list.
//! - `exists: true` needs the key present with a value that is not `null`, not an
//!   empty array and (in a body) not an object; `exists: false` is its negation.
//! - A message with no attributes never matches an attribute policy (SNS: "`exists:
//!   false` only matches if at least one attribute is present").
//! - The empty policy `{}` accepts every message: it is how SNS clears a filter.
//!
//! # Limits
//!
//! As SNS documents them: the policy text is at most 256 KB; at most 5 keys, counting
//! only leaf keys (those whose value is an array), each distinct path once; the product
//! of the number of values of every key (an `$or` adds its branches' products) is at
//! most 150; numbers lie within ±10⁹. SNS documents no nesting limit; Wisp caps the
//! nesting of body policies at [`MAX_DEPTH`] objects to bound recursion.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// The largest policy text SNS accepts, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// The most leaf keys a policy may name.
pub const MAX_KEYS: usize = 5;
/// The most combinations of values a policy may describe.
pub const MAX_COMBINATIONS: u64 = 150;
/// The deepest nesting of objects (nested keys or `$or` branches) in a policy.
pub const MAX_DEPTH: usize = 32;
/// The largest magnitude of a number in a policy.
const MAX_NUMBER: f64 = 1e9;
/// Numbers are compared to five decimal places, as SNS does.
const NUMBER_SCALE: f64 = 1e5;

/// What a policy is matched against (SNS's `FilterPolicyScope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyScope {
    /// The message's attributes; keys are attribute names and policies are flat.
    #[default]
    MessageAttributes,
    /// The message body, parsed as JSON; nested policy objects walk nested objects.
    MessageBody,
}

impl PolicyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyScope::MessageAttributes => "MessageAttributes",
            PolicyScope::MessageBody => "MessageBody",
        }
    }
}

impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyScope {
    type Err = FilterPolicyError;

    fn from_str(s: &str) -> Result<PolicyScope, FilterPolicyError> {
        match s {
            "MessageAttributes" => Ok(PolicyScope::MessageAttributes),
            "MessageBody" => Ok(PolicyScope::MessageBody),
            other => Err(FilterPolicyError::UnknownScope(other.to_owned())),
        }
    }
}

/// One message attribute, by SNS's names. `DataType` is `String`, `Number`,
/// `String.Array` (or `Number.Array`, as SNS's examples write it) or `Binary`,
/// optionally with a custom suffix (`Number.float`); binary attributes count as
/// present but match no value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    #[serde(rename = "DataType")]
    pub data_type: String,
    #[serde(rename = "StringValue", default)]
    pub value: String,
}

impl MessageAttribute {
    pub fn string(value: impl Into<String>) -> MessageAttribute {
        MessageAttribute {
            data_type: "String".to_owned(),
            value: value.into(),
        }
    }

    pub fn number(value: impl Into<String>) -> MessageAttribute {
        MessageAttribute {
            data_type: "Number".to_owned(),
            value: value.into(),
        }
    }

    /// `json` is the array's JSON text, as SNS carries it: `["a", "b"]`.
    pub fn string_array(json: impl Into<String>) -> MessageAttribute {
        MessageAttribute {
            data_type: "String.Array".to_owned(),
            value: json.into(),
        }
    }
}

/// Why a policy was rejected. Messages name the key's path (`store.city`,
/// `$or[1].price`) and quote the offending JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterPolicyError {
    #[error("filter policy: {size} bytes is over the limit of {MAX_POLICY_BYTES} bytes (256 KB)")]
    TooLarge { size: usize },
    #[error("filter policy: not valid JSON: {0}")]
    Json(String),
    #[error("filter policy: must be a JSON object of keys, found {found}")]
    NotAnObject { found: String },
    #[error("filter policy: {count} keys is over the limit of {MAX_KEYS} (keys: {keys})")]
    TooManyKeys { count: usize, keys: String },
    #[error(
        "filter policy: {combinations} combinations of values is over the limit of \
         {MAX_COMBINATIONS} (the product of the number of values of every key)"
    )]
    TooComplex { combinations: u64 },
    #[error("filter policy: key \"{path}\": nested more than {MAX_DEPTH} objects deep")]
    TooDeep { path: String },
    #[error("filter policy: key \"{path}\": {reason}")]
    Invalid { path: String, reason: String },
    #[error("unknown filter policy scope `{0}`: use `MessageAttributes` or `MessageBody`")]
    UnknownScope(String),
}

/// A validated filter policy. It keeps its JSON text canonicalised (object keys sorted,
/// no whitespace), which is what [`Display`](fmt::Display) and serde write.
///
/// Deserializing validates with the [`PolicyScope::MessageBody`] rules, the more
/// permissive ones: stored text was validated against its real scope by
/// [`FilterPolicy::parse`] when it was written, and the scope is stored beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterPolicy {
    text: String,
    root: Node,
}

/// An object of the policy: its keys (ANDed) and an optional `$or` of sub-policies.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    fields: Vec<(String, Field)>,
    any_of: Option<Vec<Node>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    /// A nested object: walks into the body's object at this key.
    Nested(Node),
    /// An array of values and operators, ORed.
    Rules(Vec<Rule>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Exact(Literal),
    Prefix(String),
    Suffix(String),
    /// Held lowercased.
    EqualsIgnoreCase(String),
    AnythingBut(Exclusion),
    Numeric(NumericRange),
    Exists(bool),
}

/// A scalar of the policy or the message; numbers are scaled to five decimal places.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Literal {
    String(String),
    Number(i64),
    Bool(bool),
    Null,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Exclusion {
    Values(Vec<Literal>),
    Prefix(String),
    Suffix(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    value: i64,
    inclusive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NumericRange {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

/// A scalar of the message, borrowed.
#[derive(Clone, Copy, Debug)]
enum Leaf<'a> {
    Str(&'a str),
    Num(i64),
    Bool(bool),
    Null,
}

impl FilterPolicy {
    /// Parses and validates `json` as a policy for `scope`.
    pub fn parse(json: &str, scope: PolicyScope) -> Result<FilterPolicy, FilterPolicyError> {
        if json.len() > MAX_POLICY_BYTES {
            return Err(FilterPolicyError::TooLarge { size: json.len() });
        }
        let value: Value = serde_json::from_str(json).map_err(|e| FilterPolicyError::Json(e.to_string()))?;
        let Value::Object(map) = &value else {
            return Err(FilterPolicyError::NotAnObject {
                found: describe(&value),
            });
        };
        let root = parse_node(map, scope, "", 0)?;

        let mut keys = BTreeSet::new();
        collect_keys(&root, "", &mut keys);
        if keys.len() > MAX_KEYS {
            let names: Vec<&str> = keys.iter().map(String::as_str).collect();
            return Err(FilterPolicyError::TooManyKeys {
                count: keys.len(),
                keys: names.join(", "),
            });
        }
        let combinations = combinations(&root);
        if combinations > MAX_COMBINATIONS {
            return Err(FilterPolicyError::TooComplex { combinations });
        }
        Ok(FilterPolicy {
            text: canonical(&value).to_string(),
            root,
        })
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is the empty policy `{}`, which accepts every message.
    pub fn is_empty(&self) -> bool {
        self.root.fields.is_empty() && self.root.any_of.is_none()
    }

    /// Whether a message with these attributes passes (scope `MessageAttributes`).
    /// A message with no attributes passes only the empty policy.
    pub fn matches_attributes(&self, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
        if self.is_empty() {
            return true;
        }
        !attributes.is_empty() && attributes_match(&self.root, attributes)
    }

    /// Whether a message with this JSON body passes (scope `MessageBody`). A body that
    /// is not a JSON object passes only the empty policy.
    pub fn matches_body(&self, body: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        match body {
            Value::Object(map) => body_matches(&self.root, map),
            _ => false,
        }
    }

    /// [`matches_body`](Self::matches_body) on the raw body: a body that is not JSON
    /// never matches a body policy (other than the empty one).
    pub fn matches_body_text(&self, body: &str) -> bool {
        if self.is_empty() {
            return true;
        }
        serde_json::from_str::<Value>(body).is_ok_and(|value| self.matches_body(&value))
    }
}

impl fmt::Display for FilterPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for FilterPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for FilterPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FilterPolicy, D::Error> {
        let text = String::deserialize(deserializer)?;
        FilterPolicy::parse(&text, PolicyScope::MessageBody).map_err(serde::de::Error::custom)
    }
}

// ---- parsing ----

fn invalid(path: &str, reason: impl Into<String>) -> FilterPolicyError {
    FilterPolicyError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// A short rendering of a JSON value for error messages.
fn describe(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}…")
}

fn parse_node(
    map: &Map<String, Value>,
    scope: PolicyScope,
    path: &str,
    depth: usize,
) -> Result<Node, FilterPolicyError> {
    if depth > MAX_DEPTH {
        return Err(FilterPolicyError::TooDeep {
            path: path.to_owned(),
        });
    }
    let mut node = Node {
        fields: Vec::new(),
        any_of: None,
    };
    for (key, value) in map {
        if key == "$or" {
            node.any_of = Some(parse_or(value, scope, path, depth)?);
            continue;
        }
        let key_path = join(path, key);
        let field = match value {
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(invalid(&key_path, "needs at least one value, found []"));
                }
                let rules = items.iter().map(|item| parse_rule(item, &key_path));
                Field::Rules(rules.collect::<Result<_, _>>()?)
            }
            Value::Object(inner) => {
                if scope == PolicyScope::MessageAttributes {
                    return Err(invalid(
                        &key_path,
                        "nested objects are only allowed in MessageBody policies; \
                         attribute policies are flat: use an array of values",
                    ));
                }
                if inner.is_empty() {
                    return Err(invalid(
                        &key_path,
                        "a nested object needs at least one key, found {}",
                    ));
                }
                Field::Nested(parse_node(inner, scope, &key_path, depth + 1)?)
            }
            other => {
                return Err(invalid(
                    &key_path,
                    format!("expected an array of values, found {}", describe(other)),
                ));
            }
        };
        node.fields.push((key.clone(), field));
    }
    Ok(node)
}

fn parse_or(
    value: &Value,
    scope: PolicyScope,
    path: &str,
    depth: usize,
) -> Result<Vec<Node>, FilterPolicyError> {
    let or_path = join(path, "$or");
    let Value::Array(branches) = value else {
        return Err(invalid(
            &or_path,
            format!("expected an array of policy objects, found {}", describe(value)),
        ));
    };
    if branches.len() < 2 {
        return Err(invalid(
            &or_path,
            format!("needs at least two policy objects, found {}", describe(value)),
        ));
    }
    let mut nodes = Vec::with_capacity(branches.len());
    for (i, branch) in branches.iter().enumerate() {
        let branch_path = format!("{or_path}[{i}]");
        match branch {
            Value::Object(map) if !map.is_empty() => {
                nodes.push(parse_node(map, scope, &branch_path, depth + 1)?);
            }
            other => {
                return Err(invalid(
                    &branch_path,
                    format!("expected a non-empty policy object, found {}", describe(other)),
                ));
            }
        }
    }
    Ok(nodes)
}

fn parse_number(value: &Value, path: &str) -> Result<i64, FilterPolicyError> {
    let Some(n) = value.as_f64() else {
        return Err(invalid(
            path,
            format!("expected a number, found {}", describe(value)),
        ));
    };
    if !(-MAX_NUMBER..=MAX_NUMBER).contains(&n) {
        return Err(invalid(
            path,
            format!("number {value} is outside the range -1000000000 to 1000000000"),
        ));
    }
    Ok(scale(n))
}

/// Scales to an integer count of 10⁻⁵ so comparison is exact to five decimal places.
/// `as` saturates for out-of-range message values, which keeps the order.
fn scale(n: f64) -> i64 {
    (n * NUMBER_SCALE).round() as i64
}

fn parse_literal(value: &Value, path: &str) -> Result<Literal, FilterPolicyError> {
    match value {
        Value::String(s) => Ok(Literal::String(s.clone())),
        Value::Number(_) => Ok(Literal::Number(parse_number(value, path)?)),
        Value::Bool(b) => Ok(Literal::Bool(*b)),
        Value::Null => Ok(Literal::Null),
        Value::Array(_) => Err(invalid(
            path,
            format!("values cannot be nested arrays, found {}", describe(value)),
        )),
        Value::Object(_) => Err(invalid(
            path,
            format!("expected a value, found {}", describe(value)),
        )),
    }
}

fn parse_rule(item: &Value, path: &str) -> Result<Rule, FilterPolicyError> {
    let Value::Object(map) = item else {
        return parse_literal(item, path).map(Rule::Exact);
    };
    let mut entries = map.iter();
    let (Some((operator, argument)), None) = (entries.next(), entries.next()) else {
        return Err(invalid(
            path,
            format!("an operator object has exactly one key, found {}", describe(item)),
        ));
    };
    let string_argument = |argument: &Value| match argument {
        Value::String(s) => Ok(s.clone()),
        other => Err(invalid(
            path,
            format!("`{operator}` needs a string, found {}", describe(other)),
        )),
    };
    match operator.as_str() {
        "prefix" => Ok(Rule::Prefix(string_argument(argument)?)),
        "suffix" => Ok(Rule::Suffix(string_argument(argument)?)),
        "equals-ignore-case" => Ok(Rule::EqualsIgnoreCase(string_argument(argument)?.to_lowercase())),
        "exists" => match argument {
            Value::Bool(b) => Ok(Rule::Exists(*b)),
            other => Err(invalid(
                path,
                format!("`exists` needs true or false, found {}", describe(other)),
            )),
        },
        "anything-but" => parse_anything_but(argument, path).map(Rule::AnythingBut),
        "numeric" => parse_numeric(argument, path).map(Rule::Numeric),
        other => Err(invalid(
            path,
            format!(
                "unknown operator `{other}`: use prefix, suffix, equals-ignore-case, \
                 anything-but, numeric or exists"
            ),
        )),
    }
}

fn parse_anything_but(argument: &Value, path: &str) -> Result<Exclusion, FilterPolicyError> {
    let excluded_value = |value: &Value| match value {
        Value::String(_) | Value::Number(_) => parse_literal(value, path),
        other => Err(invalid(
            path,
            format!(
                "`anything-but` values must be strings or numbers, found {}",
                describe(other)
            ),
        )),
    };
    match argument {
        Value::Array(values) => {
            if values.is_empty() {
                return Err(invalid(path, "`anything-but` needs at least one value, found []"));
            }
            Ok(Exclusion::Values(
                values.iter().map(excluded_value).collect::<Result<_, _>>()?,
            ))
        }
        Value::Object(map) => {
            let mut entries = map.iter();
            match (entries.next(), entries.next()) {
                (Some((op, Value::String(s))), None) if op == "prefix" => Ok(Exclusion::Prefix(s.clone())),
                (Some((op, Value::String(s))), None) if op == "suffix" => Ok(Exclusion::Suffix(s.clone())),
                _ => Err(invalid(
                    path,
                    format!(
                        "`anything-but` takes a value, an array of values, {{\"prefix\": \"…\"}} \
                         or {{\"suffix\": \"…\"}}, found {}",
                        describe(argument)
                    ),
                )),
            }
        }
        other => Ok(Exclusion::Values(vec![excluded_value(other)?])),
    }
}

fn parse_numeric(argument: &Value, path: &str) -> Result<NumericRange, FilterPolicyError> {
    let example = "like [\"=\", 5] or [\">\", 0, \"<=\", 100]";
    let Value::Array(items) = argument else {
        return Err(invalid(
            path,
            format!("`numeric` needs an array {example}, found {}", describe(argument)),
        ));
    };
    if items.is_empty() || items.len() > 4 {
        return Err(invalid(
            path,
            format!(
                "`numeric` takes one or two operator-number pairs {example}, found {}",
                describe(argument)
            ),
        ));
    }
    let mut range = NumericRange {
        lower: None,
        upper: None,
    };
    for pair in items.chunks(2) {
        let operator = match &pair[0] {
            Value::String(op) if matches!(op.as_str(), "=" | "<" | "<=" | ">" | ">=") => op.as_str(),
            other => {
                return Err(invalid(
                    path,
                    format!(
                        "numeric range needs an operator (=, <, <=, >, >=), found {}",
                        describe(other)
                    ),
                ));
            }
        };
        let Some(number) = pair.get(1) else {
            return Err(invalid(
                path,
                format!("numeric operator `{operator}` needs a number after it, found nothing"),
            ));
        };
        if !number.is_number() {
            return Err(invalid(
                path,
                format!(
                    "numeric operator `{operator}` needs a number after it, found {}",
                    describe(number)
                ),
            ));
        }
        let value = parse_number(number, path)?;
        let slot = match operator {
            "=" => {
                if items.len() != 2 {
                    return Err(invalid(
                        path,
                        format!(
                            "numeric `=` cannot be combined with another operator, found {}",
                            describe(argument)
                        ),
                    ));
                }
                range.lower = Some(Bound {
                    value,
                    inclusive: true,
                });
                &mut range.upper
            }
            ">" | ">=" => &mut range.lower,
            _ => &mut range.upper,
        };
        if slot.is_some() {
            return Err(invalid(
                path,
                format!(
                    "numeric range needs one lower bound (> or >=) and one upper bound \
                     (< or <=), found {}",
                    describe(argument)
                ),
            ));
        }
        *slot = Some(Bound {
            value,
            inclusive: operator.contains('='),
        });
    }
    if let (Some(lower), Some(upper)) = (range.lower, range.upper) {
        let empty = lower.value > upper.value
            || (lower.value == upper.value && !(lower.inclusive && upper.inclusive));
        if empty {
            return Err(invalid(
                path,
                format!("numeric range matches no number, found {}", describe(argument)),
            ));
        }
    }
    Ok(range)
}

/// Distinct paths of leaf keys; `$or` branches add no path segment.
fn collect_keys(node: &Node, prefix: &str, keys: &mut BTreeSet<String>) {
    for (key, field) in &node.fields {
        let path = join(prefix, key);
        match field {
            Field::Nested(inner) => collect_keys(inner, &path, keys),
            Field::Rules(_) => {
                keys.insert(path);
            }
        }
    }
    for branch in node.any_of.iter().flatten() {
        collect_keys(branch, prefix, keys);
    }
}

fn combinations(node: &Node) -> u64 {
    let mut product: u64 = 1;
    for (_, field) in &node.fields {
        let n = match field {
            Field::Nested(inner) => combinations(inner),
            Field::Rules(rules) => rules.len() as u64,
        };
        product = product.saturating_mul(n);
    }
    if let Some(branches) = &node.any_of {
        let sum = branches
            .iter()
            .fold(0u64, |sum, branch| sum.saturating_add(combinations(branch)));
        product = product.saturating_mul(sum);
    }
    product
}

/// The value with every object's keys sorted, whatever serde_json's map order is.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

// ---- matching ----

impl Rule {
    fn matches(&self, present: bool, leaves: &[Leaf<'_>]) -> bool {
        match self {
            Rule::Exists(wanted) => present == *wanted,
            _ => leaves.iter().any(|leaf| self.matches_leaf(*leaf)),
        }
    }

    fn matches_leaf(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Rule::Exact(literal), leaf) => literal.equals(leaf),
            (Rule::Prefix(p), Leaf::Str(s)) => s.starts_with(p.as_str()),
            (Rule::Suffix(p), Leaf::Str(s)) => s.ends_with(p.as_str()),
            (Rule::EqualsIgnoreCase(lowered), Leaf::Str(s)) => s.to_lowercase() == *lowered,
            // `null` is the absence of a value, not a value outside the list.
            (Rule::AnythingBut(_), Leaf::Null) => false,
            (Rule::AnythingBut(Exclusion::Values(values)), leaf) => !values.iter().any(|v| v.equals(leaf)),
            (Rule::AnythingBut(Exclusion::Prefix(p)), Leaf::Str(s)) => !s.starts_with(p.as_str()),
            (Rule::AnythingBut(Exclusion::Suffix(p)), Leaf::Str(s)) => !s.ends_with(p.as_str()),
            (Rule::Numeric(range), Leaf::Num(n)) => range.contains(n),
            _ => false,
        }
    }
}

impl Literal {
    fn equals(&self, leaf: Leaf<'_>) -> bool {
        match (self, leaf) {
            (Literal::String(a), Leaf::Str(b)) => a == b,
            (Literal::Number(a), Leaf::Num(b)) => *a == b,
            (Literal::Bool(a), Leaf::Bool(b)) => *a == b,
            (Literal::Null, Leaf::Null) => true,
            _ => false,
        }
    }
}

impl NumericRange {
    fn contains(&self, n: i64) -> bool {
        let above = self
            .lower
            .is_none_or(|b| n > b.value || (b.inclusive && n == b.value));
        let below = self
            .upper
            .is_none_or(|b| n < b.value || (b.inclusive && n == b.value));
        above && below
    }
}

/// The scalars of a JSON value; arrays contribute their elements (recursively),
/// objects nothing.
fn json_leaves<'a>(value: &'a Value, out: &mut Vec<Leaf<'a>>) {
    match value {
        Value::String(s) => out.push(Leaf::Str(s)),
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.push(Leaf::Num(scale(f)));
            }
        }
        Value::Bool(b) => out.push(Leaf::Bool(*b)),
        Value::Null => out.push(Leaf::Null),
        Value::Array(items) => items.iter().for_each(|item| json_leaves(item, out)),
        Value::Object(_) => {}
    }
}

fn attributes_match(node: &Node, attributes: &BTreeMap<String, MessageAttribute>) -> bool {
    let fields = node.fields.iter().all(|(key, field)| match field {
        // Only a deserialized (leniently validated) policy can hold one: an attribute
        // has no nested keys to walk.
        Field::Nested(_) => false,
        Field::Rules(rules) => attribute_matches(rules, attributes.get(key)),
    });
    fields
        && node
            .any_of
            .as_ref()
            .is_none_or(|branches| branches.iter().any(|b| attributes_match(b, attributes)))
}

fn attribute_matches(rules: &[Rule], attribute: Option<&MessageAttribute>) -> bool {
    let Some(attribute) = attribute else {
        return rules.iter().any(|rule| rule.matches(false, &[]));
    };
    let data_type = attribute.data_type.as_str();
    let base = data_type.split_once('.').map_or(data_type, |(base, _)| base);
    let mut leaves = Vec::new();
    let array: Value;
    let mut present = true;
    // SNS's own examples also send `Number.Array`; both carry a JSON array.
    if data_type == "String.Array" || data_type == "Number.Array" {
        // Text that is not a JSON array is present but has no value to compare.
        array = serde_json::from_str(&attribute.value).unwrap_or(Value::Null);
        if let Value::Array(items) = &array {
            present = !items.is_empty();
            items.iter().for_each(|item| json_leaves(item, &mut leaves));
        }
    } else if base == "Number" {
        // Rust parses "NaN" and "inf"; SNS numbers are finite.
        if let Ok(n) = attribute.value.trim().parse::<f64>()
            && n.is_finite()
        {
            leaves.push(Leaf::Num(scale(n)));
        }
    } else if base == "String" {
        leaves.push(Leaf::Str(&attribute.value));
    }
    rules.iter().any(|rule| rule.matches(present, &leaves))
}

fn body_matches(node: &Node, body: &Map<String, Value>) -> bool {
    let fields = node.fields.iter().all(|(key, field)| {
        let value = body.get(key);
        match field {
            Field::Nested(inner) => match value {
                Some(Value::Object(map)) => body_matches(inner, map),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|item| matches!(item, Value::Object(map) if body_matches(inner, map))),
                _ => false,
            },
            Field::Rules(rules) => {
                let mut leaves = Vec::new();
                if let Some(value) = value {
                    json_leaves(value, &mut leaves);
                }
                let present = match value {
                    None | Some(Value::Null | Value::Object(_)) => false,
                    Some(Value::Array(items)) => !items.is_empty(),
                    Some(_) => true,
                };
                rules.iter().any(|rule| rule.matches(present, &leaves))
            }
        }
    });
    fields
        && node
            .any_of
            .as_ref()
            .is_none_or(|branches| branches.iter().any(|b| body_matches(b, body)))
}

#[cfg(test)]
mod tests;
