//! InvokeModel bodies of the image models (bedrock-api.md §9.2): Titan Image Generator and
//! Nova Canvas (one envelope: `taskType`, `<task>Params`, `imageGenerationConfig`) and the
//! Stability models (flat body, one image per call).

use serde::{Deserialize, Serialize};

/// Titan Image Generator / Nova Canvas request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasRequest<'a> {
    /// `taskType` and its params object.
    #[serde(flatten)]
    pub task: CanvasTask<'a>,
    /// Count, size, quality, seed.
    pub image_generation_config: ImageGenerationConfig,
}

/// The task, serialized as `"taskType": ...` beside its params member.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "taskType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CanvasTask<'a> {
    /// Text to image.
    TextImage {
        /// Its params.
        #[serde(rename = "textToImageParams")]
        params: TextToImageParams<'a>,
    },
    /// Change what the mask covers.
    Inpainting {
        /// Its params.
        #[serde(rename = "inPaintingParams")]
        params: PaintingParams<'a>,
    },
    /// Change what the mask does not cover.
    Outpainting {
        /// Its params.
        #[serde(rename = "outPaintingParams")]
        params: PaintingParams<'a>,
    },
    /// New images in the manner of the given ones.
    ImageVariation {
        /// Its params.
        #[serde(rename = "imageVariationParams")]
        params: ImageVariationParams<'a>,
    },
}

/// `textToImageParams`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextToImageParams<'a> {
    /// The prompt.
    pub text: &'a str,
    /// What to keep out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_text: Option<&'a str>,
    /// Nova Canvas style.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<&'a str>,
}

/// `inPaintingParams` / `outPaintingParams`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaintingParams<'a> {
    /// Base64 of the input image.
    pub image: String,
    /// The prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// What to keep out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_text: Option<&'a str>,
    /// Text naming the masked area (one of this and `mask_image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_prompt: Option<&'a str>,
    /// Base64 of the mask image, black where masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_image: Option<String>,
    /// Outpainting only: `DEFAULT` or `PRECISE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_painting_mode: Option<&'a str>,
}

/// `imageVariationParams`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVariationParams<'a> {
    /// Base64 of the input images.
    pub images: Vec<String>,
    /// The prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// What to keep out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_text: Option<&'a str>,
}

/// `imageGenerationConfig`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageGenerationConfig {
    /// 1..=5.
    pub number_of_images: u32,
    /// Pixels across.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixels down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// `standard` or `premium`.
    pub quality: &'static str,
    /// Seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Titan Image Generator / Nova Canvas response.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct CanvasResponse {
    /// Base64 images.
    #[serde(default)]
    pub images: Vec<String>,
    /// Set when the model failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Stability request (SD3.5 Large, Stable Image Ultra, Stable Image Core).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StabilityRequest<'a> {
    /// The prompt.
    pub prompt: &'a str,
    /// What to keep out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<&'a str>,
    /// Text-to-image only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<&'static str>,
    /// `image-to-image` for edits (SD3.5 Large).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// Image-to-image: base64 of the input image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image-to-image: how much the input may change, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strength: Option<f32>,
    /// Seed (0 = random).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `png`, `jpeg` or `webp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_format: Option<&'static str>,
}

/// Stability response: one image, its seed and why it finished.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StabilityResponse {
    /// Seeds used.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// `null` when fine, else e.g. `Filter reason: prompt`.
    #[serde(default)]
    pub finish_reasons: Vec<Option<String>>,
    /// Base64 images.
    #[serde(default)]
    pub images: Vec<String>,
}
