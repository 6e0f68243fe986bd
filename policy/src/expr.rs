//! Guard expressions: compiled from the syntax tree once, evaluated against a request's
//! arguments and environment many times.
//!
//! Evaluation never guesses: a missing attribute, a value of the wrong kind, an unknown level or
//! a construct the engine cannot evaluate is an [`EvalError`], and the caller fails closed.

use std::borrow::Cow;

use crate::{levels::LevelKind, Levels, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
        }
    }

    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CmpOp::Eq => ordering == Equal,
            CmpOp::Ne => ordering != Equal,
            CmpOp::Lt => ordering == Less,
            CmpOp::Gt => ordering == Greater,
            CmpOp::Le => ordering != Greater,
            CmpOp::Ge => ordering != Less,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// Methods a guard may call on a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    StartsWith,
    EndsWith,
    Contains,
    Len,
    IsEmpty,
    Lower,
}

impl Method {
    pub fn from_name(name: &str) -> Option<Method> {
        Some(match name {
            "starts_with" | "startsWith" => Method::StartsWith,
            "ends_with" | "endsWith" => Method::EndsWith,
            "contains" | "includes" => Method::Contains,
            "len" | "length" | "size" => Method::Len,
            "is_empty" => Method::IsEmpty,
            "lower" | "to_lowercase" | "toLowerCase" => Method::Lower,
            _ => return None,
        })
    }
}

