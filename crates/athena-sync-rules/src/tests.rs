use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::*;
use crate::eval::ValueExpr;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn req(user: &str) -> RequestParams {
    RequestParams { user_id: user.into(), token_parameters: Map::new() }
}

/// Rules with one `user_data` definition whose only data query is `data`, at line 5 of the file.
fn one_query(data: &str) -> String {
    format!("bucket_definitions:\n  user_data:\n    parameters: SELECT request.user_id() AS user_id\n    data:\n      - {data}\n")
}

fn parse_err(yaml: &str) -> RulesError {
    match SyncRules::parse(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e,
    }
}

/// Asserts the data query at line 5 is refused with a message containing `needle`.
fn rejected(data: &str, needle: &str) {
    let e = parse_err(&one_query(data));
    assert_eq!(e.line, 5, "{data}: {e}");
    assert!(e.message.contains(needle), "{data}: expected `{needle}` in `{}`", e.message);
}

fn eval_one(data: &str, row: Value) -> Map<String, Value> {
    let rules = SyncRules::parse(&one_query(data)).unwrap_or_else(|e| panic!("{data}: {e}"));
    let mut out = rules.evaluate_row("t", &obj(row));
    assert_eq!(out.len(), 1, "{data}");
    out.remove(0).data
}

#[test]
fn error_display_names_file_and_line() {
    let e = RulesError { line: 7, message: "boom".into() };
    assert_eq!(e.to_string(), "sync_rules.yaml line 7: boom");
}

#[test]
fn user_bucket_naming_and_evaluation() {
    let rules = SyncRules::parse(&one_query("SELECT id, title FROM books WHERE user_id = bucket.user_id")).unwrap();
    assert_eq!(
        rules.buckets_for(&req("u1")),
        vec![BucketRef { name: "user_data[\"u1\"]".into(), definition: "user_data".into(), priority: 3 }]
    );
    let row = obj(json!({"id": "b1", "user_id": "u1", "title": "T", "meta": "{}"}));
    let out = rules.evaluate_row("books", &row);
    assert_eq!(
        out,
        vec![EvaluatedRow {
            bucket: "user_data[\"u1\"]".into(),
            object_type: "books".into(),
            object_id: "b1".into(),
            data: obj(json!({"id": "b1", "title": "T"})),
        }]
    );
    assert_eq!(rules.buckets_of_row("books", &row), vec!["user_data[\"u1\"]".to_string()]);
    assert!(rules.evaluate_row("notes", &row).is_empty());
    assert!(rules.buckets_of_row("books", &obj(json!({"id": "b1", "user_id": null}))).is_empty());
    assert_eq!(rules.source_tables(), BTreeSet::from(["books".to_string()]));
    // An unauthenticated (empty) user id never names a bucket.
    assert!(rules.buckets_for(&req("")).is_empty());
}

#[test]
fn global_bucket_without_parameters() {
    let yaml = "bucket_definitions:\n  global:\n    priority: 1\n    data:\n      - SELECT * FROM announcements\n";
    let rules = SyncRules::parse(yaml).unwrap();
    assert_eq!(rules.buckets_for(&req("u1")), vec![BucketRef { name: "global[]".into(), definition: "global".into(), priority: 1 }]);
    let out = rules.evaluate_row("announcements", &obj(json!({"id": 5, "body": "hi", "pinned": true})));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bucket, "global[]");
    assert_eq!(out[0].object_id, "5");
    assert_eq!(out[0].data, obj(json!({"id": 5, "body": "hi", "pinned": 1})));
}

