//! Authorization: which served models a subject may use. No policy, no access.

use api::config::{Policy, SubjectRef};
use wildmatch::WildMatch;

use crate::auth::Subject;

/// Access policies compiled for matching.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
}

#[derive(Debug)]
struct CompiledPolicy {
    subjects: Vec<SubjectRef>,
    models: Vec<WildMatch>,
}

impl PolicySet {
    /// Compiles the rendered policies.
    pub fn new(policies: &[Policy]) -> Self {
        let policies = policies
            .iter()
            .map(|p| CompiledPolicy {
                subjects: p.subjects.clone(),
                models: p.models.iter().map(|m| WildMatch::new(m)).collect(),
            })
            .collect();
        PolicySet { policies }
    }

    /// Whether any policy grants `served_name` to `subject`.
    pub fn allows(&self, subject: &Subject, served_name: &str) -> bool {
        self.policies.iter().any(|p| {
            p.subjects.iter().any(|s| names(s, subject)) && p.models.iter().any(|m| m.matches(served_name))
        })
    }
}

fn names(reference: &SubjectRef, subject: &Subject) -> bool {
    match reference {
        SubjectRef::User(user) => *user == subject.user,
        SubjectRef::Team(team) => subject.teams.iter().any(|t| t == team),
        // Service-account callers arrive with TokenReview (not in this build); API keys never match.
        SubjectRef::ServiceAccount { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(subjects: Vec<SubjectRef>, models: &[&str]) -> Policy {
        Policy {
            name: "ns/p".into(),
            subjects,
            models: models.iter().map(|m| m.to_string()).collect(),
            limits: None,
        }
    }

    fn alice() -> Subject {
        Subject { user: "alice@example.com".into(), teams: vec!["ml".into()] }
    }

    #[test]
    fn no_policy_no_access() {
        assert!(!PolicySet::new(&[]).allows(&alice(), "prod/claude"));
    }

    #[test]
    fn user_team_and_globs() {
        let set = PolicySet::new(&[
            policy(vec![SubjectRef::Team("ml".into())], &["prod/*"]),
            policy(vec![SubjectRef::User("alice@example.com".into())], &["dev/claude-sonnet"]),
        ]);
        assert!(set.allows(&alice(), "prod/claude"));
        assert!(set.allows(&alice(), "dev/claude-sonnet"));
        assert!(!set.allows(&alice(), "dev/nova"));
        let bob = Subject { user: "bob@example.com".into(), teams: vec![] };
        assert!(!set.allows(&bob, "prod/claude"));
    }
}
