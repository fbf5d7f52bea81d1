//! Wire types of the OpenAI API.
