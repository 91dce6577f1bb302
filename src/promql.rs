//! The PromQL the alert catalogue writes, evaluated over captures of `/metrics` instead of a
//! time series database: `redline status` and `redline diff` judge the same expressions the
//! generated rules hand to Prometheus, not a second description of them.
//!
//! Covered: selectors with `=`, `!=`, `=~`/`!~` (alternatives of literal values), `rate()`,
//! `increase()`, `max_over_time()`, `time()`, `round()`,
//! `sum`/`max`/`min`/`count` `by (...)`, `histogram_quantile`, arithmetic, comparisons (filter),
//! `and`/`or`/`unless`, with `on (...)` / `ignoring (...)` one-to-one matching, with Prometheus'
//! label rules. Anything else is a parse error naming it, never a silently wrong number.
//!
//! A range function sees two captures, not a range: `rate(x[5m])` is the increase between the
//! captures (counter resets handled as Prometheus does) over the time between them, so a short
//! window reports only what happened within it; `increase(x[15m])` is that rate times the range
//! (Prometheus extrapolates to the range the same way), and
//! `max_over_time(x[1h])` the larger of the two captures' values (a series in either counts, so
//! one that vanished between the captures is still seen in the earlier one).

use std::collections::BTreeMap;

/// Labels of one series (sorted); the metric name, when kept, is `__name__`.
pub type Labels = BTreeMap<String, String>;

const NAME: &str = "__name__";

/// An instant vector: one value per label set.
pub type Vector = Vec<(Labels, f64)>;

/// Why an expression cannot be evaluated here.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The text is not PromQL this evaluator knows.
    #[error("cannot parse {expr:?} at byte {at}: {message}")]
    Parse {
        /// The expression.
        expr: String,
        /// Byte offset of the problem.
        at: usize,
        /// What is wrong.
        message: String,
    },
    /// Valid, but not computable from captures.
    #[error("{0}")]
    Eval(String),
}

/// The samples of one capture at one time.
pub trait Source {
    /// Every sample as `(name, labels without __name__, value)`.
    fn samples(&self) -> Box<dyn Iterator<Item = (&str, &Labels, f64)> + '_>;
    /// Unix time of the capture.
    fn time(&self) -> f64;
    /// Unix time the sample `name{labels}` was collected, where the capture says so (redline's
    /// per-target collection timestamps); else the capture time.
    fn collected_at(&self, name: &str, labels: &Labels) -> f64 {
        let _ = (name, labels);
        self.time()
    }
}

/// What an expression is evaluated against: the capture now, and an earlier one for rates.
pub struct Captures<'a> {
    /// The earlier capture (rates need it).
    pub before: Option<&'a dyn Source>,
    /// The capture judged.
    pub after: &'a dyn Source,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone, PartialEq)]
struct Matcher {
    label: String,
    op: MatchOp,
    value: String,
}

impl Matcher {
    fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            // Only literal alternatives are accepted by the parser; anchored like PromQL.
            MatchOp::Re => self.value.split('|').any(|alt| alt == v),
            MatchOp::NotRe => !self.value.split('|').any(|alt| alt == v),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Selector {
    matchers: Vec<Matcher>,
}

impl Selector {
    fn matches(&self, name: &str, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| {
            let v =
                if m.label == NAME { name } else { labels.get(&m.label).map(String::as_str).unwrap_or("") };
            m.matches(v)
        })
    }

