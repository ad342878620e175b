//! Sync rules: parses `sync_rules.yaml` (PowerSync's `bucket_definitions` format), tells which buckets a connection
//! subscribes to, and which buckets and output rows one source row belongs to. It owns the supported SQL subset and
//! its evaluation semantics (SQLite-like: booleans are 0/1, nested JSON is text); anything outside the subset is a
//! [`RulesError`] with the YAML line, never a guess, because a misread rule leaks rows into another user's bucket.
//! It must not know about storage, the op log, HTTP or tokens: callers hand it plain JSON rows and request
//! parameters, and it does no IO.

mod eval;
mod sql;
mod yaml;

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::sql::{DataQuery, Filter, ParamSource, ProjItem};
use crate::yaml::{Kind, Node};

/// A problem in the rules file, located by its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    pub line: usize,
    pub message: String,
}

impl RulesError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        RulesError { line, message: message.into() }
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sync_rules.yaml line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for RulesError {}

/// What a connection's parameter queries can see.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    pub user_id: String,
    pub token_parameters: Map<String, Value>,
}

/// One bucket a connection subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRef {
    /// `definition[params...]`, e.g. `user_data["u1"]`.
    pub name: String,
    /// The bucket definition it comes from.
    pub definition: String,
    pub priority: u8,
}

/// One output row of one data query, in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluatedRow {
    pub bucket: String,
    pub object_type: String,
    pub object_id: String,
    pub data: Map<String, Value>,
}

#[derive(Debug, Clone)]
struct Definition {
    name: String,
    priority: u8,
    /// Parameter names in declaration order (the order of values in bucket names).
    params: Vec<String>,
    /// One entry per parameter query, its sources reordered to `params`' order.
    parameter_queries: Vec<Vec<ParamSource>>,
    data: Vec<DataQuery>,
}

/// Parsed, validated sync rules.
#[derive(Debug, Clone)]
pub struct SyncRules {
    definitions: Vec<Definition>,
    version: String,
}

const DEFAULT_PRIORITY: u8 = 3;

impl SyncRules {
    /// Parses and validates the whole file; the first problem found is returned with its line.
    pub fn parse(yaml: &str) -> Result<SyncRules, RulesError> {
        let Some(root) = yaml::parse(yaml)? else {
            return Err(RulesError::new(1, "sync rules are empty: expected `bucket_definitions:`"));
        };
        let Kind::Map(entries) = &root.kind else {
            return Err(RulesError::new(root.line, format!("expected a mapping with `bucket_definitions:`, found {}", root.describe())));
        };
        let mut definitions_node = None;
        let mut seen = BTreeSet::new();
        for (key, value) in entries {
            let key_name = scalar_key(key, &mut seen)?;
            match key_name {
                "bucket_definitions" => definitions_node = Some((key, value)),
                "streams" => return Err(RulesError::new(key.line, "sync streams are not supported (use `bucket_definitions:`)")),
                other => return Err(RulesError::new(key.line, format!("unknown key `{other}` (expected `bucket_definitions`)"))),
            }
        }
        let Some((defs_key, defs)) = definitions_node else {
            return Err(RulesError::new(root.line, "missing `bucket_definitions:`"));
        };
        let Kind::Map(defs) = &defs.kind else {
            return Err(RulesError::new(defs_key.line, format!("`bucket_definitions` must be a mapping, found {}", defs.describe())));
        };
        let mut seen = BTreeSet::new();
        let mut definitions = Vec::with_capacity(defs.len());
        for (key, body) in defs {
            let name = scalar_key(key, &mut seen)?;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                // Bucket names are `name[...]`; other characters would make them ambiguous to parse or log.
                return Err(RulesError::new(
                    key.line,
                    format!("bucket definition name `{name}` may only use letters, digits, `_` and `-`"),
                ));
            }
            definitions.push(parse_definition(name, key.line, body)?);
        }
        let version = version_of(&definitions);
        Ok(SyncRules { definitions, version })
    }

    /// Stable hash of the semantic content: SHA-256 hex over the definitions in canonical SQL form, sorted, so that
    /// comments, whitespace and order do not count, but any change to a query, parameter or priority does.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The buckets a connection with these request parameters subscribes to (one per definition per parameter row).
    /// A parameter row with a missing or non-scalar value yields no bucket: guessing a value could expose another
    /// user's bucket.
    pub fn buckets_for(&self, req: &RequestParams) -> Vec<BucketRef> {
        let mut out: Vec<BucketRef> = Vec::new();
        for def in &self.definitions {
            let mut push = |values: Vec<Value>| {
                let name = bucket_name(&def.name, values);
                if !out.iter().any(|b| b.name == name) {
                    out.push(BucketRef { name, definition: def.name.clone(), priority: def.priority });
                }
            };
            if def.parameter_queries.is_empty() {
                push(Vec::new());
                continue;
            }
            for query in &def.parameter_queries {
                if let Some(values) = query.iter().map(|s| resolve_param(s, req)).collect::<Option<Vec<_>>>() {
                    push(values);
                }
            }
        }
        out
    }

    /// For one row of a source table (all columns as a JSON object, as the database has them), every
    /// (bucket, output row) it belongs to. Rows without an `id` produce nothing: clients cannot store them.
    pub fn evaluate_row(&self, table: &str, row: &Map<String, Value>) -> Vec<EvaluatedRow> {
        let mut out: Vec<EvaluatedRow> = Vec::new();
        for (def, query) in self.queries_for(table) {
            let Some(bucket) = bucket_of(def, query, row) else { continue };
            let data = project(query, row);
            let Some(object_id) = id_text(data.get("id")) else { continue };
            // Two queries of one definition may select the same row; a bucket holds an object once.
            if out.iter().any(|r| r.bucket == bucket && r.object_type == query.table && r.object_id == object_id) {
                continue;
            }
            out.push(EvaluatedRow { bucket, object_type: query.table.clone(), object_id, data });
        }
        out
    }

    /// The bucket names a row of `table` belongs to, from its column values (used for REMOVE ops on delete / when
    /// a row moves out of a bucket).
    pub fn buckets_of_row(&self, table: &str, row: &Map<String, Value>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (def, query) in self.queries_for(table) {
            if let Some(bucket) = bucket_of(def, query, row) {
                if !out.contains(&bucket) {
                    out.push(bucket);
                }
            }
        }
        out
    }

    /// Source tables referenced by data queries.
    pub fn source_tables(&self) -> BTreeSet<String> {
        self.definitions.iter().flat_map(|d| d.data.iter().map(|q| q.table.clone())).collect()
    }

    fn queries_for<'a>(&'a self, table: &'a str) -> impl Iterator<Item = (&'a Definition, &'a DataQuery)> + 'a {
        self.definitions.iter().flat_map(|d| d.data.iter().map(move |q| (d, q))).filter(move |(_, q)| q.table.eq_ignore_ascii_case(table))
    }
}

