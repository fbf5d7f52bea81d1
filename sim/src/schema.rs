//! A minimal JSON value satisfying a JSON schema: what the simulated model writes when it must
//! call a tool or answer in a schema and no directive scripts the value.

use serde_json::{Map, Value};

/// A small instance of `schema`: required properties (all, when none are listed), the first
/// enum value or alternative, empty arrays.
pub(crate) fn instance(schema: &Value) -> Value {
    let Some(obj) = schema.as_object() else { return Value::Object(Map::new()) };
    if let Some(v) = obj.get("const") {
        return v.clone();
    }
    if let Some(first) = obj.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = obj.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return instance(first);
        }
    }
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => {
            types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null")
        }
        _ if obj.contains_key("properties") => "object",
        _ => "object",
    };
    match kind {
        "string" => Value::String("text".into()),
        "integer" => Value::from(1),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        "array" => Value::Array(Vec::new()),
        _ => {
            let props = obj.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = match obj.get("required").and_then(Value::as_array) {
                Some(r) => r.iter().filter_map(Value::as_str).collect(),
                None => props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default(),
            };
            let mut out = Map::new();
            for name in required {
                let sub = props.and_then(|p| p.get(name)).unwrap_or(&Value::Null);
                out.insert(name.to_owned(), instance(sub));
            }
            Value::Object(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "boolean"}
            },
            "required": ["city", "unit", "days", "tags"]
        });
        assert_eq!(instance(&schema), json!({"city": "text", "unit": "c", "days": 1, "tags": []}));
        assert_eq!(instance(&json!({"type": ["null", "number"]})), json!(1.5));
        assert_eq!(instance(&json!({})), json!({}));
    }
}