    fn select(&self, s: &dyn Source) -> Vector {
        s.samples()
            .filter(|(n, l, _)| self.matches(n, l))
            .map(|(n, l, v)| {
                let mut l = l.clone();
                l.insert(NAME.into(), n.to_string());
                (l, v)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Max,
    Min,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Gt,
    Lt,
    Ge,
    Le,
    EqEq,
    Ne,
    And,
    Or,
    Unless,
}

impl Op {
    fn precedence(self) -> u8 {
        match self {
            Op::Or => 1,
            Op::And | Op::Unless => 2,
            Op::Gt | Op::Lt | Op::Ge | Op::Le | Op::EqEq | Op::Ne => 3,
            Op::Add | Op::Sub => 4,
            Op::Mul | Op::Div => 5,
        }
    }

    fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }

    fn apply(self, a: f64, b: f64) -> Option<f64> {
        Some(match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
            Op::Gt => return (a > b).then_some(a),
            Op::Lt => return (a < b).then_some(a),
            Op::Ge => return (a >= b).then_some(a),
            Op::Le => return (a <= b).then_some(a),
            Op::EqEq => return (a == b).then_some(a),
            Op::Ne => return (a != b).then_some(a),
            Op::And | Op::Or | Op::Unless => return None,
        })
    }
}

/// Which labels two sides are matched on.
#[derive(Debug, Clone, PartialEq)]
enum Matching {
    /// All labels but the name.
    All,
    /// `on (...)`.
    On(Vec<String>),
    /// `ignoring (...)`.
    Ignoring(Vec<String>),
}

impl Matching {
    fn signature(&self, l: &Labels) -> Labels {
        l.iter()
            .filter(|(k, _)| {
                *k != NAME
                    && match self {
                        Matching::All => true,
                        Matching::On(on) => on.contains(k),
                        Matching::Ignoring(ig) => !ig.contains(k),
                    }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(f64),
    Select(Selector),
    /// A range function over the two captures, with its range in seconds.
    Range(RangeFn, Selector, f64),
    /// `time()`: the judged capture's time.
    Time,
    /// `round(v)`.
    Round(Box<Node>),
    Aggregate {
        agg: Agg,
        by: Vec<String>,
        inner: Box<Node>,
    },
    Quantile {
        q: f64,
        inner: Box<Node>,
    },
    Binary {
        op: Op,
        matching: Matching,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
}

/// Range functions: what they make of the two captures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeFn {
    Rate,
    Increase,
    MaxOverTime,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Scalar(f64),
    Vector(Vector),
}

impl Expr {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Expr, Error> {
        let mut p = Parser { src: text, pos: 0 };
        let node = p.expr(0)?;
        p.skip_ws();
        if p.pos < text.len() {
            return Err(p.error("unexpected text after the expression"));
        }
        Ok(Expr(node))
    }

    /// Whether evaluating needs an earlier capture (a range function).
    pub fn needs_two_captures(&self) -> bool {
        fn walk(n: &Node) -> bool {
            match n {
                Node::Range(..) => true,
                Node::Number(_) | Node::Select(_) | Node::Time => false,
                Node::Aggregate { inner, .. } | Node::Quantile { inner, .. } | Node::Round(inner) => {
                    walk(inner)
                }
                Node::Binary { lhs, rhs, .. } => walk(lhs) || walk(rhs),
            }
        }
        walk(&self.0)
    }

    /// Evaluates to an instant vector; labels never carry the metric name (as alert labels).
    pub fn eval(&self, c: &Captures) -> Result<Vector, Error> {
        match eval(&self.0, c)? {
            Value::Vector(v) => Ok(v
                .into_iter()
                .map(|(mut l, v)| {
                    l.remove(NAME);
                    (l, v)
                })
                .collect()),
            Value::Scalar(_) => Err(Error::Eval("a scalar, not a vector".into())),
        }
    }
}

fn drop_name(mut l: Labels) -> Labels {
    l.remove(NAME);
    l
}

fn eval(n: &Node, c: &Captures) -> Result<Value, Error> {
    Ok(match n {
        Node::Number(v) => Value::Scalar(*v),
        Node::Select(sel) => Value::Vector(sel.select(c.after)),
        Node::Time => Value::Scalar(c.after.time()),
        Node::Round(inner) => match eval(inner, c)? {
            Value::Scalar(v) => Value::Scalar(v.round()),
            Value::Vector(v) => {
                Value::Vector(v.into_iter().map(|(l, x)| (drop_name(l), x.round())).collect())
            }
        },
        Node::Range(RangeFn::MaxOverTime, sel, _) => {
            let before = c.before.ok_or_else(|| Error::Eval("max_over_time() needs two captures".into()))?;
            let mut out: BTreeMap<Labels, f64> = BTreeMap::new();
            for (l, v) in sel.select(before).into_iter().chain(sel.select(c.after)) {
                let e = out.entry(drop_name(l)).or_insert(v);
                if v > *e || e.is_nan() {
                    *e = v;
                }
            }
            Value::Vector(out.into_iter().collect())
        }
        Node::Range(func, sel, range) => {
            let before = c.before.ok_or_else(|| Error::Eval("rate() needs two captures".into()))?;
            let earlier: BTreeMap<Labels, (f64, f64)> = sel
                .select(before)
                .into_iter()
                .map(|(l, v)| {
                    let at = before
                        .collected_at(l.get(NAME).map(String::as_str).unwrap_or(""), &drop_name(l.clone()));
                    (l, (v, at))
                })
                .collect();
            Value::Vector(
                sel.select(c.after)
                    .into_iter()
                    .filter_map(|(l, v)| {
                        let (b, b_at) = *earlier.get(&l)?;
                        let name = l.get(NAME).cloned().unwrap_or_default();
                        let l = drop_name(l);
                        let dt = c.after.collected_at(&name, &l) - b_at;
                        // No newer collection between the captures: no rate, as Prometheus
                        // has none from a single sample.
                        if dt <= 0.0 {
                            return None;
                        }
                        // A counter that went down was reset: it counted `v` since.
                        let increase = if v < b { v } else { v - b };
                        let per_second = increase / dt;
                        Some((l, if *func == RangeFn::Increase { per_second * range } else { per_second }))
                    })
                    .collect(),
            )
        }
        Node::Aggregate { agg, by, inner } => {
            let v = vector(eval(inner, c)?, "an aggregation")?;
            let mut groups: BTreeMap<Labels, (f64, usize)> = BTreeMap::new();
            for (l, x) in v {
                let key: Labels = l.into_iter().filter(|(k, _)| by.contains(k)).collect();
                let e = groups.entry(key).or_insert((x, 0));
                e.1 += 1;
                if e.1 > 1 {
                    e.0 = match agg {
                        Agg::Sum => e.0 + x,
                        // NaN loses to any number, as in Prometheus.
                        Agg::Max => {
                            if x > e.0 || e.0.is_nan() {
                                x
                            } else {
                                e.0
                            }
                        }
                        Agg::Min => {
                            if x < e.0 || e.0.is_nan() {
                                x
                            } else {
                                e.0
                            }
                        }
                        Agg::Count => e.0,
                    };
                }
            }
            Value::Vector(
                groups
                    .into_iter()
                    .map(|(l, (x, n))| (l, if *agg == Agg::Count { n as f64 } else { x }))
                    .collect(),
            )
        }
        Node::Quantile { q, inner } => {
            let v = vector(eval(inner, c)?, "histogram_quantile")?;
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (l, x) in v {
                let Some(le) = l.get("le").and_then(|s| parse_le(s)) else { continue };
                let key: Labels = l.into_iter().filter(|(k, _)| k != "le" && k != NAME).collect();
                groups.entry(key).or_default().push((le, x));
            }
            Value::Vector(groups.into_iter().map(|(l, b)| (l, bucket_quantile(*q, b))).collect())
        }
        Node::Binary { op, matching, lhs, rhs } => binary(*op, matching, eval(lhs, c)?, eval(rhs, c)?)?,
    })
}

fn vector(v: Value, what: &str) -> Result<Vector, Error> {
    match v {
        Value::Vector(v) => Ok(v),
        Value::Scalar(_) => Err(Error::Eval(format!("{what} needs a vector"))),
    }
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        s => s.parse().ok(),
    }
}

/// Prometheus' `bucketQuantile`: linear interpolation within the bucket the rank falls in.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Counts must not decrease with the bound (rates of separately scraped buckets can).
    for i in 1..buckets.len() {
        if buckets[i].1 < buckets[i - 1].1 {
            buckets[i].1 = buckets[i - 1].1;
        }
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 || observations.is_nan() {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets.iter().position(|(_, count)| *count >= rank).unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (start, end) = (if b == 0 { 0.0 } else { buckets[b - 1].0 }, buckets[b].0);
    let mut count = buckets[b].1;
    if b > 0 {
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn binary(op: Op, matching: &Matching, lhs: Value, rhs: Value) -> Result<Value, Error> {
    let keep_name = op.is_comparison();
    let name_rule = |l: Labels| if keep_name { l } else { drop_name(l) };
    Ok(match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if op.is_comparison() || op.is_set() {
                return Err(Error::Eval("comparison of two scalars needs `bool`".into()));
            }
            Value::Scalar(op.apply(a, b).unwrap_or(f64::NAN))
        }
        (Value::Vector(v), Value::Scalar(s)) => {
            if op.is_set() {
                return Err(Error::Eval("set operators need two vectors".into()));
            }
            Value::Vector(v.into_iter().filter_map(|(l, x)| Some((name_rule(l), op.apply(x, s)?))).collect())
        }
        (Value::Scalar(s), Value::Vector(v)) => {
            if op.is_set() {
                return Err(Error::Eval("set operators need two vectors".into()));
            }
            // A comparison keeps the vector's own value.
            Value::Vector(
                v.into_iter()
                    .filter_map(|(l, x)| {
                        let r = op.apply(s, x)?;
                        Some((name_rule(l), if op.is_comparison() { x } else { r }))
                    })
                    .collect(),
            )
        }
        (Value::Vector(a), Value::Vector(b)) => match op {
            Op::And => {
                let right: Vec<Labels> = b.iter().map(|(l, _)| matching.signature(l)).collect();
                Value::Vector(a.into_iter().filter(|(l, _)| right.contains(&matching.signature(l))).collect())
            }
            Op::Unless => {
                let right: Vec<Labels> = b.iter().map(|(l, _)| matching.signature(l)).collect();
                Value::Vector(
                    a.into_iter().filter(|(l, _)| !right.contains(&matching.signature(l))).collect(),
                )
            }
            Op::Or => {
                let left: Vec<Labels> = a.iter().map(|(l, _)| matching.signature(l)).collect();
                let mut out = a;
                out.extend(b.into_iter().filter(|(l, _)| !left.contains(&matching.signature(l))));
                Value::Vector(out)
            }
            _ => {
                let mut right: BTreeMap<Labels, f64> = BTreeMap::new();
                for (l, x) in b {
                    if right.insert(matching.signature(&l), x).is_some() {
                        return Err(Error::Eval("many-to-one matching needs group_left/right".into()));
                    }
                }
                let mut out = Vec::new();
                for (l, x) in a {
                    let Some(y) = right.get(&matching.signature(&l)) else { continue };
                    let Some(r) = op.apply(x, *y) else { continue };
                    let mut l = name_rule(l);
                    match matching {
                        Matching::On(on) => l.retain(|k, _| on.contains(k)),
                        Matching::Ignoring(ig) => l.retain(|k, _| !ig.contains(k)),
                        Matching::All => {}
                    }
                    out.push((l, r));
                }
                Value::Vector(out)
            }
        },
    })
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, message: &str) -> Error {
        Error::Parse { expr: self.src.to_string(), at: self.pos, message: message.to_string() }
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> Result<(), Error> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{s}`")))
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let len = self
            .rest()
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*i > 0 && c.is_ascii_digit())
            })
            .count();
        if len == 0 {
            return None;
        }
        let id = self.rest()[..len].to_string();
        self.pos += len;
        Some(id)
    }

    /// The next identifier, without consuming it.
    fn peek_ident(&mut self) -> Option<String> {
        let at = self.pos;
        let id = self.ident();
        self.pos = at;
        id
    }

    fn label_list(&mut self) -> Result<Vec<String>, Error> {
        self.expect("(")?;
        let mut out = Vec::new();
        while !self.eat(")") {
            out.push(self.ident().ok_or_else(|| self.error("expected a label name"))?);
            if !self.eat(",") {
                self.expect(")")?;
                break;
            }
        }
        Ok(out)
    }

    fn string(&mut self) -> Result<String, Error> {
        self.skip_ws();
        let mut chars = self.rest().char_indices();
        if !matches!(chars.next(), Some((_, '"'))) {
            return Err(self.error("expected a quoted string"));
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }

    fn number(&mut self) -> Option<f64> {
        self.skip_ws();
        let len = self
            .rest()
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_digit()
                    || *c == '.'
                    || ((*c == 'e' || *c == 'E') && *i > 0)
                    || ((*c == '-' || *c == '+') && *i > 0 && {
                        let prev = self.rest().as_bytes()[*i - 1];
                        prev == b'e' || prev == b'E'
                    })
            })
            .count();
        if len == 0 || !self.rest().starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        let v = self.rest()[..len].parse().ok()?;
        self.pos += len;
        Some(v)
    }

    fn matchers(&mut self, name: Option<String>) -> Result<Selector, Error> {
        let mut matchers: Vec<Matcher> =
            name.into_iter().map(|n| Matcher { label: NAME.into(), op: MatchOp::Eq, value: n }).collect();
        if self.eat("{") {
            while !self.eat("}") {
                let label = self.ident().ok_or_else(|| self.error("expected a label name"))?;
                let op = if self.eat("=~") {
                    MatchOp::Re
                } else if self.eat("!~") {
                    MatchOp::NotRe
                } else if self.eat("!=") {
                    MatchOp::Ne
                } else if self.eat("=") {
                    MatchOp::Eq
                } else {
                    return Err(self.error("expected =, !=, =~ or !~"));
                };
                let value = self.string()?;
                if matches!(op, MatchOp::Re | MatchOp::NotRe)
                    && value.contains(|c: char| "\\.^$*+?()[]{}".contains(c))
                {
                    return Err(
                        self.error("only regular expressions of literal alternatives (a|b) are supported")
                    );
                }
                matchers.push(Matcher { label, op, value });
                if !self.eat(",") {
                    self.expect("}")?;
                    break;
                }
            }
        }
        if matchers.is_empty() {
            return Err(self.error("a selector needs a name or a matcher"));
        }
        Ok(Selector { matchers })
    }

    fn primary(&mut self) -> Result<Node, Error> {
        self.skip_ws();
        if self.eat("(") {
            let inner = self.expr(0)?;
            self.expect(")")?;
            return Ok(inner);
        }
        if let Some(v) = self.number() {
            return Ok(Node::Number(v));
        }
        if self.rest().starts_with('{') {
            return Ok(Node::Select(self.matchers(None)?));
        }
        let start = self.pos;
        let Some(id) = self.ident() else { return Err(self.error("expected an expression")) };
        let agg = match id.as_str() {
            "sum" => Some(Agg::Sum),
            "max" => Some(Agg::Max),
            "min" => Some(Agg::Min),
            "count" => Some(Agg::Count),
            _ => None,
        };
        if let Some(agg) = agg {
            let mut by = None;
            if self.peek_ident().as_deref() == Some("by") {
                self.ident();
                by = Some(self.label_list()?);
            } else if self.peek_ident().as_deref() == Some("without") {
                return Err(self.error("`without` is not supported"));
            }
            self.expect("(")?;
            let inner = self.expr(0)?;
            self.expect(")")?;
            if by.is_none() && self.peek_ident().as_deref() == Some("by") {
                self.ident();
                by = Some(self.label_list()?);
            }
            return Ok(Node::Aggregate { agg, by: by.unwrap_or_default(), inner: Box::new(inner) });
        }
        match id.as_str() {
            "time" => {
                self.expect("(")?;
                self.expect(")")?;
                Ok(Node::Time)
            }
            "round" => {
                self.expect("(")?;
                let inner = self.expr(0)?;
                self.expect(")")?;
                Ok(Node::Round(Box::new(inner)))
            }
            "rate" | "increase" | "max_over_time" => {
                let func = match id.as_str() {
                    "rate" => RangeFn::Rate,
                    "increase" => RangeFn::Increase,
                    _ => RangeFn::MaxOverTime,
                };
                self.expect("(")?;
                let name = self.ident();
                let sel = self.matchers(name)?;
                self.expect("[")?;
                let end = self.rest().find(']').ok_or_else(|| self.error("expected `]`"))?;
                let range = self.rest()[..end].trim();
                let Ok(range) = humantime::parse_duration(range) else {
                    return Err(self.error("expected a duration such as 5m"));
                };
                self.pos += end + 1;
                self.expect(")")?;
                Ok(Node::Range(func, sel, range.as_secs_f64()))
            }
            "histogram_quantile" => {
                self.expect("(")?;
                let q = self.number().ok_or_else(|| self.error("expected the quantile"))?;
                self.expect(",")?;
                let inner = self.expr(0)?;
                self.expect(")")?;
                Ok(Node::Quantile { q, inner: Box::new(inner) })
            }
            _ => {
                self.skip_ws();
                if self.rest().starts_with('(') {
                    self.pos = start;
                    return Err(self.error(&format!("function {id}() is not supported")));
                }
                Ok(Node::Select(self.matchers(Some(id))?))
            }
        }
    }

    fn operator(&mut self) -> Option<Op> {
        self.skip_ws();
        let symbols = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::EqEq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("+", Op::Add),
            ("-", Op::Sub),
            ("*", Op::Mul),
            ("/", Op::Div),
        ];
        for (s, op) in symbols {
            if self.rest().starts_with(s) {
                return Some(op);
            }
        }
        match self.peek_ident().as_deref() {
            Some("and") => Some(Op::And),
            Some("or") => Some(Op::Or),
            Some("unless") => Some(Op::Unless),
            _ => None,
        }
    }

    fn consume_operator(&mut self, op: Op) {
        self.skip_ws();
        let len = match op {
            Op::Ge | Op::Le | Op::EqEq | Op::Ne | Op::Or => 2,
            Op::And => 3,
            Op::Unless => 6,
            _ => 1,
        };
        self.pos += len;
    }

    /// Precedence climbing; all binary operators here are left-associative.
    fn expr(&mut self, min: u8) -> Result<Node, Error> {
        let mut lhs = self.primary()?;
        while let Some(op) = self.operator() {
            // Only operators binding tighter than the caller's: left associativity.
            if op.precedence() <= min {
                break;
            }
            self.consume_operator(op);
            if self.peek_ident().as_deref() == Some("bool") {
                return Err(self.error("`bool` is not supported"));
            }
            let matching = match self.peek_ident().as_deref() {
                Some("on") => {
                    self.ident();
                    Matching::On(self.label_list()?)
                }
                Some("ignoring") => {
                    self.ident();
                    Matching::Ignoring(self.label_list()?)
                }
                _ => Matching::All,
            };
            if matches!(self.peek_ident().as_deref(), Some("group_left" | "group_right")) {
                return Err(self.error("group_left/group_right are not supported"));
            }
            let rhs = self.expr(op.precedence())?;
            lhs = Node::Binary { op, matching, lhs: Box::new(lhs), rhs: Box::new(rhs) };
        }
        Ok(lhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples as a plain list, for tests.
    struct Mem(f64, Vec<(String, Labels, f64)>);

    impl Source for Mem {
        fn samples(&self) -> Box<dyn Iterator<Item = (&str, &Labels, f64)> + '_> {
            Box::new(self.1.iter().map(|(n, l, v)| (n.as_str(), l, *v)))
        }
        fn time(&self) -> f64 {
            self.0
        }
    }

    type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    fn mem(t: f64, series: &[Row]) -> Mem {
        Mem(
            t,
            series
                .iter()
                .map(|(n, l, v)| {
                    (n.to_string(), l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), *v)
                })
                .collect(),
        )
    }

    fn eval_on(expr: &str, before: &Mem, after: &Mem) -> Vector {
        Expr::parse(expr)
            .unwrap_or_else(|e| panic!("{e}"))
            .eval(&Captures { before: Some(before), after })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn precedence_and_matching_follow_promql() {
        let a = mem(
            0.0,
            &[
                ("used", &[("t", "a")], 95.0),
                ("cap", &[("t", "a")], 100.0),
                ("used", &[("t", "b")], 10.0),
                ("cap", &[("t", "b")], 0.0),
                ("frag", &[("t", "a")], 2.0),
            ],
        );
        // `> 0` filters before the division: the unlimited target b drops out.
        assert_eq!(eval_on("used / (cap > 0)", &a, &a), vec![(l(&[("t", "a")]), 0.95)]);
        assert_eq!(eval_on("1 - used / (cap > 0)", &a, &a)[0].1, 1.0 - 0.95);
        // `and` binds looser than the comparison on its right.
        assert_eq!(eval_on("frag and used > 50", &a, &a), vec![(l(&[("t", "a")]), 2.0)]);
        assert_eq!(eval_on("frag and used > 500", &a, &a), vec![]);
        assert_eq!(eval_on("used unless on (t) (cap == 0)", &a, &a), vec![(l(&[("t", "a")]), 95.0)]);
        assert_eq!(eval_on("max by (t) (used) or max by (t) (frag)", &a, &a).len(), 2);
        assert_eq!(
            eval_on("min by (t) ({__name__=~\"used|frag\",t=\"a\"})", &a, &a),
            vec![(l(&[("t", "a")]), 2.0)]
        );
        assert_eq!(eval_on("sum(used)", &a, &a), vec![(Labels::new(), 105.0)]);
    }

    #[test]
    fn rate_uses_the_two_captures_and_handles_resets() {
        let b = mem(100.0, &[("c_total", &[("t", "a")], 10.0), ("c_total", &[("t", "b")], 50.0)]);
        let a = mem(
            110.0,
            &[
                ("c_total", &[("t", "a")], 60.0),
                ("c_total", &[("t", "b")], 5.0),
                ("c_total", &[("t", "new")], 1.0),
            ],
        );
        let r = eval_on("rate(c_total[5m])", &b, &a);
        assert_eq!(r, vec![(l(&[("t", "a")]), 5.0), (l(&[("t", "b")]), 0.5)]);
        let e = Expr::parse("rate(c_total[5m])").expect("parse");
        assert!(e.needs_two_captures());
        assert!(e.eval(&Captures { before: None, after: &a }).is_err());
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        let b = mem(
            0.0,
            &[
                ("h_bucket", &[("le", "0.1")], 0.0),
                ("h_bucket", &[("le", "1")], 0.0),
                ("h_bucket", &[("le", "+Inf")], 0.0),
            ],
        );
        let a = mem(
            10.0,
            &[
                ("h_bucket", &[("le", "0.1")], 50.0),
                ("h_bucket", &[("le", "1")], 100.0),
                ("h_bucket", &[("le", "+Inf")], 100.0),
            ],
        );
        let r = eval_on("histogram_quantile(0.75, sum by (le) (rate(h_bucket[5m])))", &b, &a);
        assert!((r[0].1 - 0.55).abs() < 1e-9, "{r:?}");
        // Nothing observed: NaN, which no comparison lets through.
        assert!(
            eval_on("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", &b, &b).is_empty()
                || eval_on("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", &b, &b)[0]
                    .1
                    .is_nan()
        );
    }

    #[test]
    fn unsupported_promql_is_an_error_not_a_wrong_number() {
        for e in [
            "avg_over_time(x[5m])",
            "x > bool 1",
            "x{a=~\"b.*\"}",
            "sum without (a) (x)",
            "x * on (a) group_left y",
            "x )",
        ] {
            assert!(Expr::parse(e).is_err(), "{e}");
        }
    }
}
