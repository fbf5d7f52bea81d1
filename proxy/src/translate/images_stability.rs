//! OpenAI images <-> Stability models on Bedrock (SD3.5 Large, Stable Image Ultra, Stable
//! Image Core).
//!
//! One image per call: `n` becomes `n` calls (the endpoint runs them concurrently and keeps
//! their order), image `i` with `seed + i` when a seed is given. `size` picks the nearest
//! `aspect_ratio`; `output_format` passes through. Edits are SD3.5 Large image-to-image
//! (`strength`, extra field, default 0.5); masks are refused. A non-null `finish_reasons`
//! entry (`Filter reason: ...`) becomes OpenAI's `content_policy_violation`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::bedrock::images::{StabilityRequest, StabilityResponse};
use crate::bedrock::models::ImageFamily;
use crate::error::ApiError;
use crate::openai::images::{
    ImageData, ImageEditRequest, ImageGenerationRequest, ImageOptions, ImagesResponse, Quality, Size,
    content_policy_violation,
};

/// Aspect ratios Stability accepts, as (name, width, height).
const ASPECT_RATIOS: [(&str, u32, u32); 9] = [
    ("1:1", 1, 1),
    ("16:9", 16, 9),
    ("21:9", 21, 9),
    ("2:3", 2, 3),
    ("3:2", 3, 2),
    ("4:5", 4, 5),
    ("5:4", 5, 4),
    ("9:16", 9, 16),
    ("9:21", 9, 21),
];
/// Largest seed Stability takes.
const MAX_SEED: u64 = 4_294_967_294;
/// Image-to-image `strength` when the request gives none.
const DEFAULT_STRENGTH: f32 = 0.5;

/// The aspect ratio closest to `size` (by the ratio's logarithm, so 2:1 and 1:2 are as far from 1:1).
pub fn nearest_aspect_ratio(size: Size) -> &'static str {
    let want = (f64::from(size.width) / f64::from(size.height)).ln();
    ASPECT_RATIOS
        .iter()
        .min_by(|a, b| {
            let d = |(_, w, h): &(&str, u32, u32)| (want - (f64::from(*w) / f64::from(*h)).ln()).abs();
            d(a).total_cmp(&d(b))
        })
        .map_or("1:1", |(name, _, _)| name)
}

/// The `n` text-to-image requests of a generation.
pub fn generation_requests(req: &ImageGenerationRequest) -> Result<Vec<StabilityRequest<'_>>, ApiError> {
    let o = &req.options;
    common(o)?;
    let aspect_ratio = o.size.map(nearest_aspect_ratio);
    Ok((0..o.n).map(|i| StabilityRequest { aspect_ratio, seed: seed(o, i), ..base(o) }).collect())
}

/// The `n` image-to-image requests of an edit (SD3.5 Large only).
pub fn edit_requests(
    req: &ImageEditRequest,
    family: ImageFamily,
) -> Result<Vec<StabilityRequest<'_>>, ApiError> {
    let o = &req.options;
    if family != ImageFamily::Sd35Large {
        return Err(ApiError::invalid_request(format!(
            "Model `{}` cannot edit images on Bedrock; of the Stability models only SD3.5 Large does \
             image-to-image.",
            o.model
        ))
        .with_param("model"));
    }
    common(o)?;
    let refuse = |param: &str, why: &str| Err(ApiError::invalid_request(why.to_owned()).with_param(param));
    if req.mask.is_some() || req.mask_prompt.is_some() || req.task.is_some() {
        return refuse(
            "mask",
            "Stability image-to-image does not take a mask; send the image and prompt only.",
        );
    }
    if req.outpainting_mode.is_some() {
        return refuse("outpainting_mode", "`outpainting_mode` applies to Titan and Nova Canvas only.");
    }
    if req.images.len() != 1 {
        return refuse("image", "Stability image-to-image takes exactly one `image`.");
    }
    if o.size.is_some() {
        return refuse(
            "size",
            "`size` cannot be chosen for image-to-image: the result has the input's size.",
        );
    }
    let image = STANDARD.encode(&req.images[0]);
    let strength = Some(req.strength.unwrap_or(DEFAULT_STRENGTH));
    Ok((0..o.n)
        .map(|i| StabilityRequest {
            mode: Some("image-to-image"),
            image: Some(image.clone()),
            strength,
            seed: seed(o, i),
            ..base(o)
        })
        .collect())
}

fn common(o: &ImageOptions) -> Result<(), ApiError> {
    if o.style.is_some() {
        return Err(ApiError::invalid_request(format!(
            "`style` applies to Nova Canvas only; model `{}` is a Stability model.",
            o.model
        ))
        .with_param("style"));
    }
    if o.quality == Quality::Premium {
        return Err(ApiError::invalid_request(format!(
            "Model `{}` has no quality setting on Bedrock; omit `quality` or use `standard`.",
            o.model
        ))
        .with_param("quality"));
    }
    if let Some(seed) = o.seed.filter(|s| *s > MAX_SEED) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `seed`: {seed}. Stability models take seeds from 0 to {MAX_SEED}."
        ))
        .with_param("seed"));
    }
    if o.prompt.chars().count() > 10_000 {
        return Err(ApiError::invalid_request(
            "`prompt` is longer than the 10,000 characters Stability accepts.",
        )
        .with_param("prompt"));
    }
    Ok(())
}

fn base(o: &ImageOptions) -> StabilityRequest<'_> {
    StabilityRequest {
        prompt: &o.prompt,
        negative_prompt: o.negative_prompt.as_deref(),
        aspect_ratio: None,
        mode: None,
        image: None,
        strength: None,
        seed: None,
        output_format: o.output_format.map(|f| f.as_str()),
    }
}

/// Seed of image `i`: `seed + i` (wrapping within Stability's range) when a seed was given.
fn seed(o: &ImageOptions, i: u32) -> Option<u64> {
    o.seed.map(|s| (s + u64::from(i)) % (MAX_SEED + 1))
}

/// The OpenAI response for the Stability responses, in request order.
pub fn images_response(responses: Vec<StabilityResponse>, created: u64) -> Result<ImagesResponse, ApiError> {
    let mut data = Vec::with_capacity(responses.len());
    for resp in responses {
        if let Some(reason) = resp.finish_reasons.iter().flatten().next() {
            return Err(if reason.starts_with("Filter reason") {
                content_policy_violation(reason)
            } else {
                ApiError::bad_gateway(format!("The Stability model failed: {reason}"))
            });
        }
        if resp.images.is_empty() {
            return Err(ApiError::bad_gateway("Bedrock returned no image."));
        }
        data.extend(resp.images.into_iter().map(|b64_json| ImageData { b64_json }));
    }
    Ok(ImagesResponse { created, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_the_nearest_ratio() {
        let ratio = |width, height| nearest_aspect_ratio(Size { width, height });
        assert_eq!(ratio(1024, 1024), "1:1");
        assert_eq!(ratio(1792, 1024), "16:9");
        assert_eq!(ratio(1024, 1792), "9:16");
        assert_eq!(ratio(1536, 1024), "3:2");
        assert_eq!(ratio(1024, 1536), "2:3");
        assert_eq!(ratio(2560, 1080), "21:9");
        assert_eq!(ratio(1280, 1024), "5:4");
    }
}
