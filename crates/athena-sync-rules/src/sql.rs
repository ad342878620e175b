//! Compiles the SQL of sync rules into small evaluable forms. Anything outside the supported subset is an error
//! naming the construct: a rule we half-understand could put rows into the wrong user's bucket.

use std::sync::OnceLock;

use serde_json::Value;
use sqlparser::ast::{
    BinaryOperator, CastKind, Expr, GroupByExpr, Ident, InTarget, Query, Select, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::eval::{CastType, JsonStep, ValueExpr};

/// Where a bucket parameter's value comes from in a parameter query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ParamSource {
    UserId,
    Token(String),
}

#[derive(Debug, Clone)]
pub(crate) struct ParameterQuery {
    /// (alias, source) in the query's own column order.
    pub columns: Vec<(String, ParamSource)>,
    pub canonical: String,
}

#[derive(Debug, Clone)]
pub(crate) enum ProjItem {
    Wildcard,
    Named(String, ValueExpr),
}

#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// `<expr> = bucket.<param>`; the index is into the definition's parameter order.
    Param(ValueExpr, usize),
    Literal(ValueExpr, Value),
}

#[derive(Debug, Clone)]
pub(crate) struct DataQuery {
    pub table: String,
    pub projection: Vec<ProjItem>,
    pub filters: Vec<Filter>,
    pub canonical: String,
}

type R<T> = Result<T, String>;

fn parse_one(sql: &str) -> R<Query> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| format!("SQL syntax error: {e}"))?;
    if statements.len() != 1 {
        return Err(format!("expected exactly one SQL statement, found {}", statements.len()));
    }
    match statements.remove(0) {
        Statement::Query(q) => Ok(*q),
        other => Err(format!("only SELECT queries are allowed, found `{}`", first_words(&other.to_string()))),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Checks every clause of the query except the projection, FROM and WHERE is absent. The comparison against a
/// parsed template (rather than a list of fields) keeps new parser fields from being accepted silently.
fn plain_select(q: Query) -> R<Select> {
    static TEMPLATE: OnceLock<Query> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| parse_one("SELECT 1").expect("template parses"));
    if q.with.is_some() {
        return Err("WITH (common table expressions) is not supported".into());
    }
    if q.order_by.is_some() {
        return Err("ORDER BY is not supported".into());
    }
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return Err("LIMIT/OFFSET/FETCH is not supported".into());
    }
    let mut probe = q.clone();
    probe.body = template.body.clone();
    if &probe != template {
        return Err("unsupported query clause (only SELECT ... FROM ... WHERE ... is allowed)".into());
    }
    let select = match *q.body {
        SetExpr::Select(s) => *s,
        SetExpr::SetOperation { op, .. } => return Err(format!("{op} is not supported")),
        SetExpr::Query(_) => return Err("subqueries are not supported".into()),
        SetExpr::Values(_) => return Err("VALUES is not supported".into()),
        _ => return Err("only SELECT queries are allowed".into()),
    };
    let SetExpr::Select(template_select) = template.body.as_ref() else { unreachable!("template is a SELECT") };
    if select.distinct.is_some() {
        return Err("DISTINCT is not supported".into());
    }
    match &select.group_by {
        GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty() => {}
        _ => return Err("GROUP BY is not supported".into()),
    }
    if select.having.is_some() {
        return Err("HAVING is not supported".into());
    }
    let mut probe = select.clone();
    probe.projection = template_select.projection.clone();
    probe.from = template_select.from.clone();
    probe.selection = None;
    if &probe != template_select.as_ref() {
        return Err("unsupported SELECT clause (only SELECT ... FROM ... WHERE ... is allowed)".into());
    }
    Ok(select)
}

/// Unquoted identifiers fold to lower case as in PostgreSQL; quoted ones are kept exactly.
fn table_ident(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    }
}

