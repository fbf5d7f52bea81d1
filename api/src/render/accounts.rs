//! BedrockAccount objects into [`config::Account`]s and their static credentials.

use std::collections::BTreeMap;

use super::secrets::{Reader, SecretIndex};
use super::{describe, name, namespace};
use crate::config::{self, AccountAuth, AccountSecret, Rendered, SecretString, SubjectRef};
use crate::crd::BedrockAccount;
use crate::crd::account::{AccountAuthSpec, CollaboratorRole, CollaboratorSpec, EndpointsSpec};
use crate::problems::{Problem, Problems};

/// Session name used for assumeRole when the account sets none.
pub const DEFAULT_SESSION_NAME: &str = "bedrock-gateway";

/// Default key of an apiKey account's Secret.
pub const DEFAULT_API_KEY_KEY: &str = "apiKey";

/// Adds every account to `out.config.accounts` and its secret, if any, to `out.credentials`.
pub(super) fn render(
    accounts: &[&BedrockAccount],
    secrets: &SecretIndex<'_>,
    out: &mut Rendered,
    problems: &mut Problems,
) {
    // Account names are global (first half of served names); sorted input makes the first stable.
    let mut owner_of_name: BTreeMap<&str, String> = BTreeMap::new();
    for account in accounts {
        let object = describe(*account);
        let account_name = name(&account.metadata);
        if let Some(owner) = owner_of_name.get(account_name) {
            problems.push(Problem::new(
                &object,
                "metadata.name",
                format!("account name {account_name} is already used by {owner}"),
                "account names are global across namespaces: rename one of the BedrockAccounts",
            ));
            continue;
        }
        owner_of_name.insert(account_name, object.clone());
        let spec = &account.spec;
        if spec.default_region.trim().is_empty() {
            problems.push(Problem::new(
                &object,
                "spec.defaultRegion",
                "defaultRegion is empty",
                "set spec.defaultRegion to an AWS region, e.g. us-east-1",
            ));
        }
        let ns = namespace(&account.metadata);
        let Some((auth, secret)) = auth(&spec.auth, ns, &object, secrets, problems) else { continue };
        if let Some(secret) = secret {
            out.credentials.accounts.insert(account_name.to_string(), secret);
        }
        let batch = spec.batch.as_ref().map(|b| {
            check_role_arn(&b.role_arn, &object, "spec.batch.roleArn", problems);
            config::Batch {
                bucket: b.bucket.clone(),
                prefix: b.prefix.clone().unwrap_or_default(),
                role_arn: b.role_arn.clone(),
            }
        });
        let discovery = spec
            .discovery
            .as_ref()
            .filter(|d| d.enabled)
            .map(|d| config::Discovery { include: d.include.clone() });
        out.config.accounts.insert(
            account_name.to_string(),
            config::Account {
                name: account_name.to_string(),
                namespace: ns.to_string(),
                default_region: spec.default_region.clone(),
                auth,
                endpoints: endpoints(spec.endpoints.as_ref()),
                batch,
                discovery,
                collaborators: collaborators(&spec.collaborators, &object, problems),
            },
        );
    }
}

/// Each endpoint from the spec, or the public AWS template when omitted.
fn endpoints(spec: Option<&EndpointsSpec>) -> config::Endpoints {
    let defaults = config::Endpoints::default();
    let Some(spec) = spec else { return defaults };
    config::Endpoints {
        runtime: spec.runtime.clone().unwrap_or(defaults.runtime),
        control: spec.control.clone().unwrap_or(defaults.control),
        sts: spec.sts.clone().unwrap_or(defaults.sts),
        s3: spec.s3.clone().unwrap_or(defaults.s3),
    }
}

