//! Search spaces: what one `[grid]` value may be, a list of choices or a distribution table.
//!
//! Grid search enumerates lists; random search (`[search] method = "random"`) also accepts
//! `{ uniform = [lo, hi] }`, `{ log_uniform = [lo, hi] }` and `{ int_uniform = [lo, hi] }`.
//! This module knows nothing about the keys: the caller names the key in errors and checks
//! that the values drawn are valid for it.

/// The distributions a `[grid]` table may name, in the order error messages list them.
const DISTRIBUTIONS: [&str; 3] = ["uniform", "log_uniform", "int_uniform"];

/// The domain of one axis of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// A list: sampled uniformly (random search) or enumerated (grid).
    Choice(Vec<toml::Value>),
    /// Real numbers in `[lo, hi]`, uniformly.
    Uniform { lo: f64, hi: f64 },
    /// Positive real numbers in `[lo, hi]`, uniform in the logarithm (each decade alike).
    LogUniform { lo: f64, hi: f64 },
    /// Whole numbers from `lo` to `hi`, both ends inclusive.
    IntUniform { lo: i64, hi: i64 },
}

impl Domain {
    /// Read one `[grid]` value: a non-empty array is a Choice; an inline table with exactly one
    /// key `uniform`, `log_uniform` or `int_uniform` whose value is a 2-element numeric array
    /// `[lo, hi]` is a distribution.
    ///
    /// Integers are accepted where floats are expected; `int_uniform` needs integers with
    /// `lo <= hi`; `uniform` needs finite `lo < hi`; `log_uniform` needs finite `0 < lo < hi`.
    /// The error says what is wrong and how to fix it, without the key (the caller adds it).
    pub fn parse(v: &toml::Value) -> Result<Domain, String> {
        match v {
            toml::Value::Array(values) if values.is_empty() => Err(
                "the list is empty; give at least one value, or a distribution table such as \
                 { log_uniform = [1e-4, 1e-1] }"
                    .to_string(),
            ),
            toml::Value::Array(values) => Ok(Domain::Choice(values.clone())),
            toml::Value::Table(table) => {
                let mut keys = table.keys();
                let (Some(name), None) = (keys.next(), keys.next()) else {
                    let found: Vec<String> = table.keys().map(|k| format!("`{k}`")).collect();
                    let found = if found.is_empty() {
                        "an empty table".to_string()
                    } else {
                        format!("{} keys ({})", found.len(), found.join(", "))
                    };
                    return Err(format!(
                        "a distribution table has exactly one key, uniform, log_uniform or \
                         int_uniform, such as {{ log_uniform = [1e-4, 1e-1] }}; got {found}"
                    ));
                };
                distribution(name, &table[name])
            }
            other => Err(format!(
                "expected a list of values or a distribution table such as \
                 {{ log_uniform = [1e-4, 1e-1] }}, got {}",
                a_type(other)
            )),
        }
    }

    /// Whether this is a distribution (random search only) rather than a list.
    pub fn is_distribution(&self) -> bool {
        !matches!(self, Domain::Choice(_))
    }

    /// Short text for plans: `[0.001, 0.01]` for a choice, `log_uniform(0.0001, 0.1)` etc.
    pub fn describe(&self) -> String {
        match self {
            Domain::Choice(values) => toml::Value::Array(values.clone()).to_string(),
            Domain::Uniform { lo, hi } => format!("uniform({lo}, {hi})"),
            Domain::LogUniform { lo, hi } => format!("log_uniform({lo}, {hi})"),
            Domain::IntUniform { lo, hi } => format!("int_uniform({lo}, {hi})"),
        }
    }
}

/// The distribution `name` with bounds `bounds`, or what is wrong with them.
fn distribution(name: &str, bounds: &toml::Value) -> Result<Domain, String> {
    let pair = match bounds {
        toml::Value::Array(a) if a.len() == 2 => Some((&a[0], &a[1])),
        _ => None,
    };
    match name {
        "uniform" => match pair.map(|(lo, hi)| (number(lo), number(hi))) {
            Some((Some(lo), Some(hi))) if lo.is_finite() && hi.is_finite() && lo < hi => {
                Ok(Domain::Uniform { lo, hi })
            }
            _ => Err(format!(
                "uniform needs two finite numbers [low, high] with low < high, got {bounds}"
            )),
        },
        "log_uniform" => match pair.map(|(lo, hi)| (number(lo), number(hi))) {
            Some((Some(lo), Some(hi))) if 0.0 < lo && lo < hi && hi.is_finite() => {
                Ok(Domain::LogUniform { lo, hi })
            }
            _ => Err(format!(
                "log_uniform needs two numbers [low, high] with 0 < low < high, got {bounds}"
            )),
        },
        "int_uniform" => match pair {
            Some((toml::Value::Integer(lo), toml::Value::Integer(hi))) if lo <= hi => {
                Ok(Domain::IntUniform { lo: *lo, hi: *hi })
            }
            _ => Err(format!(
                "int_uniform needs two whole numbers [low, high] with low <= high, got {bounds}"
            )),
        },
        unknown => {
            let choices = DISTRIBUTIONS.join(", ");
            Err(match closest(unknown) {
                Some(near) => {
                    format!("unknown distribution `{unknown}`; did you mean `{near}`? ({choices})")
                }
                None => format!("unknown distribution `{unknown}`; choose one of {choices}"),
            })
        }
    }
}

