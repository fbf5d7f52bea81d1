//! OpenAI images <-> Nova Canvas and Titan Image Generator v1 / v2 (one InvokeModel envelope).
//!
//! Generations are `TEXT_IMAGE`: `size` -> `width`/`height` (Titan: its fixed list of sizes;
//! Canvas: sides 320-4096 divisible by 16, at most 4,194,304 pixels, aspect ratio within 1:4 and
//! 4:1), `n` -> `numberOfImages` (at most 5), `quality` hd/high -> `premium`,
//! `negative_prompt` -> `negativeText`, `seed`, and Canvas `style`.
//!
//! Edits: with a mask or `mask_prompt`, `INPAINTING` (or `OUTPAINTING` with `task_type`); the
//! mask passes as is, in Bedrock's convention (black = the area to change). Without either,
//! `IMAGE_VARIATION` of the uploaded images, guided by the prompt.
//!
//! Bedrock answers a prompt its content filters block with a ValidationException; that becomes
//! OpenAI's `content_policy_violation`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::bedrock::images::{
    CanvasRequest, CanvasResponse, CanvasTask, ImageGenerationConfig, ImageVariationParams, PaintingParams,
    TextToImageParams,
};
use crate::bedrock::models::ImageFamily;
use crate::error::ApiError;
use crate::openai::images::{
    EditTask, ImageData, ImageEditRequest, ImageGenerationRequest, ImageOptions, ImagesResponse,
    OutputFormat, Quality, Size, content_policy_violation,
};

/// Sizes Titan Image Generator v1 and v2 accept (width, height).
const TITAN_SIZES: &[(u32, u32)] = &[
    (1024, 1024),
    (768, 768),
    (512, 512),
    (768, 1152),
    (384, 576),
    (1152, 768),
    (576, 384),
    (768, 1280),
    (384, 640),
    (1280, 768),
    (640, 384),
    (896, 1152),
    (448, 576),
    (1152, 896),
    (576, 448),
    (768, 1408),
    (384, 704),
    (1408, 768),
    (704, 384),
    (640, 1408),
    (320, 704),
    (1408, 640),
    (704, 320),
    (1152, 640),
    (1173, 640),
];

/// Nova Canvas styles.
const CANVAS_STYLES: &[&str] = &[
    "3D_ANIMATED_FAMILY_FILM",
    "DESIGN_SKETCH",
    "FLAT_VECTOR_ILLUSTRATION",
    "GRAPHIC_NOVEL_ILLUSTRATION",
    "MAXIMALISM",
    "MIDCENTURY_RETRO",
    "PHOTOREALISM",
    "SOFT_DIGITAL_PAINTING",
];

/// Most images one call may return.
const MAX_IMAGES: u32 = 5;

/// What Bedrock's message says when its content filters block a request.
const FILTER_MARKER: &str = "content filters";

fn name(family: ImageFamily) -> &'static str {
    match family {
        ImageFamily::NovaCanvas => "Nova Canvas",
        _ => "Titan Image Generator",
    }
}

/// The `TEXT_IMAGE` request for a generation.
pub fn generation_request(
    req: &ImageGenerationRequest,
    family: ImageFamily,
) -> Result<CanvasRequest<'_>, ApiError> {
    let o = &req.options;
    let style = style(o, family)?;
    let text = prompt(o, family)?;
    let config = config(o, family, o.size)?;
    Ok(CanvasRequest {
        task: CanvasTask::TextImage {
            params: TextToImageParams { text, negative_text: o.negative_prompt.as_deref(), style },
        },
        image_generation_config: config,
    })
}