pub(crate) fn compile_parameter_query(sql: &str) -> R<ParameterQuery> {
    let q = parse_one(sql)?;
    let canonical = q.to_string();
    let select = plain_select(q)?;
    if !select.from.is_empty() {
        return Err(
            "parameter queries with FROM (table lookups) are not supported; use request.user_id() or token_parameters.<name>".into()
        );
    }
    if select.selection.is_some() {
        return Err("WHERE is not supported in parameter queries".into());
    }
    let mut columns: Vec<(String, ParamSource)> = Vec::new();
    for item in select.projection {
        let (expr, alias) = match item {
            SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value),
            SelectItem::UnnamedExpr(e) => return Err(format!("parameter `{e}` needs an alias (`{e} AS name`)")),
            _ => return Err("parameter queries must select named expressions (no `*`)".into()),
        };
        let source = match &expr {
            Expr::Function(_) if expr.to_string().eq_ignore_ascii_case("request.user_id()") => ParamSource::UserId,
            Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case("token_parameters") => {
                ParamSource::Token(parts[1].value.clone())
            }
            Expr::Function(f) => return Err(format!("function `{}` is not supported in parameter queries", f.name)),
            other => {
                return Err(format!("unsupported parameter expression `{other}` (only request.user_id() and token_parameters.<name>)"))
            }
        };
        if columns.iter().any(|(a, _)| *a == alias) {
            return Err(format!("duplicate parameter name `{alias}`"));
        }
        columns.push((alias, source));
    }
    Ok(ParameterQuery { columns, canonical })
}

pub(crate) fn compile_data_query(sql: &str, params: &[String]) -> R<DataQuery> {
    let q = parse_one(sql)?;
    let canonical = q.to_string();
    let select = plain_select(q)?;
    let table = match select.from.as_slice() {
        [] => return Err("data queries need FROM <table>".into()),
        [one] => {
            if !one.joins.is_empty() {
                return Err("JOIN is not supported".into());
            }
            match &one.relation {
                TableFactor::Table { name, alias, .. } => {
                    if alias.is_some() {
                        return Err("table aliases are not supported (FROM table AS alias)".into());
                    }
                    let parts: Vec<&Ident> = name.0.iter().filter_map(|p| p.as_ident()).collect();
                    if parts.len() != 1 || name.0.len() != 1 {
                        return Err(format!("schema-qualified table names are not supported: `{name}`"));
                    }
                    let table = table_ident(parts[0]);
                    // Everything but the bare name (table functions, hints, sampling, ...) must be absent; compared
                    // against a parsed template so that parser fields added later are not accepted silently.
                    static TEMPLATE: OnceLock<TableFactor> = OnceLock::new();
                    let mut bare = TEMPLATE
                        .get_or_init(|| {
                            let q = parse_one("SELECT 1 FROM t").expect("template parses");
                            let SetExpr::Select(s) = *q.body else { unreachable!("template is a SELECT") };
                            s.from[0].relation.clone()
                        })
                        .clone();
                    if let TableFactor::Table { name: n, .. } = &mut bare {
                        *n = name.clone();
                    }
                    if one.relation != bare {
                        return Err(format!("unsupported table reference `{}`", one.relation));
                    }
                    table
                }
                TableFactor::Derived { .. } => return Err("subqueries are not supported".into()),
                other => return Err(format!("unsupported table reference `{other}`")),
            }
        }
        _ => return Err("multiple tables in FROM (joins) are not supported".into()),
    };

    let mut projection = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut has_wildcard = false;
    for item in select.projection {
        let (name, expr) = match item {
            SelectItem::Wildcard(opts) => {
                let text = SelectItem::Wildcard(opts).to_string();
                if text != "*" {
                    return Err(format!("unsupported wildcard `{text}`"));
                }
                has_wildcard = true;
                projection.push(ProjItem::Wildcard);
                continue;
            }
            SelectItem::ExprWithAlias { expr, alias } => (alias.value.clone(), compile_value(&expr, &table)?),
            SelectItem::UnnamedExpr(expr) => {
                let compiled = compile_value(&expr, &table)?;
                match &compiled {
                    ValueExpr::Column(c) => (c.clone(), compiled),
                    _ => return Err(format!("expression `{expr}` needs an alias (`... AS name`)")),
                }
            }
            other => return Err(format!("unsupported projection `{other}`")),
        };
        if names.contains(&name) {
            return Err(format!("duplicate output column `{name}`"));
        }
        names.push(name.clone());
        projection.push(ProjItem::Named(name, expr));
    }
    if !has_wildcard && !names.iter().any(|n| n == "id") {
        return Err("the query must select an `id` column (every synced row is identified by it)".into());
    }

    let mut filters = Vec::new();
    if let Some(selection) = &select.selection {
        compile_filter(selection, &table, params, &mut filters)?;
    }
    for (i, p) in params.iter().enumerate() {
        if !filters.iter().any(|f| matches!(f, Filter::Param(_, j) if *j == i)) {
            return Err(format!("the query must filter on every bucket parameter: missing `... = bucket.{p}`"));
        }
    }
    Ok(DataQuery { table, projection, filters, canonical })
}