/// A mapping key as text; duplicates are refused because YAML parsers disagree on which one wins.
fn scalar_key<'a>(key: &'a Node, seen: &mut BTreeSet<&'a str>) -> Result<&'a str, RulesError> {
    let Kind::Scalar(name, _) = &key.kind else {
        return Err(RulesError::new(key.line, format!("expected a name as mapping key, found {}", key.describe())));
    };
    if name.is_empty() {
        return Err(RulesError::new(key.line, "empty mapping key"));
    }
    if !seen.insert(name.as_str()) {
        return Err(RulesError::new(key.line, format!("duplicate key `{name}`")));
    }
    Ok(name)
}

fn sql_text(node: &Node, what: &str) -> Result<String, RulesError> {
    match &node.kind {
        Kind::Scalar(s, _) if !node.is_null() && !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(RulesError::new(node.line, format!("{what} must be an SQL query string, found {}", node.describe()))),
    }
}

fn parse_definition(name: &str, line: usize, body: &Node) -> Result<Definition, RulesError> {
    let Kind::Map(entries) = &body.kind else {
        return Err(RulesError::new(line, format!("bucket definition `{name}` must be a mapping, found {}", body.describe())));
    };
    let mut seen = BTreeSet::new();
    let (mut parameters, mut data, mut priority) = (None, None, None);
    for (key, value) in entries {
        match scalar_key(key, &mut seen)? {
            "parameters" => parameters = Some((key, value)),
            "data" => data = Some((key, value)),
            "priority" => priority = Some((key, value)),
            other => {
                return Err(RulesError::new(
                    key.line,
                    format!("unknown key `{other}` in bucket definition `{name}` (expected parameters, data, priority)"),
                ))
            }
        }
    }

    let priority = match priority {
        None => DEFAULT_PRIORITY,
        Some((_, v)) => match &v.kind {
            Kind::Scalar(s, true) => match s.parse::<u8>() {
                Ok(p) if p <= 3 => p,
                _ => return Err(RulesError::new(v.line, format!("priority must be an integer from 0 to 3, found `{s}`"))),
            },
            _ => return Err(RulesError::new(v.line, format!("priority must be an integer from 0 to 3, found {}", v.describe()))),
        },
    };

    // Parameter queries: none (a global bucket), one string, or a list whose queries all yield the same names.
    let param_nodes: Vec<&Node> = match parameters {
        None => Vec::new(),
        Some((_, v)) => match &v.kind {
            Kind::Seq(items) if items.is_empty() => return Err(RulesError::new(v.line, "`parameters` list is empty")),
            Kind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        },
    };
    let mut params: Vec<String> = Vec::new();
    let mut parameter_queries = Vec::new();
    let mut canonical = Vec::new();
    for (i, node) in param_nodes.iter().enumerate() {
        let text = sql_text(node, "a parameter query")?;
        let query = sql::compile_parameter_query(&text).map_err(|m| RulesError::new(node.line, m))?;
        if i == 0 {
            params = query.columns.iter().map(|(n, _)| n.clone()).collect();
        }
        let mut sources = Vec::with_capacity(params.len());
        for p in &params {
            match query.columns.iter().find(|(n, _)| n == p) {
                Some((_, s)) => sources.push(s.clone()),
                None => return Err(RulesError::new(node.line, format!("parameter query does not produce `{p}` like the first one does"))),
            }
        }
        if query.columns.len() != params.len() {
            return Err(RulesError::new(node.line, "every parameter query must produce the same parameter names"));
        }
        parameter_queries.push(sources);
        canonical.push(query.canonical);
    }

    let Some((data_key, data_node)) = data else {
        return Err(RulesError::new(line, format!("bucket definition `{name}` has no `data:` queries")));
    };
    let Kind::Seq(items) = &data_node.kind else {
        return Err(RulesError::new(data_key.line, format!("`data` must be a list of SQL queries, found {}", data_node.describe())));
    };
    let mut queries = Vec::with_capacity(items.len());
    for node in items {
        let text = sql_text(node, "a data query")?;
        queries.push(sql::compile_data_query(&text, &params).map_err(|m| RulesError::new(node.line, m))?);
    }
    Ok(Definition { name: name.to_string(), priority, params, parameter_queries, data: queries })
}

