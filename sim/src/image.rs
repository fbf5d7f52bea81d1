//! Image models over InvokeModel: Titan Image Generator v1 / v2 and Nova Canvas (one body
//! family: `taskType`, `<task>Params`, `imageGenerationConfig`), and the Stability models
//! (`prompt`, `aspect_ratio`, ...; one image per call).
//!
//! Every image is a real PNG of the size Bedrock would return (see [`crate::png`]), one grey
//! level derived from the prompt, the seed and the image's position. `[[sim:filter]]` in the
//! prompt plays the content filter: Titan and Canvas answer a ValidationException, Stability a
//! 200 with a `finish_reasons` entry, as Bedrock does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::AwsError;
use crate::invoke::{Fields, Invocation, InvokeReply, seed};
use crate::png::grey_png;
use crate::request::malformed;

/// Sizes Titan Image Generator v1 and v2 accept (width, height), from the AWS model page.
pub(crate) const TITAN_SIZES: &[(u32, u32)] = &[
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

/// Stability aspect ratios and the size of the image each one produces.
const STABILITY_RATIOS: &[(&str, u32, u32)] = &[
    ("1:1", 1024, 1024),
    ("16:9", 1344, 768),
    ("21:9", 1536, 640),
    ("2:3", 832, 1216),
    ("3:2", 1216, 832),
    ("4:5", 896, 1088),
    ("5:4", 1088, 896),
    ("9:16", 768, 1344),
    ("9:21", 640, 1536),
];

/// Bedrock's message when the content filters block a Titan or Canvas prompt.
const BLOCKED: &str = "This request has been blocked by our content filters. Please adjust your text prompt to submit a new request.";

/// Which member of the Titan/Canvas family is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Canvas {
    /// Titan Image Generator; v2 has the conditioning and extra tasks.
    Titan {
        /// `amazon.titan-image-generator-v2:0`.
        v2: bool,
    },
    /// Nova Canvas.
    Nova,
}

impl Canvas {
    fn max_text(self) -> usize {
        if self == Canvas::Nova { 1024 } else { 512 }
    }

    fn max_seed(self) -> i64 {
        if self == Canvas::Nova { 858_993_459 } else { 2_147_483_646 }
    }

    fn tasks(self) -> &'static [(&'static str, &'static str)] {
        const V1: &[(&str, &str)] = &[
            ("TEXT_IMAGE", "textToImageParams"),
            ("INPAINTING", "inPaintingParams"),
            ("OUTPAINTING", "outPaintingParams"),
            ("IMAGE_VARIATION", "imageVariationParams"),
        ];
        const V2: &[(&str, &str)] = &[
            ("TEXT_IMAGE", "textToImageParams"),
            ("INPAINTING", "inPaintingParams"),
            ("OUTPAINTING", "outPaintingParams"),
            ("IMAGE_VARIATION", "imageVariationParams"),
            ("COLOR_GUIDED_GENERATION", "colorGuidedGenerationParams"),
            ("BACKGROUND_REMOVAL", "backgroundRemovalParams"),
        ];
        if self == (Canvas::Titan { v2: false }) { V1 } else { V2 }
    }

    /// Whether Bedrock accepts `width` x `height` for a generated image.
    fn allows(self, width: i64, height: i64) -> bool {
        match self {
            Canvas::Titan { .. } => {
                TITAN_SIZES.iter().any(|&(w, h)| i64::from(w) == width && i64::from(h) == height)
            }
            Canvas::Nova => {
                let side = |s: i64| (320..=4096).contains(&s) && s % 16 == 0;
                side(width)
                    && side(height)
                    && width * height <= 4_194_304
                    && width <= 4 * height
                    && height <= 4 * width
            }
        }
    }
}