/// The `INPAINTING`, `OUTPAINTING` or `IMAGE_VARIATION` request for an edit.
pub fn edit_request(req: &ImageEditRequest, family: ImageFamily) -> Result<CanvasRequest<'_>, ApiError> {
    let o = &req.options;
    if o.style.is_some() {
        return Err(ApiError::invalid_request("`style` applies to generations only.").with_param("style"));
    }
    if req.strength.is_some() {
        return Err(ApiError::invalid_request(format!(
            "`strength` applies to Stability image-to-image only; model `{}` is {}.",
            o.model,
            name(family)
        ))
        .with_param("strength"));
    }
    let text = prompt(o, family)?;
    let negative_text = o.negative_prompt.as_deref();
    let masked = req.mask.is_some() || req.mask_prompt.is_some();
    if req.mask.is_some() && req.mask_prompt.is_some() {
        return Err(ApiError::invalid_request("Send either a `mask` image or a `mask_prompt`, not both.")
            .with_param("mask_prompt"));
    }
    let task = match (req.task, masked) {
        (None, false) => None,
        (Some(task), false) => {
            let what = if task == EditTask::Outpainting { "OUTPAINTING" } else { "INPAINTING" };
            return Err(ApiError::invalid_request(format!(
                "{what} needs a `mask` image or a `mask_prompt` naming the area to keep or change."
            ))
            .with_param("mask"));
        }
        (task, true) => Some(task.unwrap_or(EditTask::Inpainting)),
    };
    if req.outpainting_mode.is_some() && task != Some(EditTask::Outpainting) {
        return Err(ApiError::invalid_request(
            "`outpainting_mode` applies to `task_type: OUTPAINTING` only.",
        )
        .with_param("outpainting_mode"));
    }
    let Some(task) = task else {
        if req.images.len() > MAX_IMAGES as usize {
            return Err(ApiError::invalid_request(format!(
                "At most {MAX_IMAGES} images can be varied in one request."
            ))
            .with_param("image"));
        }
        let images = req.images.iter().map(|i| STANDARD.encode(i)).collect();
        return Ok(CanvasRequest {
            task: CanvasTask::ImageVariation {
                params: ImageVariationParams { images, text: Some(text), negative_text },
            },
            image_generation_config: config(o, family, o.size)?,
        });
    };
    if req.images.len() != 1 {
        return Err(ApiError::invalid_request("Inpainting and outpainting take exactly one `image`.")
            .with_param("image"));
    }
    if o.size.is_some() {
        return Err(ApiError::invalid_request(
            "`size` cannot be chosen for inpainting or outpainting: the result has the size of the input image.",
        )
        .with_param("size"));
    }
    let out_painting_mode = match req.outpainting_mode.as_deref() {
        None => None,
        Some("DEFAULT") => Some("DEFAULT"),
        Some("PRECISE") => Some("PRECISE"),
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "Invalid value for `outpainting_mode`: `{other}`. Use DEFAULT or PRECISE."
            ))
            .with_param("outpainting_mode"));
        }
    };
    let params = PaintingParams {
        image: STANDARD.encode(&req.images[0]),
        text: Some(text),
        negative_text,
        mask_prompt: req.mask_prompt.as_deref(),
        mask_image: req.mask.as_ref().map(|m| STANDARD.encode(m)),
        out_painting_mode,
    };
    let task = match task {
        EditTask::Inpainting => CanvasTask::Inpainting { params },
        EditTask::Outpainting => CanvasTask::Outpainting { params },
    };
    Ok(CanvasRequest { task, image_generation_config: config(o, family, None)? })
}

fn prompt(o: &ImageOptions, family: ImageFamily) -> Result<&str, ApiError> {
    let max = if family == ImageFamily::NovaCanvas { 1024 } else { 512 };
    if o.prompt.chars().count() > max {
        return Err(ApiError::invalid_request(format!(
            "`prompt` is longer than the {max} characters {} accepts.",
            name(family)
        ))
        .with_param("prompt"));
    }
    Ok(&o.prompt)
}