fn version_of(definitions: &[Definition]) -> String {
    let mut defs: Vec<String> = definitions
        .iter()
        .map(|d| {
            let mut params: Vec<String> = d.parameter_queries.iter().map(|q| format!("{q:?}")).collect();
            params.sort();
            let mut data: Vec<&str> = d.data.iter().map(|q| q.canonical.as_str()).collect();
            data.sort();
            format!("bucket {}\npriority {}\nparams {:?}\nsources {:?}\ndata {:?}\n", d.name, d.priority, d.params, params, data)
        })
        .collect();
    defs.sort();
    let mut hasher = Sha256::new();
    // The format tag lets a change of evaluation semantics force new versions too.
    hasher.update(b"athena-sync-rules/1\n");
    for d in defs {
        hasher.update(d.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn bucket_name(definition: &str, values: Vec<Value>) -> String {
    format!("{definition}{}", Value::Array(values))
}

/// A bucket parameter value as it appears in a bucket name: strings and numbers (integral numbers as integers, so
/// that `5` and `5.0` name one bucket); booleans as 0/1 like the rows; anything else has no bucket.
fn param_value(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) => Some(v.clone()),
        Value::Number(n) => Some(Value::Number(integral(n))),
        Value::Bool(b) => Some(Value::from(u8::from(*b))),
        _ => None,
    }
}

fn integral(n: &Number) -> Number {
    match n.as_f64() {
        Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Number::from(f as i64),
        _ => n.clone(),
    }
}

fn resolve_param(source: &ParamSource, req: &RequestParams) -> Option<Value> {
    match source {
        // An empty user id is an unauthenticated request, never a real user's bucket.
        ParamSource::UserId => (!req.user_id.is_empty()).then(|| Value::String(req.user_id.clone())),
        ParamSource::Token(key) => match req.token_parameters.get(key) {
            Some(v) => param_value(v),
            None if key == "user_id" && !req.user_id.is_empty() => Some(Value::String(req.user_id.clone())),
            None => None,
        },
    }
}

/// The bucket `row` lands in through `query`, or `None` when a filter does not hold.
fn bucket_of(def: &Definition, query: &DataQuery, row: &Map<String, Value>) -> Option<String> {
    let mut values: Vec<Option<Value>> = vec![None; def.params.len()];
    for filter in &query.filters {
        match filter {
            Filter::Param(expr, i) => {
                let v = param_value(&expr.eval(row))?;
                match &values[*i] {
                    Some(existing) if *existing != v => return None,
                    _ => values[*i] = Some(v),
                }
            }
            Filter::Literal(expr, literal) => {
                if !sql_equal(&expr.eval(row), literal) {
                    return None;
                }
            }
        }
    }
    // Parsing guarantees every parameter has a filter, so all are set here.
    Some(bucket_name(&def.name, values.into_iter().collect::<Option<Vec<_>>>()?))
}

fn sql_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn project(query: &DataQuery, row: &Map<String, Value>) -> Map<String, Value> {
    let mut data = Map::new();
    for item in &query.projection {
        match item {
            ProjItem::Wildcard => {
                for (k, v) in row {
                    data.insert(k.clone(), eval::to_sqlite(v.clone()));
                }
            }
            ProjItem::Named(name, expr) => {
                data.insert(name.clone(), expr.eval(row));
            }
        }
    }
    data
}

fn id_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
