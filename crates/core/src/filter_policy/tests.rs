//! Unit tests for filter policies: every operator, AND/OR/`$or`, nested bodies,
//! arrays, type-strict numbers, storage, and each rejection.

use super::*;
use serde_json::json;

fn attrs_policy(json: &str) -> FilterPolicy {
    FilterPolicy::parse(json, PolicyScope::MessageAttributes).unwrap()
}

fn body_policy(json: &str) -> FilterPolicy {
    FilterPolicy::parse(json, PolicyScope::MessageBody).unwrap()
}

fn attrs(pairs: &[(&str, MessageAttribute)]) -> BTreeMap<String, MessageAttribute> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn s(value: &str) -> MessageAttribute {
    MessageAttribute::string(value)
}

fn n(value: &str) -> MessageAttribute {
    MessageAttribute::number(value)
}

fn arr(value: &str) -> MessageAttribute {
    MessageAttribute::string_array(value)
}

fn error(json: &str, scope: PolicyScope) -> String {
    FilterPolicy::parse(json, scope).unwrap_err().to_string()
}

// ---- exact values, OR and AND ----

#[test]
fn exact_string_is_case_sensitive_and_values_are_ored() {
    let p = attrs_policy(r#"{"sport": ["rugby", "tennis"]}"#);
    assert!(p.matches_attributes(&attrs(&[("sport", s("rugby"))])));
    assert!(p.matches_attributes(&attrs(&[("sport", s("tennis"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", s("Rugby"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", s("baseball"))])));
    assert!(!p.matches_attributes(&attrs(&[("other", s("rugby"))])));
}

#[test]
fn keys_are_anded() {
    let p = attrs_policy(r#"{"sport": ["rugby"], "country": ["nz", "fr"]}"#);
    assert!(p.matches_attributes(&attrs(&[("sport", s("rugby")), ("country", s("fr"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", s("rugby")), ("country", s("uk"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", s("rugby"))])));
}

#[test]
fn string_array_attribute_matches_when_any_element_does() {
    let p = attrs_policy(r#"{"sport": ["rugby", "tennis"]}"#);
    assert!(p.matches_attributes(&attrs(&[("sport", arr(r#"["golf", "tennis"]"#))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", arr(r#"["golf"]"#))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", arr("not json"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", arr("[]"))])));
}

#[test]
fn numbers_match_only_numbers() {
    let p = attrs_policy(r#"{"price": [301.5]}"#);
    assert!(p.matches_attributes(&attrs(&[("price", n("301.5"))])));
    assert!(p.matches_attributes(&attrs(&[("price", n("3.015e2"))])));
    assert!(!p.matches_attributes(&attrs(&[("price", s("301.5"))])));
    let q = attrs_policy(r#"{"price": ["301.5"]}"#);
    assert!(q.matches_attributes(&attrs(&[("price", s("301.5"))])));
    assert!(!q.matches_attributes(&attrs(&[("price", n("301.5"))])));

    let b = body_policy(r#"{"price": [301.5]}"#);
    assert!(b.matches_body(&json!({"price": 301.5})));
    assert!(b.matches_body(&json!({"price": 3.015e2})));
    assert!(!b.matches_body(&json!({"price": "301.5"})));
}

#[test]
fn numbers_compare_to_five_decimal_places() {
    let p = body_policy(r#"{"x": [{"numeric": ["=", 0.000001]}]}"#);
    assert!(p.matches_body(&json!({"x": 0})));
    assert!(!p.matches_body(&json!({"x": 0.00001})));
}

#[test]
fn custom_number_data_type_is_a_number() {
    let p = attrs_policy(r#"{"price": [{"numeric": [">", 1]}]}"#);
    let attribute = MessageAttribute {
        data_type: "Number.float".into(),
        value: "2.5".into(),
    };
    assert!(p.matches_attributes(&attrs(&[("price", attribute)])));
    assert!(!p.matches_attributes(&attrs(&[("price", n("not a number"))])));
}

#[test]
fn booleans_and_null_match_in_bodies_and_string_arrays() {
    let p = body_policy(r#"{"on": [true], "gone": [null]}"#);
    assert!(p.matches_body(&json!({"on": true, "gone": null})));
    assert!(!p.matches_body(&json!({"on": "true", "gone": null})));
    assert!(!p.matches_body(&json!({"on": true})));
    let a = attrs_policy(r#"{"flags": [false]}"#);
    assert!(a.matches_attributes(&attrs(&[("flags", arr(r#"["x", false]"#))])));
    assert!(!a.matches_attributes(&attrs(&[("flags", s("false"))])));
}

// ---- string operators ----

#[test]
fn prefix_and_suffix() {
    let p = attrs_policy(r#"{"event": [{"prefix": "order_"}, {"suffix": ".png"}]}"#);
    assert!(p.matches_attributes(&attrs(&[("event", s("order_placed"))])));
    assert!(p.matches_attributes(&attrs(&[("event", s("cat.png"))])));
    assert!(p.matches_attributes(&attrs(&[("event", arr(r#"["a", "order_x"]"#))])));
    assert!(!p.matches_attributes(&attrs(&[("event", s("cart_order_"))])));
    assert!(!p.matches_attributes(&attrs(&[("event", n("5"))])));
}

#[test]
fn equals_ignore_case() {
    let p = body_policy(r#"{"name": [{"equals-ignore-case": "ÉCOLE"}]}"#);
    assert!(p.matches_body(&json!({"name": "école"})));
    assert!(p.matches_body(&json!({"name": "École"})));
    assert!(!p.matches_body(&json!({"name": "ecole"})));
}

#[test]
fn anything_but_values() {
    let p = attrs_policy(r#"{"sport": [{"anything-but": ["rugby", "tennis"]}]}"#);
    assert!(p.matches_attributes(&attrs(&[("sport", s("baseball"))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", s("rugby"))])));
    // An array passes when one element is outside the list.
    assert!(p.matches_attributes(&attrs(&[("sport", arr(r#"["rugby", "golf"]"#))])));
    assert!(!p.matches_attributes(&attrs(&[("sport", arr(r#"["rugby", "tennis"]"#))])));
    // The key must be there.
    assert!(!p.matches_attributes(&attrs(&[("other", s("golf"))])));
}

#[test]
fn anything_but_passes_arrays_with_one_value_outside_the_list() {
    // SNS's documented example.
    let p = attrs_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#);
    let array = MessageAttribute {
        data_type: "Number.Array".into(),
        value: "[100, 50]".into(),
    };
    assert!(p.matches_attributes(&attrs(&[("price", array)])));
    assert!(!p.matches_attributes(&attrs(&[("price", n("100"))])));
    assert!(
        body_policy(r#"{"price": [{"anything-but": [100, 500]}]}"#)
            .matches_body(&json!({"price": [100, 50]}))
    );
}

#[test]
fn anything_but_single_value_and_numbers() {
    let p = body_policy(r#"{"price": [{"anything-but": [100, 500]}], "s": [{"anything-but": "x"}]}"#);
    assert!(p.matches_body(&json!({"price": 101, "s": "y"})));
    assert!(p.matches_body(&json!({"price": 100.1, "s": "y"})));
    assert!(!p.matches_body(&json!({"price": 100, "s": "y"})));
    assert!(!p.matches_body(&json!({"price": 101, "s": "x"})));
    assert!(!p.matches_body(&json!({"price": null, "s": "y"})));
}

#[test]
fn anything_but_prefix_and_suffix() {
    let p = body_policy(
        r#"{"event": [{"anything-but": {"prefix": "order-"}}], "file": [{"anything-but": {"suffix": ".tmp"}}]}"#,
    );
    assert!(p.matches_body(&json!({"event": "user-created", "file": "a.txt"})));
    assert!(!p.matches_body(&json!({"event": "order-placed", "file": "a.txt"})));
    assert!(!p.matches_body(&json!({"event": "user-created", "file": "a.tmp"})));
    assert!(!p.matches_body(&json!({"event": 5, "file": "a.txt"})));
}

// ---- numeric ----

#[test]
fn numeric_ranges() {
    let p = attrs_policy(r#"{"price": [{"numeric": [">", 0, "<=", 100]}]}"#);
    assert!(p.matches_attributes(&attrs(&[("price", n("100"))])));
    assert!(p.matches_attributes(&attrs(&[("price", n("0.5"))])));
    assert!(!p.matches_attributes(&attrs(&[("price", n("0"))])));
    assert!(!p.matches_attributes(&attrs(&[("price", n("100.01"))])));
    assert!(!p.matches_attributes(&attrs(&[("price", s("50"))])));
    assert!(p.matches_attributes(&attrs(&[("price", arr("[-3, 7]"))])));

    let q = body_policy(r#"{"t": [{"numeric": [">=", -10]}], "u": [{"numeric": ["<", 5]}]}"#);
    assert!(q.matches_body(&json!({"t": -10, "u": 4.99999})));
    assert!(!q.matches_body(&json!({"t": -10.5, "u": 4})));
    assert!(!q.matches_body(&json!({"t": 0, "u": 5})));
}

#[test]
fn numeric_equals_and_bounds_in_either_order() {
    let p = body_policy(r#"{"x": [{"numeric": ["=", 301.5]}], "y": [{"numeric": ["<", 10, ">", 5]}]}"#);
    assert!(p.matches_body(&json!({"x": 3.015e2, "y": 6})));
    assert!(!p.matches_body(&json!({"x": 301, "y": 6})));
    assert!(!p.matches_body(&json!({"x": 301.5, "y": 10})));
}

// ---- exists ----

#[test]
fn exists_on_attributes() {
    let yes = attrs_policy(r#"{"store": [{"exists": true}]}"#);
    let no = attrs_policy(r#"{"store": [{"exists": false}]}"#);
    let with = attrs(&[("store", s("fans"))]);
    let without = attrs(&[("other", s("x"))]);
    assert!(yes.matches_attributes(&with));
    assert!(!yes.matches_attributes(&without));
    assert!(!no.matches_attributes(&with));
    assert!(no.matches_attributes(&without));
    // SNS: no attributes at all never match, even `exists: false`.
    assert!(!no.matches_attributes(&BTreeMap::new()));
    let binary = MessageAttribute {
        data_type: "Binary".into(),
        value: String::new(),
    };
    assert!(yes.matches_attributes(&attrs(&[("store", binary)])));
}

#[test]
fn exists_on_bodies_needs_a_non_null_non_empty_leaf() {
    let yes = body_policy(r#"{"store": [{"exists": true}]}"#);
    let no = body_policy(r#"{"store": [{"exists": false}]}"#);
    for (body, present) in [
        (json!({"store": "fans"}), true),
        (json!({"store": 0}), true),
        (json!({"store": ["a"]}), true),
        (json!({"store": []}), false),
        (json!({"store": null}), false),
        (json!({"store": {"a": 1}}), false),
        (json!({"other": 1}), false),
    ] {
        assert_eq!(yes.matches_body(&body), present, "{body}");
        assert_eq!(no.matches_body(&body), !present, "{body}");
    }
}

#[test]
fn exists_or_value() {
    let p = attrs_policy(r#"{"color": ["red", {"exists": false}]}"#);
    assert!(p.matches_attributes(&attrs(&[("color", s("red"))])));
    assert!(p.matches_attributes(&attrs(&[("size", s("xl"))])));
    assert!(!p.matches_attributes(&attrs(&[("color", s("blue"))])));
}

// ---- $or ----

#[test]
fn or_at_the_top_is_anded_with_the_other_keys() {
    let p = attrs_policy(
        r#"{"source": ["aws.cloudwatch"], "$or": [{"metric": ["CPU"]}, {"namespace": ["AWS/EC2"]}]}"#,
    );
    let m = |pairs: &[(&str, MessageAttribute)]| p.matches_attributes(&attrs(pairs));
    assert!(m(&[("source", s("aws.cloudwatch")), ("metric", s("CPU"))]));
    assert!(m(&[("source", s("aws.cloudwatch")), ("namespace", s("AWS/EC2"))]));
    assert!(!m(&[("source", s("aws.cloudwatch")), ("metric", s("RAM"))]));
    assert!(!m(&[("source", s("other")), ("metric", s("CPU"))]));
}

#[test]
fn or_inside_a_nested_body_object() {
    let p = body_policy(r#"{"detail": {"$or": [{"a": [1]}, {"b": [{"prefix": "x"}]}]}}"#);
    assert!(p.matches_body(&json!({"detail": {"a": 1}})));
    assert!(p.matches_body(&json!({"detail": {"b": "xyz"}})));
    assert!(!p.matches_body(&json!({"detail": {"a": 2, "b": "y"}})));
    assert!(!p.matches_body(&json!({"a": 1})));
}

// ---- bodies ----

#[test]
fn nested_body_keys_walk_nested_objects() {
    let p = body_policy(r#"{"store": {"city": ["Paris"], "geo": {"lat": [{"numeric": [">", 0]}]}}}"#);
    assert!(p.matches_body(&json!({"store": {"city": "Paris", "geo": {"lat": 48.8}}, "x": 1})));
    assert!(!p.matches_body(&json!({"store": {"city": "Paris", "geo": {"lat": -1}}})));
    assert!(!p.matches_body(&json!({"store": {"city": "Paris"}})));
    assert!(!p.matches_body(&json!({"store": "Paris"})));
    assert!(!p.matches_body(&json!({"city": "Paris"})));
}

#[test]
fn body_arrays_match_when_any_element_does() {
    let p = body_policy(r#"{"tags": ["red"], "items": {"sku": ["A1"]}}"#);
    assert!(p.matches_body(&json!({"tags": ["blue", "red"], "items": [{"sku": "B2"}, {"sku": "A1"}]})));
    assert!(!p.matches_body(&json!({"tags": ["blue"], "items": [{"sku": "A1"}]})));
    assert!(!p.matches_body(&json!({"tags": ["red"], "items": [{"sku": "B2"}]})));
    assert!(p.matches_body(&json!({"tags": [["red"]], "items": {"sku": "A1"}})));
}

#[test]
fn non_json_or_non_object_body_never_matches() {
    let p = body_policy(r#"{"a": ["b"]}"#);
    assert!(p.matches_body_text(r#"{"a": "b"}"#));
    assert!(!p.matches_body_text("a=b"));
    assert!(!p.matches_body_text(r#"["b"]"#));
    assert!(!p.matches_body(&json!("b")));
}

#[test]
fn empty_policy_accepts_everything() {
    let p = body_policy("{}");
    assert!(p.is_empty());
    assert!(p.matches_body_text("not json"));
    assert!(p.matches_attributes(&BTreeMap::new()));
}

// ---- storage ----

#[test]
fn text_is_canonical_and_round_trips_through_serde() {
    let p = body_policy(r#"{ "b": ["x", 1.50],  "a": {"d": [true], "c": [null]} }"#);
    assert_eq!(p.as_str(), r#"{"a":{"c":[null],"d":[true]},"b":["x",1.5]}"#);
    assert_eq!(p.to_string(), p.as_str());
    let stored = serde_json::to_string(&p).unwrap();
    assert_eq!(stored, serde_json::to_string(p.as_str()).unwrap());
    let back: FilterPolicy = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, p);
    assert!(serde_json::from_str::<FilterPolicy>(r#""[1]""#).is_err());
}

#[test]
fn scope_and_attribute_serde_use_sns_names() {
    assert_eq!(
        serde_json::to_string(&PolicyScope::MessageBody).unwrap(),
        r#""MessageBody""#
    );
    assert_eq!(
        "MessageAttributes".parse::<PolicyScope>(),
        Ok(PolicyScope::MessageAttributes)
    );
    assert_eq!(PolicyScope::default(), PolicyScope::MessageAttributes);
    assert_eq!(
        "body".parse::<PolicyScope>().unwrap_err().to_string(),
        "unknown filter policy scope `body`: use `MessageAttributes` or `MessageBody`"
    );
    let a: MessageAttribute = serde_json::from_str(r#"{"DataType": "Number", "StringValue": "5"}"#).unwrap();
    assert_eq!(a, n("5"));
    assert_eq!(
        serde_json::to_value(s("x")).unwrap(),
        json!({"DataType": "String", "StringValue": "x"})
    );
}

// ---- bad policies ----

#[test]
fn rejects_bad_json_and_non_objects() {
    assert!(error("{", PolicyScope::MessageBody).starts_with("filter policy: not valid JSON: "));
    assert_eq!(
        error(r#"["a"]"#, PolicyScope::MessageBody),
        r#"filter policy: must be a JSON object of keys, found ["a"]"#
    );
}

#[test]
fn rejects_policies_over_256_kb() {
    let big = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(MAX_POLICY_BYTES));
    assert_eq!(
        error(&big, PolicyScope::MessageAttributes),
        format!(
            "filter policy: {} bytes is over the limit of 262144 bytes (256 KB)",
            big.len()
        )
    );
}

#[test]
fn rejects_bad_key_values() {
    let attrs_scope = PolicyScope::MessageAttributes;
    assert_eq!(
        error(r#"{"a": "x"}"#, attrs_scope),
        r#"filter policy: key "a": expected an array of values, found "x""#
    );
    assert_eq!(
        error(r#"{"a": []}"#, attrs_scope),
        r#"filter policy: key "a": needs at least one value, found []"#
    );
    assert!(
        error(r#"{"a": {"b": ["x"]}}"#, attrs_scope).starts_with(
            r#"filter policy: key "a": nested objects are only allowed in MessageBody policies"#
        )
    );
    assert_eq!(
        error(r#"{"a": {}}"#, PolicyScope::MessageBody),
        r#"filter policy: key "a": a nested object needs at least one key, found {}"#
    );
    assert_eq!(
        error(r#"{"a": {"b": [["x"]]}}"#, PolicyScope::MessageBody),
        r#"filter policy: key "a.b": values cannot be nested arrays, found ["x"]"#
    );
}

#[test]
fn rejects_bad_operators() {
    let e = |json: &str| error(json, PolicyScope::MessageAttributes);
    assert_eq!(
        e(r#"{"a": [{"regex": "x"}]}"#),
        "filter policy: key \"a\": unknown operator `regex`: use prefix, suffix, \
         equals-ignore-case, anything-but, numeric or exists"
    );
    assert_eq!(
        e(r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#),
        r#"filter policy: key "a": an operator object has exactly one key, found {"prefix":"x","suffix":"y"}"#
    );
    assert_eq!(
        e(r#"{"a": [{}]}"#),
        r#"filter policy: key "a": an operator object has exactly one key, found {}"#
    );
    assert_eq!(
        e(r#"{"a": [{"prefix": 1}]}"#),
        r#"filter policy: key "a": `prefix` needs a string, found 1"#
    );
    assert_eq!(
        e(r#"{"a": [{"suffix": null}]}"#),
        r#"filter policy: key "a": `suffix` needs a string, found null"#
    );
    assert_eq!(
        e(r#"{"a": [{"equals-ignore-case": ["x"]}]}"#),
        r#"filter policy: key "a": `equals-ignore-case` needs a string, found ["x"]"#
    );
    assert_eq!(
        e(r#"{"a": [{"exists": "yes"}]}"#),
        r#"filter policy: key "a": `exists` needs true or false, found "yes""#
    );
}

#[test]
fn rejects_bad_anything_but() {
    let e = |json: &str| error(json, PolicyScope::MessageAttributes);
    assert_eq!(
        e(r#"{"a": [{"anything-but": []}]}"#),
        r#"filter policy: key "a": `anything-but` needs at least one value, found []"#
    );
    assert_eq!(
        e(r#"{"a": [{"anything-but": [true]}]}"#),
        r#"filter policy: key "a": `anything-but` values must be strings or numbers, found true"#
    );
    assert!(
        e(r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#)
            .starts_with(r#"filter policy: key "a": `anything-but` takes a value, an array of values"#)
    );
}

#[test]
fn rejects_bad_numeric_ranges() {
    let e = |json: &str| error(json, PolicyScope::MessageAttributes);
    assert_eq!(
        e(r#"{"price": [{"numeric": [0, "<", 5]}]}"#),
        r#"filter policy: key "price": numeric range needs an operator (=, <, <=, >, >=), found 0"#
    );
    assert_eq!(
        e(r#"{"price": [{"numeric": ["!=", 5]}]}"#),
        r#"filter policy: key "price": numeric range needs an operator (=, <, <=, >, >=), found "!=""#
    );
    assert_eq!(
        e(r#"{"price": [{"numeric": [">"]}]}"#),
        r#"filter policy: key "price": numeric operator `>` needs a number after it, found nothing"#
    );
    assert_eq!(
        e(r#"{"price": [{"numeric": [">", "5"]}]}"#),
        r#"filter policy: key "price": numeric operator `>` needs a number after it, found "5""#
    );
    assert!(
        e(r#"{"price": [{"numeric": 5}]}"#)
            .starts_with(r#"filter policy: key "price": `numeric` needs an array"#)
    );
    assert!(e(r#"{"price": [{"numeric": []}]}"#).contains("one or two operator-number pairs"));
    assert!(
        e(r#"{"price": [{"numeric": [">", 1, "<", 5, "<", 6]}]}"#)
            .contains("one or two operator-number pairs")
    );
    assert!(e(r#"{"price": [{"numeric": ["=", 1, "<", 5]}]}"#).contains("`=` cannot be combined"));
    assert!(e(r#"{"price": [{"numeric": [">", 1, ">=", 5]}]}"#).contains("one lower bound"));
    assert!(e(r#"{"price": [{"numeric": [">", 5, "<", 1]}]}"#).contains("matches no number"));
    assert!(e(r#"{"price": [{"numeric": [">", 5, "<", 5]}]}"#).contains("matches no number"));
    assert!(
        FilterPolicy::parse(
            r#"{"p": [{"numeric": [">=", 5, "<=", 5]}]}"#,
            PolicyScope::MessageBody
        )
        .is_ok()
    );
    assert_eq!(
        e(r#"{"price": [{"numeric": ["<", 1e10]}]}"#),
        r#"filter policy: key "price": number 10000000000.0 is outside the range -1000000000 to 1000000000"#
    );
    assert!(e(r#"{"price": [-1000000001]}"#).contains("outside the range"));
}

#[test]
fn rejects_bad_or() {
    let e = |json: &str| error(json, PolicyScope::MessageAttributes);
    assert_eq!(
        e(r#"{"$or": {"a": ["x"]}}"#),
        r#"filter policy: key "$or": expected an array of policy objects, found {"a":["x"]}"#
    );
    assert_eq!(
        e(r#"{"$or": [{"a": ["x"]}]}"#),
        r#"filter policy: key "$or": needs at least two policy objects, found [{"a":["x"]}]"#
    );
    assert_eq!(
        e(r#"{"$or": [{"a": ["x"]}, {}]}"#),
        r#"filter policy: key "$or[1]": expected a non-empty policy object, found {}"#
    );
    assert_eq!(
        e(r#"{"$or": [{"a": ["x"]}, {"b": "y"}]}"#),
        r#"filter policy: key "$or[1].b": expected an array of values, found "y""#
    );
}

#[test]
fn limits_leaf_keys_to_five() {
    let five = r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"]}"#;
    assert!(FilterPolicy::parse(five, PolicyScope::MessageAttributes).is_ok());
    let six = r#"{"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}"#;
    assert_eq!(
        error(six, PolicyScope::MessageAttributes),
        "filter policy: 6 keys is over the limit of 5 (keys: a, b, c, d, e, f)"
    );
    // SNS counts leaf keys only: the parents `finding` and `geo` are free.
    let nested = r#"{"state": ["x"], "finding": {"region": ["r"], "account": ["a"], "geo": {"lat": [1], "lon": [2]}}}"#;
    assert!(FilterPolicy::parse(nested, PolicyScope::MessageBody).is_ok());
    let nested_six = r#"{"s": ["x"], "t": ["x"], "f": {"a": ["r"], "b": ["a"], "g": {"c": [1], "d": [2]}}}"#;
    assert!(error(nested_six, PolicyScope::MessageBody).contains("6 keys"));
    // The same key in two `$or` branches counts once.
    let or = r#"{"$or": [{"a": ["1"], "b": ["1"]}, {"a": ["2"], "c": ["1"]}], "d": ["1"], "e": ["1"]}"#;
    assert!(FilterPolicy::parse(or, PolicyScope::MessageAttributes).is_ok());
}

#[test]
fn limits_combinations_to_150() {
    let values = |count: usize| {
        let items: Vec<String> = (0..count).map(|i| format!("\"v{i}\"")).collect();
        format!("[{}]", items.join(","))
    };
    let ok = format!(
        r#"{{"a": {}, "b": {}, "c": {}}}"#,
        values(5),
        values(5),
        values(6)
    );
    assert!(FilterPolicy::parse(&ok, PolicyScope::MessageAttributes).is_ok());
    let too_many = format!(
        r#"{{"a": {}, "b": {}, "c": {}}}"#,
        values(5),
        values(5),
        values(7)
    );
    assert_eq!(
        error(&too_many, PolicyScope::MessageAttributes),
        "filter policy: 175 combinations of values is over the limit of 150 \
         (the product of the number of values of every key)"
    );
    // `$or` branches add: 10 × (10 + 6) = 160.
    let or = format!(
        r#"{{"a": {}, "$or": [{{"b": {}}}, {{"c": {}}}]}}"#,
        values(10),
        values(10),
        values(6)
    );
    assert!(error(&or, PolicyScope::MessageAttributes).contains("160 combinations"));
}

#[test]
fn limits_nesting_depth() {
    let mut deep = String::from(r#"["x"]"#);
    for _ in 0..=MAX_DEPTH {
        deep = format!(r#"{{"k": {deep}}}"#);
    }
    assert!(FilterPolicy::parse(&deep, PolicyScope::MessageBody).is_ok());
    let deeper = format!(r#"{{"k": {deep}}}"#);
    let message = error(&deeper, PolicyScope::MessageBody);
    assert!(message.contains("nested more than 32 objects deep"), "{message}");
}