enum Side {
    Param(usize),
    Literal(Value),
    Value(ValueExpr),
}

fn compile_filter(expr: &Expr, table: &str, params: &[String], out: &mut Vec<Filter>) -> R<()> {
    match expr {
        Expr::Nested(inner) => compile_filter(inner, table, params, out),
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            compile_filter(left, table, params, out)?;
            compile_filter(right, table, params, out)
        }
        Expr::BinaryOp { op: BinaryOperator::Or, .. } => Err("OR is not supported in filters (only = joined by AND)".into()),
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            let l = filter_side(left, table, params)?;
            let r = filter_side(right, table, params)?;
            let f = match (l, r) {
                (Side::Value(v), Side::Param(i)) | (Side::Param(i), Side::Value(v)) => Filter::Param(v, i),
                (Side::Value(v), Side::Literal(lit)) | (Side::Literal(lit), Side::Value(v)) => Filter::Literal(v, lit),
                _ => return Err(format!("comparison `{expr}` must compare a column with a bucket parameter or a literal")),
            };
            out.push(f);
            Ok(())
        }
        Expr::BinaryOp { op, .. } => Err(format!("operator `{op}` is not supported in filters (only = joined by AND)")),
        other => Err(unsupported_expr(other, "filter")),
    }
}

fn filter_side(expr: &Expr, table: &str, params: &[String]) -> R<Side> {
    if let Expr::CompoundIdentifier(parts) = expr {
        if parts.len() == 2 && parts[0].value.eq_ignore_ascii_case("bucket") {
            let name = &parts[1].value;
            return match params.iter().position(|p| p == name) {
                Some(i) => Ok(Side::Param(i)),
                None => Err(format!("unknown bucket parameter `bucket.{name}`")),
            };
        }
    }
    if let Some(v) = literal(expr)? {
        return Ok(Side::Literal(v));
    }
    compile_value(expr, table).map(Side::Value)
}

/// A literal value, with booleans as 0/1 because rows are compared the way a SQLite client stores them.
fn literal(expr: &Expr) -> R<Option<Value>> {
    use sqlparser::ast::Value as V;
    let (negative, inner) = match expr {
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => (true, expr.as_ref()),
        other => (false, other),
    };
    let Expr::Value(v) = inner else { return Ok(None) };
    let value = match (&v.value, negative) {
        (V::Number(n, _), neg) => {
            let text = if neg { format!("-{n}") } else { n.clone() };
            number_literal(&text).ok_or_else(|| format!("unsupported number literal `{text}`"))?
        }
        (V::SingleQuotedString(s), false) => Value::String(s.clone()),
        (V::Boolean(b), false) => Value::from(u8::from(*b)),
        (V::Null, false) => return Err("comparing with NULL is never true; NULL literals are not supported".into()),
        (other, _) => return Err(format!("unsupported literal `{other}`")),
    };
    Ok(Some(value))
}

fn number_literal(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    text.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
}

