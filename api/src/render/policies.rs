//! AccessPolicy objects into [`config::Policy`]s, sorted by namespace and name.

use super::{describe, name, namespace};
use crate::config::{self, SubjectRef};
use crate::crd::AccessPolicy;
use crate::crd::policy::Subject;
use crate::problems::{Problem, Problems};

/// Policies in the order of `policies` (already sorted by namespace and name).
pub(super) fn render(policies: &[&AccessPolicy], problems: &mut Problems) -> Vec<config::Policy> {
    let mut out = Vec::new();
    for policy in policies {
        let object = describe(*policy);
        let spec = &policy.spec;
        if spec.subjects.is_empty() {
            problems.push(Problem::new(
                &object,
                "spec.subjects",
                "the policy has no subjects, so it grants nothing",
                "list at least one user, team or serviceAccount under spec.subjects",
            ));
        }
        if spec.models.is_empty() {
            problems.push(Problem::new(
                &object,
                "spec.models",
                "the policy names no models, so it grants nothing",
                "list globs over served names under spec.models, e.g. prod/*",
            ));
        }
        let subjects = spec
            .subjects
            .iter()
            .enumerate()
            .filter_map(|(i, subject)| subject_ref(subject, &object, i, problems))
            .collect();
        out.push(config::Policy {
            name: format!("{}/{}", namespace(&policy.metadata), name(&policy.metadata)),
            subjects,
            models: spec.models.clone(),
            limits: spec.limits.clone(),
        });
    }
    out
}

/// One subject, which must name exactly one of user, team and serviceAccount.
fn subject_ref(subject: &Subject, object: &str, index: usize, problems: &mut Problems) -> Option<SubjectRef> {
    match (&subject.user, &subject.team, &subject.service_account) {
        (Some(user), None, None) => Some(SubjectRef::User(user.clone())),
        (None, Some(team), None) => Some(SubjectRef::Team(team.clone())),
        (None, None, Some(sa)) => {
            Some(SubjectRef::ServiceAccount { namespace: sa.namespace.clone(), name: sa.name.clone() })
        }
        _ => {
            problems.push(Problem::new(
                object,
                format!("spec.subjects[{index}]"),
                "a subject must name exactly one of user, team or serviceAccount",
                "split the entry into one subject per user, team or service account",
            ));
            None
        }
    }
}
