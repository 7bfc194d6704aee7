//! `[[rule]]`: risk, approval and who may ask, by argument. The first rule
//! whose `when` holds for a request's arguments changes what the manifest's top
//! level says; no match leaves it as written. Read and checked against the
//! params here; applied by [`Manifest::governed`].
//!
//! ```toml
//! [[rule]]
//! name = "prod"
//! when = { env = "prod" }                  # several keys: all must hold
//! risk = "high"
//! approvers = ["group:sre-leads"]
//! quorum = 2
//!
//! [[rule]]
//! when = { days = { gt = 90 } }            # also gte, lt, lte; { in = [...] }
//! risk = "high"
//! ```

use std::ops::Range;
use std::time::Duration;

use toml::de::DeValue;

use super::check::{known_channel, principals, reachable_people};
use super::param_schema::toml_arg;
use super::{Approval, Manifest, Param, ParamKind, Principal, Risk, ScheduledApproval};
use crate::config::Config;
use crate::config::spans::{Item, Reader, Section, closest, int_value};
use crate::types::{ArgValue, Args};

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `name`, else `rule-N` (1-based position): named in `explain`, the
    /// approval request and the run's audit entry.
    pub name: String,
    /// Every condition must hold.
    pub when: Vec<Condition>,
    pub risk: Option<Risk>,
    /// Who may ask, instead of `[access] run`.
    pub run: Option<Vec<Principal>>,
    pub approvers: Option<Vec<Principal>>,
    pub quorum: Option<u32>,
    pub channel: Option<String>,
    pub expires: Option<Duration>,
}

/// `param = value`, or `param = { op = value, … }`.
#[derive(Debug, Clone)]
pub struct Condition {
    pub param: String,
    pub test: Test,
    /// The param is a float: values compare as numbers (`0.50` is `0.5`).
    pub numeric: bool,
}

#[derive(Debug, Clone)]
pub enum Test {
    /// Equal to the value (typed as the param is).
    Eq(ArgValue),
    /// Equal to one of the values.
    In(Vec<ArgValue>),
    /// Numeric comparisons (int and float params).
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

const RULE_KEYS: &[&str] = &[
    "name",
    "when",
    "risk",
    "run",
    "approvers",
    "quorum",
    "channel",
    "expires",
];
const OPS: &[&str] = &["in", "gt", "gte", "lt", "lte"];

impl Rule {
    /// Whether every condition holds for `args` (an argument that was not
    /// given and has no default holds none).
    pub fn matches(&self, args: &Args) -> bool {
        self.when.iter().all(|c| {
            args.get(&c.param)
                .is_some_and(|value| c.test.holds(value, c.numeric))
        })
    }
}

impl Test {
    fn holds(&self, value: &ArgValue, numeric: bool) -> bool {
        let same = |want: &ArgValue| match (numeric, number(want), number(value)) {
            (true, Some(x), Some(y)) => x == y,
            _ => want == value,
        };
        match self {
            Test::Eq(want) => same(want),
            Test::In(wants) => wants.iter().any(same),
            Test::Gt(x) => number(value).is_some_and(|v| v > *x),
            Test::Gte(x) => number(value).is_some_and(|v| v >= *x),
            Test::Lt(x) => number(value).is_some_and(|v| v < *x),
            Test::Lte(x) => number(value).is_some_and(|v| v <= *x),
        }
    }
}

fn number(v: &ArgValue) -> Option<f64> {
    match v {
        ArgValue::Int(n) => Some(*n as f64),
        ArgValue::Str(s) => s.parse::<f64>().ok().filter(|x| x.is_finite()),
        ArgValue::Bool(_) | ArgValue::File(_) => None,
    }
}

impl Manifest {
    /// The first rule that holds for `args`, if any.
    pub fn rule_for(&self, args: &Args) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(args))
    }

    /// This manifest as it governs a request with `args`: the matching rule's
    /// risk, approval and `run` in place of the top level's, and the rule's
    /// name. Policy reads the result as it reads any manifest.
    pub fn governed(&self, args: &Args) -> (Manifest, Option<String>) {
        let mut m = self.clone();
        let Some(rule) = self.rule_for(args) else {
            return (m, None);
        };
        if let Some(risk) = rule.risk {
            m.risk = risk;
        }
        if let Some(run) = &rule.run {
            m.access.run = run.clone();
        }
        let changes_approval = rule.approvers.is_some()
            || rule.quorum.is_some()
            || rule.channel.is_some()
            || rule.expires.is_some();
        if changes_approval {
            let mut a = m.approval.take().unwrap_or_else(|| Approval {
                approvers: Vec::new(),
                channel: None,
                quorum: 1,
                expires: DEFAULT_EXPIRES,
                self_approval: false,
                scheduled: ScheduledApproval::NotRequired,
                preview: Vec::new(),
            });
            if let Some(p) = &rule.approvers {
                a.approvers = p.clone();
            }
            if let Some(q) = rule.quorum {
                a.quorum = q;
            }
            if let Some(c) = &rule.channel {
                a.channel = Some(c.clone());
            }
            if let Some(e) = rule.expires {
                a.expires = e;
            }
            m.approval = Some(a);
        }
        (m, Some(rule.name.clone()))
    }
}

