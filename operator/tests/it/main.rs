//! Operator integration tests: the HTTP contract with the API server (a mock service answering
//! the exact requests, kube-rs controller-rs style) and the AWS checks against bedrock-sim.

mod apiserver;
mod aws;
mod fake_apiserver;
mod fixtures;
mod operate;
mod render_aws;
mod scope;
