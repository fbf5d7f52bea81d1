//! Which model-native InvokeModel body a Bedrock model id speaks, read from the id (base model
//! id, cross-region profile id, or an ARN that ends in the model id).

/// An embedding model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbeddingFamily {
    /// `amazon.titan-embed-text-v1`: 1536 dimensions, one text per call.
    TitanV1,
    /// `amazon.titan-embed-text-v2:0`: 256/512/1024 dimensions, one text per call.
    TitanV2,
    /// `cohere.embed-english-v3`, `cohere.embed-multilingual-v3`: 1024 dimensions, 96 texts per call.
    Cohere,
}

/// An image model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFamily {
    /// `amazon.titan-image-generator-v1`.
    TitanV1,
    /// `amazon.titan-image-generator-v2:0`.
    TitanV2,
    /// `amazon.nova-canvas-v1:0`.
    NovaCanvas,
    /// `stability.sd3-5-large-v1:0`: text-to-image and image-to-image.
    Sd35Large,
    /// `stability.stable-image-ultra-*`, `stability.stable-image-core-*`: text-to-image.
    StableImage,
}

fn model_part(model_id: &str) -> &str {
    model_id.rsplit('/').next().unwrap_or(model_id)
}

/// The embedding family of `model_id`, if the gateway knows it.
pub fn embedding_family(model_id: &str) -> Option<EmbeddingFamily> {
    let id = model_part(model_id);
    if id.contains("amazon.titan-embed-text-v1") {
        Some(EmbeddingFamily::TitanV1)
    } else if id.contains("amazon.titan-embed-text-v2") {
        Some(EmbeddingFamily::TitanV2)
    } else if id.contains("cohere.embed-english-v3") || id.contains("cohere.embed-multilingual-v3") {
        Some(EmbeddingFamily::Cohere)
    } else {
        None
    }
}

/// The image family of `model_id`, if the gateway knows it.
pub fn image_family(model_id: &str) -> Option<ImageFamily> {
    let id = model_part(model_id);
    if id.contains("amazon.titan-image-generator-v1") {
        Some(ImageFamily::TitanV1)
    } else if id.contains("amazon.titan-image-generator-v2") {
        Some(ImageFamily::TitanV2)
    } else if id.contains("amazon.nova-canvas") {
        Some(ImageFamily::NovaCanvas)
    } else if id.contains("stability.sd3-5-large") {
        Some(ImageFamily::Sd35Large)
    } else if id.contains("stability.stable-image-ultra") || id.contains("stability.stable-image-core") {
        Some(ImageFamily::StableImage)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_ids() {
        assert_eq!(embedding_family("amazon.titan-embed-text-v2:0"), Some(EmbeddingFamily::TitanV2));
        assert_eq!(embedding_family("cohere.embed-english-v3"), Some(EmbeddingFamily::Cohere));
        assert_eq!(embedding_family("amazon.nova-lite-v1:0"), None);
        assert_eq!(image_family("us.amazon.nova-canvas-v1:0"), Some(ImageFamily::NovaCanvas));
        assert_eq!(
            image_family("arn:aws:bedrock:us-west-2::foundation-model/stability.sd3-5-large-v1:0"),
            Some(ImageFamily::Sd35Large)
        );
        assert_eq!(image_family("stability.stable-image-core-v1:1"), Some(ImageFamily::StableImage));
        assert_eq!(image_family("amazon.titan-image-generator-v1"), Some(ImageFamily::TitanV1));
    }
}