/// How long an approval request stands when neither `[approval]` nor the rule says.
pub(super) const DEFAULT_EXPIRES: Duration = Duration::from_secs(3600);

/// Every `[[rule]]`, checked against `manifest`'s params, risk and approval.
pub(super) fn read_rules(
    r: &mut Reader<'_>,
    top: &Section<'_, '_>,
    config: &Config,
    manifest: &Manifest,
) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for (i, s) in r.sections(top, "rule").iter().enumerate() {
        r.unknown_keys(s, RULE_KEYS);
        let name = match r.string(s, "name") {
            Some((n, span)) => {
                if rules.iter().any(|other| other.name == n) {
                    r.key_error(s, "name", &span, format!("rule `{n}` is declared twice"));
                }
                n
            }
            None => format!("rule-{}", i + 1),
        };
        let when = read_when(r, s, &manifest.params);
        let risk = match r.string(s, "risk") {
            None => None,
            Some((v, span)) => Risk::parse(&v).or_else(|| {
                let msg = format!("must be \"low\", \"high\" or \"critical\", got `{v}`");
                r.key_error(s, "risk", &span, msg);
                None
            }),
        };
        let run = s.get("run").map(|_| principals(r, s, "run", config));
        let approvers = s.get("approvers").map(|_| {
            let ps = principals(r, s, "approvers", config);
            if ps.contains(&Principal::Anyone) || ps.is_empty() {
                let span = s.get("approvers").map(|i| i.span()).unwrap_or_default();
                let msg = "name at least one approver as \"person:NAME\" or \"group:NAME\" \
                           (`anyone` cannot approve)";
                r.key_error(s, "approvers", &span, msg);
            }
            ps
        });
        let quorum = r.int(s, "quorum").and_then(|(n, span)| {
            if n < 1 {
                r.key_error(s, "quorum", &span, format!("must be at least 1, got {n}"));
                None
            } else {
                Some(u32::try_from(n).unwrap_or(u32::MAX))
            }
        });
        let channel = r.string(s, "channel").and_then(|(name, span)| {
            known_channel(r, s, "channel", &name, &span, config).then_some(name)
        });
        let expires = r.duration(s, "expires");
        let rule = Rule {
            name,
            when,
            risk,
            run,
            approvers,
            quorum,
            channel,
            expires,
        };
        check_outcome(r, s, config, manifest, &rule);
        rules.push(rule);
    }
    rules
}

/// What a request matching `rule` would need must be possible: a high risk
/// needs approvers, enough of them for the quorum; approval settings on a run
/// that stays low-risk would do nothing, so they are refused as a likely mistake.
fn check_outcome(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    config: &Config,
    manifest: &Manifest,
    rule: &Rule,
) {
    // The rule applied as if its conditions held.
    let (governed, _) = {
        let mut m = manifest.clone();
        m.rules = vec![Rule {
            when: Vec::new(),
            ..rule.clone()
        }];
        m.governed(&Args::new())
    };
    let at = s.span.clone();
    match (&governed.risk, &governed.approval) {
        (Risk::High | Risk::Critical, None) => {
            let span = s.get("risk").map(|i| i.span()).unwrap_or(at);
            let msg = "this rule makes the run high-risk, but nobody could approve it: give \
                       the rule `approvers`, or the manifest an [approval] section";
            r.key_error(s, "risk", &span, msg);
        }
        (Risk::High | Risk::Critical, Some(a)) => {
            let people = reachable_people(&a.approvers, config);
            if let Some(people) = people
                && a.quorum as usize > people
            {
                let span = s.get("quorum").map(|i| i.span()).unwrap_or(at);
                let msg = format!(
                    "quorum {} is more than the {people} people the approvers name",
                    a.quorum
                );
                r.key_error(s, "quorum", &span, msg);
            }
        }
        (Risk::Low, _) => {
            for key in ["approvers", "quorum", "channel", "expires"] {
                if let Some(item) = s.get(key) {
                    let msg = format!(
                        "`{key}` only matters for a high-risk run, and this rule leaves the \
                         run low-risk: add `risk = \"high\"` or drop `{key}`"
                    );
                    r.key_error(s, key, &item.span(), msg);
                }
            }
        }
    }
}

