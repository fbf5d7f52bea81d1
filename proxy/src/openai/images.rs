//! `POST /v1/images/generations` (JSON) and `POST /v1/images/edits` (multipart/form-data, as the
//! OpenAI SDKs send it): request parsing and validation, response types.
//!
//! Bedrock returns image bytes, never URLs, so `response_format: url` is refused. Extra fields
//! reach what Bedrock offers beyond OpenAI: `negative_prompt`, `seed`, a Nova Canvas `style`,
//! and for edits `task_type` (INPAINTING / OUTPAINTING), `mask_prompt`, `outpainting_mode` and
//! `strength` (Stability image-to-image).

use bytes::Bytes;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::parse::{check_rest, from_json, invalid, missing, not_yet};
use crate::error::ApiError;

/// Most images one request may ask for (OpenAI's limit).
pub const MAX_N: u32 = 10;
/// Largest uploaded image or mask, in bytes.
pub const MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;
/// Largest text field of a multipart edit, in bytes.
pub const MAX_TEXT_FIELD_BYTES: u64 = 64 * 1024;
/// Most parts a multipart edit may have.
pub const MAX_PARTS: usize = 32;

/// Width and height in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
}

/// Requested quality, folded onto Bedrock's two levels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quality {
    /// `standard`, `low`, `medium`, `auto` or absent.
    #[default]
    Standard,
    /// `hd` or `high`: Bedrock's `premium`.
    Premium,
}

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// WebP.
    Webp,
}

impl OutputFormat {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Webp => "webp",
        }
    }
}

/// What generations and edits share.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// Served model name.
    pub model: String,
    /// What to draw; never empty.
    pub prompt: String,
    /// How many images, 1..=10.
    pub n: u32,
    /// Requested size; `None` for `auto` or absent (the model's default).
    pub size: Option<Size>,
    /// Requested quality.
    pub quality: Quality,
    /// Requested file format.
    pub output_format: Option<OutputFormat>,
    /// What to keep out of the image (extra field).
    pub negative_prompt: Option<String>,
    /// Seed for reproducible images (extra field).
    pub seed: Option<u64>,
    /// Nova Canvas style (extra field, or OpenAI's `style`).
    pub style: Option<String>,
}

/// A validated image generation request.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGenerationRequest {
    /// Prompt, size, count and the rest.
    pub options: ImageOptions,
}

/// How an edit changes the image (extra field `task_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EditTask {
    /// Change what is inside the mask.
    Inpainting,
    /// Change what is outside the mask.
    Outpainting,
}

/// A validated image edit request.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageEditRequest {
    /// Prompt, size, count and the rest.
    pub options: ImageOptions,
    /// The uploaded images (`image` or `image[]`), at least one.
    pub images: Vec<Bytes>,
    /// The uploaded mask.
    pub mask: Option<Bytes>,
    /// Requested task; `None` lets the model's translator choose.
    pub task: Option<EditTask>,
    /// Text naming what to mask, instead of a mask image.
    pub mask_prompt: Option<String>,
    /// Outpainting mode (`DEFAULT` or `PRECISE`).
    pub outpainting_mode: Option<String>,
    /// How much image-to-image may change the input, 0..=1.
    pub strength: Option<f32>,
}

/// Fields accepted and not forwarded: they do not change the image Bedrock draws.
const HARMLESS_FIELDS: &[&str] = &["user", "moderation"];
/// OpenAI fields Bedrock has no counterpart for.
const NOT_YET_FIELDS: &[&str] = &["output_compression", "partial_images", "input_fidelity"];

