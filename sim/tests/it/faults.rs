//! Fault injection through `[[sim:...]]` directives.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use crate::common::*;

const EXCEPTIONS: &[(&str, u16)] = &[
    ("ValidationException", 400),
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
    ("ThrottlingException", 429),
    ("ServiceQuotaExceededException", 400),
    ("ModelTimeoutException", 408),
    ("ModelErrorException", 424),
    ("ModelNotReadyException", 429),
    ("InternalServerException", 500),
    ("ServiceUnavailableException", 503),
];

#[tokio::test]
async fn error_directive_returns_that_exception_for_both_operations() {
    let sim = start().await;
    for path in [converse_path(), stream_path()] {
        for (name, status) in EXCEPTIONS {
            let text = format!("hello [[sim:error={name}]]");
            let resp = send(&http1(), post(&sim.url(), &path, user_body(&text), test_bearer())).await;
            let message = resp.assert_error(*status, name);
            assert!(!message.is_empty());
        }
    }
    let resp = send(
        &http1(),
        post(&sim.url(), &converse_path(), user_body("[[sim:error=ModelErrorException]]"), test_bearer()),
    )
    .await;
    let body = resp.json();
    assert_eq!(body["originalStatusCode"], 500);
    assert_eq!(body["resourceName"], "us.anthropic.claude-3-7-sonnet-20250219-v1:0");
}

#[tokio::test]
async fn latency_delays_the_response_headers() {
    let sim = start().await;
    for path in [converse_path(), stream_path()] {
        let started = Instant::now();
        let resp = http1()
            .request(post(&sim.url(), &path, user_body("hi [[sim:latency=300]]"), test_bearer()))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(300), "{path}: {:?}", started.elapsed());
        assert_eq!(resp.status(), 200);
    }
    let resp =
        send(&http1(), post(&sim.url(), &converse_path(), user_body("[[sim:latency=300]]"), test_bearer()))
            .await;
    assert_eq!(resp.json()["metrics"]["latencyMs"], 300);
}

#[tokio::test]
async fn gap_spaces_out_stream_events() {
    let sim = start().await;
    let req = post(&sim.url(), &stream_path(), user_body("one two [[sim:gap=60]]"), test_bearer());
    let resp = http1().request(req).await.unwrap();
    let headers_at = Instant::now();
    let mut body = resp.into_body();
    let mut arrivals = Vec::new();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push(headers_at.elapsed());
            bytes.extend_from_slice(&data);
        }
    }
    let frames = decode_frames(&bytes).unwrap();
    // messageStart, 5 deltas ("Simulated reply to: one two"), stop, messageStop, metadata.
    assert_eq!(frames.len(), 9);
    assert!(arrivals[0] < Duration::from_millis(50), "first event is not delayed: {:?}", arrivals[0]);
    let total = *arrivals.last().unwrap();
    assert!(total >= Duration::from_millis(8 * 60), "8 gaps of 60ms, got {total:?}");
    assert_eq!(payload(&frames[8])["metrics"]["latencyMs"], 8 * 60);
}

#[tokio::test]
async fn stream_error_sends_exception_frame_after_first_delta() {
    let sim = start().await;
    for name in [
        "modelStreamErrorException",
        "throttlingException",
        "internalServerException",
        "validationException",
        "serviceUnavailableException",
    ] {
        let text = format!("a b c [[sim:stream-error={name}]]");
        let resp = send(&http1(), post(&sim.url(), &stream_path(), user_body(&text), test_bearer())).await;
        assert_eq!(resp.status, 200);
        let frames = decode_frames(&resp.body).unwrap();
        assert_eq!(frames.len(), 3, "{name}");
        assert_eq!(frame_header(&frames[0], ":event-type").as_deref(), Some("messageStart"));
        assert_eq!(frame_header(&frames[1], ":event-type").as_deref(), Some("contentBlockDelta"));
        assert_eq!(payload(&frames[1])["delta"]["text"], "Simulated ");
        let exc = &frames[2];
        assert_eq!(frame_header(exc, ":message-type").as_deref(), Some("exception"));
        assert_eq!(frame_header(exc, ":exception-type").as_deref(), Some(name));
        assert_eq!(frame_header(exc, ":content-type").as_deref(), Some("application/json"));
        assert_eq!(frame_header(exc, ":event-type"), None);
        let body = payload(exc);
        assert!(body["message"].is_string());
        if name == "modelStreamErrorException" {
            assert_eq!(body["originalStatusCode"], 500);
            assert!(body["originalMessage"].is_string());
        } else {
            assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        }
    }
}

#[tokio::test]
async fn first_frame_sends_only_the_exception_for_the_first_n_calls() {
    let sim = start().await;
    let text = "a b [[sim:first-frame=throttlingException]][[sim:times=2]]";
    for _ in 0..2 {
        let resp = send(&http1(), post(&sim.url(), &stream_path(), user_body(text), test_bearer())).await;
        assert_eq!(resp.status, 200);
        let frames = decode_frames(&resp.body).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frame_header(&frames[0], ":message-type").as_deref(), Some("exception"));
        assert_eq!(frame_header(&frames[0], ":exception-type").as_deref(), Some("throttlingException"));
        assert_eq!(
            payload(&frames[0]),
            serde_json::json!({"message": "Too many requests, please wait before trying again."})
        );
    }
    let resp = send(&http1(), post(&sim.url(), &stream_path(), user_body(text), test_bearer())).await;
    let frames = decode_frames(&resp.body).unwrap();
    assert_eq!(frame_header(&frames[0], ":event-type").as_deref(), Some("messageStart"));
    assert_eq!(frame_header(frames.last().unwrap(), ":event-type").as_deref(), Some("metadata"));
}

/// Reads a body until it ends or fails; returns the data received and whether it failed.
async fn read_until_error(client: &HttpClient, text: &str) -> (Vec<u8>, bool) {
    let sim = start().await;
    let resp =
        client.request(post(&sim.url(), &stream_path(), user_body(text), test_bearer())).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => bytes.extend_from_slice(&f.into_data().unwrap_or_default()),
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

#[tokio::test]
async fn reset_aborts_the_body_after_first_delta() {
    for client in [http1(), h2c()] {
        let (bytes, failed) = read_until_error(&client, "a b c [[sim:reset]]").await;
        assert!(failed, "the client must see an error, not a clean end");
        let frames = decode_frames(&bytes).unwrap();
        let names: Vec<_> = frames.iter().map(|m| frame_header(m, ":event-type").unwrap()).collect();
        assert_eq!(names, ["messageStart", "contentBlockDelta"]);
    }
}

#[tokio::test]
async fn garbage_is_not_a_valid_frame() {
    let (bytes, failed) = read_until_error(&http1(), "a b c [[sim:garbage]]").await;
    assert!(!failed);
    let (frames, err) = decode_until_error(&bytes);
    assert_eq!(frames.len(), 2);
    let err = err.expect("decoder must reject the garbage");
    assert!(err.contains("prelude checksum"), "{err}");
}