/// The prompt of an image request (for directives), or "" when there is none.
pub(crate) fn prompt_text(body: &Map<String, Value>) -> String {
    if let Some(prompt) = body.get("prompt").and_then(Value::as_str) {
        return prompt.to_owned();
    }
    body.values()
        .filter_map(Value::as_object)
        .filter_map(|params| params.get("text").and_then(Value::as_str))
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[derive(Serialize)]
struct CanvasResponse {
    images: Vec<String>,
    error: Option<String>,
}

/// Titan Image Generator and Nova Canvas: TEXT_IMAGE, INPAINTING, OUTPAINTING, IMAGE_VARIATION.
pub(crate) fn titan_nova(call: &Invocation<'_>, canvas: Canvas) -> Result<InvokeReply, AwsError> {
    let tasks = canvas.tasks();
    let mut allowed: Vec<&str> = vec!["taskType", "imageGenerationConfig"];
    allowed.extend(tasks.iter().map(|(_, params)| *params));
    let f = Fields::new(call.body, "#", &allowed)?;
    f.require("taskType")?;
    let names: Vec<&str> = tasks.iter().map(|(task, _)| *task).collect();
    let task = f.one_of("taskType", &names)?.unwrap_or_default();
    let params_key = tasks.iter().find(|(t, _)| *t == task).map(|(_, p)| *p).unwrap_or_default();
    if let Some(other) = tasks.iter().map(|(_, p)| *p).find(|p| *p != params_key && f.has(p)) {
        return Err(malformed(format!("#: extraneous key [{other}] is not permitted")));
    }
    let params = f.required_object(params_key)?;
    let config = Config::read(f.object("imageGenerationConfig")?, canvas)?;
    let path = format!("#/{params_key}");
    let max_text = canvas.max_text();
    let (text, width, height) = match task {
        "TEXT_IMAGE" => {
            let mut keys = vec!["text", "negativeText"];
            if canvas != (Canvas::Titan { v2: false }) {
                keys.extend(["conditionImage", "controlMode", "controlStrength"]);
            }
            if canvas == Canvas::Nova {
                keys.push("style");
            }
            let p = Fields::new(params, &path, &keys)?;
            let text = p.text("text", 1, max_text)?;
            if let Some(negative) = p.str("negativeText")? {
                p.length("negativeText", negative, 1, max_text)?;
            }
            p.one_of("style", CANVAS_STYLES)?;
            p.one_of("controlMode", &["CANNY_EDGE", "SEGMENTATION"])?;
            p.number("controlStrength", 0.0, 1.0)?;
            if let Some(image) = p.str("conditionImage")? {
                decode_image(image, &p.at("conditionImage"))?;
            }
            let (width, height) = (config.width.unwrap_or(1024), config.height.unwrap_or(1024));
            if !canvas.allows(width, height) {
                return Err(AwsError::validation(format!(
                    "Malformed input request: #/imageGenerationConfig: {width}x{height} is not a supported image size \
                     (width x height) for this model, please reformat your input and try again."
                )));
            }
            (text, width as u32, height as u32)
        }
        "INPAINTING" | "OUTPAINTING" => {
            let mut keys = vec!["image", "text", "negativeText", "maskPrompt", "maskImage"];
            if task == "OUTPAINTING" {
                keys.push("outPaintingMode");
            }
            let p = Fields::new(params, &path, &keys)?;
            p.require("image")?;
            let (width, height) = decode_image(p.str("image")?.unwrap_or_default(), &p.at("image"))?;
            let text = if task == "OUTPAINTING" || p.has("text") { p.text("text", 1, max_text)? } else { "" };
            p.one_of("outPaintingMode", &["DEFAULT", "PRECISE"])?;
            match (p.str("maskPrompt")?, p.str("maskImage")?) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(malformed(format!(
                        "{path}: exactly one of [maskPrompt, maskImage] must be provided"
                    )));
                }
                (Some(mask_prompt), None) => p.length("maskPrompt", mask_prompt, 1, max_text)?,
                (None, Some(mask)) => {
                    if decode_image(mask, &p.at("maskImage"))? != (width, height) {
                        return Err(AwsError::validation(
                            "The mask image must have the same width and height as the input image.",
                        ));
                    }
                }
            }
            (text, width, height)
        }
        "IMAGE_VARIATION" => {
            let p = Fields::new(params, &path, &["images", "text", "negativeText", "similarityStrength"])?;
            let images = p.required_array("images")?;
            if images.is_empty() || images.len() > 5 {
                return Err(malformed(format!(
                    "{}: expected 1 to 5 items, actual: {}",
                    p.at("images"),
                    images.len()
                )));
            }
            let mut first = None;
            for (i, image) in images.iter().enumerate() {
                let dims =
                    decode_image(image.as_str().unwrap_or_default(), &format!("{}/{i}", p.at("images")))?;
                first.get_or_insert(dims);
            }
            let text = if p.has("text") { p.text("text", 1, max_text)? } else { "" };
            p.number("similarityStrength", 0.2, 1.0)?;
            let (w, h) = first.unwrap_or((1024, 1024));
            (text, config.width.map_or(w, |w| w as u32), config.height.map_or(h, |h| h as u32))
        }
        other => {
            return Err(AwsError::validation(format!("bedrock-sim: task type {other} is not simulated")));
        }
    };
    if call.directives.filter {
        return Err(AwsError::validation(BLOCKED));
    }
    let seed_text = config.seed.unwrap_or(0).to_string();
    let images = (0..config.number_of_images).map(|i| png_b64(text, &seed_text, i, width, height)).collect();
    let body = serde_json::to_vec(&CanvasResponse { images, error: None }).unwrap_or_default();
    Ok(InvokeReply { body, input_tokens: None, output_tokens: 0 })
}