/// The raw fields of either request, before validation (multipart values arrive as text).
#[derive(Deserialize)]
#[serde(expecting = "a JSON object")]
struct WireOptions {
    model: Option<String>,
    prompt: Option<String>,
    n: Option<u32>,
    size: Option<String>,
    quality: Option<String>,
    response_format: Option<String>,
    output_format: Option<OutputFormat>,
    style: Option<String>,
    background: Option<String>,
    stream: Option<bool>,
    negative_prompt: Option<String>,
    seed: Option<u64>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Parses and validates an image generation body; errors name the field at fault.
pub fn parse_generation_request(body: &[u8]) -> Result<ImageGenerationRequest, ApiError> {
    let wire: WireOptions = from_json(body)?;
    Ok(ImageGenerationRequest { options: wire.validate()? })
}

impl WireOptions {
    fn validate(self) -> Result<ImageOptions, ApiError> {
        check_rest(&self.rest, HARMLESS_FIELDS, NOT_YET_FIELDS, not_yet, str::to_owned)?;
        let model = self.model.filter(|m| !m.is_empty()).ok_or_else(|| missing("model".to_owned()))?;
        let prompt = self.prompt.ok_or_else(|| missing("prompt".to_owned()))?;
        if prompt.trim().is_empty() {
            return Err(invalid("prompt".to_owned(), "it must not be empty"));
        }
        let n = self.n.unwrap_or(1);
        if !(1..=MAX_N).contains(&n) {
            return Err(invalid("n".to_owned(), format_args!("{n}; it must be between 1 and {MAX_N}")));
        }
        match self.response_format.as_deref() {
            None | Some("b64_json") => {}
            Some("url") => {
                return Err(ApiError::invalid_request(
                    "`response_format: url` is not supported: Bedrock returns the image data, not a URL. \
                     Use `b64_json` (the default) instead.",
                )
                .with_param("response_format")
                .with_code("unsupported_value"));
            }
            Some(other) => {
                return Err(invalid("response_format".to_owned(), format_args!("`{other}`; use `b64_json`")));
            }
        }
        match self.background.as_deref() {
            None | Some("auto" | "opaque") => {}
            Some("transparent") => return Err(not_yet("background".to_owned())),
            Some(other) => return Err(invalid("background".to_owned(), format_args!("`{other}`"))),
        }
        if self.stream == Some(true) {
            return Err(not_yet("stream".to_owned()));
        }
        let quality = match self.quality.as_deref() {
            None | Some("standard" | "low" | "medium" | "auto") => Quality::Standard,
            Some("hd" | "high") => Quality::Premium,
            Some(other) => {
                return Err(invalid(
                    "quality".to_owned(),
                    format_args!("`{other}`; use one of standard, hd, low, medium, high, auto"),
                ));
            }
        };
        Ok(ImageOptions {
            model,
            prompt,
            n,
            size: self.size.as_deref().map(parse_size).transpose()?.flatten(),
            quality,
            output_format: self.output_format,
            negative_prompt: self.negative_prompt.filter(|s| !s.is_empty()),
            seed: self.seed,
            style: self.style,
        })
    }
}

/// `"WxH"` -> a size; `"auto"` -> `None`.
fn parse_size(size: &str) -> Result<Option<Size>, ApiError> {
    if size == "auto" {
        return Ok(None);
    }
    let parsed =
        size.split_once('x').and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)));
    match parsed {
        Some((width, height)) if width > 0 && height > 0 => Ok(Some(Size { width, height })),
        _ => Err(invalid(
            "size".to_owned(),
            format_args!("`{size}`; use `WIDTHxHEIGHT` in pixels (e.g. `1024x1024`) or `auto`"),
        )),
    }
}