#[test]
fn several_parameters_in_declaration_order_and_token_parameters() {
    let yaml = r#"bucket_definitions:
  org_user:
    parameters:
      - SELECT token_parameters.org AS org, request.user_id() AS user_id
      - SELECT token_parameters.user_id AS user_id, token_parameters.other_org AS org
    data:
      - SELECT id FROM docs WHERE bucket.user_id = owner AND org_id = bucket.org
"#;
    let rules = SyncRules::parse(yaml).unwrap();
    let mut r = req("u1");
    r.token_parameters.insert("org".into(), json!(7.0));
    r.token_parameters.insert("other_org".into(), json!("x"));
    let names: Vec<String> = rules.buckets_for(&r).into_iter().map(|b| b.name).collect();
    // The second query lists its columns in another order; values still follow the first query's order.
    assert_eq!(names, vec![r#"org_user[7,"u1"]"#.to_string(), r#"org_user["x","u1"]"#.to_string()]);
    // Missing token parameters produce no bucket for that parameter row.
    r.token_parameters.remove("org");
    let names: Vec<String> = rules.buckets_for(&r).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec![r#"org_user["x","u1"]"#.to_string()]);
    // token_parameters.user_id wins over the fallback when present.
    r.token_parameters.insert("user_id".into(), json!("tok"));
    let names: Vec<String> = rules.buckets_for(&r).into_iter().map(|b| b.name).collect();
    assert_eq!(names, vec![r#"org_user["x","tok"]"#.to_string()]);
    // Objects are not bucket parameter values.
    r.token_parameters.insert("other_org".into(), json!({"a": 1}));
    assert!(rules.buckets_for(&r).is_empty());

    let row = obj(json!({"id": "d", "owner": "u1", "org_id": 7}));
    assert_eq!(rules.buckets_of_row("docs", &row), vec![r#"org_user[7,"u1"]"#.to_string()]);
}

#[test]
fn token_user_id_falls_back_to_request_user() {
    let yaml = "bucket_definitions:\n  user_data:\n    parameters: SELECT token_parameters.user_id AS user_id\n    data:\n      - SELECT id FROM books WHERE user_id = bucket.user_id\n";
    let rules = SyncRules::parse(yaml).unwrap();
    assert_eq!(rules.buckets_for(&req("u9"))[0].name, "user_data[\"u9\"]");
}

#[test]
fn projection_forms() {
    let row = json!({
        "id": "r1", "user_id": "u1", "a": "5", "b": 2.75, "flag": false,
        "meta": "{\"page_count\": \"321\", \"toc\": [1, 2], \"lang\": \"en\", \"n\": {\"x\": true}}",
        "doc": {"k": [10, 20]},
    });
    let q = "SELECT id, a, a AS renamed, CAST(a AS INTEGER) AS a_int, b::int AS b_int, b::text AS b_text, \
             CAST(a AS REAL) AS a_real, CAST('3.0' AS NUMERIC) AS num, flag, \
             (meta->>'page_count')::int AS page_count, meta ->> 'lang' AS lang, meta -> 'toc' AS toc, \
             meta -> 'lang' AS lang_json, meta ->> 'n' AS n, meta ->> '$.n.x' AS nx, doc ->> '$.k[1]' AS k1, \
             doc -> 'k' ->> 0 AS k0, meta ->> 'missing' AS missing, t.user_id AS owner \
             FROM t WHERE user_id = bucket.user_id";
    let data = eval_one(q, row);
    let expected = json!({
        "id": "r1", "a": "5", "renamed": "5", "a_int": 5, "b_int": 2, "b_text": "2.75", "a_real": 5.0, "num": 3,
        "flag": 0, "page_count": 321, "lang": "en", "toc": "[1,2]", "lang_json": "\"en\"", "n": "{\"x\":true}",
        "nx": 1, "k1": 20, "k0": 10, "missing": null, "owner": "u1",
    });
    assert_eq!(Value::Object(data), expected);
}

#[test]
fn booleans_become_integers_and_nulls_stay() {
    let data = eval_one(
        "SELECT * FROM t WHERE user_id = bucket.user_id",
        json!({"id": "x", "user_id": "u1", "t": true, "f": false, "n": null, "o": {"a": 1}}),
    );
    assert_eq!(Value::Object(data), json!({"id": "x", "user_id": "u1", "t": 1, "f": 0, "n": null, "o": "{\"a\":1}"}));
}

#[test]
fn literal_filters() {
    let rules =
        SyncRules::parse(&one_query("SELECT id FROM t WHERE user_id = bucket.user_id AND (kind = 'a' AND 2 = n AND live = true)")).unwrap();
    let yes = obj(json!({"id": "1", "user_id": "u", "kind": "a", "n": 2.0, "live": true}));
    assert_eq!(rules.buckets_of_row("t", &yes), vec!["user_data[\"u\"]".to_string()]);
    for bad in [json!({"kind": "b"}), json!({"n": "2"}), json!({"live": 0.5}), json!({"kind": null})] {
        let mut row = yes.clone();
        row.extend(obj(bad));
        assert!(rules.evaluate_row("t", &row).is_empty(), "{row:?}");
    }
}

#[test]
fn numeric_parameters_and_case_insensitive_names() {
    let rules = SyncRules::parse(&one_query("SELECT id, Title FROM Books WHERE User_Id = bucket.user_id")).unwrap();
    let out = rules.evaluate_row("books", &obj(json!({"id": 12, "title": "x", "user_id": 4.0})));
    assert_eq!(out[0].bucket, "user_data[4]");
    assert_eq!(out[0].object_id, "12");
    assert_eq!(out[0].data, obj(json!({"id": 12, "Title": "x"})));
    assert_eq!(rules.source_tables(), BTreeSet::from(["books".to_string()]));
}

#[test]
fn rows_without_id_are_skipped() {
    let rules = SyncRules::parse(&one_query("SELECT * FROM t WHERE user_id = bucket.user_id")).unwrap();
    assert!(rules.evaluate_row("t", &obj(json!({"user_id": "u"}))).is_empty());
    assert!(rules.evaluate_row("t", &obj(json!({"id": null, "user_id": "u"}))).is_empty());
}

#[test]
fn same_parameter_bound_twice_must_agree() {
    let rules = SyncRules::parse(&one_query("SELECT id FROM t WHERE a = bucket.user_id AND b = bucket.user_id")).unwrap();
    assert_eq!(rules.buckets_of_row("t", &obj(json!({"id": "1", "a": "u", "b": "u"}))).len(), 1);
    assert!(rules.buckets_of_row("t", &obj(json!({"id": "1", "a": "u", "b": "v"}))).is_empty());
}

#[test]
fn duplicate_queries_give_one_object_per_bucket() {
    let yaml = "bucket_definitions:\n  d:\n    data:\n      - SELECT id, a FROM t\n      - SELECT id, b FROM t\n";
    let rules = SyncRules::parse(yaml).unwrap();
    let out = rules.evaluate_row("t", &obj(json!({"id": "1", "a": 1, "b": 2})));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].data, obj(json!({"id": "1", "a": 1})));
}

#[test]
fn rejected_data_query_constructs_name_the_construct_and_line() {
    let cases: &[(&str, &str)] = &[
        ("SELECT id FROM a JOIN b ON a.x = b.y WHERE a.user_id = bucket.user_id", "JOIN"),
        ("SELECT id FROM a, b WHERE user_id = bucket.user_id", "multiple tables"),
        ("SELECT id FROM (SELECT * FROM t) WHERE user_id = bucket.user_id", "subqueries"),
        ("SELECT id FROM t WHERE user_id IN (SELECT id FROM u) AND user_id = bucket.user_id", "subqueries"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id OR x = 1", "OR"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n > 3", "operator `>`"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n <> 3", "operator `<>`"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n IS NULL", "IS NULL"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n IN (1, 2)", "IN (...)"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n LIKE 'a%'", "LIKE"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n BETWEEN 1 AND 2", "BETWEEN"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND n = NULL", "NULL"),
        ("SELECT id FROM t WHERE user_id = bucket.org_id", "unknown bucket parameter `bucket.org_id`"),
        ("SELECT id FROM t WHERE user_id = 'u1'", "missing `... = bucket.user_id`"),
        ("SELECT id FROM t", "missing `... = bucket.user_id`"),
        ("SELECT id FROM t WHERE bucket.user_id = bucket.user_id", "must compare a column"),
        ("SELECT id, count(*) AS c FROM t WHERE user_id = bucket.user_id GROUP BY id", "GROUP BY"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id LIMIT 5", "LIMIT"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id ORDER BY id", "ORDER BY"),
        ("SELECT DISTINCT id FROM t WHERE user_id = bucket.user_id", "DISTINCT"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id UNION SELECT id FROM u WHERE user_id = bucket.user_id", "UNION"),
        ("WITH x AS (SELECT 1) SELECT id FROM t WHERE user_id = bucket.user_id", "WITH"),
        ("SELECT id, upper(title) AS t FROM t WHERE user_id = bucket.user_id", "function `upper`"),
        ("SELECT id, title || 'x' AS t FROM t WHERE user_id = bucket.user_id", "operator `||`"),
        ("SELECT id, CASE WHEN a THEN 1 END AS c FROM t WHERE user_id = bucket.user_id", "CASE"),
        ("SELECT id, CAST(a AS BLOB) AS c FROM t WHERE user_id = bucket.user_id", "cast to `BLOB`"),
        ("SELECT id, a::date AS c FROM t WHERE user_id = bucket.user_id", "cast to `DATE`"),
        ("SELECT id, CAST(a AS INTEGER) FROM t WHERE user_id = bucket.user_id", "needs an alias"),
        ("SELECT id, meta ->> upper('a') AS c FROM t WHERE user_id = bucket.user_id", "right side of -> / ->>"),
        ("SELECT id, meta ->> '$..x' AS c FROM t WHERE user_id = bucket.user_id", "JSON path"),
        ("SELECT id, bucket.user_id AS u FROM t WHERE user_id = bucket.user_id", "bucket parameter"),
        ("SELECT id, other.x AS u FROM t WHERE user_id = bucket.user_id", "unknown column reference"),
        ("SELECT title FROM t WHERE user_id = bucket.user_id", "`id` column"),
        ("SELECT id, id FROM t WHERE user_id = bucket.user_id", "duplicate output column `id`"),
        ("SELECT t.* FROM t WHERE user_id = bucket.user_id", "unsupported projection `t.*`"),
        ("SELECT id FROM t AS x WHERE user_id = bucket.user_id", "table aliases"),
        ("SELECT id FROM public.t WHERE user_id = bucket.user_id", "schema-qualified"),
        ("SELECT id FROM generate_series(1, 3) WHERE user_id = bucket.user_id", "unsupported table reference"),
        ("SELECT 1 AS id WHERE 1 = bucket.user_id", "FROM <table>"),
        ("DELETE FROM t WHERE user_id = bucket.user_id", "only SELECT"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id; SELECT 1", "exactly one SQL statement"),
        ("SELEC id FROM t", "SQL syntax error"),
        ("SELECT id FROM t WHERE user_id = bucket.user_id AND exists_flag", "unsupported filter expression"),
    ];
    for (sql, needle) in cases {
        rejected(sql, needle);
    }
}

#[test]
fn rejected_parameter_queries() {
    let cases: &[(&str, &str)] = &[
        ("SELECT id AS user_id FROM users WHERE id = request.user_id()", "FROM"),
        ("SELECT request.user_id()", "needs an alias"),
        ("SELECT request.jwt() AS user_id", "function `request.jwt`"),
        ("SELECT request.user_id() AS user_id WHERE 1 = 1", "WHERE"),
        ("SELECT 'x' AS user_id", "unsupported parameter expression"),
        ("SELECT request.user_id() AS user_id, request.user_id() AS user_id", "duplicate parameter name"),
        ("SELECT *", "no `*`"),
    ];
    for (sql, needle) in cases {
        let yaml = format!("bucket_definitions:\n  b:\n    parameters: {sql}\n    data: []\n");
        let e = parse_err(&yaml);
        assert_eq!(e.line, 3, "{sql}: {e}");
        assert!(e.message.contains(needle), "{sql}: expected `{needle}` in `{}`", e.message);
    }
    // All queries of a list must produce the same names; the line is that of the offending query.
    let yaml = "bucket_definitions:\n  b:\n    parameters:\n      - SELECT request.user_id() AS user_id\n      - SELECT token_parameters.org AS org\n    data: []\n";
    let e = parse_err(yaml);
    assert_eq!((e.line, e.message.contains("user_id")), (5, true), "{e}");
    let yaml = "bucket_definitions:\n  b:\n    parameters:\n      - SELECT request.user_id() AS user_id\n      - SELECT request.user_id() AS user_id, token_parameters.o AS o\n    data: []\n";
    assert_eq!(parse_err(yaml).line, 5);
}

#[test]
fn yaml_structure_errors_name_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "empty"),
        ("# only a comment\n", 1, "empty"),
        ("- a\n- b\n", 1, "expected a mapping"),
        ("foo: 1\n", 1, "unknown key `foo`"),
        ("bucket_definitions: {}\nstreams:\n  s:\n    query: SELECT * FROM t\n", 2, "sync streams are not supported"),
        ("config:\n  edition: 2\n", 1, "unknown key `config`"),
        ("bucket_definitions:\n", 1, "must be a mapping"),
        ("bucket_definitions:\n  a:\n    data: []\n  a:\n    data: []\n", 4, "duplicate key `a`"),
        ("bucket_definitions:\n  a:\n    data: []\n    parametrs: SELECT 1 AS x\n", 4, "unknown key `parametrs`"),
        ("bucket_definitions:\n  a:\n    priority: 1\n", 2, "no `data:`"),
        ("bucket_definitions:\n  a:\n    data: SELECT id FROM t\n", 3, "must be a list"),
        ("bucket_definitions:\n  a:\n    data:\n      - {x: 1}\n", 4, "must be an SQL query string"),
        ("bucket_definitions:\n  a:\n    data:\n      -\n", 4, "must be an SQL query string"),
        ("bucket_definitions:\n  a:\n    priority: 4\n    data: []\n", 3, "priority"),
        ("bucket_definitions:\n  a:\n    priority: high\n    data: []\n", 3, "priority"),
        ("bucket_definitions:\n  a:\n    parameters: []\n    data: []\n", 3, "list is empty"),
        ("bucket_definitions:\n  a b:\n    data: []\n", 2, "may only use"),
        ("bucket_definitions:\n  a: 1\n", 2, "must be a mapping"),
        ("bucket_definitions:\n  a:\n    data: [\n", 4, "invalid YAML"),
        ("bucket_definitions:\n  a: &x\n    data: []\n  b: *x\n", 2, "anchors"),
        ("bucket_definitions: {}\n---\nfoo: 1\n", 2, "one YAML document"),
    ];
    for (yaml, line, needle) in cases {
        let e = parse_err(yaml);
        assert_eq!(e.line, *line, "{yaml:?}: {e}");
        assert!(e.message.contains(needle), "{yaml:?}: expected `{needle}` in `{}`", e.message);
    }
}

#[test]
fn block_scalar_queries_report_their_first_line() {
    let yaml =
        "bucket_definitions:\n  a:\n    data:\n      - SELECT id FROM t\n      - >-\n        SELECT id\n        FROM t WHERE x > 1\n";
    let e = parse_err(yaml);
    assert_eq!(e.line, 6, "{e}");
    let yaml = "bucket_definitions:\n  a:\n    data:\n      - |\n        SELECT id FROM t\n        ORDER BY id\n";
    assert_eq!(parse_err(yaml).line, 5);
    let yaml = "bucket_definitions:\n  a:\n    data:\n      - \"SELECT id FROM t LIMIT 1\"\n";
    assert_eq!(parse_err(yaml).line, 4);
}

#[test]
fn version_tracks_semantics_not_formatting() {
    let base = SyncRules::parse(&one_query("SELECT id, title FROM books WHERE user_id = bucket.user_id")).unwrap();
    assert_eq!(base.version().len(), 64);
    let reformatted =
        SyncRules::parse("# comment\nbucket_definitions:\n  user_data:\n    parameters: select request.user_id() as user_id\n    data:\n      - >\n        select id,   title\n        from books where user_id = bucket.user_id\n")
            .unwrap();
    assert_eq!(base.version(), reformatted.version());
    for changed in [
        one_query("SELECT id, title AS name FROM books WHERE user_id = bucket.user_id"),
        one_query("SELECT id FROM books WHERE user_id = bucket.user_id"),
        one_query("SELECT id, title FROM books WHERE owner = bucket.user_id"),
        one_query("SELECT id, title FROM books WHERE user_id = bucket.user_id").replace("request.user_id()", "token_parameters.user_id"),
        one_query("SELECT id, title FROM books WHERE user_id = bucket.user_id").replace("    data:", "    priority: 1\n    data:"),
        one_query("SELECT id, title FROM books WHERE user_id = bucket.user_id").replace("user_data", "user_data2"),
    ] {
        let other = SyncRules::parse(&changed).unwrap();
        assert_ne!(base.version(), other.version(), "{changed}");
    }
}

/// Cheap deterministic generator: no extra dependency for a property test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

#[test]
fn parse_never_panics_on_garbled_input() {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/sync_rules.yaml")).unwrap();
    let pieces = [
        "bucket_definitions:",
        "\n",
        "  ",
        "    ",
        "- ",
        ":",
        "{",
        "}",
        "[",
        "]",
        "'",
        "\"",
        "|",
        ">",
        "&a",
        "*a",
        "!!str ",
        "#",
        "---",
        "SELECT ",
        "request.user_id()",
        " AS ",
        "FROM ",
        "WHERE ",
        "bucket.",
        "->>",
        "->",
        "::int",
        "(",
        ")",
        "CAST(",
        "=",
        " AND ",
        "OR ",
        "id",
        "user_id",
        "priority: ",
        "9",
        "-1",
        "parameters: ",
        "data:",
        "\t",
        "\u{0}",
        "é",
        "\\",
        ",",
        ";",
        "%",
        "@",
    ];
    let mut rng = Lcg(42);
    let mut inputs: Vec<String> = Vec::new();
    for _ in 0..1500 {
        let n = 1 + rng.next() % 60;
        inputs.push((0..n).map(|_| rng.pick(&pieces)).collect());
    }
    // Mutations of a valid file: deletions, duplications and insertions at random char boundaries.
    let chars: Vec<char> = seed.chars().collect();
    for _ in 0..1500 {
        let mut c = chars.clone();
        for _ in 0..(1 + rng.next() % 8) {
            let i = (rng.next() as usize) % c.len().max(1);
            match rng.next() % 3 {
                0 if !c.is_empty() => {
                    c.remove(i);
                }
                1 => {
                    let ins: Vec<char> = rng.pick(&pieces).chars().collect();
                    c.splice(i..i, ins);
                }
                _ => {
                    let j = (i + (rng.next() as usize) % 40).min(c.len());
                    let dup: Vec<char> = c[i..j].to_vec();
                    c.splice(i..i, dup);
                }
            }
        }
        inputs.push(c.into_iter().collect());
    }
    inputs.push("[".repeat(10_000));
    inputs.push("a:\n".to_string() + &" b:\n".repeat(1000));
    inputs.push(one_query(&format!("SELECT id FROM t WHERE {}user_id = bucket.user_id{}", "(".repeat(500), ")".repeat(500))));
    for input in &inputs {
        let result = std::panic::catch_unwind(|| SyncRules::parse(input));
        match result {
            Ok(Ok(rules)) => {
                // Whatever parsed must also evaluate without panicking.
                let _ = rules.buckets_for(&req("u1"));
                let _ = rules.evaluate_row("books", &obj(json!({"id": "1", "user_id": "u1", "meta": "{"})));
            }
            Ok(Err(e)) => assert!(e.line >= 1 && e.line <= input.lines().count().max(1) + 1, "{input:?}: {e}"),
            Err(_) => panic!("parse panicked on {input:?}"),
        }
    }
}

// ---------- the shipped rules ----------

const DEPLOYED: &str = include_str!("../../../deploy/sync_rules.yaml");
const MIGRATION: &str = include_str!("../../athena-store-sqlite/migrations/0001_init.sql");

/// Server columns per table, read from the SQLite migration (one column per line inside CREATE TABLE).
fn migration_columns() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in MIGRATION.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("CREATE TABLE ") {
            current = rest.split_whitespace().next().map(str::to_string);
            out.insert(current.clone().unwrap(), BTreeSet::new());
        } else if t.starts_with(");") {
            current = None;
        } else if let Some(table) = &current {
            let first = t.split_whitespace().next().unwrap_or("");
            if !first.is_empty() && !first.starts_with("--") && !matches!(first, "UNIQUE" | "PRIMARY" | "FOREIGN" | "CHECK") {
                out.get_mut(table).unwrap().insert(first.to_string());
            }
        }
    }
    out
}

/// Client column names of DATA-MODEL.md, plus `id`.
fn client_columns() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        (
            "books",
            vec![
                "user_id",
                "title",
                "author",
                "cover_url",
                "file_type",
                "file_size",
                "original_content_sha256",
                "content_sha256",
                "storage_key",
                "metadata_confirmed",
                "is_digitalized",
                "initial_digitalization_confidence",
                "page_count",
                "ocr_status",
                "conversion_status",
                "converted_epub_key",
                "created_at",
                "updated_at",
                "deleted_at",
            ],
        ),
        (
            "reading_progress",
            vec![
                "user_id",
                "book_id",
                "device_id",
                "progress",
                "last_position",
                "last_location",
                "finished_at",
                "updated_at",
                "tts_chapter_index",
                "tts_position_ms",
                "tts_last_played_at",
            ],
        ),
        ("reading_sessions", vec!["user_id", "book_id", "device_id", "is_active", "total_ms", "created_at", "updated_at"]),
        (
            "notes",
            vec![
                "user_id",
                "book_id",
                "device_id",
                "content",
                "page_number",
                "position_cfi",
                "color",
                "conflict_of",
                "is_deleted",
                "deleted_at",
                "created_at",
                "updated_at",
            ],
        ),
        (
            "highlights",
            vec![
                "user_id",
                "book_id",
                "device_id",
                "text",
                "page_number",
                "position_start_cfi",
                "position_end_cfi",
                "color",
                "conflict_of",
                "is_deleted",
                "deleted_at",
                "created_at",
                "updated_at",
            ],
        ),
        (
            "bookmarks",
            vec![
                "user_id",
                "book_id",
                "device_id",
                "title",
                "page_number",
                "position_cfi",
                "is_deleted",
                "deleted_at",
                "created_at",
                "updated_at",
            ],
        ),
        (
            "shelves",
            vec!["user_id", "name", "description", "cover_url", "sort_order", "is_deleted", "deleted_at", "created_at", "updated_at"],
        ),
        ("shelf_books", vec!["user_id", "shelf_id", "book_id", "sort_order", "added_at"]),
        ("user_settings", vec!["user_id", "device_id", "settings_json", "updated_at"]),
        (
            "reading_settings",
            vec![
                "user_id",
                "book_id",
                "device_id",
                "theme_id",
                "background_color",
                "text_color",
                "font_family",
                "font_size",
                "font_weight",
                "line_height",
                "paragraph_spacing",
                "margin_horizontal",
                "text_align",
                "hyphenation",
                "is_deleted",
                "deleted_at",
                "created_at",
                "updated_at",
            ],
        ),
    ])
}