fn unsupported_expr(expr: &Expr, place: &str) -> String {
    match expr {
        Expr::Function(f) => format!("function `{}` is not supported", f.name),
        Expr::Subquery(_) | Expr::Exists { .. } => "subqueries are not supported".into(),
        Expr::In { target: InTarget::Subquery(_), .. } => "subqueries are not supported".into(),
        Expr::In { .. } => "IN (...) is not supported".into(),
        Expr::Between { .. } => "BETWEEN is not supported".into(),
        Expr::IsNull(_) | Expr::IsNotNull(_) => "IS NULL / IS NOT NULL is not supported".into(),
        Expr::Like { .. } | Expr::ILike { .. } => "LIKE is not supported".into(),
        Expr::Case { .. } => "CASE is not supported".into(),
        other => format!("unsupported {place} expression `{other}`"),
    }
}

fn compile_value(expr: &Expr, table: &str) -> R<ValueExpr> {
    match expr {
        Expr::Identifier(ident) => Ok(ValueExpr::Column(ident.value.clone())),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [t, c] if table_ident(t) == table => Ok(ValueExpr::Column(c.value.clone())),
            [b, p] if b.value.eq_ignore_ascii_case("bucket") => {
                Err(format!("bucket parameter `bucket.{}` can only be used in WHERE column = bucket.{}", p.value, p.value))
            }
            _ => Err(format!("unknown column reference `{expr}`")),
        },
        Expr::Nested(inner) => compile_value(inner, table),
        Expr::Cast { kind, expr: inner, data_type, format } => {
            if !matches!(kind, CastKind::Cast | CastKind::DoubleColon) || format.is_some() {
                return Err(format!("unsupported cast `{expr}` (only CAST(x AS type) and x::type)"));
            }
            let ty = cast_type(&data_type.to_string())?;
            Ok(ValueExpr::Cast(Box::new(compile_value(inner, table)?), ty))
        }
        Expr::BinaryOp { left, op: op @ (BinaryOperator::Arrow | BinaryOperator::LongArrow), right } => {
            let path = json_path(right)?;
            let text = matches!(op, BinaryOperator::LongArrow);
            Ok(ValueExpr::Json { base: Box::new(compile_value(left, table)?), path, text })
        }
        Expr::Value(_) | Expr::UnaryOp { op: UnaryOperator::Minus, .. } => match literal(expr)? {
            Some(v) => Ok(ValueExpr::Literal(v)),
            None => Err(unsupported_expr(expr, "projection")),
        },
        Expr::BinaryOp { op, .. } => Err(format!("operator `{op}` is not supported in projections")),
        other => Err(unsupported_expr(other, "projection")),
    }
}

fn cast_type(name: &str) -> R<CastType> {
    let upper = name.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "TEXT" | "VARCHAR" | "CHARACTER VARYING" | "STRING" => CastType::Text,
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "INT2" | "INT4" | "INT8" => CastType::Integer,
        "REAL" | "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" => CastType::Real,
        "NUMERIC" | "DECIMAL" => CastType::Numeric,
        _ => return Err(format!("cast to `{name}` is not supported (TEXT, INTEGER, REAL, NUMERIC)")),
    })
}

/// The right side of `->`/`->>`: a key, an array index, or a SQLite-style path `$.a.b[0]`.
fn json_path(expr: &Expr) -> R<Vec<JsonStep>> {
    match literal(expr)? {
        Some(Value::String(s)) if s.starts_with('$') => parse_path(&s).ok_or_else(|| format!("unsupported JSON path `{s}`")),
        Some(Value::String(s)) => Ok(vec![JsonStep::Key(s)]),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(i) => Ok(vec![JsonStep::Index(i as usize)]),
            None => Err(format!("unsupported JSON index `{n}`")),
        },
        _ => Err(format!("the right side of -> / ->> must be a string key or an index, found `{expr}`")),
    }
}

fn parse_path(path: &str) -> Option<Vec<JsonStep>> {
    let mut rest = path.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            steps.push(JsonStep::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            steps.push(JsonStep::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}