/// `imageGenerationConfig`, checked.
struct Config {
    number_of_images: u32,
    width: Option<i64>,
    height: Option<i64>,
    seed: Option<i64>,
}

impl Config {
    fn read(obj: Option<&Map<String, Value>>, canvas: Canvas) -> Result<Config, AwsError> {
        let Some(obj) = obj else {
            return Ok(Config { number_of_images: 1, width: None, height: None, seed: None });
        };
        let f = Fields::new(
            obj,
            "#/imageGenerationConfig",
            &["numberOfImages", "width", "height", "quality", "cfgScale", "seed"],
        )?;
        let number_of_images = f.int("numberOfImages", 1, 5)?.unwrap_or(1) as u32;
        f.one_of("quality", &["standard", "premium"])?;
        f.number("cfgScale", 1.1, 10.0)?;
        let seed = f.int("seed", 0, canvas.max_seed())?;
        let width = f.int("width", 1, 4096 * 4)?;
        let height = f.int("height", 1, 4096 * 4)?;
        Ok(Config { number_of_images, width, height, seed })
    }
}

#[derive(Serialize)]
struct StabilityResponse {
    seeds: Vec<u64>,
    finish_reasons: Vec<Option<&'static str>>,
    images: Vec<String>,
}

/// Stability models: text-to-image (every model) and image-to-image (SD3.5 Large).
pub(crate) fn stability(call: &Invocation<'_>, image_to_image: bool) -> Result<InvokeReply, AwsError> {
    let mut keys = vec!["prompt", "negative_prompt", "aspect_ratio", "seed", "output_format"];
    if image_to_image {
        keys.extend(["mode", "image", "strength"]);
    }
    let f = Fields::new(call.body, "#", &keys)?;
    let prompt = f.text("prompt", 1, 10_000)?;
    if let Some(negative) = f.str("negative_prompt")? {
        f.length("negative_prompt", negative, 0, 10_000)?;
    }
    f.one_of("output_format", &["jpeg", "png", "webp"])?;
    let requested_seed = f.int("seed", 0, 4_294_967_294)?.unwrap_or(0) as u64;
    let ratios: Vec<&str> = STABILITY_RATIOS.iter().map(|(r, _, _)| *r).collect();
    let ratio = f.one_of("aspect_ratio", &ratios)?;
    let (width, height) = if f.one_of("mode", &["text-to-image", "image-to-image"])? == Some("image-to-image")
    {
        f.require("image")?;
        f.require("strength")?;
        f.number("strength", 0.0, 1.0)?;
        if ratio.is_some() {
            return Err(malformed("#: extraneous key [aspect_ratio] is not permitted"));
        }
        decode_image(f.str("image")?.unwrap_or_default(), "#/image")?
    } else {
        if let Some(key) = ["image", "strength"].into_iter().find(|k| f.has(k)) {
            return Err(malformed(format!("#: extraneous key [{key}] is not permitted")));
        }
        let ratio = ratio.unwrap_or("1:1");
        STABILITY_RATIOS.iter().find(|(r, _, _)| *r == ratio).map_or((1024, 1024), |(_, w, h)| (*w, *h))
    };
    // Seed 0 asks for a random seed; the simulator's "random" one comes from the prompt.
    let seed_used =
        if requested_seed == 0 { seed(&[prompt.as_bytes()]) % 4_294_967_295 } else { requested_seed };
    let reason = call.directives.filter.then_some("Filter reason: prompt");
    let body = serde_json::to_vec(&StabilityResponse {
        seeds: vec![seed_used],
        finish_reasons: vec![reason],
        images: vec![png_b64(prompt, &seed_used.to_string(), 0, width, height)],
    })
    .unwrap_or_default();
    Ok(InvokeReply { body, input_tokens: None, output_tokens: 0 })
}

