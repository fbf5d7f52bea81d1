//! Translators, one per incoming-API/backend pair.