/// The auth method and, for static methods, the secret read from the referenced Secret.
fn auth(
    spec: &AccountAuthSpec,
    ns: &str,
    object: &str,
    secrets: &SecretIndex<'_>,
    problems: &mut Problems,
) -> Option<(AccountAuth, Option<AccountSecret>)> {
    let set: Vec<&str> = [
        ("podIdentity", spec.pod_identity.is_some()),
        ("assumeRole", spec.assume_role.is_some()),
        ("accessKey", spec.access_key.is_some()),
        ("apiKey", spec.api_key.is_some()),
    ]
    .into_iter()
    .filter_map(|(method, is_set)| is_set.then_some(method))
    .collect();
    if set.len() != 1 {
        let message = if set.is_empty() {
            "no auth method is set".to_string()
        } else {
            format!("{} auth methods are set ({}); exactly one is allowed", set.len(), set.join(", "))
        };
        problems.push(Problem::new(
            object,
            "spec.auth",
            message,
            "set exactly one of podIdentity, assumeRole, accessKey or apiKey",
        ));
        return None;
    }
    if spec.pod_identity.is_some() {
        return Some((AccountAuth::PodIdentity, None));
    }
    if let Some(role) = &spec.assume_role {
        if !check_role_arn(&role.role_arn, object, "spec.auth.assumeRole.roleArn", problems) {
            return None;
        }
        let session_name = role.session_name.clone().filter(|s| !s.is_empty());
        let auth = AccountAuth::AssumeRole {
            role_arn: role.role_arn.clone(),
            external_id: role.external_id.clone().filter(|s| !s.is_empty()),
            session_name: session_name.unwrap_or_else(|| DEFAULT_SESSION_NAME.to_string()),
            duration_seconds: role.duration_seconds,
        };
        return Some((auth, None));
    }
    if let Some(access) = &spec.access_key {
        let field = "spec.auth.accessKey.secretRef";
        let secret_name = &access.secret_ref.name;
        let Some(secret) = secrets.get(ns, secret_name) else {
            problems.push(missing_secret(object, field, ns, secret_name, "accessKeyId and secretAccessKey"));
            return None;
        };
        let mut reader = Reader { object, field, problems };
        let id = reader.read(secret, "accessKeyId", true);
        let key = reader.read(secret, "secretAccessKey", true);
        let token = reader.read(secret, "sessionToken", false);
        let (Ok(Some(id)), Ok(Some(key)), Ok(token)) = (id, key, token) else { return None };
        let secret = AccountSecret::AccessKey {
            access_key_id: SecretString::new(id),
            secret_access_key: SecretString::new(key),
            session_token: token.filter(|t| !t.is_empty()).map(SecretString::new),
        };
        return Some((AccountAuth::AccessKey, Some(secret)));
    }
    let api = spec.api_key.as_ref()?;
    let field = "spec.auth.apiKey.secretRef";
    let secret_name = &api.secret_ref.name;
    let key = api.secret_ref.key.as_deref().filter(|k| !k.is_empty()).unwrap_or(DEFAULT_API_KEY_KEY);
    let Some(secret) = secrets.get(ns, secret_name) else {
        problems.push(missing_secret(object, field, ns, secret_name, key));
        return None;
    };
    let Ok(Some(value)) = (Reader { object, field, problems }).read(secret, key, true) else { return None };
    Some((AccountAuth::ApiKey, Some(AccountSecret::ApiKey { api_key: SecretString::new(value) })))
}

/// The problem of a Secret that does not exist.
fn missing_secret(object: &str, field: &str, ns: &str, secret: &str, keys: &str) -> Problem {
    Problem::new(
        object,
        format!("{field}.name"),
        format!("Secret {secret} not found in namespace {ns}"),
        format!(
            "create Secret {secret} in namespace {ns} with {keys}, or point secretRef at an existing Secret"
        ),
    )
}

/// Records a problem unless `arn` looks like `arn:<partition>:iam::<12 digits>:role/<name>`.
fn check_role_arn(arn: &str, object: &str, field: &str, problems: &mut Problems) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = matches!(
        parts.as_slice(),
        ["arn", "aws" | "aws-cn" | "aws-us-gov", "iam", "", account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty())
    );
    if !valid {
        problems.push(Problem::new(
            object,
            field,
            format!("{arn:?} is not an IAM role ARN"),
            "use a role ARN like arn:aws:iam::123456789012:role/bedrock-invoke",
        ));
    }
    valid
}

/// Collaborators mapped to subjects; each must name exactly one of user and team.
fn collaborators(
    spec: &[CollaboratorSpec],
    object: &str,
    problems: &mut Problems,
) -> Vec<config::Collaborator> {
    let mut out = Vec::new();
    for (i, c) in spec.iter().enumerate() {
        let subject = match (&c.user, &c.team) {
            (Some(user), None) => SubjectRef::User(user.clone()),
            (None, Some(team)) => SubjectRef::Team(team.clone()),
            _ => {
                problems.push(Problem::new(
                    object,
                    format!("spec.collaborators[{i}]"),
                    "a collaborator must name exactly one of user or team",
                    "set either user or team on the collaborator",
                ));
                continue;
            }
        };
        let role = match c.role {
            CollaboratorRole::Manager => config::CollaboratorRole::Manager,
            CollaboratorRole::User => config::CollaboratorRole::User,
        };
        out.push(config::Collaborator { subject, role });
    }
    out
}
