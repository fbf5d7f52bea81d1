//! Authorization: which served models a subject may use, and under which limits. No policy,
//! no access.
//!
//! Files and batches belong to the caller that created them. A `models` entry
//! `batch-owner:<glob>` (e.g. `batch-owner:*`, `batch-owner:*@example.com`) additionally lets the
//! policy's subjects see, read, cancel and delete the files and batches of the owners it matches.

use api::config::{Limits, Policy, SubjectRef};
use wildmatch::WildMatch;

use crate::auth::Subject;

/// Access policies compiled for matching.
#[derive(Debug, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
}

#[derive(Debug)]
struct CompiledPolicy {
    name: String,
    limits: Option<Limits>,
    subjects: Vec<SubjectRef>,
    models: Vec<WildMatch>,
    owners: Vec<WildMatch>,
}

/// Prefix of a `models` entry granting access to other callers' files and batches.
pub const OWNER_GRANT: &str = "batch-owner:";

impl PolicySet {
    /// Compiles the rendered policies.
    pub fn new(policies: &[Policy]) -> Self {
        let policies = policies
            .iter()
            .map(|p| CompiledPolicy {
                name: p.name.clone(),
                limits: p.limits.clone(),
                subjects: p.subjects.clone(),
                models: p.models.iter().map(|m| WildMatch::new(m)).collect(),
                owners: p
                    .models
                    .iter()
                    .filter_map(|m| m.strip_prefix(OWNER_GRANT).map(WildMatch::new))
                    .collect(),
            })
            .collect();
        PolicySet { policies }
    }

    /// Whether any policy grants `served_name` to `subject`.
    pub fn allows(&self, subject: &Subject, served_name: &str) -> bool {
        self.policies.iter().any(|p| p.grants(subject, served_name))
    }

    /// Whether `subject` may see and use the files and batches `owner` created: its own, or
    /// another's through a `batch-owner:` grant.
    pub fn sees_owner(&self, subject: &Subject, owner: &str) -> bool {
        subject.user == owner
            || self.policies.iter().any(|p| {
                p.owners.iter().any(|o| o.matches(owner)) && p.subjects.iter().any(|s| names(s, subject))
            })
    }

    /// `(policy name, limits)` of every policy granting `served_name` to `subject` with limits.
    pub fn limits_for<'a>(
        &'a self,
        subject: &'a Subject,
        served_name: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Limits)> + 'a {
        self.policies
            .iter()
            .filter(move |p| p.grants(subject, served_name))
            .filter_map(|p| p.limits.as_ref().map(|l| (p.name.as_str(), l)))
    }
}

impl CompiledPolicy {
    fn grants(&self, subject: &Subject, served_name: &str) -> bool {
        self.subjects.iter().any(|s| names(s, subject)) && self.models.iter().any(|m| m.matches(served_name))
    }
}

fn names(reference: &SubjectRef, subject: &Subject) -> bool {
    match reference {
        SubjectRef::User(user) => *user == subject.user,
        SubjectRef::Team(team) => subject.teams.iter().any(|t| t == team),
        SubjectRef::ServiceAccount { namespace, name } => {
            subject.service_account.as_ref().is_some_and(|sa| sa.namespace == *namespace && sa.name == *name)
        }
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
        Subject::user("alice@example.com", vec!["ml".into()])
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
        let bob = Subject::user("bob@example.com", vec![]);
        assert!(!set.allows(&bob, "prod/claude"));
    }

    #[test]
    fn service_accounts_match_by_namespace_and_name() {
        let set = PolicySet::new(&[policy(
            vec![SubjectRef::ServiceAccount { namespace: "apps".into(), name: "bot".into() }],
            &["prod/*"],
        )]);
        let sa = |ns: &str, name: &str| Subject {
            user: format!("system:serviceaccount:{ns}:{name}"),
            teams: vec![],
            service_account: Some(crate::auth::ServiceAccount { namespace: ns.into(), name: name.into() }),
        };
        assert!(set.allows(&sa("apps", "bot"), "prod/claude"));
        assert!(!set.allows(&sa("other", "bot"), "prod/claude"));
        // A user named like a service account is not one.
        assert!(!set.allows(&Subject::user("system:serviceaccount:apps:bot", vec![]), "prod/claude"));
    }

    #[test]
    fn owners_see_their_own_and_grants_widen_it() {
        let set =
            PolicySet::new(&[policy(vec![SubjectRef::Team("ml".into())], &["batch-owner:*@example.com"])]);
        let bob = Subject::user("bob@example.com", vec![]);
        assert!(set.sees_owner(&bob, "bob@example.com"));
        assert!(!set.sees_owner(&bob, "alice@example.com"));
        assert!(set.sees_owner(&alice(), "bob@example.com"));
        assert!(!set.sees_owner(&alice(), "eve@elsewhere.org"));
        // The grant is no model grant.
        assert!(!set.allows(&alice(), "prod/claude"));
    }

    #[test]
    fn limits_of_every_granting_policy() {
        let limits = Limits { requests_per_minute: Some(5), ..Default::default() };
        let mut limited = policy(vec![SubjectRef::Team("ml".into())], &["prod/*"]);
        limited.name = "ns/limited".into();
        limited.limits = Some(limits.clone());
        let set = PolicySet::new(&[limited, policy(vec![SubjectRef::Team("ml".into())], &["*"])]);
        assert_eq!(
            set.limits_for(&alice(), "prod/claude").collect::<Vec<_>>(),
            vec![("ns/limited", &limits)]
        );
        assert_eq!(set.limits_for(&alice(), "dev/claude").count(), 0);
    }
}
