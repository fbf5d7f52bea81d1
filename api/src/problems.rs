//! Problems found while loading or rendering manifests: each names the object, the field and the fix.

use std::fmt;

/// One thing wrong with the manifests. Never carries secret values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The object at fault, e.g. `BedrockModel ai-gateway/claude` or `models.yaml document 2`.
    pub object: String,
    /// The field at fault, e.g. `spec.accountRef`; empty when the whole object is at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// Builds a problem from its four parts.
    pub fn new(
        object: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Problem { object: object.into(), field: field.into(), message: message.into(), fix: fix.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {} (fix: {})", self.object, self.message, self.fix)
        } else {
            write!(f, "{} {}: {} (fix: {})", self.object, self.field, self.message, self.fix)
        }
    }
}

/// Every problem found, in a stable order; the error of loading and rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Adds a problem.
    pub fn push(&mut self, problem: Problem) {
        self.0.push(problem);
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when no problem was found, else `Err(self)`.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    /// One line per problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Extend<Problem> for Problems {
    fn extend<I: IntoIterator<Item = Problem>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_per_problem_and_omits_empty_field() {
        let problems = Problems(vec![
            Problem::new("BedrockModel ns/m", "spec.accountRef", "BedrockAccount x not found", "create it"),
            Problem::new("a.yaml document 1", "", "bad YAML", "fix the syntax"),
        ]);
        assert_eq!(
            problems.to_string(),
            "BedrockModel ns/m spec.accountRef: BedrockAccount x not found (fix: create it)\n\
             a.yaml document 1: bad YAML (fix: fix the syntax)"
        );
    }
}
