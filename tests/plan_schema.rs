//! docs/plan.schema.json against real output: a validator for the part of
//! JSON Schema the file uses (type, enum, required, properties, items,
//! $ref to $defs), which refuses any keyword it does not know, so the
//! schema cannot grow past what this checks.

use serde_json::Value;

const KNOWN: [&str; 12] = [
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "enum",
    "required",
    "properties",
    "items",
    "$ref",
    "$defs",
    "additionalProperties",
];

fn schema() -> Value {
    let text = std::fs::read_to_string(crate::common::repo().join("docs/plan.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("schema type `{other}` unknown"),
    }
}

fn check(root: &Value, s: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = match s.get("$ref").and_then(Value::as_str) {
        Some(r) => &root["$defs"][r.trim_start_matches("#/$defs/")],
        None => s,
    };
    for k in s.as_object().unwrap().keys() {
        assert!(KNOWN.contains(&k.as_str()), "the schema uses `{k}`, which this validator does not check");
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_ok(t, v),
            Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
            _ => panic!("bad type in schema"),
        };
        if !ok {
            return Err(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let (Some(req), Some(obj)) = (s.get("required").and_then(Value::as_array), v.as_object()) {
        for r in req.iter().map(|r| r.as_str().unwrap()) {
            if !obj.contains_key(r) {
                return Err(format!("{at}: `{r}` is missing"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (s.get("properties").and_then(Value::as_object), v.as_object()) {
        for (k, sub) in props {
            if let Some(x) = obj.get(k) {
                check(root, sub, x, &format!("{at}.{k}"))?;
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            check(root, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Panics with the first place `json` (deploy's stdout) breaks the schema.
pub(crate) fn assert_valid_plan(json: &str) {
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"));
    let root = schema();
    if let Err(e) = check(&root, &root, &v, "$") {
        panic!("the plan breaks docs/plan.schema.json: {e}\n{json}");
    }
}

#[test]
fn the_validator_catches_what_the_schema_forbids() {
    let ok = r#"{"format_version":1,"environment":"lab","commit":null,"changes":false,"warnings":[],"hosts":[{"host":"a","address":"a","error":"unreachable"}]}"#;
    assert_valid_plan(ok);
    let root = schema();
    for (bad, why) in [
        (ok.replace("\"format_version\":1", "\"format_version\":2"), "is not one of"),
        (ok.replace("\"address\":\"a\",", ""), "`address` is missing"),
        (ok.replace("\"changes\":false", "\"changes\":\"no\""), "is not of type"),
    ] {
        let v: Value = serde_json::from_str(&bad).unwrap();
        assert!(check(&root, &root, &v, "$").unwrap_err().contains(why), "{bad}");
    }
}
