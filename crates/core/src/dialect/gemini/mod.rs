//! gemini dialect (being written).