fn read_columns(e: &ValueExpr, out: &mut Vec<String>) {
    match e {
        ValueExpr::Column(c) => out.push(c.clone()),
        ValueExpr::Literal(_) => {}
        ValueExpr::Cast(inner, _) => read_columns(inner, out),
        ValueExpr::Json { base, .. } => read_columns(base, out),
    }
}

#[test]
fn deployed_rules_select_exactly_the_client_columns_from_existing_server_columns() {
    let rules = SyncRules::parse(DEPLOYED).unwrap_or_else(|e| panic!("{e}"));
    let server = migration_columns();
    let client = client_columns();
    assert_eq!(rules.source_tables(), client.keys().map(|s| s.to_string()).collect::<BTreeSet<_>>());
    assert_eq!(rules.definitions.len(), 1);
    let def = &rules.definitions[0];
    assert_eq!((def.name.as_str(), def.priority, def.params.as_slice()), ("user_data", 3, &["user_id".to_string()][..]));
    for q in &def.data {
        let mut outputs = Vec::new();
        for item in &q.projection {
            let ProjItem::Named(name, expr) = item else { panic!("{}: no wildcards in the shipped rules", q.table) };
            outputs.push(name.as_str());
            let mut cols = Vec::new();
            read_columns(expr, &mut cols);
            for c in cols {
                assert!(server[&q.table].contains(&c), "{}.{c} is not a server column", q.table);
            }
        }
        let mut expected = vec!["id"];
        expected.extend(&client[q.table.as_str()]);
        assert_eq!(outputs, expected, "{}", q.table);
        match q.filters.as_slice() {
            [Filter::Param(ValueExpr::Column(c), 0)] => assert_eq!(c, "user_id", "{}", q.table),
            other => panic!("{}: unexpected filters {other:?}", q.table),
        }
    }
}

