//! Collaborators to RBAC: in the account's namespace, managers get a Role that may create,
//! update and delete BedrockModels, users one that may read them; both are bound to the users
//! (kind User) and teams (kind Group) the account names, and owned by the account so they go
//! with it. The namespace is the account boundary: whoever may edit BedrockModels in it may
//! point them at any account there, so each account that needs separate managers lives in its
//! own namespace.

use std::collections::BTreeMap;

use api::crd::BedrockAccount;
use api::crd::account::CollaboratorRole;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};

use crate::apply::FIELD_MANAGER;

/// RBAC API group.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Name of the Role (and RoleBinding) of one collaborator role of an account.
pub fn role_name(account: &str, role: CollaboratorRole) -> String {
    match role {
        CollaboratorRole::Manager => format!("bedrock-gateway-{account}-managers"),
        CollaboratorRole::User => format!("bedrock-gateway-{account}-users"),
    }
}

/// The Role and RoleBinding of `role` on `account`; `None` when no collaborator has that role.
pub fn objects(account: &BedrockAccount, role: CollaboratorRole) -> Option<(Role, RoleBinding)> {
    let subjects: Vec<Subject> = account
        .spec
        .collaborators
        .iter()
        .filter(|c| c.role == role)
        .filter_map(|c| match (&c.user, &c.team) {
            (Some(user), None) => Some(subject("User", user)),
            (None, Some(team)) => Some(subject("Group", team)),
            _ => None,
        })
        .collect();
    if subjects.is_empty() {
        return None;
    }
    let name = role_name(&account.name_any(), role);
    let verbs: &[&str] = match role {
        CollaboratorRole::Manager => &["get", "list", "watch", "create", "update", "patch", "delete"],
        CollaboratorRole::User => &["get", "list", "watch"],
    };
    let rules = vec![
        PolicyRule {
            api_groups: Some(vec![api::crd::GROUP.to_string()]),
            resources: Some(vec!["bedrockmodels".to_string()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..PolicyRule::default()
        },
        PolicyRule {
            api_groups: Some(vec![api::crd::GROUP.to_string()]),
            resources: Some(vec!["bedrockaccounts".to_string()]),
            resource_names: Some(vec![account.name_any()]),
            verbs: vec!["get".to_string(), "watch".to_string()],
            ..PolicyRule::default()
        },
    ];
    let meta = meta(account, &name);
    let binding = RoleBinding {
        metadata: meta.clone(),
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.to_string()),
            kind: "Role".to_string(),
            name: name.clone(),
        },
        subjects: Some(subjects),
    };
    Some((Role { metadata: meta, rules: Some(rules) }, binding))
}

/// A User or Group subject.
fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: Some(RBAC_GROUP.to_string()),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: None,
    }
}

/// Name, namespace, labels and the owner reference to the account.
fn meta(account: &BedrockAccount, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: account.namespace(),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_string(), FIELD_MANAGER.to_string()),
            ("bedrockgateway.io/account".to_string(), account.name_any()),
        ])),
        owner_references: account.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Applies the Roles and RoleBindings `account` needs and deletes those it no longer needs.
pub async fn reconcile(client: &Client, account: &BedrockAccount) -> Result<(), kube::Error> {
    let ns = account.namespace().unwrap_or_default();
    let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for role in [CollaboratorRole::Manager, CollaboratorRole::User] {
        let name = role_name(&account.name_any(), role);
        match objects(account, role) {
            Some((role, binding)) => {
                roles.patch(&name, &params, &Patch::Apply(&role)).await?;
                bindings.patch(&name, &params, &Patch::Apply(&binding)).await?;
            }
            None => {
                delete_if_present(&bindings, &name).await?;
                delete_if_present(&roles, &name).await?;
            }
        }
    }
    Ok(())
}

/// Deletes `name`; a missing object is fine.
async fn delete_if_present<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{BASE, manifests};

    #[test]
    fn managers_edit_models_users_read_them_teams_are_groups() {
        let mut account = manifests(BASE).accounts.remove(0);
        account.metadata.uid = Some("uid-1".into());
        let (role, binding) = objects(&account, CollaboratorRole::Manager).unwrap();
        assert_eq!(role.metadata.name.as_deref(), Some("bedrock-gateway-demo-managers"));
        let rules = role.rules.unwrap();
        assert_eq!(rules[0].verbs, ["get", "list", "watch", "create", "update", "patch", "delete"]);
        assert_eq!(rules[1].resource_names.as_deref(), Some(&["demo".to_string()][..]));
        let subjects = binding.subjects.unwrap();
        assert_eq!((subjects[0].kind.as_str(), subjects[0].name.as_str()), ("User", "bob@example.com"));
        let owner = &binding.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("BedrockAccount", "demo", Some(true))
        );

        let (role, binding) = objects(&account, CollaboratorRole::User).unwrap();
        assert_eq!(role.rules.unwrap()[0].verbs, ["get", "list", "watch"]);
        assert_eq!(binding.subjects.unwrap()[0].kind, "Group");

        account.spec.collaborators.clear();
        assert!(objects(&account, CollaboratorRole::User).is_none());
    }
}