fn style(o: &ImageOptions, family: ImageFamily) -> Result<Option<&str>, ApiError> {
    let Some(style) = o.style.as_deref() else { return Ok(None) };
    if family != ImageFamily::NovaCanvas {
        return Err(ApiError::invalid_request(format!(
            "`style` applies to Nova Canvas only; model `{}` is {}.",
            o.model,
            name(family)
        ))
        .with_param("style"));
    }
    if !CANVAS_STYLES.contains(&style) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `style`: `{style}`. Nova Canvas styles are {}.",
            CANVAS_STYLES.join(", ")
        ))
        .with_param("style"));
    }
    Ok(Some(style))
}

fn config(
    o: &ImageOptions,
    family: ImageFamily,
    size: Option<Size>,
) -> Result<ImageGenerationConfig, ApiError> {
    if o.n > MAX_IMAGES {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `n`: {}. {} returns at most {MAX_IMAGES} images per request.",
            o.n,
            name(family)
        ))
        .with_param("n"));
    }
    if let Some(format) = o.output_format.filter(|f| *f != OutputFormat::Png) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `output_format`: `{}`. {} returns PNG images only.",
            format.as_str(),
            name(family)
        ))
        .with_param("output_format"));
    }
    let max_seed = if family == ImageFamily::NovaCanvas { 858_993_459 } else { 2_147_483_646 };
    if let Some(seed) = o.seed.filter(|s| *s > max_seed) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `seed`: {seed}. {} takes seeds from 0 to {max_seed}.",
            name(family)
        ))
        .with_param("seed"));
    }
    if let Some(size) = size {
        check_size(size, family)?;
    }
    Ok(ImageGenerationConfig {
        number_of_images: o.n,
        width: size.map(|s| s.width),
        height: size.map(|s| s.height),
        quality: if o.quality == Quality::Premium { "premium" } else { "standard" },
        seed: o.seed,
    })
}

fn check_size(Size { width, height }: Size, family: ImageFamily) -> Result<(), ApiError> {
    let allowed = if family == ImageFamily::NovaCanvas {
        let side = |s: u32| (320..=4096).contains(&s) && s.is_multiple_of(16);
        side(width)
            && side(height)
            && u64::from(width) * u64::from(height) <= 4_194_304
            && width <= 4 * height
            && height <= 4 * width
    } else {
        TITAN_SIZES.contains(&(width, height))
    };
    if allowed {
        return Ok(());
    }
    let rule = if family == ImageFamily::NovaCanvas {
        "Nova Canvas takes widths and heights from 320 to 4096 pixels, divisible by 16, at most 4,194,304 \
         pixels in all and an aspect ratio between 1:4 and 4:1"
            .to_owned()
    } else {
        let sizes: Vec<String> = TITAN_SIZES.iter().map(|(w, h)| format!("{w}x{h}")).collect();
        format!("Titan Image Generator takes these sizes: {}", sizes.join(", "))
    };
    Err(ApiError::invalid_request(format!("Invalid value for `size`: `{width}x{height}`. {rule}."))
        .with_param("size"))
}

/// The OpenAI response for a Canvas/Titan response; `created` is the request time.
pub fn images_response(resp: CanvasResponse, created: u64) -> Result<ImagesResponse, ApiError> {
    if let Some(error) = resp.error.filter(|e| !e.is_empty()) {
        return Err(if error.contains(FILTER_MARKER) {
            content_policy_violation(&error)
        } else {
            ApiError::bad_gateway(format!("The image model failed: {error}"))
        });
    }
    if resp.images.is_empty() {
        return Err(ApiError::bad_gateway("Bedrock returned no images."));
    }
    Ok(ImagesResponse {
        created,
        data: resp.images.into_iter().map(|b64_json| ImageData { b64_json }).collect(),
    })
}

/// Turns Bedrock's content-filter ValidationException into `content_policy_violation`;
/// every other error is returned as it is.
pub fn refine_error(err: ApiError) -> ApiError {
    if err.status == http::StatusCode::BAD_REQUEST && err.message.contains(FILTER_MARKER) {
        content_policy_violation(&err.message)
    } else {
        err
    }
}