/// `when = { param = value | { op = value, … }, … }`.
fn read_when(r: &mut Reader<'_>, s: &Section<'_, '_>, params: &[Param]) -> Vec<Condition> {
    let Some(when) = r.section(s, "when") else {
        if s.get("when").is_none() {
            r.missing(s, "when");
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    let keys = when.keys();
    if keys.is_empty() {
        r.error(
            &when.span,
            Some(when.path.clone()),
            "`when` needs at least one condition, such as { env = \"prod\" }",
        );
    }
    for (name, span, item) in keys {
        let Some(param) = params.iter().find(|p| p.name == name) else {
            let hint = closest(name, params.iter().map(|p| p.name.as_str()))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            let msg = format!("`{name}` is not a parameter of this script{hint}");
            r.key_error(&when, name, &span, msg);
            continue;
        };
        match item.get_ref() {
            DeValue::Table(ops) => {
                let ops = Section {
                    table: ops,
                    path: when.key_path(name),
                    label: format!("[{}]", when.key_path(name)),
                    span: item.span(),
                };
                r.unknown_keys(&ops, OPS);
                for (op, op_span, value) in ops.keys() {
                    if let Some(test) = read_op(r, &ops, param, op, &op_span, value) {
                        out.push(Condition {
                            param: param.name.clone(),
                            test,
                            numeric: matches!(param.kind, ParamKind::Float { .. }),
                        });
                    }
                }
            }
            _ => {
                if let Some(v) = typed_value(r, &when, param, name, item) {
                    out.push(Condition {
                        param: param.name.clone(),
                        test: Test::Eq(v),
                        numeric: matches!(param.kind, ParamKind::Float { .. }),
                    });
                }
            }
        }
    }
    out
}

fn read_op(
    r: &mut Reader<'_>,
    ops: &Section<'_, '_>,
    param: &Param,
    op: &str,
    op_span: &Range<usize>,
    value: &Item<'_>,
) -> Option<Test> {
    if op == "in" {
        let DeValue::Array(items) = value.get_ref() else {
            r.key_error(ops, op, &value.span(), "`in` takes a list of values");
            return None;
        };
        let mut values = Vec::new();
        for item in items.iter() {
            values.push(typed_value(r, ops, param, op, item)?);
        }
        if values.is_empty() {
            r.key_error(ops, op, &value.span(), "`in` needs at least one value");
            return None;
        }
        return Some(Test::In(values));
    }
    if !OPS.contains(&op) {
        return None; // reported by unknown_keys
    }
    if !matches!(param.kind, ParamKind::Int { .. } | ParamKind::Float { .. }) {
        let msg = format!(
            "`{op}` compares numbers, and `{}` is of type {}; use a value or `in`",
            param.name,
            param.kind.type_name()
        );
        r.key_error(ops, op, op_span, msg);
        return None;
    }
    let x = match value.get_ref() {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok().filter(|x| x.is_finite()),
        v @ DeValue::Integer(_) => int_value(v).map(|n| n as f64),
        _ => None,
    };
    let Some(x) = x else {
        r.key_error(ops, op, &value.span(), format!("`{op}` takes a number"));
        return None;
    };
    Some(match op {
        "gt" => Test::Gt(x),
        "gte" => Test::Gte(x),
        "lt" => Test::Lt(x),
        _ => Test::Lte(x),
    })
}

/// A value in `when`, checked against the param's type (a value the param
/// refuses could never match).
fn typed_value(
    r: &mut Reader<'_>,
    s: &Section<'_, '_>,
    param: &Param,
    key: &str,
    item: &Item<'_>,
) -> Option<ArgValue> {
    let value = match (toml_arg(item), &param.kind) {
        // A float param takes an integer as the number it is.
        (Ok(ArgValue::Int(n)), ParamKind::Float { .. }) => Ok(ArgValue::Str(n.to_string())),
        (v, _) => v,
    };
    match value.and_then(|v| param.check(v)) {
        Ok(v) => Some(v),
        Err(msg) => {
            let msg = format!("`{}` can never have this value: {msg}", param.name);
            r.key_error(s, key, &item.span(), msg);
            None
        }
    }
}