/// A TOML number as f64 (integers accepted where floats are expected).
fn number(v: &toml::Value) -> Option<f64> {
    match v {
        toml::Value::Float(f) => Some(*f),
        toml::Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// "a string", "an integer", ...: the kind of a TOML value, for error messages.
fn a_type(v: &toml::Value) -> String {
    let kind = v.type_str();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {kind}")
}

/// The distribution nearest to a misspelt name, if it is near enough to be a likely typo.
fn closest(name: &str) -> Option<&'static str> {
    DISTRIBUTIONS
        .iter()
        .map(|d| (strsim::jaro_winkler(&name.to_lowercase(), d), *d))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `v = <text>`, parsed as TOML.
    fn value(text: &str) -> toml::Value {
        let table: toml::Table = format!("v = {text}").parse().unwrap();
        table["v"].clone()
    }

    fn parse(text: &str) -> Result<Domain, String> {
        Domain::parse(&value(text))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Err(e) => e,
            Ok(d) => panic!("`{text}` parsed as {d:?}, expected an error"),
        }
    }

    #[test]
    fn lists_are_choices() {
        assert_eq!(
            parse("[0.001, 0.01]").unwrap(),
            Domain::Choice(vec![toml::Value::Float(0.001), toml::Value::Float(0.01)])
        );
        let d = parse(r#"["adam", "sgd"]"#).unwrap();
        assert_eq!(
            d,
            Domain::Choice(vec![
                toml::Value::String("adam".into()),
                toml::Value::String("sgd".into())
            ])
        );
        assert!(!d.is_distribution());
        // A one-element list is a valid choice.
        assert_eq!(
            parse("[32]").unwrap(),
            Domain::Choice(vec![toml::Value::Integer(32)])
        );
    }

    #[test]
    fn each_distribution_parses() {
        assert_eq!(
            parse("{ uniform = [0.0, 0.2] }").unwrap(),
            Domain::Uniform { lo: 0.0, hi: 0.2 }
        );
        assert_eq!(
            parse("{ log_uniform = [1e-4, 1e-1] }").unwrap(),
            Domain::LogUniform { lo: 1e-4, hi: 1e-1 }
        );
        assert_eq!(
            parse("{ int_uniform = [16, 128] }").unwrap(),
            Domain::IntUniform { lo: 16, hi: 128 }
        );
        // Negative uniform bounds are fine; int_uniform may be a single value.
        assert_eq!(
            parse("{ uniform = [-1.5, -0.5] }").unwrap(),
            Domain::Uniform { lo: -1.5, hi: -0.5 }
        );
        assert_eq!(
            parse("{ int_uniform = [3, 3] }").unwrap(),
            Domain::IntUniform { lo: 3, hi: 3 }
        );
        for text in [
            "{ uniform = [0.0, 0.2] }",
            "{ log_uniform = [1e-4, 1e-1] }",
            "{ int_uniform = [1, 2] }",
        ] {
            assert!(parse(text).unwrap().is_distribution(), "{text}");
        }
    }

    #[test]
    fn integers_are_accepted_as_float_bounds() {
        assert_eq!(
            parse("{ uniform = [0, 1] }").unwrap(),
            Domain::Uniform { lo: 0.0, hi: 1.0 }
        );
        assert_eq!(
            parse("{ log_uniform = [1, 1000] }").unwrap(),
            Domain::LogUniform {
                lo: 1.0,
                hi: 1000.0
            }
        );
        assert_eq!(
            parse("{ uniform = [0, 0.5] }").unwrap(),
            Domain::Uniform { lo: 0.0, hi: 0.5 }
        );
    }

    #[test]
    fn int_uniform_needs_integers() {
        let e = error("{ int_uniform = [1.0, 5.0] }");
        assert_eq!(
            e,
            "int_uniform needs two whole numbers [low, high] with low <= high, got [1.0, 5.0]"
        );
        assert!(error("{ int_uniform = [1, 5.5] }").contains("got [1, 5.5]"));
    }

    #[test]
    fn bounds_out_of_order_are_rejected() {
        assert_eq!(
            error("{ uniform = [0.2, 0.1] }"),
            "uniform needs two finite numbers [low, high] with low < high, got [0.2, 0.1]"
        );
        assert!(error("{ uniform = [0.1, 0.1] }").contains("low < high, got [0.1, 0.1]"));
        assert!(error("{ log_uniform = [0.1, 0.01] }").contains("0 < low < high"));
        assert!(error("{ log_uniform = [0.1, 0.1] }").contains("0 < low < high"));
        assert_eq!(
            error("{ int_uniform = [5, 4] }"),
            "int_uniform needs two whole numbers [low, high] with low <= high, got [5, 4]"
        );
    }

    #[test]
    fn non_positive_log_bounds_are_rejected() {
        assert_eq!(
            error("{ log_uniform = [0.0, 0.1] }"),
            "log_uniform needs two numbers [low, high] with 0 < low < high, got [0.0, 0.1]"
        );
        assert!(error("{ log_uniform = [-0.1, 0.1] }").contains("got [-0.1, 0.1]"));
        assert!(error("{ log_uniform = [0, 1] }").contains("got [0, 1]"));
    }

    #[test]
    fn non_finite_bounds_are_rejected() {
        assert!(error("{ uniform = [0.0, inf] }").starts_with("uniform needs two finite"));
        assert!(error("{ uniform = [nan, 1.0] }").starts_with("uniform needs two finite"));
        assert!(error("{ log_uniform = [1e-4, inf] }").starts_with("log_uniform needs"));
    }

    #[test]
    fn bounds_must_be_a_pair_of_numbers() {
        for text in [
            "{ uniform = [0.1] }",
            "{ uniform = [0.1, 0.2, 0.3] }",
            "{ uniform = 0.1 }",
            r#"{ uniform = ["0.1", "0.2"] }"#,
            "{ uniform = [] }",
        ] {
            let e = error(text);
            assert!(
                e.starts_with("uniform needs two finite numbers [low, high]"),
                "{text}: {e}"
            );
        }
        assert!(error("{ log_uniform = 0.001 }").ends_with("got 0.001"));
    }

    #[test]
    fn unknown_distribution_suggests_the_nearest() {
        assert_eq!(
            error("{ loguniform = [1e-4, 1e-1] }"),
            "unknown distribution `loguniform`; did you mean `log_uniform`? \
             (uniform, log_uniform, int_uniform)"
        );
        assert!(error("{ int_unifrom = [1, 4] }").contains("did you mean `int_uniform`?"));
        assert!(error("{ Uniform = [0, 1] }").contains("did you mean `uniform`?"));
        assert_eq!(
            error("{ normal = [0, 1] }"),
            "unknown distribution `normal`; choose one of uniform, log_uniform, int_uniform"
        );
    }

    #[test]
    fn other_values_are_rejected() {
        assert_eq!(
            error(r#""adam""#),
            "expected a list of values or a distribution table such as \
             { log_uniform = [1e-4, 1e-1] }, got a string"
        );
        assert!(error("0.01").ends_with("got a float"));
        assert!(error("32").ends_with("got an integer"));
        assert!(error("true").ends_with("got a boolean"));
    }

    #[test]
    fn empty_list_is_rejected() {
        let e = error("[]");
        assert!(e.contains("the list is empty"), "{e}");
        assert!(e.contains("at least one value"), "{e}");
    }

    #[test]
    fn table_must_have_exactly_one_key() {
        let e = error("{ uniform = [0, 1], log_uniform = [1e-4, 1e-1] }");
        assert!(
            e.starts_with("a distribution table has exactly one key"),
            "{e}"
        );
        assert!(e.contains("got 2 keys"), "{e}");
        assert!(
            e.contains("`uniform`") && e.contains("`log_uniform`"),
            "{e}"
        );
        let e = error("{}");
        assert!(e.ends_with("got an empty table"), "{e}");
    }

    #[test]
    fn describe_is_short() {
        assert_eq!(parse("[0.001, 0.01]").unwrap().describe(), "[0.001, 0.01]");
        assert_eq!(
            parse(r#"["adam", "sgd"]"#).unwrap().describe(),
            r#"["adam", "sgd"]"#
        );
        assert_eq!(
            parse("{ log_uniform = [1e-4, 1e-1] }").unwrap().describe(),
            "log_uniform(0.0001, 0.1)"
        );
        assert_eq!(
            parse("{ uniform = [0.0, 0.2] }").unwrap().describe(),
            "uniform(0, 0.2)"
        );
        assert_eq!(
            parse("{ int_uniform = [16, 128] }").unwrap().describe(),
            "int_uniform(16, 128)"
        );
    }
}
