//! Wire types of the Bedrock APIs.
