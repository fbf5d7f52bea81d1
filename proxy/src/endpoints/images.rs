//! `POST /v1/images/generations` and `POST /v1/images/edits` on Bedrock InvokeModel: Nova
//! Canvas and Titan Image Generator (one call for all `n` images), Stability models (one call
//! per image, run concurrently with a bound).

use std::sync::Arc;
use std::time::Instant;

use api::config::ModelKind;
use http::header::CONTENT_TYPE;
use http::{Request, Response, StatusCode};

use super::{
    authorize, invoke_all, invoke_model, json_response, read_body, read_json, record_request, snapshot,
    unix_now,
};
use crate::auth::Subject;
use crate::bedrock::images::{CanvasRequest, CanvasResponse, StabilityRequest, StabilityResponse};
use crate::bedrock::models::{ImageFamily, image_family};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::limits::Admission;
use crate::openai::images::{ImagesResponse, parse_edit_request, parse_generation_request};
use crate::request_body::RequestBody;
use crate::server::App;
use crate::snapshot::{Route, Snapshot};
use crate::translate::{images_nova, images_stability};
use crate::usage::{self, Record};

const ENDPOINT: &str = "images";

/// Handles `POST /v1/images/generations` and records its metrics.
pub async fn generations(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = generate(app, req, started, &mut model_label).await;
    record_request(app, ENDPOINT, &model_label, &result, started);
    result
}

/// Handles `POST /v1/images/edits` (multipart/form-data) and records its metrics.
pub async fn edits(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut model_label = String::from("-");
    let result = edit(app, req, started, &mut model_label).await;
    record_request(app, ENDPOINT, &model_label, &result, started);
    result
}

/// The Bedrock calls of one images request.
enum Calls<'a> {
    /// One Titan / Nova Canvas call.
    Canvas(CanvasRequest<'a>),
    /// One Stability call per image.
    Stability(Vec<StabilityRequest<'a>>),
}

async fn generate(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
    model_label: &mut String,
) -> Result<Response<ResponseBody>, ApiError> {
    let created = unix_now();
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    let subject = &subject;
    let request = parse_generation_request(&read_body(app, body).await?)?;
    let (route, family) = image_route(&snapshot, subject, &request.options.model, model_label)?;
    let calls = match family {
        ImageFamily::Sd35Large | ImageFamily::StableImage => {
            Calls::Stability(images_stability::generation_requests(&request)?)
        }
        _ => Calls::Canvas(images_nova::generation_request(&request, family)?),
    };
    let admission = app.usage.admit(subject, &snapshot.policies, &route.model.served_name).await?;
    let response = run(app, route, calls, created).await?;
    Ok(record(app, subject, route, &admission, started, response))
}

async fn edit(
    app: &Arc<App>,
    req: Request<RequestBody>,
    started: Instant,
    model_label: &mut String,
) -> Result<Response<ResponseBody>, ApiError> {
    let created = unix_now();
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    let subject = &subject;
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let request = parse_edit_request(content_type, read_body(app, body).await?).await?;
    let (route, family) = image_route(&snapshot, subject, &request.options.model, model_label)?;
    let calls = match family {
        ImageFamily::Sd35Large | ImageFamily::StableImage => {
            Calls::Stability(images_stability::edit_requests(&request, family)?)
        }
        _ => Calls::Canvas(images_nova::edit_request(&request, family)?),
    };
    let admission = app.usage.admit(subject, &snapshot.policies, &route.model.served_name).await?;
    let response = run(app, route, calls, created).await?;
    Ok(record(app, subject, route, &admission, started, response))
}

/// The route of an image model the caller may use, and its family.
fn image_route<'a>(
    snapshot: &'a Snapshot,
    subject: &Subject,
    model: &str,
    model_label: &mut String,
) -> Result<(&'a Arc<Route>, ImageFamily), ApiError> {
    crate::otel::request_model(model);
    let route = snapshot.routes.get(model).ok_or_else(|| ApiError::model_not_found(model))?;
    model_label.clone_from(&route.model.served_name);
    authorize(snapshot, subject, route, ModelKind::Image)?;
    let family = image_family(&route.model.model_id).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "The model `{model}` (`{}`) is not an image model this gateway can call; it serves Nova Canvas, \
             Titan Image Generator v1/v2 and Stability SD3.5 Large, Stable Image Ultra and Core.",
            route.model.model_id
        ))
        .with_param("model")
    })?;
    Ok((route, family))
}

async fn run(
    app: &App,
    route: &Arc<Route>,
    calls: Calls<'_>,
    created: u64,
) -> Result<ImagesResponse, ApiError> {
    let model = route.model.served_name.as_str();
    let response = match calls {
        Calls::Canvas(call) => {
            let body = serde_json::to_vec(&call).expect("Canvas request serializes");
            let (_, bytes) = invoke_model(app, route, body).await.map_err(images_nova::refine_error)?;
            images_nova::images_response(read_json::<CanvasResponse>(model, &bytes)?, created)?
        }
        Calls::Stability(calls) => {
            let bodies =
                calls.iter().map(|c| serde_json::to_vec(c).expect("Stability request serializes")).collect();
            let responses =
                invoke_all(app, route, bodies, |_, body| read_json::<StabilityResponse>(model, body)).await?;
            images_stability::images_response(responses, created)?
        }
    };
    app.metrics.images.with_label_values(&[model]).inc_by(response.data.len() as u64);
    Ok(response)
}

/// Prices and records a finished images request; the response with its cost header.
fn record(
    app: &App,
    subject: &Subject,
    route: &Route,
    admission: &Admission,
    started: Instant,
    response: ImagesResponse,
) -> Response<ResponseBody> {
    let request_id = super::response_id("img-");
    let record = Record {
        images: response.data.len() as u64,
        ..Record::new(ENDPOINT, &request_id, subject, &route.model, started, admission)
    };
    let cost = app.usage.record(&record);
    let mut reply =
        json_response(StatusCode::OK, serde_json::to_vec(&response).expect("images response serializes"));
    usage::set_headers(reply.headers_mut(), admission, cost);
    reply
}