#[test]
fn deployed_rules_put_a_book_into_the_owners_bucket() {
    let rules = SyncRules::parse(DEPLOYED).unwrap();
    assert_eq!(rules.buckets_for(&req("u1"))[0].name, "user_data[\"u1\"]");
    let book = obj(json!({
        "id": "b1", "user_id": "u1", "title": "Dune", "author": "Herbert", "language": "en",
        "cover_image_key": "covers/b1.webp", "original_format": "epub", "size": 1234,
        "original_content_sha256": "aa", "content_sha256": "bb", "minio_key": "users/u1/x/dune.epub",
        "metadata_confirmed": true, "is_digitalized": null, "initial_digitalization_confidence": 0.5,
        "page_count": 412, "ocr_status": null, "conversion_status": "completed", "converted_epub_key": null,
        "meta": "{\"page_count\": 412}", "canonical_book_id": null, "source_etag": null, "ocr_result_key": null,
        "vector_indexed_at": null, "version": 3, "created_at": "2024-01-01T00:00:00.000000Z",
        "updated_at": "2024-01-02T00:00:00.000000Z", "deleted_at": null,
    }));
    let out = rules.evaluate_row("books", &book);
    assert_eq!(out.len(), 1);
    let r = &out[0];
    assert_eq!((r.bucket.as_str(), r.object_type.as_str(), r.object_id.as_str()), ("user_data[\"u1\"]", "books", "b1"));
    assert_eq!(r.data["cover_url"], json!("covers/b1.webp"));
    assert_eq!(r.data["file_type"], json!("epub"));
    assert_eq!(r.data["file_size"], json!(1234));
    assert_eq!(r.data["storage_key"], json!("users/u1/x/dune.epub"));
    assert_eq!(r.data["metadata_confirmed"], json!(1));
    for server_only in ["meta", "minio_key", "cover_image_key", "canonical_book_id", "version", "language"] {
        assert!(!r.data.contains_key(server_only), "{server_only} must not reach clients");
    }
    assert_eq!(rules.buckets_of_row("books", &book), vec!["user_data[\"u1\"]".to_string()]);
    let mut other = book.clone();
    other.insert("user_id".into(), json!("u2"));
    assert_eq!(rules.buckets_of_row("books", &other), vec!["user_data[\"u2\"]".to_string()]);
}
