//! Injected failures of the batch control plane, set through `POST /_sim/batch-faults`:
//! `{"operation": "GetModelInvocationJob", "error": "InternalServerException", "times": 1}`
//! makes the next `times` calls of that operation answer that exception (one the AWS model lists
//! for the operation), so a test can fail a caller's step that comes after a job was created (the
//! job's own input carries no directives a control-plane call could read).
//! `DELETE /_sim/batch-faults` clears them.

use serde::Deserialize;

use super::Operation;
use crate::errors::AwsError;

/// The control-plane operations a fault can strike, by their AWS names, with the exceptions the
/// AWS model lists for each (those the simulator can answer with).
const OPERATIONS: [(&str, &[&str]); 4] = [
    (
        "CreateModelInvocationJob",
        &[
            "ResourceNotFoundException",
            "AccessDeniedException",
            "ValidationException",
            "InternalServerException",
            "ServiceQuotaExceededException",
            "ThrottlingException",
        ],
    ),
    (
        "GetModelInvocationJob",
        &[
            "ResourceNotFoundException",
            "AccessDeniedException",
            "ValidationException",
            "InternalServerException",
            "ThrottlingException",
        ],
    ),
    (
        "ListModelInvocationJobs",
        &["AccessDeniedException", "ValidationException", "InternalServerException", "ThrottlingException"],
    ),
    (
        "StopModelInvocationJob",
        &[
            "ResourceNotFoundException",
            "AccessDeniedException",
            "ValidationException",
            "InternalServerException",
            "ThrottlingException",
        ],
    ),
];

/// One armed fault.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Fault {
    /// AWS name of the operation it strikes.
    pub operation: String,
    /// Name of the modeled exception to answer with.
    pub error: String,
    /// How many calls it strikes (default 1).
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// Parses and checks a `POST /_sim/batch-faults` body.
    pub(crate) fn parse(body: &[u8]) -> Result<Fault, AwsError> {
        let fault: Fault = serde_json::from_slice(body).map_err(|e| {
            AwsError::validation(format!(
                "bedrock-sim: a batch fault is {{\"operation\", \"error\", \"times\"?}} ({e})"
            ))
        })?;
        let Some((_, errors)) = OPERATIONS.iter().find(|(name, _)| *name == fault.operation) else {
            let names: Vec<&str> = OPERATIONS.iter().map(|(name, _)| *name).collect();
            return Err(AwsError::validation(format!(
                "bedrock-sim: unknown batch operation '{}'; use one of {}",
                fault.operation,
                names.join(", ")
            )));
        };
        if fault.times == 0 {
            return Err(AwsError::validation("bedrock-sim: a batch fault's `times` is at least 1"));
        }
        if !errors.contains(&fault.error.as_str()) {
            return Err(AwsError::validation(format!(
                "bedrock-sim: {} does not answer '{}'; its modeled exceptions are {}",
                fault.operation,
                fault.error,
                errors.join(", ")
            )));
        }
        Ok(fault)
    }
}

/// The AWS name of `op`.
pub(crate) fn operation_name(op: &Operation) -> &'static str {
    let index = match op {
        Operation::Create => 0,
        Operation::Get(_) => 1,
        Operation::List => 2,
        Operation::Stop(_) => 3,
    };
    OPERATIONS[index].0
}

/// Takes one strike of the first fault armed for `op` from `faults`: the error to answer with.
pub(crate) fn strike(faults: &mut Vec<Fault>, op: &Operation) -> Option<AwsError> {
    let name = operation_name(op);
    let at = faults.iter().position(|f| f.operation == name)?;
    let error = AwsError::modeled(&faults[at].error, "");
    faults[at].times -= 1;
    if faults[at].times == 0 {
        faults.remove(at);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_strikes_its_operation_the_given_number_of_times() {
        let mut faults = vec![
            Fault::parse(
                br#"{"operation":"GetModelInvocationJob","error":"InternalServerException","times":2}"#,
            )
            .unwrap(),
        ];
        let get = Operation::Get("abc".into());
        assert!(strike(&mut faults, &Operation::List).is_none());
        for _ in 0..2 {
            let e = strike(&mut faults, &get).expect("armed");
            assert_eq!((e.status.as_u16(), e.code), (500, "InternalServerException"));
        }
        assert!(strike(&mut faults, &get).is_none(), "spent");
    }

    #[test]
    fn bad_faults_are_refused() {
        for (body, message) in [
            (r#"{"operation":"Nope","error":"InternalServerException"}"#, "unknown batch operation 'Nope'"),
            (
                r#"{"operation":"ListModelInvocationJobs","error":"ResourceNotFoundException"}"#,
                "ListModelInvocationJobs does not answer 'ResourceNotFoundException'",
            ),
            (r#"{"operation":"StopModelInvocationJob"}"#, "a batch fault is"),
            (
                r#"{"operation":"StopModelInvocationJob","error":"ThrottlingException","times":0}"#,
                "at least 1",
            ),
        ] {
            let e = Fault::parse(body.as_bytes()).unwrap_err();
            assert!(e.message.contains(message), "{body}: {}", e.message);
        }
        let f =
            Fault::parse(br#"{"operation":"StopModelInvocationJob","error":"ThrottlingException"}"#).unwrap();
        assert_eq!(f.times, 1);
    }
}