/// Where a path starts: an operation parameter (`read(file)` binds `file`) or a top-level name of
/// the environment (`context`, `user_clearance`).
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    Param { index: usize, name: Box<str> },
    Env(Box<str>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Path {
        root: Root,
        fields: Box<[Box<str>]>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// An ordered comparison of levels (`user_clearance >= "developer"`): both sides must be
    /// level names of one list: the list the attribute names, or (`None`) the one list the
    /// right-hand name belongs to, decided at evaluation against the workspace's levels.
    LevelCmp(CmpOp, Option<LevelKind>, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Array(Box<[Expr]>),
    Method {
        receiver: Box<Expr>,
        method: Method,
        args: Box<[Expr]>,
    },
    /// Something the engine cannot evaluate (a call to a host function, a lambda): always an
    /// evaluation error, so the rule fails closed.
    Unsupported(Box<str>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    Missing { path: String },
    Type { expected: &'static str, found: &'static str, context: &'static str },
    UnknownLevel { kind: Option<LevelKind>, value: String },
    Unsupported(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Missing { path } => write!(f, "`{path}` is not in the request"),
            EvalError::Type { expected, found, context } => write!(f, "{context} needs {expected}, found {found}"),
            EvalError::UnknownLevel { kind: Some(kind), value } => write!(f, "`{value}` is not a {} level", kind.as_str()),
            EvalError::UnknownLevel { kind: None, value } => write!(f, "`{value}` is neither a clearance nor a classification level"),
            EvalError::Unsupported(what) => write!(f, "the engine cannot evaluate {what}"),
        }
    }
}

/// What a guard is evaluated against.
pub struct Scope<'a> {
    pub args: &'a Value,
    pub env: &'a Value,
    pub levels: &'a Levels,
}

type Result<T> = std::result::Result<T, EvalError>;

fn path_text(root: &Root, fields: &[Box<str>]) -> String {
    let mut text = match root {
        Root::Param { name, .. } | Root::Env(name) => name.to_string(),
    };
    for f in fields {
        text.push('.');
        text.push_str(f);
    }
    text
}

impl Expr {
    /// Evaluates to a boolean; anything else is an error.
    pub fn test(&self, scope: &Scope<'_>) -> Result<bool> {
        match self.eval(scope)?.as_ref() {
            Value::Bool(b) => Ok(*b),
            other => Err(EvalError::Type { expected: "a boolean", found: other.kind(), context: "a guard" }),
        }
    }

    pub fn eval<'a>(&'a self, scope: &Scope<'a>) -> Result<Cow<'a, Value>> {
        Ok(match self {
            Expr::Lit(value) => Cow::Borrowed(value),
            Expr::Path { root, fields } => {
                let mut value = match root {
                    Root::Param { index, name } => match scope.args {
                        Value::Array(items) => items.get(*index),
                        Value::Object(map) => map.get(&**name),
                        _ => None,
                    },
                    Root::Env(name) => scope.env.get(name),
                };
                for field in fields.iter() {
                    value = value.and_then(|v| v.get(field));
                }
                Cow::Borrowed(value.ok_or_else(|| EvalError::Missing { path: path_text(root, fields) })?)
            }
            Expr::Not(inner) => Cow::Owned(Value::Bool(!inner.test(scope)?)),
            // `&&` and `||` short-circuit, but an error on the side that is evaluated stays an error.
            Expr::And(a, b) => Cow::Owned(Value::Bool(a.test(scope)? && b.test(scope)?)),
            Expr::Or(a, b) => Cow::Owned(Value::Bool(a.test(scope)? || b.test(scope)?)),
            Expr::Cmp(op, a, b) => Cow::Owned(Value::Bool(compare(*op, a.eval(scope)?.as_ref(), b.eval(scope)?.as_ref())?)),
            Expr::LevelCmp(op, kind, a, b) => {
                let (a, b) = (a.eval(scope)?, b.eval(scope)?);
                let kind = match kind {
                    Some(kind) => *kind,
                    None => {
                        let name = b.as_str().unwrap_or_default();
                        scope.levels.kind_of_name(name).ok_or_else(|| EvalError::UnknownLevel { kind: None, value: name.to_string() })?
                    }
                };
                let a = level(scope, kind, a.as_ref())?;
                let b = level(scope, kind, b.as_ref())?;
                Cow::Owned(Value::Bool(op.holds(a.cmp(&b))))
            }
            Expr::In(item, collection) => {
                let item = item.eval(scope)?;
                let found = match collection.eval(scope)?.as_ref() {
                    Value::Array(items) => items.iter().any(|i| i == item.as_ref()),
                    Value::Object(map) => item.as_str().is_some_and(|k| map.contains_key(k)),
                    Value::String(s) => match item.as_ref() {
                        Value::String(needle) => s.contains(needle.as_str()),
                        other => return Err(EvalError::Type { expected: "a string", found: other.kind(), context: "`in` over a string" }),
                    },
                    other => return Err(EvalError::Type { expected: "an array, object or string", found: other.kind(), context: "`in`" }),
                };
                Cow::Owned(Value::Bool(found))
            }
            Expr::Arith(op, a, b) => Cow::Owned(arith(*op, a.eval(scope)?.as_ref(), b.eval(scope)?.as_ref())?),
            Expr::Neg(inner) => match inner.eval(scope)?.as_ref() {
                Value::Number(n) => Cow::Owned(Value::Number(-n)),
                other => return Err(EvalError::Type { expected: "a number", found: other.kind(), context: "`-`" }),
            },
            Expr::Array(items) => {
                Cow::Owned(Value::Array(items.iter().map(|i| i.eval(scope).map(Cow::into_owned)).collect::<Result<_>>()?))
            }
            Expr::Method { receiver, method, args } => Cow::Owned(call(*method, receiver.eval(scope)?.as_ref(), args, scope)?),
            Expr::Unsupported(what) => return Err(EvalError::Unsupported(what.to_string())),
        })
    }
}

fn level(scope: &Scope<'_>, kind: LevelKind, value: &Value) -> Result<usize> {
    let name = value.as_str().ok_or(EvalError::Type { expected: "a level name", found: value.kind(), context: "a level comparison" })?;
    scope.levels.rank(kind, name).ok_or_else(|| EvalError::UnknownLevel { kind: Some(kind), value: name.to_string() })
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool> {
    let ordering = match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        (Value::String(x), Value::String(y)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Some(x.cmp(y)),
        (Value::String(_), Value::String(_)) => {
            return Err(EvalError::Type { expected: "numbers or levels", found: "strings", context: "an ordered comparison" })
        }
        _ if matches!(op, CmpOp::Eq | CmpOp::Ne) && std::mem::discriminant(a) == std::mem::discriminant(b) => {
            return Ok((a == b) == (op == CmpOp::Eq));
        }
        (Value::Null, _) | (_, Value::Null) if matches!(op, CmpOp::Eq | CmpOp::Ne) => return Ok((a == b) == (op == CmpOp::Eq)),
        _ => return Err(EvalError::Type { expected: a.kind(), found: b.kind(), context: "a comparison" }),
    };
    ordering.map(|o| op.holds(o)).ok_or(EvalError::Type { expected: "comparable numbers", found: "NaN", context: "a comparison" })
}

fn arith(op: ArithOp, a: &Value, b: &Value) -> Result<Value> {
    match (op, a, b) {
        (ArithOp::Add, Value::String(x), Value::String(y)) => Ok(Value::String(format!("{x}{y}"))),
        (_, Value::Number(x), Value::Number(y)) => Ok(Value::Number(match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div => x / y,
            ArithOp::Rem => x % y,
        })),
        _ => Err(EvalError::Type { expected: "numbers", found: b.kind(), context: "arithmetic" }),
    }
}

fn call(method: Method, receiver: &Value, args: &[Expr], scope: &Scope<'_>) -> Result<Value> {
    let arg = |i: usize| -> Result<Cow<'_, Value>> {
        args.get(i).ok_or(EvalError::Unsupported("a method call with too few arguments".into()))?.eval(scope)
    };
    let string_arg = |i: usize| -> Result<String> {
        match arg(i)?.as_ref() {
            Value::String(s) => Ok(s.clone()),
            other => Err(EvalError::Type { expected: "a string", found: other.kind(), context: "a string method" }),
        }
    };
    Ok(match (method, receiver) {
        (Method::StartsWith, Value::String(s)) => Value::Bool(s.starts_with(string_arg(0)?.as_str())),
        (Method::EndsWith, Value::String(s)) => Value::Bool(s.ends_with(string_arg(0)?.as_str())),
        (Method::Contains, Value::String(s)) => Value::Bool(s.contains(string_arg(0)?.as_str())),
        (Method::Contains, Value::Array(items)) => {
            let needle = arg(0)?;
            Value::Bool(items.iter().any(|i| i == needle.as_ref()))
        }
        (Method::Len, Value::String(s)) => Value::Number(s.chars().count() as f64),
        (Method::Len, Value::Array(items)) => Value::Number(items.len() as f64),
        (Method::Len, Value::Object(map)) => Value::Number(map.len() as f64),
        (Method::IsEmpty, Value::String(s)) => Value::Bool(s.is_empty()),
        (Method::IsEmpty, Value::Array(items)) => Value::Bool(items.is_empty()),
        (Method::Lower, Value::String(s)) => Value::String(s.to_lowercase()),
        (_, other) => return Err(EvalError::Type { expected: "a string or array", found: other.kind(), context: "a method call" }),
    })
}
