//! `accessKey`: static keys from the account's Secret. A changed Secret is picked up by the
//! config reload, which builds new credentials; requests already signed keep the old keys.

use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::identity::Identity;

/// Provider name the SDK types carry for these keys.
const PROVIDER: &str = "BedrockGatewaySecret";

/// A SigV4 identity from an access key pair and optional session token; it never expires.
pub(crate) fn identity(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Identity {
    Credentials::new(access_key_id, secret_access_key, session_token.map(str::to_owned), None, PROVIDER)
        .into()
}
