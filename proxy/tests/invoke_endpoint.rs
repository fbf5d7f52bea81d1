//! `/v1/embeddings`, `/v1/images/generations` and `/v1/images/edits` end to end in-process:
//! proxy and simulator, what the caller gets and what Bedrock receives.

mod fixtures;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bedrock_sim::{RecordedRequest, embedding_vector, grey_png};
use fixtures::{Harness, KEY};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn post_json(h: &Harness, path: &str, body: Value) -> fixtures::Reply {
    h.call(Method::POST, path, Some(KEY), Some(&body.to_string())).await
}

fn invokes(h: &Harness) -> Vec<RecordedRequest> {
    h.sim.requests().into_iter().filter(|r| r.path.ends_with("/invoke")).collect()
}

fn body_of(r: &RecordedRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn png_size(b64: &str) -> (u32, u32) {
    let png = STANDARD.decode(b64).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()))
}

fn error_of(r: &fixtures::Reply) -> Value {
    r.json()["error"].clone()
}

#[tokio::test]
async fn titan_fans_out_one_call_per_input_in_order() {
    let h = Harness::start().await;
    let input: Vec<String> = (0..20).map(|i| format!("text number {i}")).collect();
    let r = post_json(&h, "/v1/embeddings", json!({"model": "demo/titan-embed-v2", "input": input})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "demo/titan-embed-v2");
    assert_eq!(v["usage"], json!({"prompt_tokens": 60, "total_tokens": 60}));
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(
        metrics.contains("bedrock_gateway_tokens_total{model=\"demo/titan-embed-v2\",type=\"input\"} 60"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "bedrock_gateway_requests_total{endpoint=\"embeddings\",model=\"demo/titan-embed-v2\",status=\"200\"} 1"
    ));
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 20);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_eq!(floats(&item["embedding"]), embedding_vector(&input[i], 1024, true), "input {i}");
    }
    let calls = invokes(&h);
    assert_eq!(calls.len(), 20);
    assert!(calls.iter().all(|c| c.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"));
    let mut sent: Vec<String> =
        calls.iter().map(|c| body_of(c)["inputText"].as_str().unwrap().to_owned()).collect();
    sent.sort();
    let mut expected = input.clone();
    expected.sort();
    assert_eq!(sent, expected);
}

#[tokio::test]
async fn base64_is_little_endian_f32_and_dimensions_reach_titan() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/titan-embed-v2", "input": "hello there", "dimensions": 256, "encoding_format": "base64"});
    let r = post_json(&h, "/v1/embeddings", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let b64 = r.json()["data"][0]["embedding"].as_str().unwrap().to_owned();
    let bytes = STANDARD.decode(b64).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(decoded, embedding_vector("hello there", 256, true));
    assert_eq!(body_of(&invokes(&h)[0]), json!({"inputText": "hello there", "dimensions": 256}));
}

#[tokio::test]
async fn cohere_batches_by_96_with_usage_from_the_header() {
    let h = Harness::start().await;
    let input: Vec<String> = (0..200).map(|i| format!("doc {i}")).collect();
    let r = post_json(
        &h,
        "/v1/embeddings",
        json!({"model": "demo/cohere-embed", "input": input, "input_type": "search_query"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["usage"]["prompt_tokens"], 400);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 200);
    for i in [0, 95, 96, 191, 192, 199] {
        assert_eq!(data[i]["index"], i);
        assert_eq!(
            floats(&data[i]["embedding"]),
            embedding_vector(&format!("search_query:doc {i}"), 1024, false)
        );
    }
    let mut sizes: Vec<usize> =
        invokes(&h).iter().map(|c| body_of(c)["texts"].as_array().unwrap().len()).collect();
    sizes.sort();
    assert_eq!(sizes, [8, 96, 96]);
    assert!(invokes(&h).iter().all(|c| body_of(c)["input_type"] == "search_query"));
}

#[tokio::test]
async fn a_model_can_set_the_default_cohere_input_type() {
    let h = Harness::start().await;
    let manifest = "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
                    metadata: {name: cohere-query, namespace: ai-gateway}\n\
                    spec: {accountRef: demo, modelId: cohere.embed-multilingual-v3, embedding: {inputType: search_query}}\n";
    let body = json!({"model": "demo/cohere-query", "input": "where is it"});
    let mut r = post_json(&h, "/v1/embeddings", body.clone()).await;
    for attempt in 0..50 {
        if r.status != StatusCode::NOT_FOUND {
            break;
        }
        // A changed file on every attempt: the watcher may take its first look after a write.
        std::fs::write(h.dir.join("queries.yaml"), format!("{manifest}# attempt {attempt}\n")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r = post_json(&h, "/v1/embeddings", body.clone()).await;
    }
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        floats(&r.json()["data"][0]["embedding"]),
        embedding_vector("search_query:where is it", 1024, false)
    );
    assert_eq!(body_of(&invokes(&h)[0])["input_type"], "search_query");
}

#[tokio::test]
async fn a_model_of_another_kind_is_a_clear_400() {
    let h = Harness::start().await;
    let r = post_json(&h, "/v1/embeddings", json!({"model": "demo/nova-lite", "input": "x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&r),
        json!({
            "message": "The model `demo/nova-lite` is a chat model and cannot be used with /v1/embeddings; use it with /v1/chat/completions.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_kind_mismatch"
        })
    );
    let r = h
        .chat(json!({"model": "demo/titan-embed-v2", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&r)["message"].as_str().unwrap().contains("is an embedding model"), "{}", r.text());
    let r =
        post_json(&h, "/v1/images/generations", json!({"model": "demo/cohere-embed", "prompt": "x"})).await;
    assert_eq!(error_of(&r)["code"], "model_kind_mismatch");
    assert!(h.sim.requests().is_empty(), "no refused request may reach Bedrock");
}

#[tokio::test]
async fn bedrock_faults_map_to_openai_statuses() {
    let h = Harness::start().await;
    let r = post_json(
        &h,
        "/v1/embeddings",
        json!({"model": "demo/titan-embed-v2", "input": ["ok", "[[sim:error=ThrottlingException]]"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(error_of(&r)["code"], "rate_limit_exceeded");
    let r = post_json(
        &h,
        "/v1/images/generations",
        json!({"model": "demo/sd35", "prompt": "[[sim:error=ServiceUnavailableException]]"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
}

#[tokio::test]
async fn nova_canvas_generates_real_pngs_of_the_requested_size() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/nova-canvas", "prompt": "a lighthouse", "n": 2, "size": "1280x720", "quality": "hd", "seed": 5});
    let r = post_json(&h, "/v1/images/generations", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for image in data {
        assert_eq!(png_size(image["b64_json"].as_str().unwrap()), (1280, 720));
    }
    let metrics = h.call(Method::GET, "/metrics", None, None).await.text();
    assert!(metrics.contains("bedrock_gateway_images_total{model=\"demo/nova-canvas\"} 2"), "{metrics}");
    let calls = invokes(&h);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/model/amazon.nova-canvas-v1%3A0/invoke");
    assert_eq!(
        body_of(&calls[0]),
        json!({
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {"text": "a lighthouse"},
            "imageGenerationConfig": {"numberOfImages": 2, "width": 1280, "height": 720, "quality": "premium", "seed": 5}
        })
    );
}

#[tokio::test]
async fn content_filters_are_content_policy_violations() {
    let h = Harness::start().await;
    for model in ["demo/nova-canvas", "demo/sd35"] {
        let r =
            post_json(&h, "/v1/images/generations", json!({"model": model, "prompt": "bad [[sim:filter]]"}))
                .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{model}: {}", r.text());
        assert_eq!(error_of(&r)["code"], "content_policy_violation", "{model}");
        assert_eq!(error_of(&r)["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn stability_fans_out_n_calls_with_the_nearest_aspect_ratio() {
    let h = Harness::start().await;
    let body = json!({"model": "demo/sd35", "prompt": "a fox", "n": 3, "size": "1792x1024", "seed": 100});
    let r = post_json(&h, "/v1/images/generations", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 3);
    assert_eq!(png_size(data[0]["b64_json"].as_str().unwrap()), (1344, 768));
    let mut seeds: Vec<u64> = invokes(&h)
        .iter()
        .map(|c| {
            let b = body_of(c);
            assert_eq!(b["aspect_ratio"], "16:9");
            b["seed"].as_u64().unwrap()
        })
        .collect();
    seeds.sort();
    assert_eq!(seeds, [100, 101, 102]);
    assert!(invokes(&h).iter().all(|c| c.path == "/model/stability.sd3-5-large-v1%3A0/invoke"));
}

const BOUNDARY: &str = "test-boundary-1234";

fn multipart(fields: &[(&str, &str)], files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.png\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").bytes());
    body
}

async fn edit(h: &Harness, fields: &[(&str, &str)], files: &[(&str, Vec<u8>)]) -> fixtures::Reply {
    h.post("/v1/images/edits", &format!("multipart/form-data; boundary={BOUNDARY}"), multipart(fields, files))
        .await
}

#[tokio::test]
async fn edits_with_a_mask_inpaint_and_without_vary() {
    let h = Harness::start().await;
    let image = grey_png(96, 64, 10);
    let mask = grey_png(96, 64, 0);
    let r = edit(
        &h,
        &[("model", "demo/nova-canvas"), ("prompt", "add a hat")],
        &[("image", image.clone()), ("mask", mask.clone())],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(png_size(r.json()["data"][0]["b64_json"].as_str().unwrap()), (96, 64));
    let sent = body_of(&invokes(&h)[0]);
    assert_eq!(sent["taskType"], "INPAINTING");
    assert_eq!(sent["inPaintingParams"]["image"], STANDARD.encode(&image));
    assert_eq!(sent["inPaintingParams"]["maskImage"], STANDARD.encode(&mask));
    h.sim.clear_requests();

    let r =
        edit(&h, &[("model", "demo/nova-canvas"), ("prompt", "in winter"), ("n", "2")], &[("image", image)])
            .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 2);
    let sent = body_of(&invokes(&h)[0]);
    assert_eq!(sent["taskType"], "IMAGE_VARIATION");
    assert_eq!(sent["imageVariationParams"]["text"], "in winter");
}

#[tokio::test]
async fn stability_edits_are_image_to_image() {
    let h = Harness::start().await;
    let r = edit(
        &h,
        &[("model", "demo/sd35"), ("prompt", "as a painting"), ("strength", "0.25")],
        &[("image", grey_png(50, 40, 3))],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(png_size(r.json()["data"][0]["b64_json"].as_str().unwrap()), (50, 40));
    let sent = body_of(&invokes(&h)[0]);
    assert_eq!(sent["mode"], "image-to-image");
    assert_eq!(sent["strength"], 0.25);
}

#[tokio::test]
async fn refused_image_requests_never_reach_bedrock() {
    let h = Harness::start().await;
    let r = post_json(
        &h,
        "/v1/images/generations",
        json!({"model": "demo/nova-canvas", "prompt": "x", "response_format": "url"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&r)["param"], "response_format");
    let r = post_json(
        &h,
        "/v1/images/generations",
        json!({"model": "demo/nova-canvas", "prompt": "x", "size": "256x256"}),
    )
    .await;
    assert_eq!((r.status, error_of(&r)["param"].clone()), (StatusCode::BAD_REQUEST, json!("size")));
    // Bigger than the harness's 1 MiB body limit.
    let r =
        edit(&h, &[("model", "demo/nova-canvas"), ("prompt", "x")], &[("image", vec![0u8; 1_100_000])]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert_eq!(error_of(&r)["code"], "request_too_large");
    let r = h.post("/v1/images/edits", "application/json", b"{}".to_vec()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(error_of(&r)["message"].as_str().unwrap().contains("multipart/form-data"));
    assert!(h.sim.requests().is_empty(), "no refused request may reach Bedrock");
}