/// Base64 PNG for image `index` of a prompt and seed.
fn png_b64(prompt: &str, seed_text: &str, index: u32, width: u32, height: u32) -> String {
    let grey = seed(&[prompt.as_bytes(), seed_text.as_bytes(), &index.to_le_bytes()]) as u8;
    STANDARD.encode(grey_png(width, height, grey))
}

/// Decodes a base64 PNG or JPEG image and returns its width and height.
fn decode_image(b64: &str, path: &str) -> Result<(u32, u32), AwsError> {
    let invalid = || {
        AwsError::validation(format!(
            "Malformed input request: {path}: the value must be a base64-encoded PNG or JPEG image, \
             please reformat your input and try again."
        ))
    };
    let bytes = STANDARD.decode(b64).map_err(|_| invalid())?;
    image_size(&bytes).ok_or_else(invalid)
}

/// Width and height from a PNG's IHDR or a JPEG's start-of-frame segment.
pub(crate) fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR") {
        let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
        let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
        return (width > 0 && height > 0).then_some((width, height));
    }
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let frame = bytes.get(at + 5..at + 9)?;
            let height = u32::from(u16::from_be_bytes([frame[0], frame[1]]));
            let width = u32::from(u16::from_be_bytes([frame[2], frame[3]]));
            return Some((width, height));
        }
        at += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Directives;
    use serde_json::json;

    fn run(body: Value, canvas: Option<Canvas>, filter: bool) -> Result<Value, AwsError> {
        let body = body.as_object().unwrap().clone();
        let call = Invocation { body: &body, directives: Directives { filter, ..Directives::default() } };
        let reply = match canvas {
            Some(canvas) => titan_nova(&call, canvas)?,
            None => stability(&call, true)?,
        };
        Ok(serde_json::from_slice(&reply.body).unwrap())
    }

    fn size_of(b64: &Value) -> (u32, u32) {
        image_size(&STANDARD.decode(b64.as_str().unwrap()).unwrap()).unwrap()
    }

    fn png(w: u32, h: u32) -> String {
        STANDARD.encode(grey_png(w, h, 0))
    }

    #[test]
    fn text_to_image_sizes_and_counts() {
        let body = json!({
            "taskType": "TEXT_IMAGE",
            "textToImageParams": {"text": "a cat", "style": "PHOTOREALISM"},
            "imageGenerationConfig": {"numberOfImages": 2, "width": 1280, "height": 720, "quality": "premium", "seed": 7}
        });
        let v = run(body, Some(Canvas::Nova), false).unwrap();
        assert_eq!(v["images"].as_array().unwrap().len(), 2);
        assert_eq!(size_of(&v["images"][0]), (1280, 720));
        assert_ne!(v["images"][0], v["images"][1]);
        assert_eq!(v["error"], Value::Null);
    }

    #[test]
    fn titan_refuses_sizes_and_canvas_fields() {
        let body = |w: u32, extra: Value| {
            let mut params = json!({"text": "a cat"});
            params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            json!({"taskType": "TEXT_IMAGE", "textToImageParams": params, "imageGenerationConfig": {"width": w, "height": 640}})
        };
        let ok = run(body(1173, json!({})), Some(Canvas::Titan { v2: true }), false).unwrap();
        assert_eq!(size_of(&ok["images"][0]), (1173, 640));
        let e = run(body(1000, json!({})), Some(Canvas::Titan { v2: true }), false).unwrap_err();
        assert!(e.message.contains("1000x640 is not a supported image size"), "{}", e.message);
        let e = run(body(1173, json!({"style": "PHOTOREALISM"})), Some(Canvas::Titan { v2: true }), false)
            .unwrap_err();
        assert!(e.message.contains("#/textToImageParams: extraneous key [style]"), "{}", e.message);
        let e = run(json!({"prompt": "x"}), Some(Canvas::Nova), false).unwrap_err();
        assert!(e.message.contains("extraneous key [prompt]"), "{}", e.message);
    }

    #[test]
    fn inpainting_keeps_the_input_size_and_checks_the_mask() {
        let body = json!({"taskType": "INPAINTING", "inPaintingParams": {"image": png(64, 48), "maskImage": png(64, 48), "text": "hat"}});
        let v = run(body, Some(Canvas::Nova), false).unwrap();
        assert_eq!(size_of(&v["images"][0]), (64, 48));
        let bad = json!({"taskType": "INPAINTING", "inPaintingParams": {"image": png(64, 48), "maskImage": png(32, 48)}});
        assert!(run(bad, Some(Canvas::Nova), false).unwrap_err().message.contains("same width and height"));
        let neither = json!({"taskType": "INPAINTING", "inPaintingParams": {"image": png(64, 48)}});
        assert!(run(neither, Some(Canvas::Nova), false).unwrap_err().message.contains("exactly one of"));
    }

    #[test]
    fn content_filter_answers() {
        let body = json!({"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "x"}});
        assert_eq!(run(body, Some(Canvas::Nova), true).unwrap_err().message, BLOCKED);
        let v = run(json!({"prompt": "x"}), None, true).unwrap();
        assert_eq!(v["finish_reasons"], json!(["Filter reason: prompt"]));
    }

    #[test]
    fn stability_ratios_seeds_and_modes() {
        let v = run(json!({"prompt": "a fox", "aspect_ratio": "16:9", "seed": 42}), None, false).unwrap();
        assert_eq!(v["seeds"], json!([42]));
        assert_eq!(v["finish_reasons"], json!([null]));
        assert_eq!(size_of(&v["images"][0]), (1344, 768));
        let i2i =
            json!({"prompt": "a fox", "mode": "image-to-image", "image": png(100, 60), "strength": 0.5});
        assert_eq!(size_of(&run(i2i, None, false).unwrap()["images"][0]), (100, 60));
        let e = run(json!({"prompt": "a", "aspect_ratio": "4:3"}), None, false).unwrap_err();
        assert!(e.message.contains("#/aspect_ratio: 4:3 is not a valid enum value"), "{}", e.message);
        let e = run(json!({"prompt": "a", "taskType": "TEXT_IMAGE"}), None, false).unwrap_err();
        assert!(e.message.contains("extraneous key [taskType]"), "{}", e.message);
    }
}