/// Parses and validates a multipart/form-data image edit; `content_type` is the request's header.
///
/// Uploads over [`MAX_UPLOAD_BYTES`] are a 413 naming the part; more than [`MAX_PARTS`] parts or
/// an unknown field is a 400.
pub async fn parse_edit_request(
    content_type: Option<&str>,
    body: Bytes,
) -> Result<ImageEditRequest, ApiError> {
    let boundary = content_type.and_then(|ct| multer::parse_boundary(ct).ok()).ok_or_else(|| {
        ApiError::invalid_request(
            "/v1/images/edits takes a multipart/form-data body (with a boundary), as the OpenAI SDKs send it.",
        )
    })?;
    let limits = multer::SizeLimit::new()
        .per_field(MAX_TEXT_FIELD_BYTES)
        .for_field("image", MAX_UPLOAD_BYTES)
        .for_field("image[]", MAX_UPLOAD_BYTES)
        .for_field("mask", MAX_UPLOAD_BYTES);
    let body = stream::iter([Ok::<_, std::convert::Infallible>(body)]);
    let mut form =
        multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(limits));
    let mut images = Vec::new();
    let mut mask = None;
    let mut fields = Map::new();
    let mut parts = 0;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::invalid_request(format!(
                "The multipart body has more than {MAX_PARTS} parts."
            )));
        }
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "image" | "image[]" => images.push(field.bytes().await.map_err(multipart_error)?),
            "mask" => mask = Some(field.bytes().await.map_err(multipart_error)?),
            "" => return Err(ApiError::invalid_request("A part of the multipart body has no name.")),
            _ => {
                let text = field.text().await.map_err(multipart_error)?;
                fields.insert(name, Value::String(text));
            }
        }
    }
    if images.is_empty() {
        return Err(missing("image".to_owned()));
    }
    if images.iter().chain(&mask).any(Bytes::is_empty) {
        return Err(ApiError::invalid_request("An uploaded image is empty.").with_param("image"));
    }
    let mut take = |key: &str| fields.remove(key).and_then(|v| v.as_str().map(str::to_owned));
    let task = match take("task_type").as_deref() {
        None => None,
        Some("INPAINTING") => Some(EditTask::Inpainting),
        Some("OUTPAINTING") => Some(EditTask::Outpainting),
        Some(other) => {
            return Err(invalid(
                "task_type".to_owned(),
                format_args!("`{other}`; use INPAINTING or OUTPAINTING"),
            ));
        }
    };
    let mask_prompt = take("mask_prompt").filter(|s| !s.is_empty());
    let outpainting_mode = take("outpainting_mode");
    let strength = take("strength")
        .map(|s| s.parse::<f32>().ok().filter(|x| (0.0..=1.0).contains(x)).ok_or(s))
        .transpose()
        .map_err(|s| {
            invalid("strength".to_owned(), format_args!("`{s}`; it must be a number between 0 and 1"))
        })?;
    let options = typed_fields(fields)?.validate()?;
    Ok(ImageEditRequest { options, images, mask, task, mask_prompt, outpainting_mode, strength })
}

/// Turns multipart text fields into the JSON fields of [`WireOptions`] (numbers and booleans
/// arrive as text) and reads them.
fn typed_fields(mut fields: Map<String, Value>) -> Result<WireOptions, ApiError> {
    for key in ["n", "seed"] {
        if let Some(Value::String(text)) = fields.get(key) {
            let number = text
                .parse::<u64>()
                .map_err(|_| invalid(key.to_owned(), format_args!("`{text}`; expected an integer")))?;
            fields.insert(key.to_owned(), Value::from(number));
        }
    }
    if let Some(Value::String(text)) = fields.get("stream") {
        let flag = text == "true";
        fields.insert("stream".to_owned(), Value::Bool(flag));
    }
    from_json(&serde_json::to_vec(&Value::Object(fields)).expect("a JSON map serializes"))
}

/// 413 naming the part over its limit, 400 for any other unreadable multipart body.
pub(crate) fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::FieldSizeExceeded { limit, field_name } => {
            let name = field_name.unwrap_or_default();
            ApiError::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("The `{name}` part is larger than the gateway's limit of {limit} bytes."),
            )
            .with_param(name)
            .with_code("request_too_large")
        }
        other => {
            ApiError::invalid_request(format!("The multipart/form-data body could not be read: {other}."))
        }
    }
}

/// The images response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImagesResponse {
    /// Unix time (seconds) the request was received.
    pub created: u64,
    /// The images, in order.
    pub data: Vec<ImageData>,
}

/// One image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageData {
    /// The image file, base64.
    pub b64_json: String,
}

/// OpenAI's error for a prompt or image a content filter refused.
pub fn content_policy_violation(detail: &str) -> ApiError {
    ApiError::invalid_request(format!("Your request was rejected by Bedrock's content filters: {detail}"))
        .with_code("content_policy_violation")
}
